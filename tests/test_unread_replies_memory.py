"""A client that sends without reading its replies cannot grow the server's memory.

Issue 11, finding 4. Each test runs the server in its own process (its RSS is its
own), makes a client send what an attacker sent (tiny malformed frames, requests over
``max_requests_in_flight``, one big polling send) and never read an answer, and
checks the server's resident memory grew by less than :data:`BOUND`. Before the fix,
every refused message spawned its own reply task and its frame sat in the socket's
write buffer: the same traffic grew the server by hundreds of MiB.

Then the same client reads: it gets every reply it was owed (a malformed message
still gets its 400, an over-limit request its 429), in order.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
from pathlib import Path

import pytest
from support.polling import RawPolling
from support.server_process import ServerProcess
from support.wire import PING, PONG, TEXT, RawUpgrade, encode_frame, read_frame

from jupyter_http_over_ws.wire.polling import (
    TextEnvelope,
    encode_batch,
    encode_envelope,
    parse_batch,
)
from jupyter_http_over_ws.wire.protocol import parse_reply

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

MiB = 1024 * 1024
#: The most the server may grow while one client does not read.
BOUND = 50 * MiB


@pytest.fixture
def server(tmp_path):
    # A small in-flight limit, so most requests of the second test are refused (429); a
    # small polling buffer, full after a few hundred replies (the default 4 MiB fills the
    # same way, with more envelopes, and more time spent parsing them).
    options = {"max_requests_in_flight": 20, "poll_timeout": 10.0, "polling_buffer_size": 64 * 1024}
    server = ServerProcess(tmp_path, options)
    server.start()
    yield server
    server.kill()


class MemoryWatch:
    """The server's RSS growth over a baseline, sampled until the server is quiet."""

    def __init__(self, server: ServerProcess, baseline: int) -> None:
        self.server = server
        self.baseline = baseline
        self.growth = 0

    def cpu_seconds(self) -> float:
        assert self.server.proc is not None
        stat = Path(f"/proc/{self.server.proc.pid}/stat").read_text()
        fields = stat.rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def until_quiet(self, ready=lambda: True, limit: float = 120.0) -> None:
        """Sample until ``ready()`` and the server has used no CPU for 2 s (it takes no
        more in, or has nothing left to do), or it has grown past :data:`BOUND`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        cpu = [self.cpu_seconds()]
        while loop.time() < deadline:
            await asyncio.sleep(0.25)
            self.growth = max(self.growth, self.server.rss() - self.baseline)
            if self.growth > BOUND:
                return  # the assertion that follows fails
            cpu.append(self.cpu_seconds())
            if len(cpu) > 8 and cpu[-1] - cpu[-9] < 0.1 and ready():
                return


async def baseline(server: ServerProcess) -> MemoryWatch:
    """A watch over the server's RSS once warm: a tunnel and a polling session served."""
    warm = await tunnel(server)
    warm.writer.write(encode_frame(b'{"message_id": 0, "method": "GET", "path": "/api/status"}'))
    assert (await read_replies(warm, 1))[0].status == 200
    warm.close()
    polling = RawPolling(server.url, server.token)
    assert (await polling.open()).code == 200
    await polling.delete()
    polling.close()
    return MemoryWatch(server, await server.held_memory())


async def tunnel(server: ServerProcess) -> RawUpgrade:
    """A raw tunnel socket with a 4 KiB receive buffer, set before it connects (so the
    window it offers stays small): its replies back up into the server at once."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 20)
    key = base64.b64encode(os.urandom(16))
    writer.write(
        b"GET /http_over_websocket HTTP/1.1\r\n"
        b"Host: 127.0.0.1:" + str(server.port).encode() + b"\r\n"
        b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: " + key + b"\r\n"
        b"Authorization: token " + server.token.encode() + b"\r\n\r\n"
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 101 "), head
    return RawUpgrade(101, head, reader, writer)


async def read_replies(raw: RawUpgrade, count: int) -> list:
    """Now the client reads: the ``count`` reply frames it is owed, decoded."""

    async def read() -> list:
        replies = []
        while len(replies) < count:
            opcode, payload = await read_frame(raw.reader)
            if opcode == PING:  # jupyter_server closes a socket that answers no ping
                raw.writer.write(encode_frame(payload, PONG))
                continue
            assert opcode == TEXT
            replies.append(parse_reply(payload))
        return replies

    return await asyncio.wait_for(read(), 120)


async def test_malformed_frames_of_a_client_that_does_not_read(server, jp_asyncio_loop):
    watch = await baseline(server)
    raw = await tunnel(server)
    count = 150_000  # 1 MB of 7-byte frames, 14 MB of error replies
    raw.writer.write(encode_frame(b"x") * count)
    await watch.until_quiet()
    print(f"\n{count} malformed frames unread: server RSS +{watch.growth / MiB:.1f} MiB")
    assert watch.growth < BOUND, watch.growth
    replies = await read_replies(raw, count)
    assert {(r.status, r.done) for r in replies} == {(400, True)}
    raw.close()


async def test_requests_over_the_in_flight_limit_of_a_client_that_does_not_read(
    server, jp_asyncio_loop
):
    watch = await baseline(server)
    raw = await tunnel(server)
    count = 100_000
    raw.writer.write(
        b"".join(
            encode_frame(
                json.dumps({"message_id": i, "method": "GET", "path": "/api/status"}).encode()
            )
            for i in range(count)
        )
    )
    await watch.until_quiet()
    print(f"\n{count} requests (20 in flight) unread: server RSS +{watch.growth / MiB:.1f} MiB")
    assert watch.growth < BOUND, watch.growth
    # The client reads: the first replies it is owed (all would take the server minutes:
    # each of the requests it let through runs a handler) are the ones it asked for,
    # each once, answered or refused with 429.
    replies = await read_replies(raw, 5000)
    ids = [r.message_id for r in replies]
    assert len(set(ids)) == len(ids)
    assert set(ids) <= set(range(count))
    assert {(r.status, r.done) for r in replies} <= {(200, True), (429, True)}
    assert any(r.status == 429 for r in replies)
    raw.close()


async def test_a_big_polling_send_of_a_client_that_does_not_read(server, jp_asyncio_loop):
    watch = await baseline(server)
    polling = RawPolling(server.url, server.token)
    assert (await polling.open()).code == 200
    count = 30_000  # 0.8 MB of envelopes, each a malformed message
    body = encode_batch(0, [encode_envelope(TextEnvelope(0, "x"))] * count)
    url = f"/{polling.session_id}/send"
    send = asyncio.ensure_future(polling.fetch(url, "POST", body, request_timeout=120))
    # Until the server is quiet: the send waits for room (up to poll_timeout) or is done.
    await watch.until_quiet()
    print(f"\na {len(body)} B polling send unread: server RSS +{watch.growth / MiB:.1f} MiB")
    assert watch.growth < BOUND, watch.growth
    assert not send.done()  # it waits for room
    # Meanwhile a second send of the same session waits for nothing: 503 at once.
    second = await polling.fetch(url, "POST", body, request_timeout=10)
    first = await send
    assert first.code == 200
    ack = json.loads(first.body)["ack"]
    assert 0 < ack < count  # taken as far as there was room; the rest stays with the client
    assert second.code == 503
    assert second.headers.get("Retry-After") == "1"
    assert json.loads(second.body)["ack"] == ack
    # The client reads: what it was owed comes, and its next send goes on from the ack.
    received = await polling.recv(0, request_timeout=30)
    assert received.code == 200
    assert len(parse_batch(received.body).messages) > 0
    await polling.delete()
    polling.close()
