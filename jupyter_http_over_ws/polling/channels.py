"""Proxied sockets of a polling session: one upstream WebSocket per channel.

A channel does over the polling transport what ``proxied_ws`` does over a
WebSocket: it opens the same WebSocket on this server with the one dial
(:meth:`~..upstream.UpstreamDialer.dial`: the path checks, the private entrance,
the session's identity headers, so the upstream handler authenticates and
authorizes it as a direct connection) and relays frames both ways, keeping their
type, and the close code and reason (1014 when the upstream ends without a close
frame). A refused dial closes the channel with 4000 + the status ``proxied_ws``
would have answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from ..session import SHUTDOWN_TEXT
from ..upstream import AdmissionRefusedError, UpstreamRefusedError, received_close_frame
from ..wire.names import CloseCode, sendable_close_code, status_close_code
from ..wire.polling import (
    BinaryEnvelope,
    ClosedEnvelope,
    OpenedEnvelope,
    TextEnvelope,
    encode_envelope,
)
from ..wsproxy import is_binary, upstream_close


class Upstream(Protocol):
    """What a channel needs of its upstream socket (Tornado's ``WebSocketClientConnection``)."""

    @property
    def selected_subprotocol(self) -> str | None: ...  # noqa: D102

    @property
    def close_code(self) -> int | None: ...  # noqa: D102

    @property
    def close_reason(self) -> str | None: ...  # noqa: D102

    def read_message(self) -> Awaitable[str | bytes | None]: ...  # noqa: D102

    def write_message(self, message: str | bytes, binary: bool = False) -> Awaitable[None]: ...  # noqa: D102

    def close(self, code: int | None = None, reason: str | None = None) -> None: ...  # noqa: D102


class ChannelOpener(Protocol):
    """The one dial (:meth:`~..upstream.UpstreamDialer.dial`), as a channel uses it."""

    def __call__(
        self, path: str, subprotocols: Sequence[str], /, *, admit: Callable[[], None]
    ) -> Awaitable[Upstream]:
        """Open ``path`` upstream offering ``subprotocols``, calling ``admit`` first.

        ``admit`` runs once the path is allowed, before anything is dialled. Raises
        :class:`~..upstream.UpstreamRefusedError`, or what ``admit`` raised.
        """


class ChannelHost(Protocol):
    """What a polled channel needs from its polling session."""

    @property
    def output_closed(self) -> bool:
        """Whether the session sends nothing more (it has ended)."""

    async def post(self, envelope: bytes) -> None:
        """Queue one encoded envelope for the client (waits while the buffer is full)."""

    def outgoing_nowait(self, envelope: bytes) -> None:
        """Queue the channel's ``closed`` envelope at once, over the limit if need be."""

    def admit(self, channel: PolledChannel, /) -> tuple[int, str] | None:
        """Count the opened channel against the per-user limit, or say why it must close."""

    def channel_ended(self, channel: PolledChannel, /) -> None:
        """The channel has queued its ``closed`` envelope (or the session ended)."""


class PolledChannel:
    """One proxied socket carried by a polling session."""

    def __init__(
        self,
        number: int,
        path: str,
        protocols: list[str],
        opener: ChannelOpener,
        session: ChannelHost,
        log: logging.Logger,
    ) -> None:
        self.number = number
        self.path = path
        self._protocols = protocols
        self._opener = opener
        self._session = session
        self._log = log
        self._inbox: deque[str | bytes] = deque()
        self._inbox_bytes = 0
        self._inbox_changed = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._close_requested: tuple[int | None, str | None] | None = None
        self._upstream: Upstream | None = None
        self._task: asyncio.Task[None] | None = None
        self._ended = False

    @property
    def upstream(self) -> Upstream | None:
        """The upstream socket, once open."""
        return self._upstream

    def start(self) -> None:
        """Connect upstream and relay until either side closes."""
        self._task = asyncio.ensure_future(self._run())

    def write(self, message: str | bytes) -> None:
        """Queue a client frame for the upstream socket (relayed in order)."""
        if self._close_requested is not None:
            return
        self._inbox.append(message)
        self._inbox_bytes += len(message)
        self._drained.clear()
        self._inbox_changed.set()

    def close(self, code: int | None, reason: str | None) -> None:
        """The client closes the socket: pass its code and reason upstream."""
        if self._close_requested is None:
            self._close_requested = (code, reason)
            self._inbox_changed.set()

    async def drained(self, high_water: int) -> None:
        """Wait until at most ``high_water`` client bytes wait to be relayed."""
        while self._inbox_bytes > high_water and not self._ended:
            self._drained.clear()
            await self._drained.wait()

    def abort(self, code: int, reason: str | None) -> None:
        """The session ends: close the upstream socket at once."""
        self._ended = True
        self._drained.set()
        if self._upstream is not None:
            self._upstream.close(code, reason)
        if self._task is not None:
            self._task.cancel()

    async def shutdown(self) -> None:
        """The server is stopping: close upstream with 1001 and tell the client."""
        self._close_requested = (CloseCode.GOING_AWAY, SHUTDOWN_TEXT)
        self._inbox_changed.set()

    async def _run(self) -> None:
        code: int | None = None
        reason: str | None = None
        writer: asyncio.Task[None] | None = None
        try:
            try:
                # Counted against the per-user limit before anything is dialled (after
                # the path checks, so a refused path still reports its own status).
                self._upstream = await self._opener(self.path, self._protocols, admit=self._admit)
            except AdmissionRefusedError as over_limit:
                code, reason = over_limit.code, over_limit.reason
                return
            except UpstreamRefusedError as refusal:
                if isinstance(refusal.cause, OSError):
                    self._log.warning(
                        "http_over_websocket: cannot reach a polled socket: %s", refusal.cause
                    )
                code, reason = status_close_code(refusal.status), refusal.reason
                return
            upstream = self._upstream
            await self._session.post(
                encode_envelope(OpenedEnvelope(self.number, upstream.selected_subprotocol))
            )
            writer = asyncio.ensure_future(self._relay_client(upstream))
            while True:
                message = await upstream.read_message()
                if message is None:
                    break
                if isinstance(message, str):
                    envelope = encode_envelope(TextEnvelope(self.number, message))
                else:
                    envelope = encode_envelope(BinaryEnvelope(self.number, bytes(message)))
                await self._session.post(envelope)
            code, reason = upstream.close_code, upstream.close_reason
            if self._close_requested is None:
                # The upstream ended by itself: its close frame as it came, or 1014 (as
                # over proxied_ws) if it ended without one. After the client's own
                # close, the upstream's answer passes on as it is.
                code, reason = upstream_close(
                    code, reason, close_frame_received=received_close_frame(upstream)
                )
        except asyncio.CancelledError:
            return
        except Exception as error:  # the session's buffer closed, or the upstream failed
            self._log.debug("http_over_websocket: polled channel ended: %r", error)
            code, reason = CloseCode.INTERNAL_ERROR, "relay failed"
        finally:
            if writer is not None:
                writer.cancel()
            if self._upstream is not None:
                self._upstream.close()
            self._ended = True
            self._drained.set()
            if not self._session.output_closed:
                closed = ClosedEnvelope(self.number, code, reason)
                with contextlib.suppress(Exception):
                    self._session.outgoing_nowait(encode_envelope(closed))
            self._session.channel_ended(self)

    def _admit(self) -> None:
        refusal = self._session.admit(self)
        if refusal is not None:
            raise AdmissionRefusedError(*refusal)

    async def _relay_client(self, upstream: Upstream) -> None:
        try:
            while True:
                while self._inbox:
                    message = self._inbox.popleft()
                    self._inbox_bytes -= len(message)
                    await upstream.write_message(message, binary=is_binary(message))
                self._drained.set()
                if self._close_requested is not None:
                    code, reason = self._close_requested
                    code = sendable_close_code(code)
                    upstream.close(code, reason if code is not None else None)
                    return
                self._inbox_changed.clear()
                await self._inbox_changed.wait()
        except Exception as error:  # the upstream closed under us: the reader reports it
            self._log.debug("http_over_websocket: polled channel write failed: %r", error)
