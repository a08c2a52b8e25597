"""ReplyStream without a server: frames, coalescing, chunking, backpressure, the final frame."""

from __future__ import annotations

import asyncio

import pytest
from support.recording_send import RecordingSend, settle, until
from tornado.httputil import HTTPHeaders
from tornado.iostream import StreamClosedError

from jupyter_http_over_ws.replies import ReplyStream
from jupyter_http_over_ws.wire.framing import BINARY, JSON, encode_binary_reply
from jupyter_http_over_ws.wire.protocol import ReplyFrame, encode_reply

pytestmark = pytest.mark.timeout(10)

HEADERS = {"Content-Type": "text/plain", "X-A": "1"}


def headers() -> HTTPHeaders:
    return HTTPHeaders(HEADERS)


def head(message_id, data=None, done=False):
    """The first frame of a 200 reply, as a client decodes it."""
    return ReplyFrame(message_id, done, 200, "OK", HEADERS, data)


def body(message_id, data, done=False):
    return ReplyFrame(message_id, done, data=data)


@pytest.mark.parametrize("framing", [JSON, BINARY], ids=["json", "binary"])
async def test_writes_of_one_turn_are_one_frame(framing):
    send = RecordingSend()
    reply = ReplyStream("m", send, chunk_size=1024, framing=framing)
    reply.start(200, "OK", headers(), b"hello")
    reply.write(b", ")
    reply.write(b"world")
    reply.finish()
    await asyncio.wait_for(reply.run(), 2)
    assert send.frames == [head("m", b"hello, world", done=True)]
    assert [binary for _, binary in send.sent] == [framing.binary]
    encode = encode_binary_reply if framing.binary else encode_reply
    expected = encode(
        "m", status=200, status_text="OK", headers=HEADERS, data=b"hello, world", done=True
    )
    assert send.sent == [(expected, framing.binary)]


async def test_an_empty_response_is_one_frame():
    send = RecordingSend()
    reply = ReplyStream(7, send, chunk_size=16)
    reply.start(204, "No Content", HTTPHeaders(), None)
    reply.finish()
    await asyncio.wait_for(reply.run(), 2)
    assert send.frames == [ReplyFrame(7, True, 204, "No Content", {}, None)]


@pytest.mark.parametrize("framing", [JSON, BINARY], ids=["json", "binary"])
async def test_body_is_cut_at_chunk_size(framing):
    send = RecordingSend()
    reply = ReplyStream(1, send, chunk_size=4, framing=framing)
    reply.start(200, "OK", headers(), None)
    written = reply.write(b"0123456789")
    reply.finish()
    await asyncio.wait_for(reply.run(), 2)
    assert send.frames == [head(1, b"0123"), body(1, b"4567"), body(1, b"89", done=True)]
    assert {binary for _, binary in send.sent} == {framing.binary}
    assert written.done()
    assert written.exception() is None


async def test_writes_within_chunk_size_resolve_at_once():
    send = RecordingSend(gated=True)
    reply = ReplyStream(1, send, chunk_size=4)
    assert reply.start(200, "OK", headers(), b"ab").done()
    assert reply.write(b"cd").done()  # 4 bytes buffered: still within one frame
    assert not reply.write(b"e").done()  # 5 > 4: waits for the socket


async def test_write_resolves_only_after_its_bytes_are_sent():
    send = RecordingSend(gated=True)
    reply = ReplyStream(1, send, chunk_size=4)
    reply.start(200, "OK", headers(), b"ab")
    pending = reply.write(b"cdef")  # 6 bytes buffered, more than one frame's worth
    runner = asyncio.create_task(reply.run())
    await until(lambda: send.entered == 1)
    await settle()
    assert not pending.done()  # the first frame is still on its way
    send.release()
    await until(lambda: send.entered == 2)
    await settle()
    assert not pending.done()  # "ef", its last bytes, are in the second frame, not sent yet
    send.release()
    await until(pending.done)
    assert pending.exception() is None
    assert send.frames == [head(1, b"abcd"), body(1, b"ef")]
    reply.finish()
    send.release()
    await asyncio.wait_for(runner, 2)
    assert send.frames[-1] == ReplyFrame(1, True)


async def test_empty_flushes_send_nothing():
    send = RecordingSend()
    reply = ReplyStream(1, send, chunk_size=4)
    reply.start(200, "OK", headers(), b"ab")
    runner = asyncio.create_task(reply.run())
    await until(lambda: len(send.sent) == 1)
    flushed = reply.write(b"")
    await settle()
    assert flushed.done()
    assert len(send.sent) == 1
    reply.finish()
    await asyncio.wait_for(runner, 2)
    assert send.frames == [head(1, b"ab"), ReplyFrame(1, True)]


async def test_close_fails_pending_and_later_writes():
    send = RecordingSend()
    reply = ReplyStream(1, send, chunk_size=4)
    reply.start(200, "OK", headers(), None)
    pending = reply.write(b"0123456789")
    gone = ConnectionResetError("client gone")
    reply.close(gone)
    error = pending.exception()
    assert isinstance(error, StreamClosedError)
    assert error.real_error is gone
    later = reply.write(b"more")
    assert isinstance(later.exception(), StreamClosedError)
    reply.finish()
    await asyncio.wait_for(reply.run(), 2)  # returns: nothing more is sent
    assert send.sent == []


async def test_finishing_without_a_response_is_an_error():
    reply = ReplyStream(1, RecordingSend(), chunk_size=4)
    reply.finish()
    with pytest.raises(RuntimeError, match="finished without writing a response"):
        await asyncio.wait_for(reply.run(), 2)


@pytest.mark.parametrize("framing", [JSON, BINARY], ids=["json", "binary"])
async def test_end_early_before_the_head_sends_an_error_frame(framing):
    send = RecordingSend()
    reply = ReplyStream("c", send, chunk_size=4, framing=framing)
    pending = reply.write(b"0123456789")  # the handler wrote no status yet
    await reply.end_early(499, "Request cancelled by the client.")
    # The error frame is a JSON text frame whatever the framing, as before.
    assert send.sent == [
        (
            b'{"message_id":"c","status":499,"statusText":"Request cancelled by the client.",'
            b'"done":true}',
            False,
        )
    ]
    assert isinstance(pending.exception(), StreamClosedError)
    assert isinstance(reply.write(b"x").exception(), StreamClosedError)
    await asyncio.wait_for(reply.run(), 2)  # nothing more
    assert len(send.sent) == 1


@pytest.mark.parametrize("framing", [JSON, BINARY], ids=["json", "binary"])
async def test_end_early_after_the_head_sends_a_bare_final_frame(framing):
    send = RecordingSend()
    reply = ReplyStream("c", send, chunk_size=4, framing=framing)
    reply.start(200, "OK", headers(), b"ab")
    runner = asyncio.create_task(reply.run())
    await until(lambda: len(send.sent) == 1)
    await reply.end_early(503, "Server shutting down.")
    await asyncio.wait_for(runner, 2)
    assert send.frames == [head("c", b"ab"), ReplyFrame("c", True)]
    assert send.sent[-1] == (framing.encode_reply("c", done=True), framing.binary)


async def test_end_early_after_the_final_frame_sends_nothing():
    send = RecordingSend()
    reply = ReplyStream(1, send, chunk_size=4)
    reply.start(200, "OK", headers(), b"ab")
    reply.finish()
    await asyncio.wait_for(reply.run(), 2)
    await reply.end_early(500, "too late")
    await reply.end_early(499, "and again")
    assert send.frames == [head(1, b"ab", done=True)]


async def test_end_early_twice_sends_one_final_frame():
    send = RecordingSend()
    reply = ReplyStream(1, send, chunk_size=4)
    await reply.end_early(499, "Request cancelled by the client.")
    await reply.end_early(503, "Server shutting down.")
    assert send.frames == [ReplyFrame(1, True, 499, "Request cancelled by the client.")]


async def test_end_early_while_a_frame_is_being_sent():
    send = RecordingSend(gated=True)
    reply = ReplyStream(1, send, chunk_size=4)
    reply.start(200, "OK", headers(), b"ab")
    reply.finish()
    runner = asyncio.create_task(reply.run())
    await until(lambda: send.entered == 1)  # the final frame is on its way
    await reply.end_early(499, "Request cancelled by the client.")
    send.release()
    await asyncio.wait_for(runner, 2)
    assert send.frames == [head(1, b"ab", done=True)]  # no second final frame


async def test_end_early_lets_send_errors_through():
    reply = ReplyStream(1, RecordingSend(fail=StreamClosedError()), chunk_size=4)
    with pytest.raises(StreamClosedError):
        await reply.end_early(499, "Request cancelled by the client.")
