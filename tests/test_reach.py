"""No tunnelled request or proxied socket ever leaves this server."""

from __future__ import annotations

import asyncio
import json

import pytest
from tornado.httpclient import HTTPClientError

from jupyter_http_over_ws.client import TunnelClient

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def bystander(jp_asyncio_loop):
    """Another server on loopback, which must never receive a connection."""
    connections = []

    async def handle(reader, writer):
        connections.append(await reader.read(1024))
        writer.close()

    server = jp_asyncio_loop.run_until_complete(asyncio.start_server(handle, "127.0.0.1", 0))
    port = server.sockets[0].getsockname()[1]

    async def control() -> None:
        # The listener does record a connection: without this, a listener that recorded
        # nothing would make every "received nothing" below pass.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"control")
        await writer.drain()
        await asyncio.wait_for(reader.read(), 10)  # EOF: the handler has recorded it
        writer.close()
        await writer.wait_closed()

    jp_asyncio_loop.run_until_complete(control())
    assert connections == [b"control"]
    connections.clear()
    yield port, connections
    server.close()


async def test_hostile_targets_never_leave_the_server(hows_tunnel, bystander):
    port, connections = bystander
    target = f"127.0.0.1:{port}"
    paths = [
        f"http://{target}/",
        f"ws://{target}/",
        f"//{target}/x",
        f"/\\{target}/x",
        f"\\\\{target}\\x",
        f"/%2F%2F{target}/x",
        f"/..%2F..%2F{target}",
        f"/api/status\r\nHost: {target}",
        f"/api/status#@{target}",
        f"@{target}/x",
        f"{target}/x",
    ]
    for index, path in enumerate(paths):
        hows_tunnel.send_raw(
            json.dumps(
                {
                    "message_id": index,
                    "method": "GET",
                    "path": path,
                    "headers": {
                        "Host": target,
                        "X-Forwarded-Host": target,
                        "Forwarded": f"host={target}",
                    },
                }
            )
        )
    for _ in paths:
        frame = await asyncio.wait_for(hows_tunnel.unmatched.get(), 10)
        assert frame.done
        # The fragment is dropped, as a browser drops it: that one is this server's status.
        expected = (200,) if paths[frame.message_id].startswith("/api/status#") else (400, 404)
        assert frame.status in expected, frame
    for path in [f"/{target}/x", f"//{target}/x", f"%2F%2F{target}/x", f"http://{target}/"]:
        with pytest.raises(HTTPClientError) as e:
            await hows_tunnel.websocket(path)
        assert 400 <= e.value.code < 500
    await asyncio.sleep(0.2)
    assert connections == []


async def test_the_auth_url_is_never_fetched(hows_server_url, hows_token, jp_base_url, bystander):
    """Only the token inside jupyter_http_over_ws_auth_url is used; its host is never dialled."""
    port, connections = bystander
    auth_url = f"http://127.0.0.1:{port}{jp_base_url}?token={hows_token}"
    async with await TunnelClient.connect(hows_server_url, auth_url=auth_url) as client:
        assert (await client.request("GET", "/api/status")).status == 200
    with pytest.raises(HTTPClientError) as e:
        await TunnelClient.connect(
            hows_server_url, auth_url=f"http://127.0.0.1:{port}{jp_base_url}?token=wrong"
        )
    assert e.value.code == 403
    await asyncio.sleep(0.2)
    assert connections == []
