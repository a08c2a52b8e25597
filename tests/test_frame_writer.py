"""The tunnel's frames written straight to its stream (frame_writer.py), and the fallback.

The direct path relies on Tornado's WebSocket protocol object (its class, ``stream``,
``mask_outgoing``, ``_compressor``): the first test fails loudly on a Tornado where
those changed, and the CI runs it on the oldest and newest Tornado we claim.
"""

from __future__ import annotations

import asyncio
import json
import os

import pytest
from support.echo_socket import register_echo_socket

from jupyter_http_over_ws import frame_writer
from jupyter_http_over_ws.client import TunnelClient
from jupyter_http_over_ws.client._connect import Endpoint
from jupyter_http_over_ws.frame_writer import JOIN_BELOW, writes_directly
from jupyter_http_over_ws.handlers.proxied_ws import ProxiedWebSocketHandler
from jupyter_http_over_ws.handlers.tunnel import TunnelHandler

pytestmark = pytest.mark.timeout(60)

#: Bodies whose frames take every length encoding and both write paths: short frames
#: (under 126 bytes), 16-bit lengths on either side of JOIN_BELOW, and 64-bit lengths
#: (a full 64 KiB chunk plus its header), with a part frame after them.
SIZES = [0, 1, 90, 2000, JOIN_BELOW - 300, JOIN_BELOW + 1, 65536 - 200, 3 * 65536 + 7]


def extension(jp_serverapp):
    return jp_serverapp.extension_manager.extension_points["jupyter_http_over_ws"].app


async def test_tunnel_sockets_are_written_directly_on_this_tornado(
    hows_server_url, hows_token, jp_serverapp
):
    connection = await Endpoint(hows_server_url, token=hows_token).open("http_over_websocket")
    try:
        handlers = [
            s for s in extension(jp_serverapp).registry.sockets if isinstance(s, TunnelHandler)
        ]
        assert len(handlers) == 1
        assert writes_directly(handlers[0]), (
            "Tornado's WebSocket protocol object changed: the tunnel falls back to "
            "write_message (slower downloads); check frame_writer.writes_directly"
        )
    finally:
        connection.close()


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "fallback"])
@pytest.mark.parametrize("framing", ["json", "binary"])
async def test_bodies_of_every_frame_length_arrive_whole(
    hows_server_url, hows_token, jp_root_dir, monkeypatch, direct, framing
):
    if not direct:
        monkeypatch.setattr(frame_writer, "writes_directly", lambda handler: False)
    bodies = {f"f{size}.bin": os.urandom(size) for size in SIZES}
    for name, body in bodies.items():
        (jp_root_dir / name).write_bytes(body)
    async with await TunnelClient.connect(hows_server_url, token=hows_token, framing=framing) as c:
        replies = await asyncio.gather(*(c.request("GET", f"/files/{name}") for name in bodies))
        for (name, body), reply in zip(bodies.items(), replies, strict=True):
            assert reply.status == 200, name
            assert reply.body == body, name
        status = await c.request("GET", "/api/status")
        assert json.loads(status.body)["connections"] >= 0


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "fallback"])
async def test_proxied_frames_keep_their_type_and_bytes(
    hows_tunnel, jp_serverapp, jp_base_url, monkeypatch, direct
):
    if not direct:
        monkeypatch.setattr(frame_writer, "writes_directly", lambda handler: False)
    path = register_echo_socket(jp_serverapp, jp_base_url, "hows-test/echo")
    connection = await asyncio.wait_for(hows_tunnel.websocket(path), 10)
    try:
        proxied = [
            s
            for s in extension(jp_serverapp).registry.sockets
            if isinstance(s, ProxiedWebSocketHandler)
        ]
        assert [handler._writer.direct for handler in proxied] == [direct]
        frames: list[str | bytes] = [
            "",
            b"",
            "héllo ✓" * 20,
            bytes(range(256)),
            "x" * (JOIN_BELOW + 1),
            os.urandom(70_000),
        ]
        for frame in frames:
            await connection.write_message(frame, binary=isinstance(frame, bytes))
        for frame in frames:
            echoed = await asyncio.wait_for(connection.read_message(), 10)
            assert type(echoed) is type(frame)
            assert echoed == frame
    finally:
        connection.close()
