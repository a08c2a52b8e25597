"""The Python client through a real nginx: polling behind an old proxy, else WebSocket."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import uuid

import pytest
from support.kernels import V1, KernelSocket, by_type, stdout_text
from support.nginx import Nginx
from tornado import httpclient

from jupyter_http_over_ws._version import __version__
from jupyter_http_over_ws.client import TunnelClient, TunnelClosedError

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

BOTH = ("websocket", "polling")
EXT = {"jupyter_http_over_ws": True}


@pytest.fixture
def nginx(jp_serverapp, http_server, jp_http_port, tmp_path):
    """Start nginx in front of the test server: ``nginx(upgrades=...)`` returns it."""
    started: list[Nginx] = []

    def start(*, upgrades: bool, read_timeout: float = 120) -> Nginx:
        proxy = Nginx(
            tmp_path / f"nginx{len(started)}",
            jp_http_port,
            upgrades=upgrades,
            read_timeout=read_timeout,
        )
        proxy.start()
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


async def work_through(tunnel: TunnelClient, root) -> None:
    """List files, upload and download a binary file byte-exact, run code with outputs."""
    (root / "listed.txt").write_text("here")
    listing = await tunnel.request("GET", "/api/contents")
    assert listing.status == 200
    assert "listed.txt" in [item["name"] for item in listing.json()["content"]]

    payload = os.urandom(1024 * 1024 + 13) + bytes(range(256))
    model = {"type": "file", "format": "base64", "content": base64.b64encode(payload).decode()}
    up = await tunnel.request("PUT", "/api/contents/up.bin", body=json.dumps(model))
    assert up.status == 201, up.text
    assert (root / "up.bin").read_bytes() == payload
    down = await tunnel.request("GET", "/files/up.bin")
    assert down.status == 200
    assert down.body == payload

    kernel = await tunnel.request("POST", "/api/kernels", body=json.dumps({"name": "python3"}))
    assert kernel.status == 201, kernel.text
    kernel_id = kernel.json()["id"]
    session = uuid.uuid4().hex
    socket = await tunnel.websocket(
        f"/api/kernels/{kernel_id}/channels?session_id={session}", subprotocols=[V1]
    )
    assert socket.selected_subprotocol == V1
    ks = KernelSocket(socket, session, V1, timeout=60)
    await ks.wait_ready()
    msg_id = await ks.execute("print('hello from', 6 * 7)\n6 * 7")
    replies = await ks.collect(msg_id, 60)
    assert stdout_text(replies) == "hello from 42\n"
    (result,) = by_type(replies, "execute_result")
    assert result.content["data"]["text/plain"] == "42"
    socket.close()
    assert (await tunnel.request("DELETE", f"/api/kernels/{kernel_id}")).status == 204


@pytest.mark.parametrize(("upgrades", "expected"), [(False, "polling"), (True, "websocket")])
async def test_the_same_work_through_nginx(
    nginx, jp_base_url, hows_token, jp_root_dir, upgrades, expected
):
    proxy = nginx(upgrades=upgrades)
    seen: list[str] = []
    tunnel = await TunnelClient.connect(
        proxy.url(jp_base_url), token=hows_token, transports=BOTH, on_transport_change=seen.append
    )
    try:
        assert tunnel.transport == expected
        await work_through(tunnel, jp_root_dir)
        assert tunnel.transport == expected
        assert seen == []
    finally:
        await tunnel.close()
    if expected == "polling":
        log = proxy.access_log()
        assert "/http_over_websocket/polling/" in log
        assert '"GET /http_over_websocket HTTP/1.1" 400' in log or " 400 " in log
    else:
        log = proxy.access_log_with(" 101 ")
        assert "/http_over_websocket/polling" not in log


async def test_websocket_only_client_fails_behind_the_old_proxy(nginx, jp_base_url, hows_token):
    proxy = nginx(upgrades=False)
    with pytest.raises(httpclient.HTTPClientError) as failure:
        await TunnelClient.connect(
            proxy.url(jp_base_url), token=hows_token, transports=("websocket",)
        )
    assert failure.value.code == 400
    # By default the client falls back on its own.
    async with await TunnelClient.connect(proxy.url(jp_base_url), token=hows_token) as tunnel:
        assert tunnel.transport == "polling"
        assert (await tunnel.request("GET", "/api/status")).status == 200


@pytest.mark.parametrize(
    "jp_server_config",
    [{"ServerApp": {"jpserver_extensions": EXT}, "HttpOverWebSocketApp": {"allow_polling": False}}],
)
async def test_without_polling_the_upgrade_failure_is_reported(nginx, jp_base_url, hows_token):
    proxy = nginx(upgrades=False)
    with pytest.raises(httpclient.HTTPClientError) as failure:
        await TunnelClient.connect(proxy.url(jp_base_url), token=hows_token)
    assert failure.value.code == 400  # the refused upgrade, not the missing polling URL


async def test_upgrade_back_to_websocket_loses_nothing(
    nginx, jp_base_url, hows_token, jp_root_dir, jp_serverapp
):
    proxy = nginx(upgrades=False)
    payload = os.urandom(6 * 1024 * 1024)
    (jp_root_dir / "big.bin").write_bytes(payload)
    changes: list[str] = []
    tunnel = await TunnelClient.connect(
        proxy.url(jp_base_url),
        token=hows_token,
        transports=BOTH,
        upgrade_interval=0.3,
        on_transport_change=changes.append,
    )
    try:
        assert tunnel.transport == "polling"
        # Work in flight on the polling session while the proxy starts passing upgrades.
        async with tunnel.stream("GET", "/files/big.bin") as download:
            assert download.status == 200
            chunks = [await download.__aiter__().__anext__()]
            proxy.reconfigure(upgrades=True)
            await tunnel.wait_for_transport("websocket", timeout=20)
            chunks += [chunk async for chunk in download]
        assert b"".join(chunks) == payload
        assert changes == ["websocket"]
        # Told by the polling session, kept on the (JSON-framed) WebSocket that is not.
        assert tunnel.extension_version == __version__
        # New requests go over the WebSocket; the polling session is closed once idle.
        assert (await tunnel.request("GET", "/api/status")).status == 200
        ext = next(iter(jp_serverapp.extension_manager.extension_apps["jupyter_http_over_ws"]))
        for _ in range(100):
            if len(ext.registry.polling_sessions) == 0:
                break
            await asyncio.sleep(0.1)
        assert len(ext.registry.polling_sessions) == 0
    finally:
        await tunnel.close()


@pytest.mark.parametrize(
    "jp_server_config",
    [{"ServerApp": {"jpserver_extensions": EXT}, "HttpOverWebSocketApp": {"poll_timeout": 3}}],
)
async def test_a_proxy_cutting_long_polls_loses_nothing(
    nginx, jp_base_url, hows_token, jp_root_dir
):
    # nginx gives up on a silent upstream after 1 s (504) while the server would hold a
    # poll for 3 s: every idle poll is cut on the way, and the client simply polls again.
    proxy = nginx(upgrades=False, read_timeout=1)
    payload = os.urandom(2 * 1024 * 1024)
    (jp_root_dir / "x.bin").write_bytes(payload)
    tunnel = await TunnelClient.connect(proxy.url(jp_base_url), token=hows_token, transports=BOTH)
    try:
        assert tunnel.transport == "polling"
        await asyncio.sleep(2.5)
        assert " 504 " in proxy.access_log()
        assert (await tunnel.request("GET", "/files/x.bin")).body == payload
    finally:
        await tunnel.close()


@pytest.mark.parametrize(
    "jp_server_config",
    [
        {
            "ServerApp": {"jpserver_extensions": EXT},
            "HttpOverWebSocketApp": {"poll_timeout": 0.3, "polling_idle_timeout": 0.5},
        }
    ],
)
async def test_losing_the_proxy_ends_the_session_on_both_sides(
    nginx, jp_base_url, hows_token, jp_serverapp
):
    proxy = nginx(upgrades=False)
    tunnel = await TunnelClient.connect(proxy.url(jp_base_url), token=hows_token, transports=BOTH)
    ext = next(iter(jp_serverapp.extension_manager.extension_apps["jupyter_http_over_ws"]))
    assert len(ext.registry.polling_sessions) == 1
    proxy.stop()  # the network path is gone
    await asyncio.wait_for(tunnel.wait_closed(), 10)
    assert tunnel.close_code == 1006
    with pytest.raises(TunnelClosedError):
        await tunnel.request("GET", "/api/status")
    assert len(ext.registry.polling_sessions) == 0  # expired on the server meanwhile
    await tunnel.close()
