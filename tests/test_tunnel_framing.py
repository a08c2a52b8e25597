"""The opt-in binary framing through a real server (its layout is tested in tests/unit)."""

from __future__ import annotations

import asyncio
import base64
import json
import os

import pytest

from jupyter_http_over_ws.client import TunnelClient
from jupyter_http_over_ws.client._connect import Endpoint
from jupyter_http_over_ws.wire.framing import FRAMING_HEADER, parse_binary_reply, parse_hello

pytestmark = pytest.mark.timeout(60)


async def test_binary_framing_through_the_server(hows_server_url, hows_token, jp_root_dir):
    payload = os.urandom(5 * 1024 * 1024 + 3)
    async with await TunnelClient.connect(hows_server_url, token=hows_token, framing="binary") as c:
        assert c.framing == "binary"
        (jp_root_dir / "b.bin").write_bytes(payload)
        down = await c.request("GET", "/files/b.bin")
        assert down.body == payload
        body = json.dumps({"type": "file", "format": "text", "content": "é" * 1000})
        up = await c.request("PUT", "/api/contents/t.txt", body=body.encode())
        assert up.status == 201
        assert (jp_root_dir / "t.txt").read_text() == "é" * 1000
        # A body of many of the pieces the handler is given (BODY_PIECE), and a part.
        content = base64.b64encode(payload).decode()
        big = json.dumps({"type": "file", "format": "base64", "content": content})
        up = await c.request("PUT", "/api/contents/big.bin", body=big.encode())
        assert up.status == 201, up.text
        assert (jp_root_dir / "big.bin").read_bytes() == payload
        assert (await c.request("GET", "/api/status")).status == 200


async def test_binary_framing_is_announced_only_to_who_asks(hows_server_url, hows_token):
    asked = await Endpoint(hows_server_url, token=hows_token).open(
        "http_over_websocket", {"framing": "binary"}
    )
    assert asked.headers[FRAMING_HEADER] == "binary"
    assert parse_hello(await asyncio.wait_for(asked.read_message(), 5)) == "binary"
    # A text request still works on a binary tunnel; its reply comes as a binary frame.
    asked.write_message('{"message_id": 1, "method": "GET", "path": "/api/status"}')
    reply = parse_binary_reply(await asyncio.wait_for(asked.read_message(), 5))
    assert (reply.message_id, reply.status, reply.done) == (1, 200, True)
    asked.close()

    legacy = await Endpoint(hows_server_url, token=hows_token).open("http_over_websocket")
    assert FRAMING_HEADER not in legacy.headers
    legacy.write_message('{"message_id": 1, "method": "GET", "path": "/api/status"}')
    first = await asyncio.wait_for(legacy.read_message(), 5)
    assert isinstance(first, str)
    assert json.loads(first)["status"] == 200
    legacy.close()


async def test_malformed_binary_frame_on_a_live_tunnel(hows_server_url, hows_token):
    async with await TunnelClient.connect(hows_server_url, token=hows_token, framing="binary") as c:
        c.send_raw(b"\x00\x00\x00\x09garbage!!", binary=True)
        frame = await asyncio.wait_for(c.unmatched.get(), 5)
        assert frame.status == 400
        assert (await c.request("GET", "/api/status")).status == 200


@pytest.mark.parametrize("framing", ["json", "binary"])
async def test_cancel_stops_a_download(
    hows_server_url, hows_token, jp_serverapp, jp_root_dir, framing
):
    (jp_root_dir / "big.bin").write_bytes(os.urandom(32 * 1024 * 1024))
    ext = jp_serverapp.extension_manager.extension_points["jupyter_http_over_ws"].app
    async with await TunnelClient.connect(hows_server_url, token=hows_token, framing=framing) as c:
        received = 0
        async with c.stream("GET", "/files/big.bin") as response:
            async for chunk in response:
                received += len(chunk)
                break
        assert response.done  # exactly one final frame was read after the cancel
        assert 0 < received < 32 * 1024 * 1024
        (session,) = ext.registry.sessions
        for _ in range(50):
            if session.in_flight == 0:
                break
            await asyncio.sleep(0.02)
        assert session.in_flight == 0
        assert (await c.request("GET", "/api/status")).status == 200
