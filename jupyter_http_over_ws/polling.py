"""The polling transport's sessions: acknowledgement, bounded buffers, long polls, expiry.

A :class:`PollingSession` is one client's tunnel over plain HTTP requests. It owns
a :class:`~.session.TunnelSession` for channel 0 (so in-flight requests, limits and
cancel live in the same place as for the WebSocket transport) and one
:class:`~.polling_channels.PolledChannel` per proxied socket. Everything it sends
the client goes through an :class:`OutgoingBuffer`: numbered, kept until the client
acknowledges it, bounded in bytes (a full buffer makes the sender wait, the same
backpressure a slow WebSocket reader exerts). The Tornado handlers in
:mod:`.handlers.polling` only authenticate and call into this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from .polling_channels import ChannelOpener, PolledChannel
from .session import TunnelSession
from .wire.polling import (
    TUNNEL_CHANNEL,
    BinaryEnvelope,
    ClosedEnvelope,
    CloseEnvelope,
    Envelope,
    OpenEnvelope,
    SendBatch,
    SendSequencer,
    TextEnvelope,
    encode_batch,
    encode_envelope,
)

#: Session-level close codes, reported in the last ``recv`` answer (``closed``).
CLOSED_BY_CLIENT = 1000
GOING_AWAY = 1001
EXPIRED = 4408


#: Close code of a channel refused over the session's cap (as 4429 for sockets).
TOO_MANY_CHANNELS_CODE = 4429


class BufferClosedError(ConnectionError):
    """The session ended: nothing more is sent."""


class OutgoingBuffer:
    """Server-to-client envelopes, numbered from 0, kept until acknowledged.

    ``limit`` bounds the bytes held: :meth:`put` waits while the buffer is full
    (one envelope larger than the limit is still accepted when the buffer is
    empty, so nothing can wait forever).
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._items: deque[bytes] = deque()
        self._first = 0  # the number of _items[0]
        self._bytes = 0
        self._closed = False
        self._space = asyncio.Event()
        self._data = asyncio.Event()

    @property
    def next_seq(self) -> int:
        """The number the next envelope will get."""
        return self._first + len(self._items)

    @property
    def buffered_bytes(self) -> int:
        """Bytes held, waiting for the client's acknowledgement."""
        return self._bytes

    @property
    def closed(self) -> bool:
        """Whether the buffer accepts no more envelopes."""
        return self._closed

    async def put(self, envelope: bytes) -> None:
        """Append one encoded envelope, waiting while the buffer is full."""
        while self._items and self._bytes + len(envelope) > self._limit and not self._closed:
            self._space.clear()
            await self._space.wait()
        self._append(envelope)

    def put_nowait(self, envelope: bytes) -> None:
        """Append a small control envelope at once, over the limit if need be.

        Only for the one ``closed`` envelope a channel sends as it ends, which must
        not wait (its task may be ending); at most one per channel.
        """
        self._append(envelope)

    def _append(self, envelope: bytes) -> None:
        if self._closed:
            raise BufferClosedError("the polling session is closed")
        self._items.append(envelope)
        self._bytes += len(envelope)
        self._data.set()

    def ack(self, since: int) -> None:
        """The client has every envelope numbered below ``since``: forget them."""
        freed = False
        while self._items and self._first < since:
            self._bytes -= len(self._items.popleft())
            self._first += 1
            freed = True
        if freed:
            self._space.set()

    def pending(self, since: int) -> tuple[int, list[bytes]]:
        """The envelopes from ``since`` on (or the oldest kept) and the first one's number."""
        start = max(since, self._first)
        return start, list(self._items)[start - self._first :]

    async def wait_beyond(self, since: int) -> None:
        """Wait until an envelope numbered ``since`` or more exists, or the buffer closes."""
        while self.next_seq <= since and not self._closed:
            self._data.clear()
            await self._data.wait()

    def close(self) -> None:
        """Accept nothing more; wake every waiter."""
        self._closed = True
        self._space.set()
        self._data.set()


class PollingSession:
    """One polling client: channel 0 (the tunnel) and its proxied channels."""

    def __init__(
        self,
        owner: str,
        make_tunnel: Callable[[Any], TunnelSession],
        opener: ChannelOpener,
        *,
        buffer_size: int,
        log: logging.Logger,
        admit_channel: Callable[[PolledChannel], tuple[int, str] | None] | None = None,
        release_channel: Callable[[PolledChannel], None] | None = None,
        max_channels: int = 0,
    ) -> None:
        self.id = secrets.token_urlsafe(24)
        #: Who opened the session; only requests from the same identity may use it.
        self.owner = owner
        self.tunnel_username = owner
        self.outgoing = OutgoingBuffer(buffer_size)
        self.log = log
        self._incoming = SendSequencer()
        self._opener = opener
        self._admit_channel = admit_channel
        self._release_channel = release_channel
        #: Most proxied channels open or still connecting at once (0: no cap). Checked
        #: before anything is opened upstream, so one send full of ``open`` envelopes
        #: cannot make the server dial thousands of upstream sockets.
        self.max_channels = max_channels
        self.channels: dict[int, PolledChannel] = {}
        self.tunnel = make_tunnel(self._send_tunnel_frame)
        self._last_seen = time.monotonic()
        self._active_requests = 0
        self._poll_turn = 0
        self._poll_superseded = asyncio.Event()
        self.closed: tuple[int, str] | None = None
        self._on_close: list[Callable[[PollingSession], None]] = []

    # ------------------------------------------------------------ activity and expiry

    def begin_request(self) -> None:
        """A request of this session's client has arrived (it is alive)."""
        self._active_requests += 1
        self._last_seen = time.monotonic()

    def end_request(self) -> None:
        """That request is answered."""
        self._active_requests -= 1
        self._last_seen = time.monotonic()

    def idle_seconds(self) -> float:
        """Seconds since the client's last request ended; 0 while one is open (a long poll)."""
        if self._active_requests:
            return 0.0
        return time.monotonic() - self._last_seen

    # ------------------------------------------------------------ client -> server

    @property
    def ack(self) -> int:
        """The number of the next client envelope expected."""
        return self._incoming.ack

    def deliver(self, batch: SendBatch) -> int:
        """Act on a ``send`` batch's new envelopes, in order; return the new ``ack``.

        Raises :class:`~.wire.polling.OutOfOrderError` when the batch leaves a gap.
        """
        for envelope in self._incoming.accept(batch.seq, batch.messages):
            self._deliver_one(envelope)
        return self._incoming.ack

    def _deliver_one(self, envelope: Envelope) -> None:
        if self.closed is not None:
            return
        channel = envelope.channel
        if channel == TUNNEL_CHANNEL:
            if isinstance(envelope, TextEnvelope):
                self.tunnel.receive(envelope.text)
            elif isinstance(envelope, BinaryEnvelope):
                self.tunnel.receive(envelope.data)
            return
        if isinstance(envelope, OpenEnvelope):
            self._open_channel(envelope)
            return
        target = self.channels.get(channel)
        if target is None:
            return  # closed already (its "closed" envelope is on its way)
        if isinstance(envelope, TextEnvelope):
            target.write(envelope.text)
        elif isinstance(envelope, BinaryEnvelope):
            target.write(envelope.data)
        elif isinstance(envelope, CloseEnvelope):
            target.close(envelope.code, envelope.reason)

    def _open_channel(self, envelope: OpenEnvelope) -> None:
        number = envelope.channel
        if number in self.channels:
            self._spawn_closed(number, 4409, "Channel number already in use")
            return
        if self.max_channels and len(self.channels) >= self.max_channels:
            self._spawn_closed(
                number,
                TOO_MANY_CHANNELS_CODE,
                f"Too many proxied channels in this polling session (limit {self.max_channels}; "
                "see HttpOverWebSocketApp.max_sockets_per_user)",
            )
            return
        channel = PolledChannel(
            number, envelope.path, list(envelope.protocols), self._opener, self, self.log
        )
        self.channels[number] = channel
        channel.start()

    def admit(self, channel: PolledChannel) -> tuple[int, str] | None:
        """Count an opened channel against the per-user limit, or say why it must close.

        As over the WebSocket transport, this comes after the path checks and the
        upstream's own answer, so a refused path reports its own status.
        """
        return self._admit_channel(channel) if self._admit_channel is not None else None

    def _spawn_closed(self, channel: int, code: int, reason: str) -> None:
        envelope = encode_envelope(ClosedEnvelope(channel, code, reason))
        task = asyncio.ensure_future(self.post(envelope))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    def channel_ended(self, channel: PolledChannel) -> None:
        """Called by a channel once its ``closed`` envelope is queued (or the session ended)."""
        if self.channels.get(channel.number) is channel:
            del self.channels[channel.number]
        if self._release_channel is not None:
            self._release_channel(channel)

    async def inbound_settled(self, high_water: int) -> None:
        """Wait until no channel holds more than ``high_water`` bytes not yet relayed."""
        for channel in list(self.channels.values()):
            await channel.drained(high_water)

    # ------------------------------------------------------------ server -> client

    async def post(self, envelope: bytes) -> None:
        """Queue one encoded envelope for the client (waits while the buffer is full)."""
        await self.outgoing.put(envelope)

    def outgoing_nowait(self, envelope: bytes) -> None:
        """Queue a control envelope without waiting (see :meth:`OutgoingBuffer.put_nowait`)."""
        self.outgoing.put_nowait(envelope)

    async def _send_tunnel_frame(self, frame: bytes, binary: bool) -> None:
        if binary:
            envelope: Envelope = BinaryEnvelope(TUNNEL_CHANNEL, frame)
        else:
            envelope = TextEnvelope(TUNNEL_CHANNEL, frame.decode("utf-8"))
        await self.outgoing.put(encode_envelope(envelope))

    async def receive(self, since: int, timeout: float) -> bytes:
        """Answer a ``recv``: acknowledge below ``since``, then wait up to ``timeout`` s.

        Only the newest ``recv`` waits: a newer one ends the older with an empty batch.
        """
        self.outgoing.ack(since)
        self._poll_turn += 1
        turn = self._poll_turn
        self._poll_superseded.set()  # wake the previous waiter, if any
        self._poll_superseded = superseded = asyncio.Event()
        if self.closed is None and self.outgoing.next_seq <= since:
            data = asyncio.ensure_future(self.outgoing.wait_beyond(since))
            newer = asyncio.ensure_future(superseded.wait())
            try:
                await asyncio.wait([data, newer], timeout=timeout, return_when="FIRST_COMPLETED")
            finally:
                data.cancel()
                newer.cancel()
            if turn != self._poll_turn:
                return encode_batch(max(since, 0), [])
            # Let what the same event-loop turn produced join this answer (a reply's
            # head and first chunks, several small replies): fewer, fuller round trips.
            await asyncio.sleep(0)
        first, items = self.outgoing.pending(since)
        return encode_batch(first, items, self.closed if not items else None)

    # ------------------------------------------------------------ the end

    def add_close_callback(self, callback: Callable[[PollingSession], None]) -> None:
        """Call ``callback(session)`` once the session has closed."""
        self._on_close.append(callback)

    def close(self, code: int = CLOSED_BY_CLIENT, reason: str = "") -> None:
        """Release everything: cancel in-flight requests, close proxied sockets."""
        if self.closed is not None:
            return
        self.closed = (code, reason)
        self.tunnel.close()
        for channel in list(self.channels.values()):
            channel.abort(GOING_AWAY if code == GOING_AWAY else 1000, reason or None)
        self.channels.clear()
        self.outgoing.close()
        for callback in self._on_close:
            with contextlib.suppress(Exception):
                callback(self)

    async def shutdown(self) -> None:
        """The server is stopping: final frames for in-flight requests, then close."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.tunnel.shutdown(), 5)
        self.close(GOING_AWAY, "Server shutting down.")


class PollingRegistry:
    """The open polling sessions of one server, and their expiry."""

    def __init__(self) -> None:
        self._sessions: dict[str, PollingSession] = {}
        self._reaper: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._sessions)

    def __iter__(self) -> Any:
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
                    session.close(EXPIRED, f"Idle for {idle_timeout:g} s")

    async def close_all(self) -> None:
        """End every session (server shutdown)."""
        sessions = list(self._sessions.values())
        await asyncio.gather(*(s.shutdown() for s in sessions), return_exceptions=True)
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
