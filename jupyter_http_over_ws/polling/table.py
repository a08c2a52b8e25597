"""The open polling sessions of one server: lookup by id and owner, and expiry.

A session id is a capability only for the identity that opened the session: a
request of any other identity is told the session does not exist. A session no
request has touched for ``polling_idle_timeout`` seconds is closed (4408) and
releases everything it holds.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

from ..wire.names import CloseCode
from .session import PollingSession


class PollingTable:
    """The open polling sessions of one server, found by id and owner, and their expiry."""

    def __init__(self) -> None:
        self._sessions: dict[str, PollingSession] = {}
        self._reaper: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._sessions)

    def __iter__(self) -> Iterator[PollingSession]:
        return iter(list(self._sessions.values()))

    def add(self, session: PollingSession, idle_timeout: float) -> None:
        """Register ``session``; it expires after ``idle_timeout`` s without a request."""
        self._sessions[session.id] = session
        session.add_close_callback(self._forget)
        if idle_timeout and (self._reaper is None or self._reaper.done()):
            self._reaper = asyncio.ensure_future(self._reap(idle_timeout))

    def get(self, session_id: str, owner: str) -> PollingSession | None:
        """The open session ``session_id`` if ``owner`` opened it, else ``None``.

        A session of another identity is reported exactly like a missing one, so
        its existence is not revealed.
        """
        session = self._sessions.get(session_id)
        if session is None or session.closed is not None:
            return None
        if not secrets.compare_digest(session.owner.encode(), owner.encode()):
            return None
        return session

    def _forget(self, session: PollingSession) -> None:
        self._sessions.pop(session.id, None)

    async def _reap(self, idle_timeout: float) -> None:
        period = max(min(idle_timeout / 4, 5.0), 0.05)
        while self._sessions:
            await asyncio.sleep(period)
            for session in list(self._sessions.values()):
                if session.idle_seconds() >= idle_timeout:
                    session.log.info(
                        "http_over_websocket: polling session expired after %g s idle",
                        idle_timeout,
                    )
                    session.close(CloseCode.IDLE, f"Idle for {idle_timeout:g} s")

    async def close_all(self) -> None:
        """End every session (server shutdown)."""
        sessions = list(self._sessions.values())
        await asyncio.gather(*(s.shutdown() for s in sessions), return_exceptions=True)
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
