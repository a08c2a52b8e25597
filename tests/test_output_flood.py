"""A kernel that floods its output: what arrives through the tunnel against what arrives directly.

ipykernel publishes output on a ZeroMQ PUB socket, which drops messages once about
2,000 wait between the kernel and a server that drains them too slowly (the default
high-water marks of both ends). A proxied socket must drain the kernel as fast as a
direct one does: the relay it replaced read through an inner socket, and lost up to a
fifth of a flood where a direct socket lost nothing (issue 13). These tests count, line
by line, what a cell printed against what reached the client, through the tunnel's
WebSocket and through polling, each beside a direct socket on the same kernel, with
jupyter_server's output rate limit off (``ZMQChannelsWebsocketConnection.limit_rate``)
so that the limiter is not what is measured. The server runs in its own process, as
it does for a user, so that its drain does not share an event loop with the readers.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from support.kernels import V1, KernelSocket
from support.server_process import ServerProcess

from jupyter_http_over_ws.client import TunnelClient
from jupyter_http_over_ws.client._connect import Endpoint

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

#: Lines the cell prints (100 bytes each), and how many between two flushes: every
#: flush is one ``stream`` message (ipykernel otherwise batches 0.2 s of output).
LINES = 50_000
FLUSH_EVERY = 5
FLOOD = f"""\
import sys
for i in range({LINES}):
    sys.stdout.write("%08d %s\\n" % (i, "x" * 90))
    if i % {FLUSH_EVERY} == {FLUSH_EVERY - 1}:
        sys.stdout.flush()
sys.stdout.flush()
"""
LINE = re.compile(r"(\d{8}) x{90}")

#: What a tunnelled flood may lose beyond what the direct one lost in the same round:
#: noise between two runs on a shared machine, far below the fifth the old relay lost.
SLACK = LINES // 50


@dataclass
class Flood:
    """What reached one client of a flood."""

    #: The index of every complete line that arrived, in the order it arrived.
    lines: list[int]
    #: Whether the kernel's final ``idle`` status for the cell arrived.
    idle: bool
    seconds: float

    @property
    def lost(self) -> int:
        return LINES - len(set(self.lines))


async def flood(ks: KernelSocket) -> Flood:
    """Run the flood on ``ks``; what arrived once the reply came and idle came or stayed away."""
    started = time.monotonic()
    msg_id = await ks.execute(FLOOD)
    text: list[str] = []
    reply = idle = False
    while not (reply and idle):
        try:
            # Once the reply is in, idle follows at once unless it was dropped.
            received = await ks.recv(10.0 if reply else 120.0)
        except asyncio.TimeoutError:
            if reply:
                break
            raise
        if not received.replies_to(msg_id):
            continue
        if received.msg_type == "stream" and received.content["name"] == "stdout":
            text.append(received.content["text"])
        elif received.channel == "shell" and received.msg_type == "execute_reply":
            assert received.content["status"] == "ok", received.content
            reply = True
        elif received.msg_type == "status" and received.content["execution_state"] == "idle":
            idle = True
    seconds = time.monotonic() - started
    lines = [int(m.group(1)) for m in LINE.finditer("".join(text))]
    return Flood(lines, idle, seconds)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    process = ServerProcess(
        tmp_path_factory.mktemp("flood"),
        config={"ZMQChannelsWebsocketConnection": {"limit_rate": False}},
    )
    process.start()
    yield process
    process.kill()


async def open_kernel_socket(opener: Any, kernel_id: str) -> KernelSocket:
    session = uuid.uuid4().hex
    path = f"api/kernels/{kernel_id}/channels?session_id={session}"
    connection = await opener(path)
    ks = KernelSocket(connection, session, V1)
    await ks.wait_ready()
    return ks


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_a_tunnelled_flood_loses_nothing_a_direct_one_keeps(
    server: ServerProcess, transport: str
) -> None:
    async with await TunnelClient.connect(
        server.url, token=server.token, transports=(transport,)
    ) as tunnel:
        reply = await tunnel.request("POST", "api/kernels", body=json.dumps({"name": "python3"}))
        assert reply.status == 201, reply
        kernel_id = reply.json()["id"]
        try:
            openers = {
                "direct": lambda path: Endpoint(server.url, token=server.token).open(
                    path, subprotocols=[V1]
                ),
                "tunnel": lambda path: tunnel.websocket(path, subprotocols=[V1]),
            }
            floods: dict[str, Flood] = {}
            for how, opener in openers.items():
                ks = await open_kernel_socket(opener, kernel_id)
                try:
                    floods[how] = await flood(ks)
                finally:
                    ks.connection.close()
        finally:
            await tunnel.request("DELETE", f"api/kernels/{kernel_id}")

    summary = {
        how: f"{f.lost} of {LINES} lines lost, idle {'arrived' if f.idle else 'lost'}, "
        f"{f.seconds:.1f} s"
        for how, f in floods.items()
    }
    print(f"flood over {transport}: {summary}")
    direct, tunnelled = floods["direct"], floods["tunnel"]
    # What arrived is in the order printed, each line once.
    for f in floods.values():
        assert f.lines == sorted(set(f.lines)), summary
    assert tunnelled.lost <= direct.lost + SLACK, summary
    assert tunnelled.idle or not direct.idle, summary
    assert server.error_lines() == []
