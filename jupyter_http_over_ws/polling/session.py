"""One polling client's tunnel: channel 0, its proxied channels, long polls.

A :class:`PollingSession` is one client's tunnel over plain HTTP requests. It owns
a :class:`~..session.TunnelSession` for channel 0 (so in-flight requests, limits and
cancel live in the same place as for the WebSocket transport) and one
:class:`~.channels.PolledChannel` per proxied socket, which opens its upstream
socket with the one dial (:class:`~..upstream.UpstreamDialer`). Everything it sends
the client goes through an :class:`~.buffer.OutgoingBuffer`. It reaches nothing
above it: what it needs (the tunnel session's factory, the dial, the per-user
admission) is handed to it, behind the named interfaces below. The Tornado
handlers in :mod:`..handlers.polling` only authenticate and call into it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from typing import Protocol

from ..replies import SendFrame
from ..session import SHUTDOWN_TEXT, TunnelSession
from ..wire.names import CloseCode
from ..wire.polling import (
    TUNNEL_CHANNEL,
    BinaryEnvelope,
    ClosedEnvelope,
    CloseEnvelope,
    Envelope,
    OpenEnvelope,
    OutOfOrderError,
    SendBatch,
    SendSequencer,
    TextEnvelope,
    encode_batch,
    encode_envelope,
)
from .buffer import OutgoingBuffer
from .channels import ChannelOpener, PolledChannel

#: Session-level close codes, reported in the last ``recv`` answer (``closed``).
CLOSED_BY_CLIENT = CloseCode.NORMAL
#: When proxied sockets queued at least this many envelopes between two ``recv``
#: answers, their output is streaming (a kernel's flood of output, say); one kernel
#: request's own replies are fewer.
STREAMING_ENVELOPES = 8
#: While proxied sockets' output streams, a ``recv`` whose envelopes are ready waits
#: this long for more before it answers. Each answer is an HTTP round trip that costs
#: the server as much as a dozen envelopes: in answers of five or six envelopes, a
#: kernel's flood of output cost the server 40% more than on a direct socket, enough
#: for the kernel to drop the end of its output on a busy machine
#: (tests/test_output_flood.py). Channel 0's replies do not count as streaming: their
#: client waits for them to send more (requests in flight, a download's window), so
#: gathering them would only slow it down. While a proxied socket streams, a reply
#: answered meanwhile waits with its output, 4 ms at most.
STREAMING_GATHER_SECONDS = 0.004
#: How long a ``send`` that asked for replies (``send?since=N``) and delivered new
#: envelopes waits for the first envelope they cause before it answers. A small
#: tunnelled request is answered in-process within a millisecond or two, a kernel's
#: reply to a quick request within a few: answered in the send's own answer, it spares
#: the ``recv`` its answer and the client its next long poll, one of the three handler
#: runs of a polled round trip (docs/developers/polling.md, "Replies in the send's
#: answer"). A request that takes longer is answered by the ``recv`` as before; what the
#: wait costs then is this much delay for the client's next ``send``.
REPLY_WAIT_SECONDS = 0.005
#: The most ``closed`` envelopes refusing a client's ``open`` that may wait for room in
#: the outgoing buffer; past that, the session takes no more envelopes until one is queued.
MAX_PENDING_REFUSALS = 64


class SendBusyError(Exception):
    """A send arrived while an earlier one still waits for room: it is not queued."""

    def __init__(self, ack: int) -> None:
        super().__init__(f"another send is waiting for room (ack {ack})")
        #: The number of the next client envelope expected.
        self.ack = ack


class Admission(Protocol):
    """Counts a session's channels against ``max_sockets_per_user`` (the tunnel registry)."""

    def admit(self, owner: str, opened: PolledChannel, /) -> tuple[int, str] | None:
        """Count ``opened`` as ``owner``'s, or say why it must close (code, reason)."""

    def release(self, opened: PolledChannel, /) -> None:
        """``opened`` has ended: it no longer counts."""


class PollingSession:
    """One polling client: channel 0 (the tunnel) and its proxied channels."""

    def __init__(
        self,
        owner: str,
        make_tunnel: Callable[[SendFrame], TunnelSession],
        opener: ChannelOpener,
        *,
        buffer_size: int,
        log: logging.Logger,
        admission: Admission | None = None,
        max_channels: int = 0,
    ) -> None:
        self.id = secrets.token_urlsafe(24)
        #: Who opened the session; only requests from the same identity may use it.
        self.owner = owner
        self.outgoing = OutgoingBuffer(buffer_size)
        self.log = log
        self._incoming = SendSequencer()
        self._opener = opener
        self._admission = admission
        #: Most proxied channels open or still connecting at once (0: no cap). Checked
        #: before anything is opened upstream, so one send full of ``open`` envelopes
        #: cannot make the server dial thousands of upstream sockets.
        self.max_channels = max_channels
        self.channels: dict[int, PolledChannel] = {}
        self.tunnel = make_tunnel(self._send_tunnel_frame)
        self._last_seen = time.monotonic()
        self._active_requests = 0
        self._poll_turn = 0
        #: Envelopes proxied sockets have queued, and that count at the last answer.
        self._channel_output = 0
        self._channel_output_answered = 0
        self._streaming = False
        self._poll_superseded = asyncio.Event()
        self.closed: tuple[int, str] | None = None
        self._on_close: list[Callable[[PollingSession], None]] = []
        self._pending_refusals = 0
        self._refusal_sent = asyncio.Event()
        self._send_waiting = False
        #: Envelopes numbered below this were carried by a ``send``'s answer; a waiting
        #: ``recv`` answers only once there is one beyond them.
        self._carried = 0
        #: ``send``s waiting for replies to carry; a ``recv`` does not take them meanwhile.
        self._carriers = 0
        self._carriers_done = asyncio.Event()

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

    @property
    def has_room(self) -> bool:
        """Whether the session takes a next client envelope.

        Not while the replies it owes the client are over their bound: the tunnel's
        error replies (:meth:`~..session.TunnelSession.has_room`) or the ``closed``
        envelopes of refused ``open`` s (:data:`MAX_PENDING_REFUSALS`).
        """
        return self.tunnel.has_room and self._pending_refusals < MAX_PENDING_REFUSALS

    def deliver(self, batch: SendBatch) -> int:
        """Act on a ``send`` batch's new envelopes, in order, while there is room.

        Returns the new ``ack``: past the last envelope taken, which is short of the
        batch's end when the session ran out of room (:attr:`has_room`). Raises
        :class:`~..wire.polling.OutOfOrderError` when the batch leaves a gap.
        """
        if batch.seq > self._incoming.ack:
            raise OutOfOrderError(self._incoming.ack)
        for index in range(self._incoming.ack - batch.seq, len(batch.messages)):
            if not self.has_room and self.closed is None:
                break
            for envelope in self._incoming.accept(
                batch.seq + index, batch.messages[index : index + 1]
            ):
                self._deliver_one(envelope)
        return self._incoming.ack

    async def deliver_within(self, batch: SendBatch, patience: float) -> int:
        """:meth:`deliver` the batch, waiting for room up to ``patience`` seconds in all.

        A client that does not read its replies makes the session run out of room;
        what is left of the batch then stays with the client, whose next send carries
        it again (the answer's ``ack`` says where it stopped). Only one send waits:
        another that finds the session out of room meanwhile raises
        :class:`SendBusyError` at once, holding nothing. Raises
        :class:`~..wire.polling.OutOfOrderError` for a gap.
        """
        if self._send_waiting and not self.has_room:
            raise SendBusyError(self._incoming.ack)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + patience
        ack = self.deliver(batch)
        while ack < batch.seq + len(batch.messages) and self.closed is None:
            if self._send_waiting:
                raise SendBusyError(ack)
            self._send_waiting = True
            try:
                await asyncio.wait_for(self._room(), deadline - loop.time())
            except asyncio.TimeoutError:
                return ack
            finally:
                self._send_waiting = False
            ack = self.deliver(batch)
        return ack

    async def _room(self) -> None:
        """Wait until :attr:`has_room` (or the session has closed)."""
        while not self.has_room and self.closed is None:
            if not self.tunnel.has_room:
                await self.tunnel.wait_for_room()
            else:
                self._refusal_sent.clear()
                await self._refusal_sent.wait()

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
            self._spawn_closed(number, CloseCode.CHANNEL_IN_USE, "Channel number already in use")
            return
        if self.max_channels and len(self.channels) >= self.max_channels:
            self._spawn_closed(
                number,
                CloseCode.TOO_MANY_SOCKETS,
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
        """Count a channel against the per-user limit, or say why it must close.

        As over the WebSocket transport, the dial asks this after its path checks (a
        refused path reports its own status) and before it dials anything.
        """
        if self._admission is None:
            return None
        return self._admission.admit(self.owner, channel)

    def _spawn_closed(self, channel: int, code: int, reason: str) -> None:
        envelope = encode_envelope(ClosedEnvelope(channel, code, reason))
        task = asyncio.ensure_future(self.post(envelope))
        self._pending_refusals += 1
        task.add_done_callback(self._refusal_done)

    def _refusal_done(self, task: asyncio.Future[None]) -> None:
        if not task.cancelled():
            task.exception()  # retrieved: a closed session drops it
        self._pending_refusals -= 1
        self._refusal_sent.set()

    def channel_ended(self, channel: PolledChannel) -> None:
        """Called by a channel once its ``closed`` envelope is queued (or the session ended)."""
        if self.channels.get(channel.number) is channel:
            del self.channels[channel.number]
        if self._admission is not None:
            self._admission.release(channel)

    async def inbound_settled(self, high_water: int) -> None:
        """Wait until no channel holds more than ``high_water`` bytes not yet relayed."""
        for channel in list(self.channels.values()):
            await channel.drained(high_water)

    # ------------------------------------------------------------ server -> client

    async def post(self, envelope: bytes) -> None:
        """Queue one encoded envelope for the client (waits while the buffer is full)."""
        await self.outgoing.put(envelope)
        self._channel_output += 1

    @property
    def output_closed(self) -> bool:
        """Whether the session sends nothing more (it has ended)."""
        return self.outgoing.closed

    def outgoing_nowait(self, envelope: bytes) -> None:
        """Queue a control envelope without waiting (see :meth:`OutgoingBuffer.put_nowait`)."""
        self.outgoing.put_nowait(envelope)

    async def _send_tunnel_frame(self, frame: bytes, binary: bool) -> None:
        if binary:
            envelope: Envelope = BinaryEnvelope(TUNNEL_CHANNEL, frame)
        else:
            envelope = TextEnvelope(TUNNEL_CHANNEL, frame.decode("utf-8"))
        await self.outgoing.put(encode_envelope(envelope))

    async def replies_for_send(self, ack: int, since: int, wait: bool) -> bytes:
        """A ``send?since=N`` answer: ``ack``, and the envelopes from ``since`` on.

        ``since`` acknowledges as a ``recv``'s does. With ``wait`` (the send delivered
        new envelopes) and nothing beyond what earlier answers carried, wait up to
        :data:`REPLY_WAIT_SECONDS` for the first envelope, then let what the same
        event-loop turn produced join it. A waiting ``recv`` leaves what a send carries
        to the send: it answers once there is an envelope beyond, and may repeat some
        the send carried (the client drops numbers it has seen).
        """
        self.outgoing.ack(since)
        if wait and self.closed is None and self.outgoing.next_seq <= max(since, self._carried):
            self._carriers += 1
            self._carriers_done.clear()
            try:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(
                        self.outgoing.wait_beyond(max(since, self._carried)), REPLY_WAIT_SECONDS
                    )
                await asyncio.sleep(0)
            finally:
                self._carriers -= 1
        first, items = self.outgoing.pending(since)
        self._carried = max(self._carried, first + len(items))
        if not self._carriers:
            self._carriers_done.set()
        return encode_batch(first, items, ack=ack)

    async def _wait_uncarried(self, since: int) -> None:
        """Wait for an envelope from ``since`` on that no ``send``'s answer carries."""
        while True:
            await self.outgoing.wait_beyond(max(since, self._carried))
            if self.outgoing.closed:
                return
            if self._carriers:
                await self._carriers_done.wait()
            elif self.outgoing.next_seq > max(since, self._carried):
                return

    async def receive(self, since: int, timeout: float) -> bytes:
        """Answer a ``recv``: acknowledge below ``since``, then wait up to ``timeout`` s.

        Only the newest ``recv`` waits: a newer one ends the older with an empty batch.
        """
        self.outgoing.ack(since)
        self._poll_turn += 1
        turn = self._poll_turn
        self._poll_superseded.set()  # wake the previous waiter, if any
        self._poll_superseded = superseded = asyncio.Event()
        if self.closed is None and self.outgoing.next_seq <= max(since, self._carried):
            data = asyncio.ensure_future(self._wait_uncarried(since))
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
        if self._streaming and self.closed is None:
            await asyncio.sleep(STREAMING_GATHER_SECONDS)
            if turn != self._poll_turn:
                return encode_batch(max(since, 0), [])
        first, items = self.outgoing.pending(since)
        produced = self._channel_output - self._channel_output_answered
        self._channel_output_answered = self._channel_output
        self._streaming = produced >= STREAMING_ENVELOPES
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
        self._refusal_sent.set()
        self.tunnel.close()
        for channel in list(self.channels.values()):
            going_away = code == CloseCode.GOING_AWAY
            channel.abort(CloseCode.GOING_AWAY if going_away else CloseCode.NORMAL, reason or None)
        self.channels.clear()
        self.outgoing.close()
        for callback in self._on_close:
            with contextlib.suppress(Exception):
                callback(self)

    async def shutdown(self) -> None:
        """The server is stopping: final frames for in-flight requests, then close."""
        with contextlib.suppress(Exception):
            await self.tunnel.shutdown()  # bounded: its final frames get SHUTDOWN_GRACE
        self.close(CloseCode.GOING_AWAY, SHUTDOWN_TEXT)
