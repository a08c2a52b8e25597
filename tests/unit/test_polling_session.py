"""A polling session and its channels, with a fake tunnel session and a fake dial."""

from __future__ import annotations

import asyncio
import logging

import pytest

from jupyter_http_over_ws.polling import BufferClosedError, OutgoingBuffer, PollingSession
from jupyter_http_over_ws.polling.session import (
    REPLY_WAIT_SECONDS,
    STREAMING_ENVELOPES,
    STREAMING_GATHER_SECONDS,
)
from jupyter_http_over_ws.upstream import UpstreamRefusedError
from jupyter_http_over_ws.wire.polling import (
    BinaryEnvelope,
    ClosedEnvelope,
    CloseEnvelope,
    OpenedEnvelope,
    OpenEnvelope,
    OutOfOrderError,
    SendBatch,
    TextEnvelope,
    parse_batch,
    parse_send_answer,
)

LOG = logging.getLogger("test_polling_session")


class FakeTunnel:
    """Channel 0: records what the client sent; ``send`` answers it."""

    def __init__(self, send):
        self.send = send
        self.received: list[str | bytes] = []
        self.closed = False
        self.shut_down = False
        self.has_room = True  # False: its error replies are over their bound
        self.room = asyncio.Event()

    def receive(self, message):
        self.received.append(message)

    async def wait_for_room(self):
        await self.room.wait()

    def close(self):
        self.closed = True

    async def shutdown(self):
        self.shut_down = True


class FakeUpstream:
    """An upstream socket: ``feed`` what it says, ``written`` what it was told."""

    def __init__(self, protocol=None):
        self.selected_subprotocol = protocol
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.written: list[str | bytes] = []
        self.closed = False
        self._messages: asyncio.Queue = asyncio.Queue()

    def feed(self, message):
        self._messages.put_nowait(message)

    async def read_message(self):
        return await self._messages.get()

    async def write_message(self, message, binary=False):
        self.written.append(message)

    def close(self, code=None, reason=None):
        self.closed = True
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        self._messages.put_nowait(None)


class FakeDial:
    """The one dial: records each path; answers with an upstream, a refusal, or waits."""

    def __init__(self):
        self.paths: list[str] = []
        self.upstreams: list[FakeUpstream] = []
        self.refusal: UpstreamRefusedError | None = None
        self.hold = False
        self.release = asyncio.Event()

    async def __call__(self, path, protocols, *, admit):
        self.paths.append(path)
        if self.refusal is not None:
            raise self.refusal
        admit()  # as the real dial: once the path is allowed, before dialling
        if self.hold:
            await self.release.wait()
        upstream = FakeUpstream(protocols[-1] if protocols else None)
        self.upstreams.append(upstream)
        return upstream


class FakeAdmission:
    """The registry's admission: refuses with ``refusal`` once set."""

    def __init__(self):
        self.admitted: list[tuple[str, object]] = []
        self.released: list[object] = []
        self.refusal: tuple[int, str] | None = None

    def admit(self, owner, opened):
        if self.refusal is not None:
            return self.refusal
        self.admitted.append((owner, opened))
        return None

    def release(self, opened):
        self.released.append(opened)


def new_session(dial=None, admission=None, max_channels=0, buffer_size=1 << 20):
    return PollingSession(
        "alice",
        FakeTunnel,
        dial or FakeDial(),
        buffer_size=buffer_size,
        log=LOG,
        admission=admission,
        max_channels=max_channels,
    )


async def envelopes(session, since=0, timeout=1.0):
    """What the client's next ``recv`` from ``since`` gets."""
    return parse_batch(await session.receive(since, timeout))


async def ended(session):
    """Close ``session`` and let its channels' tasks finish."""
    session.close()
    await asyncio.sleep(0.02)


async def until(condition, timeout=2.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.005)


# ------------------------------------------------------------------ client -> server


async def test_delivers_channel_0_in_order_once():
    session = new_session()
    batch = SendBatch(0, (TextEnvelope(0, "a"), BinaryEnvelope(0, b"b"), TextEnvelope(0, "c")))
    assert session.deliver(batch) == 3
    assert session.tunnel.received == ["a", b"b", "c"]
    # A resend (its answer was lost) is acknowledged again and acted on once.
    assert session.deliver(SendBatch(1, (BinaryEnvelope(0, b"b"), TextEnvelope(0, "c")))) == 3
    assert session.deliver(SendBatch(2, (TextEnvelope(0, "c"), TextEnvelope(0, "d")))) == 4
    assert session.tunnel.received == ["a", b"b", "c", "d"]
    with pytest.raises(OutOfOrderError) as gap:
        session.deliver(SendBatch(6, (TextEnvelope(0, "x"),)))
    assert gap.value.ack == 4
    assert session.ack == 4


async def test_nothing_is_delivered_after_close():
    session = new_session()
    session.close()
    session.deliver(SendBatch(0, (TextEnvelope(0, "late"),)))
    assert session.tunnel.received == []


# ------------------------------------------------------------------ server -> client


async def test_receive_answers_what_was_sent_and_acknowledges_it():
    session = new_session()
    await session.tunnel.send(b'{"a":1}', False)
    await session.tunnel.send(b"\x00\x01", True)
    batch = await envelopes(session, 0)
    assert batch.seq == 0
    assert batch.messages == (TextEnvelope(0, '{"a":1}'), BinaryEnvelope(0, b"\x00\x01"))
    assert session.outgoing.buffered_bytes > 0
    batch = await envelopes(session, 2, timeout=0.01)  # acknowledges both, nothing new
    assert (batch.seq, batch.messages) == (2, ())
    assert session.outgoing.buffered_bytes == 0


async def test_a_long_poll_waits_for_the_next_envelope():
    session = new_session()
    waiting = asyncio.ensure_future(session.receive(0, 5))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    await session.tunnel.send(b"late", False)
    batch = parse_batch(await asyncio.wait_for(waiting, 1))
    assert batch.messages == (TextEnvelope(0, "late"),)


async def test_a_send_answer_carries_the_replies_and_the_waiting_poll_stays():
    session = new_session()
    waiting = asyncio.ensure_future(session.receive(0, 5))
    await asyncio.sleep(0.01)
    session.deliver(SendBatch(0, (TextEnvelope(0, "request"),)))
    carrying = asyncio.ensure_future(session.replies_for_send(1, 0, wait=True))
    await asyncio.sleep(0)
    await session.tunnel.send(b"reply", False)  # comes while the send waits
    ack, batch = parse_send_answer(await asyncio.wait_for(carrying, 1))
    assert ack == 1
    assert batch is not None
    assert (batch.seq, batch.messages) == (0, (TextEnvelope(0, "reply"),))
    await asyncio.sleep(0.02)
    assert not waiting.done()  # what the send carried does not wake the poll
    await session.tunnel.send(b"later", False)  # nothing carries this one
    answer = parse_batch(await asyncio.wait_for(waiting, 1))
    assert answer.messages[-1] == TextEnvelope(0, "later")


async def test_a_send_answer_waits_briefly_then_answers_empty():
    session = new_session()
    loop = asyncio.get_running_loop()
    started = loop.time()
    _ack, batch = parse_send_answer(await session.replies_for_send(0, 0, wait=True))
    assert REPLY_WAIT_SECONDS * 0.8 <= loop.time() - started < 1
    assert batch is not None
    assert batch.messages == ()
    # A send that delivered nothing new does not wait, and answers what is ready.
    await session.tunnel.send(b"ready", False)
    started = loop.time()
    _, batch = parse_send_answer(await session.replies_for_send(0, 0, wait=False))
    assert loop.time() - started < REPLY_WAIT_SECONDS
    assert batch is not None
    assert batch.messages == (TextEnvelope(0, "ready"),)
    # Its since acknowledges, as a poll's does.
    _, batch = parse_send_answer(await session.replies_for_send(0, 1, wait=False))
    assert batch is not None
    assert (batch.seq, batch.messages) == (1, ())
    assert session.outgoing.buffered_bytes == 0


async def test_a_superseded_poll_returns_an_empty_batch():
    session = new_session()
    older = asyncio.ensure_future(session.receive(0, 5))
    await asyncio.sleep(0.01)
    newer = asyncio.ensure_future(session.receive(0, 5))
    batch = parse_batch(await asyncio.wait_for(older, 1))
    assert (batch.seq, batch.messages, batch.closed) == (0, (), None)
    assert not newer.done()
    await session.tunnel.send(b"x", False)
    batch = parse_batch(await asyncio.wait_for(newer, 1))
    assert batch.messages == (TextEnvelope(0, "x"),)


async def test_the_last_answer_says_the_session_closed():
    session = new_session()
    session.close(4408, "Idle for 1 s")
    batch = await envelopes(session, 0)
    assert batch.closed == (4408, "Idle for 1 s")
    assert session.tunnel.closed


async def test_idle_seconds_are_zero_while_a_request_is_open():
    session = new_session()
    session.begin_request()
    assert session.idle_seconds() == 0.0
    session.end_request()
    await asyncio.sleep(0.02)
    assert session.idle_seconds() >= 0.01


async def open_channel(session, dial):
    """Channel 1, open, with its ``opened`` envelope answered; its upstream."""
    session.deliver(SendBatch(0, (OpenEnvelope(1, "/api/x", ()),)))
    await until(lambda: dial.upstreams)
    assert (await envelopes(session, 0)).messages == (OpenedEnvelope(1, None),)
    return dial.upstreams[0]


async def test_streaming_channel_output_is_gathered_into_fuller_answers():
    dial = FakeDial()
    session = new_session(dial)
    upstream = await open_channel(session, dial)
    for i in range(STREAMING_ENVELOPES):
        upstream.feed(f"flood {i}")
    await until(lambda: session.outgoing.next_seq == 1 + STREAMING_ENVELOPES)
    since = 1
    batch = await envelopes(session, since)  # not streaming before: answered at once
    assert len(batch.messages) == STREAMING_ENVELOPES
    since += len(batch.messages)

    # Output streams: the next answer waits for what follows its first envelope.
    upstream.feed("first")
    await until(lambda: session.outgoing.next_seq > since)
    loop = asyncio.get_running_loop()
    started = loop.time()
    answer = asyncio.ensure_future(session.receive(since, 5))
    await asyncio.sleep(0)
    upstream.feed("second")
    batch = parse_batch(await answer)
    assert loop.time() - started >= STREAMING_GATHER_SECONDS * 0.9
    assert batch.messages == (TextEnvelope(1, "first"), TextEnvelope(1, "second"))
    since += 2

    # Two envelopes since the last answer: no longer streaming, answered at once
    # (what comes after it started waits for the next answer).
    upstream.feed("quiet")
    await until(lambda: session.outgoing.next_seq > since)
    answer = asyncio.ensure_future(session.receive(since, 5))
    await asyncio.sleep(0)
    upstream.feed("later")
    batch = parse_batch(await answer)
    assert batch.messages == (TextEnvelope(1, "quiet"),)
    await ended(session)


async def test_channel_0_replies_never_wait_to_be_gathered():
    session = new_session()
    for i in range(3 * STREAMING_ENVELOPES):
        await session.tunnel.send(b"reply %d" % i, False)
    assert len((await envelopes(session, 0)).messages) == 3 * STREAMING_ENVELOPES
    await session.tunnel.send(b"next", False)
    answer = asyncio.ensure_future(session.receive(3 * STREAMING_ENVELOPES, 5))
    await asyncio.sleep(0)
    await session.tunnel.send(b"later", False)
    batch = parse_batch(await answer)
    assert batch.messages == (TextEnvelope(0, "next"),)


# ------------------------------------------------------------------ channels


async def test_a_channel_relays_both_ways_and_passes_the_close_on():
    dial, admission = FakeDial(), FakeAdmission()
    session = new_session(dial, admission)
    session.deliver(SendBatch(0, (OpenEnvelope(1, "/api/x?a=1", ("p.a", "p.b")),)))
    await until(lambda: dial.upstreams)
    (upstream,) = dial.upstreams
    assert dial.paths == ["/api/x?a=1"]
    assert (await envelopes(session, 0)).messages == (OpenedEnvelope(1, "p.b"),)
    channel = session.channels[1]
    assert admission.admitted == [("alice", channel)]
    upstream.feed("from upstream")
    upstream.feed(b"\x02")
    batch = await envelopes(session, 1)
    assert batch.messages == (TextEnvelope(1, "from upstream"), BinaryEnvelope(1, b"\x02"))
    session.deliver(SendBatch(1, (TextEnvelope(1, "up"), BinaryEnvelope(1, b"\x03"))))
    await until(lambda: len(upstream.written) == 2)
    assert upstream.written == ["up", b"\x03"]
    session.deliver(SendBatch(3, (CloseEnvelope(1, 4003, "bye"),)))
    await until(lambda: 1 not in session.channels)
    assert (upstream.close_code, upstream.close_reason) == (4003, "bye")
    batch = await envelopes(session, 3)
    assert batch.messages == (ClosedEnvelope(1, 4003, "bye"),)
    assert admission.released == [channel]


async def test_a_refused_dial_closes_the_channel_with_4000_plus_the_status():
    dial = FakeDial()
    dial.refusal = UpstreamRefusedError(404, "upstream refused the WebSocket")
    session = new_session(dial)
    session.deliver(SendBatch(0, (OpenEnvelope(1, "/api/kernels/nope/channels"),)))
    batch = await envelopes(session, 0)
    assert batch.messages == (ClosedEnvelope(1, 4404, "upstream refused the WebSocket"),)
    assert session.channels == {}


async def test_an_unreachable_upstream_is_logged(caplog):
    dial = FakeDial()
    cause = ConnectionRefusedError("connection refused")
    dial.refusal = UpstreamRefusedError(502, "cannot reach the upstream WebSocket", cause)
    session = new_session(dial)
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        session.deliver(SendBatch(0, (OpenEnvelope(1, "/api/x"),)))
        batch = await envelopes(session, 0)
    assert batch.messages == (ClosedEnvelope(1, 4502, "cannot reach the upstream WebSocket"),)
    assert [r.getMessage() for r in caplog.records] == [
        "http_over_websocket: cannot reach a polled socket: connection refused"
    ]


async def test_a_channel_over_the_per_user_limit_closes_before_its_dial():
    dial, admission = FakeDial(), FakeAdmission()
    admission.refusal = (4429, "Too many tunnel sockets for this user")
    session = new_session(dial, admission)
    session.deliver(SendBatch(0, (OpenEnvelope(1, "/api/x"),)))
    batch = await envelopes(session, 0)
    assert batch.messages == (ClosedEnvelope(1, 4429, "Too many tunnel sockets for this user"),)
    assert dial.upstreams == []  # nothing was dialled for it (issue 11, finding 3)
    assert session.channels == {}


async def test_the_channel_cap_refuses_before_dialling():
    dial = FakeDial()
    dial.hold = True  # the first channel is still connecting: it counts
    session = new_session(dial, max_channels=1)
    session.deliver(SendBatch(0, (OpenEnvelope(1, "/api/a"), OpenEnvelope(2, "/api/b"))))
    batch = await envelopes(session, 0)
    (closed,) = batch.messages
    assert isinstance(closed, ClosedEnvelope)
    assert (closed.channel, closed.code) == (2, 4429)
    assert "limit 1" in closed.reason
    assert "max_sockets_per_user" in closed.reason
    await until(lambda: dial.paths)
    assert dial.paths == ["/api/a"]  # the refused channel was never dialled
    dial.release.set()
    await ended(session)


async def test_a_channel_number_in_use_is_refused_with_4409():
    dial = FakeDial()
    dial.hold = True
    session = new_session(dial)
    session.deliver(SendBatch(0, (OpenEnvelope(1, "/api/a"), OpenEnvelope(1, "/api/b"))))
    batch = await envelopes(session, 0)
    assert batch.messages == (ClosedEnvelope(1, 4409, "Channel number already in use"),)
    await until(lambda: dial.paths)
    assert dial.paths == ["/api/a"]
    assert 1 in session.channels
    dial.release.set()
    await ended(session)


async def test_close_releases_every_channel():
    dial, admission = FakeDial(), FakeAdmission()
    session = new_session(dial, admission)
    ended = []
    session.add_close_callback(ended.append)
    session.deliver(SendBatch(0, (OpenEnvelope(1, "/api/a"), OpenEnvelope(2, "/api/b"))))
    await until(lambda: len(admission.admitted) == 2)
    channels = [session.channels[1], session.channels[2]]
    session.close(1000, "Closed by the client")
    assert session.closed == (1000, "Closed by the client")
    assert session.channels == {}
    assert session.tunnel.closed
    assert session.outgoing.closed
    assert ended == [session]
    assert [(u.close_code, u.close_reason) for u in dial.upstreams] == [
        (1000, "Closed by the client"),
        (1000, "Closed by the client"),
    ]
    await until(lambda: len(admission.released) == 2)
    assert sorted(admission.released, key=id) == sorted(channels, key=id)
    session.close(4408, "again")  # closing twice changes nothing
    assert session.closed == (1000, "Closed by the client")


async def test_shutdown_ends_the_tunnel_then_closes_with_1001():
    dial = FakeDial()
    session = new_session(dial)
    session.deliver(SendBatch(0, (OpenEnvelope(1, "/api/a"),)))
    await until(lambda: dial.upstreams)
    await session.shutdown()
    assert session.tunnel.shut_down
    assert session.closed == (1001, "Server shutting down.")
    assert dial.upstreams[0].close_code == 1001


# ------------------------------------------------------------------ the outgoing buffer


async def test_the_buffer_makes_senders_wait_while_full():
    session = new_session(buffer_size=1024)
    await session.post(b"x" * 1000)
    blocked = asyncio.ensure_future(session.post(b"y" * 100))
    await asyncio.sleep(0.01)
    assert not blocked.done()
    await session.receive(1, 0.01)  # the client acknowledges the first
    await asyncio.wait_for(blocked, 1)
    assert session.outgoing.pending(1) == (1, [b"y" * 100])


async def test_put_nowait_goes_over_the_limit():
    buffer = OutgoingBuffer(limit=4)
    await buffer.put(b"abcd")
    buffer.put_nowait(b"closed envelope")
    assert buffer.buffered_bytes == 4 + len(b"closed envelope")
    assert buffer.pending(0) == (0, [b"abcd", b"closed envelope"])


async def test_a_closed_buffer_takes_nothing_and_wakes_its_waiters():
    buffer = OutgoingBuffer(limit=4)
    await buffer.put(b"abcd")
    blocked = asyncio.ensure_future(buffer.put(b"efgh"))
    waiting = asyncio.ensure_future(buffer.wait_beyond(5))
    await asyncio.sleep(0.01)
    buffer.close()
    assert buffer.closed
    await asyncio.wait_for(waiting, 1)
    with pytest.raises(BufferClosedError):
        await asyncio.wait_for(blocked, 1)
    with pytest.raises(BufferClosedError):
        buffer.put_nowait(b"late")
