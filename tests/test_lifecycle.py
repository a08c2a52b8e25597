"""Requests end with exactly one final frame whatever happens; activity is the server's activity."""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from jupyter_http_over_ws.client._connect import Endpoint

pytestmark = pytest.mark.timeout(60)


def extension(jp_serverapp):
    return jp_serverapp.extension_manager.extension_points["jupyter_http_over_ws"].app


async def read_until_closed(connection, timeout=20):
    frames = []
    while True:
        text = await asyncio.wait_for(connection.read_message(), timeout)
        if text is None:
            return frames
        frames.append(json.loads(text))


async def test_shutdown_gives_in_flight_requests_a_final_frame(
    hows_server_url, hows_token, jp_serverapp, jp_root_dir
):
    (jp_root_dir / "big.bin").write_bytes(os.urandom(48 * 1024 * 1024))
    connection = await Endpoint(hows_server_url, token=hows_token).open("http_over_websocket")
    connection.write_message(
        json.dumps({"message_id": "big", "method": "GET", "path": "/files/big.bin"})
    )
    ext = extension(jp_serverapp)
    for _ in range(100):  # wait until the download is under way (and stalled: we do not read)
        if any(s.in_flight for s in ext.registry.sessions):
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    await ext.stop_extension()
    frames = [f for f in await read_until_closed(connection) if f.get("message_id") == "big"]
    assert frames, "no frame at all"
    assert [f["done"] for f in frames].count(True) == 1
    assert frames[-1]["done"] is True
    assert frames[0]["status"] == 200
    assert connection.close_code == 1001


async def test_shutdown_before_the_response_starts_is_503(
    hows_server_url, hows_token, jp_serverapp
):
    connection = await Endpoint(hows_server_url, token=hows_token).open("http_over_websocket")
    connection.write_message(
        json.dumps(
            {
                "message_id": "k",
                "method": "POST",
                "path": "/api/kernels",
                "body": json.dumps({"name": "python3"}),
            }
        )
    )
    ext = extension(jp_serverapp)
    for _ in range(100):
        if any(s.in_flight for s in ext.registry.sessions):
            break
        await asyncio.sleep(0.01)
    await ext.stop_extension()
    frames = await read_until_closed(connection)
    assert frames == [
        {"message_id": "k", "status": 503, "statusText": "Server shutting down.", "done": True}
    ]
    assert connection.close_code == 1001


async def test_client_leaving_cancels_its_requests(
    hows_server_url, hows_token, jp_serverapp, jp_root_dir
):
    (jp_root_dir / "big.bin").write_bytes(os.urandom(48 * 1024 * 1024))
    connection = await Endpoint(hows_server_url, token=hows_token).open("http_over_websocket")
    connection.write_message(
        json.dumps({"message_id": 1, "method": "GET", "path": "/files/big.bin"})
    )
    ext = extension(jp_serverapp)
    for _ in range(100):
        if any(s.in_flight for s in ext.registry.sessions):
            break
        await asyncio.sleep(0.05)
    (session,) = ext.registry.sessions
    assert session.in_flight == 1
    connection.close()
    for _ in range(100):
        if not ext.registry.sessions and session.in_flight == 0:
            break
        await asyncio.sleep(0.05)
    assert not ext.registry.sessions
    assert session.in_flight == 0


async def test_tunnelled_requests_count_as_activity(hows_tunnel, jp_serverapp):
    settings = jp_serverapp.web_app.settings
    before = settings.get("api_last_activity")
    await asyncio.sleep(0.01)
    assert (await hows_tunnel.request("GET", "/api/contents")).status == 200
    after = settings["api_last_activity"]
    assert before is None or after > before
    kernel = await hows_tunnel.request("POST", "/api/kernels", body=json.dumps({"name": "python3"}))
    kernel_id = kernel.json()["id"]
    await asyncio.sleep(0.01)
    assert (await hows_tunnel.request("POST", f"/api/kernels/{kernel_id}/interrupt")).status == 204
    await hows_tunnel.request("DELETE", f"/api/kernels/{kernel_id}")
    assert settings["api_last_activity"] > after
