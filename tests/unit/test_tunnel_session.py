"""TunnelSession without a server: one final frame per request, limits, cancel, shutdown.

A fake dispatcher stands for InProcessDispatcher: what it does with a request is chosen
by the request's path, and, like the real one, it closes the reply stream when its task
is cancelled or fails (as ``_TunnelledConnection.abort`` does).
"""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from support.recording_send import RecordingSend, settle, until
from tornado.httputil import HTTPHeaders

from jupyter_http_over_ws import session as session_module
from jupyter_http_over_ws.replies import ReplyStream
from jupyter_http_over_ws.session import (
    CANCELLED_STATUS,
    CANCELLED_TEXT,
    SHUTDOWN_TEXT,
    SessionLimits,
    TunnelSession,
)
from jupyter_http_over_ws.wire.framing import BINARY, JSON, Framing, encode_binary_request
from jupyter_http_over_ws.wire.protocol import (
    JSON_REQUIRED,
    UNCAUGHT_ERROR,
    HttpRequest,
    PathPolicy,
    ProtocolError,
    ReplyFrame,
    encode_error,
)

pytestmark = pytest.mark.timeout(10)

LOG = logging.getLogger("test_tunnel_session")
HEADERS = {"Content-Type": "text/plain"}


class FakeDispatcher:
    """Runs each request by its path: /ok, /hang, /head-then-hang, /boom, /boom-after-head."""

    def __init__(self, framing: Framing = JSON, chunk_size: int = 4) -> None:
        self.framing = framing
        self.chunk_size = chunk_size
        self.started: list[HttpRequest] = []
        self.cancelled: list[object] = []

    async def dispatch(self, request: HttpRequest, reply: ReplyStream) -> None:
        self.started.append(request)
        try:
            route = request.path.partition("?")[0].strip("/").replace("-", "_")
            await getattr(self, "_" + route)(reply)
        except BaseException as error:
            if isinstance(error, asyncio.CancelledError):
                self.cancelled.append(request.message_id)
            reply.close(error)
            raise

    async def _ok(self, reply: ReplyStream) -> None:
        reply.start(200, "OK", HTTPHeaders(HEADERS), b"hi")
        reply.finish()
        await reply.run()

    async def _hang(self, reply: ReplyStream) -> None:
        await asyncio.Event().wait()

    async def _head_then_hang(self, reply: ReplyStream) -> None:
        reply.start(200, "OK", HTTPHeaders(HEADERS), b"hi")
        await reply.run()  # sends the head, then waits for data that never comes

    async def _boom(self, reply: ReplyStream) -> None:
        raise RuntimeError("boom")

    async def _boom_after_head(self, reply: ReplyStream) -> None:
        runner = asyncio.ensure_future(reply.run())
        # More than one frame's worth: resolves once the head frame and the rest are sent.
        await reply.start(200, "OK", HTTPHeaders(HEADERS), b"x" * (self.chunk_size + 1))
        runner.cancel()
        raise RuntimeError("boom")


def request(message_id, path="/ok", **extra):
    return json.dumps({"message_id": message_id, "method": "GET", "path": path, **extra})


def cancel(message_id):
    return json.dumps({"message_id": message_id, "cancel": True})


@pytest.fixture
def make_session(jp_asyncio_loop):
    """Build sessions with a fake dispatcher and a recording send; close them afterwards."""
    sessions = []

    def make(limits=None, framing=JSON, send=None):
        dispatcher = FakeDispatcher(framing)
        send = send or RecordingSend()
        session = TunnelSession(dispatcher, send, limits=limits or SessionLimits(), log=LOG)
        sessions.append(session)
        return session, dispatcher, send

    yield make
    for session in sessions:  # let no request task outlive its test
        session.close()
    jp_asyncio_loop.run_until_complete(settle())


def ok_reply(message_id):
    return ReplyFrame(message_id, True, 200, "OK", HEADERS, b"hi")


def head_frame(message_id, data=b"hi"):
    return ReplyFrame(message_id, False, 200, "OK", HEADERS, data)


def error_frame(message_id, status, text):
    return ReplyFrame(message_id, True, status, text)


@pytest.mark.parametrize("framing", [JSON, BINARY], ids=["json", "binary"])
async def test_requests_complete_with_one_final_frame_each(framing, make_session):
    session, dispatcher, send = make_session(framing=framing)
    for message_id in (1, "two", 3.5):
        session.receive(request(message_id))
    assert session.in_flight == 3
    await until(lambda: session.in_flight == 0)
    assert send.final_counts() == {1: 1, "two": 1, 3.5: 1}
    for message_id in (1, "two", 3.5):
        assert send.of(message_id) == [ok_reply(message_id)]
    assert {binary for _, binary in send.sent} == {framing.binary}
    assert [r.message_id for r in dispatcher.started] == [1, "two", 3.5]


async def test_binary_frames_are_parsed_by_the_framing(make_session):
    session, dispatcher, send = make_session(framing=BINARY)
    session.receive(encode_binary_request("b", "PUT", "/ok", body=b"\x00\xff"))
    await until(lambda: send.final_counts()["b"] == 1)
    assert (dispatcher.started[0].method, dispatcher.started[0].body) == ("PUT", b"\x00\xff")
    assert send.of("b") == [ok_reply("b")]


@pytest.mark.parametrize("framing", [JSON, BINARY], ids=["json", "binary"])
async def test_cancel_before_the_head_is_499(framing, make_session):
    session, dispatcher, send = make_session(framing=framing)
    session.receive(request(1, "/hang"))
    await until(lambda: len(dispatcher.started) == 1)
    session.receive(cancel(1))
    await until(lambda: session.in_flight == 0 and send.sent)
    await settle()
    assert send.frames == [error_frame(1, CANCELLED_STATUS, CANCELLED_TEXT)]
    assert send.sent[0][1] is False  # an error frame is a text frame
    assert dispatcher.cancelled == [1]


@pytest.mark.parametrize("framing", [JSON, BINARY], ids=["json", "binary"])
async def test_cancel_after_the_head_is_a_bare_final_frame(framing, make_session):
    session, dispatcher, send = make_session(framing=framing)
    session.receive(request(1, "/head-then-hang"))
    await until(lambda: len(send.sent) == 1)
    session.receive(cancel(1))
    await until(lambda: session.in_flight == 0 and len(send.sent) == 2)
    await settle()
    assert send.frames == [head_frame(1), ReplyFrame(1, True)]
    assert [binary for _, binary in send.sent] == [framing.binary] * 2
    assert dispatcher.cancelled == [1]


async def test_cancel_of_an_unknown_or_finished_request_sends_nothing(make_session):
    session, _, send = make_session()
    session.receive(request(1))
    await until(lambda: session.in_flight == 0)
    session.receive(cancel(1))
    session.receive(cancel("never"))
    await settle()
    assert send.frames == [ok_reply(1)]


async def test_cancel_leaves_the_other_requests_alone(make_session):
    session, dispatcher, send = make_session()
    session.receive(request(1, "/hang"))
    session.receive(request(2, "/hang"))
    await until(lambda: len(dispatcher.started) == 2)
    session.receive(cancel(1))
    await until(lambda: session.in_flight == 1)
    session.receive(request(3))
    await until(lambda: send.final_counts()[3] == 1)
    assert send.final_counts() == {1: 1, 3: 1}
    assert session.in_flight == 1  # request 2 still runs
    assert dispatcher.cancelled == [1]


async def test_an_exception_in_dispatch_is_500(make_session):
    session, _, send = make_session()
    session.receive(request(1, "/boom"))
    await until(lambda: session.in_flight == 0)
    assert send.frames == [error_frame(1, 500, UNCAUGHT_ERROR)]


async def test_an_exception_after_the_head_is_a_bare_final_frame(make_session):
    session, _, send = make_session()
    session.receive(request(1, "/boom-after-head"))
    await until(lambda: session.in_flight == 0)
    assert send.frames == [
        head_frame(1, b"xxxx"),
        ReplyFrame(1, False, data=b"x"),
        ReplyFrame(1, True),
    ]


async def test_an_exception_is_logged(caplog, make_session):
    session, _, _ = make_session()
    with caplog.at_level(logging.ERROR, logger=LOG.name):
        session.receive(request(1, "/boom"))
        await until(lambda: session.in_flight == 0)
    assert "GET request failed inside the tunnel" in caplog.text


@pytest.mark.parametrize("framing", [JSON, BINARY], ids=["json", "binary"])
async def test_shutdown_ends_every_request_with_one_final_frame(framing, make_session):
    session, dispatcher, send = make_session(framing=framing)
    session.receive(request(1, "/hang"))
    session.receive(request(2, "/head-then-hang"))
    await until(lambda: len(dispatcher.started) == 2 and len(send.sent) == 1)
    await asyncio.wait_for(session.shutdown(), 2)
    assert session.in_flight == 0
    assert send.of(1) == [error_frame(1, 503, SHUTDOWN_TEXT)]
    assert send.of(2) == [head_frame(2), ReplyFrame(2, True)]
    assert send.final_counts() == {1: 1, 2: 1}
    assert sorted(dispatcher.cancelled) == [1, 2]
    session.receive(request(3))  # a closed session takes nothing more
    await settle()
    assert len(dispatcher.started) == 2


async def test_shutdown_after_a_cancel_sends_no_second_final_frame(make_session):
    session, dispatcher, send = make_session()
    session.receive(request(1, "/hang"))
    await until(lambda: len(dispatcher.started) == 1)
    session.receive(cancel(1))
    await asyncio.wait_for(session.shutdown(), 2)
    await settle()
    assert send.frames == [error_frame(1, CANCELLED_STATUS, CANCELLED_TEXT)]


async def test_a_closed_socket_under_a_final_frame_is_not_an_error(make_session):
    session, dispatcher, _ = make_session(send=RecordingSend(fail=OSError()))
    session.receive(request(1, "/hang"))
    await until(lambda: len(dispatcher.started) == 1)
    await asyncio.wait_for(session.shutdown(), 2)  # its 503 frame cannot be sent: no raise
    assert session.in_flight == 0


async def test_close_cancels_everything_and_sends_nothing(make_session):
    session, dispatcher, send = make_session()
    session.receive(request(1, "/hang"))
    session.receive(request(2, "/head-then-hang"))
    await until(lambda: len(dispatcher.started) == 2 and len(send.sent) == 1)
    session.close()
    await until(lambda: session.in_flight == 0)
    assert sorted(dispatcher.cancelled) == [1, 2]
    session.receive(request(3))
    await settle()
    assert len(dispatcher.started) == 2
    assert send.frames == [head_frame(2)]


async def test_close_cancels_pending_error_frames(make_session):
    session, _, send = make_session()
    session.receive("not json")  # its 400 frame goes from a background task
    session.close()
    await settle()
    assert send.sent == []


async def test_malformed_messages_are_400_and_the_others_go_on(make_session):
    session, dispatcher, send = make_session()
    session.receive(request("slow", "/hang"))
    session.receive("not json")
    session.receive(json.dumps({"message_id": 5, "method": "GET"}))
    session.receive(request(6, "//evil.example/"))
    session.receive(request(7))
    await until(lambda: len(send.sent) == 4)
    await settle()
    frames = send.frames
    assert error_frame(None, 400, JSON_REQUIRED) in frames
    assert [(f.status, f.done) for f in send.of(5)] == [(400, True)]
    assert [(f.status, f.done) for f in send.of(6)] == [(400, True)]
    assert send.of(7) == [ok_reply(7)]
    assert session.in_flight == 1  # "slow" still runs
    assert [r.message_id for r in dispatcher.started] == ["slow", 7]


async def test_allowed_paths_is_403_for_that_message(make_session):
    limits = SessionLimits(path_policy=PathPolicy.compile([r"/api/", r"/ok"]))
    session, dispatcher, send = make_session(limits)
    session.receive(request(1, "/files/secret.txt"))
    session.receive(request(2, "/ok?x=1"))
    await until(lambda: len(send.sent) == 2)
    assert send.of(1) == [
        error_frame(
            1, 403, "Path not allowed through the tunnel (see HttpOverWebSocketApp.allowed_paths)"
        )
    ]
    assert send.of(2) == [ok_reply(2)]
    assert [r.message_id for r in dispatcher.started] == [2]


async def test_max_body_size_is_413_for_that_message(make_session):
    session, dispatcher, send = make_session(SessionLimits(max_body_size=4))
    session.receive(request(1, body="12345"))
    session.receive(request(2, body="1234"))
    await until(lambda: len(send.sent) == 2)
    assert send.of(1) == [error_frame(1, 413, "Request body larger than 4 bytes")]
    assert send.of(2) == [ok_reply(2)]
    assert [r.message_id for r in dispatcher.started] == [2]


async def test_max_in_flight_is_429_for_that_message(make_session):
    session, _dispatcher, send = make_session(SessionLimits(max_in_flight=1))
    session.receive(request(1, "/hang"))
    session.receive(request(2))
    await until(lambda: len(send.sent) == 1)
    assert send.of(2) == [
        error_frame(2, 429, "Too many requests in flight on this socket (limit 1)")
    ]
    assert session.in_flight == 1
    session.receive(cancel(1))
    await until(lambda: session.in_flight == 0)
    session.receive(request(3))  # a free slot again
    await until(lambda: send.final_counts()[3] == 1)
    assert send.of(3) == [ok_reply(3)]
    assert send.final_counts() == {1: 1, 2: 1, 3: 1}


async def test_a_reused_message_id_keeps_its_own_final_frames(make_session):
    session, _, send = make_session()
    session.receive(request(1))
    await until(lambda: session.in_flight == 0)
    session.receive(request(1))
    await until(lambda: session.in_flight == 0)
    assert send.frames == [ok_reply(1), ok_reply(1)]


class FakeClock:
    """Stands for the ``time`` module in session.py: time moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


async def test_idle_seconds(make_session, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(session_module, "time", clock)
    session, dispatcher, _ = make_session()
    clock.now += 5
    assert session.idle_seconds() == 5
    session.receive(request(1, "/hang"))
    assert session.idle_seconds() == 0.0  # a request is running
    await until(lambda: len(dispatcher.started) == 1)
    clock.now += 7
    assert session.idle_seconds() == 0.0
    session.receive(cancel(1))
    await until(lambda: session.in_flight == 0)
    clock.now += 2
    assert session.idle_seconds() == 2  # counted from the end of the last request
    session.receive("not json")  # any message counts as activity, even a refused one
    clock.now += 1
    assert session.idle_seconds() == 1


# ------------------------------------------------------------------ a client that does not read


async def test_error_replies_wait_in_one_bounded_queue_and_go_out_in_order(make_session):
    """Refused messages of a client that does not read: one send at a time, then no room."""
    session, _, send = make_session(SessionLimits(max_body_size=1), send=RecordingSend(gated=True))
    taken = 0
    while session.has_room:
        session.receive(request(taken, body="too big"))
        taken += 1
        assert taken < 100_000, "the session never ran out of room"
    held = sum(len(error_frame_bytes(i)) for i in range(taken))
    assert held - len(error_frame_bytes(taken - 1)) <= session_module.MAX_PENDING_REPLY_BYTES
    await settle()
    assert send.entered == 1  # one reply on its way, the others wait in order
    waiting = asyncio.ensure_future(session.wait_for_room())
    await settle()
    assert not waiting.done()  # the transport takes no next message meanwhile
    send.release(taken)
    await until(lambda: len(send.sent) == taken)
    assert waiting.done()
    assert session.has_room
    assert [f.message_id for f in send.frames] == list(range(taken))  # in arrival order
    assert {f.status for f in send.frames} == {413}


def error_frame_bytes(message_id):
    return encode_error(ProtocolError(413, "Request body larger than 1 bytes", message_id))


async def test_429s_and_cancels_count_against_the_same_bound(make_session):
    session, dispatcher, send = make_session(
        SessionLimits(max_in_flight=1), send=RecordingSend(gated=True)
    )
    session.receive(request("slow", "/hang"))
    await until(lambda: len(dispatcher.started) == 1)
    session.receive(cancel("slow"))  # its 499 goes first
    await until(lambda: session.in_flight == 0)
    session.receive(request("next", "/hang"))
    await until(lambda: len(dispatcher.started) == 2)
    taken = 0
    while session.has_room:
        session.receive(request(taken))
        taken += 1
        assert taken < 100_000, "the session never ran out of room"
    await settle()
    assert send.entered == 1
    send.release(taken + 1)
    await until(lambda: len(send.sent) == taken + 1)
    assert send.frames[0] == error_frame("slow", CANCELLED_STATUS, CANCELLED_TEXT)
    assert [(f.message_id, f.status) for f in send.frames[1:]] == [(i, 429) for i in range(taken)]
    assert session.has_room


async def test_close_lets_a_transport_waiting_for_room_go_on(make_session):
    session, _, send = make_session(send=RecordingSend(gated=True))
    while session.has_room:
        session.receive("not json")
    waiting = asyncio.ensure_future(session.wait_for_room())
    await settle()
    assert not waiting.done()
    session.close()
    await asyncio.wait_for(waiting, 1)
    session.receive("not json")  # a closed session takes nothing more
    await settle()
    assert send.entered == 1


async def test_shutdown_is_bounded_for_a_client_that_does_not_read(make_session):
    """A final frame the client never takes cannot hold the server's shutdown up."""
    send = RecordingSend(gated=True)  # no send ever returns: the client reads nothing
    session, dispatcher, _ = make_session(send=send)
    session.receive(request(1, "/hang"))
    session.receive(request(2, "/head-then-hang"))
    await until(lambda: len(dispatcher.started) == 2 and send.entered == 1)
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(session.shutdown(grace=0.2), 2)
    assert asyncio.get_running_loop().time() - started < 1.0
    assert session.in_flight == 0
    assert sorted(dispatcher.cancelled) == [1, 2]
    assert send.sent == []
