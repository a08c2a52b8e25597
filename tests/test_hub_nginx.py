"""The polling fallback through a real JupyterHub behind an nginx that drops upgrades.

An old reverse proxy in front of the hub's public URL (``support/nginx.py``'s nginx
speaking HTTP/1.0 upstream without ``Upgrade``/``Connection``) makes every WebSocket
handshake reach configurable-http-proxy, and then alice's single-user server, as a
plain ``GET``. The Python client carries a hub API token in the ``Authorization``
header (JupyterHub 5+ refuses ``?token=`` on HTTP). Its WebSocket transport fails with
the single-user server's ``400`` (tornado's answer to a WebSocket handshake without
``Upgrade: websocket``); the default ``connect()`` falls back to polling, and
everything works over it: files byte-exact, code with outputs, a kernel's socket.
"""

from __future__ import annotations

import base64
import json
import os
import re
import uuid

import pytest
from support.hub import Hub
from support.kernels import V1, KernelSocket, by_type, stdout_text
from support.nginx import Nginx
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from jupyter_http_over_ws.client import TunnelClient

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

#: The frontend's page origin, allowed by ``c.Spawner.args`` as an operator sets it.
PAGE_ORIGIN = "https://frontend.example"


class HubBehindNginx:
    """The hub, the dropping nginx in front of it, and a token for alice's server."""

    def __init__(self, hub: Hub, nginx: Nginx, token: str) -> None:
        self.hub = hub
        self.nginx = nginx
        self.token = token

    def alice_url(self) -> str:
        """Alice's server through nginx, as a frontend behind the old proxy sees it."""
        return f"{self.nginx.url('/')}user/alice/"


@pytest.fixture(scope="module")
def behind_nginx(tmp_path_factory):
    """A running hub with alice's server, nginx (dropping upgrades) in front of it."""
    work = tmp_path_factory.mktemp("hub-nginx")
    hub = Hub(work / "hub", page_origin=PAGE_ORIGIN)
    nginx = Nginx(work / "nginx", hub.port, upgrades=False)
    hub.start()
    try:
        nginx.start()
        hub.start_server("alice")
        token = hub.new_token("alice", ["access:servers!user=alice"], note="frontend")
        yield HubBehindNginx(hub, nginx, token)
    finally:
        nginx.stop()
        left = hub.stop()
    assert left == [], f"processes left after the hub stopped: {left}\n{hub.log()[-3000:]}"


async def test_the_websocket_transport_fails_with_the_servers_400(behind_nginx):
    with pytest.raises(HTTPClientError) as failure:
        await TunnelClient.connect(
            behind_nginx.alice_url(),
            token=behind_nginx.token,
            origin=PAGE_ORIGIN,
            transports=("websocket",),
        )
    assert failure.value.code == 400
    # The same request straight to the hub upgrades: nginx is what breaks it.
    async with await TunnelClient.connect(
        behind_nginx.hub.user_url("alice"),
        token=behind_nginx.token,
        origin=PAGE_ORIGIN,
        transports=("websocket",),
    ) as direct:
        assert direct.transport == "websocket"
    # What the handshake gets through nginx, as any HTTP client sees it.
    http = AsyncHTTPClient(force_instance=True)
    try:
        handshake = await http.fetch(
            f"{behind_nginx.alice_url()}http_over_websocket",
            headers={
                "Authorization": f"token {behind_nginx.token}",
                "Origin": PAGE_ORIGIN,
                "Connection": "Upgrade",
                "Upgrade": "websocket",
                "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
            },
            raise_error=False,
        )
    finally:
        http.close()
    assert handshake.code == 400
    assert b'Can "Upgrade" only to "WebSocket".' in handshake.body
    # It reached alice's server (which answered), as a plain HTTP/1.0 GET.
    assert re.search(
        r'"GET /user/alice/http_over_websocket HTTP/1\.1" 400 ', behind_nginx.nginx.access_log()
    )
    assert "400 GET /user/alice/http_over_websocket " in behind_nginx.hub.log()


async def test_the_default_connect_falls_back_to_polling_and_does_the_work(behind_nginx):
    changes: list[str] = []
    tunnel = await TunnelClient.connect(
        behind_nginx.alice_url(),
        token=behind_nginx.token,
        origin=PAGE_ORIGIN,
        on_transport_change=changes.append,
    )
    try:
        assert tunnel.transport == "polling"
        home = behind_nginx.hub.home("alice")
        (home / "listed.txt").write_text("here")
        listing = await tunnel.request("GET", "/api/contents")
        assert listing.status == 200
        assert "listed.txt" in {entry["name"] for entry in listing.json()["content"]}

        payload = os.urandom(3 * 1024 * 1024 + 17) + bytes(range(256))
        model = {"type": "file", "format": "base64", "content": base64.b64encode(payload).decode()}
        put = await tunnel.request("PUT", "/api/contents/up.bin", body=json.dumps(model))
        assert put.status == 201, put.text
        assert (home / "up.bin").read_bytes() == payload
        down = await tunnel.request("GET", "/files/up.bin")
        assert down.status == 200
        assert down.body == payload

        started = await tunnel.request("POST", "/api/kernels", body=json.dumps({"name": "python3"}))
        assert started.status == 201, started.text
        kernel_id = started.json()["id"]
        try:
            session = uuid.uuid4().hex
            socket = await tunnel.websocket(
                f"/api/kernels/{kernel_id}/channels?session_id={session}", subprotocols=[V1]
            )
            assert socket.selected_subprotocol == V1
            kernel = KernelSocket(socket, session, V1, timeout=60)
            await kernel.wait_ready()
            msg_id = await kernel.execute("print('hello from', 6 * 7)\n6 * 7")
            replies = await kernel.collect(msg_id, 60)
            assert stdout_text(replies) == "hello from 42\n"
            (result,) = by_type(replies, "execute_result")
            assert result.content["data"]["text/plain"] == "42"
            socket.close()
        finally:
            deleted = await tunnel.request("DELETE", f"/api/kernels/{kernel_id}")
            assert deleted.status == 204
        assert tunnel.transport == "polling"
        assert changes == []
    finally:
        await tunnel.close()
    access = behind_nginx.nginx.access_log()
    assert "/user/alice/http_over_websocket/polling" in access
    assert '"GET /user/alice/http_over_websocket HTTP/1.1" 400 ' in access
    # The token travelled in a header: no URL nginx saw carries it.
    assert behind_nginx.token not in access
    assert "token=" not in access
