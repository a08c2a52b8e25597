"""The tunnel under a real JupyterHub: through the hub's proxy, with hub-issued tokens.

One hub (configurable-http-proxy, DummyAuthenticator, SimpleLocalProcessSpawner) runs
for the whole module (``support/hub.py``); alice's and bob's single-user servers are
started through the hub's REST API. Every request here goes to the hub's public URL,
``/user/<name>/``, as a frontend's would.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
import uuid
from datetime import datetime, timezone

import pytest
from support.hub import Hub
from support.kernels import V1, KernelSocket, stdout_text
from support.polling import RawPolling, request_envelope
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from jupyter_http_over_ws import __version__
from jupyter_http_over_ws.client import TunnelClient, diagnose
from jupyter_http_over_ws.client._connect import Endpoint

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

#: The frontend's page origin, allowed by ``c.Spawner.args`` as an operator sets it.
PAGE_ORIGIN = "https://frontend.example"

TRANSPORTS = ["websocket", "polling"]


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """A running hub with alice's and bob's servers; stopped cleanly (no process left)."""
    hub = Hub(tmp_path_factory.mktemp("hub"), page_origin=PAGE_ORIGIN)
    hub.start()
    try:
        hub.start_server("alice")
        hub.start_server("bob")
        yield hub
    finally:
        left = hub.stop()
    assert left == [], f"processes left after the hub stopped: {left}\n{hub.log()[-3000:]}"


@pytest.fixture(scope="module")
def alice_token(hub):
    """A token of alice's with access to her server and nothing else."""
    return hub.new_token("alice", ["access:servers!user=alice"], note="frontend")


def server_log_lines(hub: Hub, user: str) -> list[str]:
    """The access-log lines of ``user``'s single-user server (in the hub's log)."""
    return [line for line in hub.log().splitlines() if f" /user/{user}/" in line]


def parse_time(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def server_activity(hub: Hub, user: str) -> datetime:
    return parse_time(hub.user(user)["servers"][""]["last_activity"])


# --------------------------------------------------------------------- the extension


async def test_the_extension_loads_in_single_user_servers_with_no_extra_step(hub):
    # Nothing in the hub's config names the extension: its jupyter-config file does.
    assert "jupyter_http_over_ws" not in (hub.work / "jupyterhub_config.py").read_text()
    assert hub.log().count("jupyter_http_over_ws | extension was successfully loaded") == 2
    for user in ("alice", "bob"):
        try:
            diagnosis = await diagnose(hub.user_url(user), origin=PAGE_ORIGIN)
        except HTTPClientError as error:  # seen once under heavy load: say what answered
            body = error.response.body[:500] if error.response is not None else b""
            pytest.fail(f"diagnose {user}: {error!r} {body!r}\n{hub.log()[-4000:]}")
        assert diagnosis.extension_version == __version__


async def test_the_page_origin_comes_from_the_spawner_args(hub):
    with pytest.raises(HTTPClientError) as refused:
        await diagnose(hub.user_url("alice"), origin="https://elsewhere.example")
    assert refused.value.code == 403


# ------------------------------------------------------------ the Python client


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_python_client_lists_uploads_downloads_and_runs_code(hub, alice_token, transport):
    payload = os.urandom(300_000) + bytes(range(256))
    name = f"upload-{transport}.bin"
    async with await TunnelClient.connect(
        hub.user_url("alice"), token=alice_token, origin=PAGE_ORIGIN, transports=(transport,)
    ) as tunnel:
        assert tunnel.transport == transport
        body = json.dumps(
            {"type": "file", "format": "base64", "content": base64.b64encode(payload).decode()}
        )
        put = await tunnel.request("PUT", f"/api/contents/{name}", body=body)
        assert put.status == 201, put.body
        listing = await tunnel.request("GET", "/api/contents")
        assert listing.status == 200
        assert name in {entry["name"] for entry in listing.json()["content"]}
        download = await tunnel.request("GET", f"/files/{name}")
        assert download.status == 200
        assert download.body == payload
        assert (hub.home("alice") / name).read_bytes() == payload

        started = await tunnel.request("POST", "/api/kernels", body="{}")
        assert started.status == 201, started.body
        kernel_id = started.json()["id"]
        try:
            session = uuid.uuid4().hex
            socket = await tunnel.websocket(
                f"/api/kernels/{kernel_id}/channels?session_id={session}", subprotocols=[V1]
            )
            kernel = KernelSocket(socket, session, V1, timeout=60)
            await kernel.wait_ready()
            msg_id = await kernel.execute("print('hello from', 6 * 7)\n6 * 7")
            replies = await kernel.collect(msg_id)
            assert stdout_text(replies) == "hello from 42\n"
            results = [m for m in replies if m.msg_type == "execute_result"]
            assert [r.content["data"]["text/plain"] for r in results] == ["42"]
            socket.close()
        finally:
            deleted = await tunnel.request("DELETE", f"/api/kernels/{kernel_id}")
            assert deleted.status == 204


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_python_client_with_an_auth_url(hub, alice_token, transport):
    # The Colab-era form: the server's URL with ?token=, as a single-user server prints it.
    auth_url = f"{hub.user_url('alice')}lab?token={alice_token}"
    async with await TunnelClient.connect(
        hub.user_url("alice"), auth_url=auth_url, transports=(transport,)
    ) as tunnel:
        assert tunnel.transport == transport
        listing = await tunnel.request("GET", "/api/contents")
        assert listing.status == 200
        assert listing.json()["type"] == "directory"


async def test_our_client_carries_the_token_in_a_header_never_in_a_url(hub, alice_token):
    # JupyterHub 5 and later refuse ?token= on HTTP: a header is the only way that works.
    http = AsyncHTTPClient(force_instance=True)
    try:
        in_url = await http.fetch(
            f"{hub.user_url('alice')}api/contents?token={alice_token}",
            raise_error=False,
            follow_redirects=False,
        )
        in_header = await http.fetch(
            f"{hub.user_url('alice')}api/contents",
            headers={"Authorization": f"token {alice_token}"},
            raise_error=False,
        )
    finally:
        http.close()
    assert in_url.code == 403
    assert in_header.code == 200
    for transport in TRANSPORTS:
        async with await TunnelClient.connect(
            hub.user_url("alice"), token=alice_token, transports=(transport,)
        ) as tunnel:
            assert (await tunnel.request("GET", "/api/status")).status == 200
    tunnel_lines = [
        line for line in server_log_lines(hub, "alice") if "/http_over_websocket" in line
    ]
    assert tunnel_lines
    assert not [line for line in tunnel_lines if "token=" in line]
    # On a WebSocket, a URL token works only with the browser's Sec-Fetch-Mode.
    with pytest.raises(HTTPClientError) as refused:
        await Endpoint(hub.user_url("alice")).open("http_over_websocket", {"token": alice_token})
    assert refused.value.code == 403
    browser_like = Endpoint(hub.user_url("alice"), headers={"Sec-Fetch-Mode": "websocket"})
    (await browser_like.open("http_over_websocket", {"token": alice_token})).close()


# ------------------------------------------------------------------- isolation


@pytest.fixture(scope="module")
def foreign_tokens(hub):
    """Tokens that must never reach alice's server: bob's, and alice's without access."""
    return {
        "bob": hub.new_token("bob", ["access:servers!user=bob"], note="bob's frontend"),
        "alice-without-access": hub.new_token(
            "alice", ["read:users!user=alice"], note="no server access"
        ),
    }


@pytest.mark.parametrize("who", ["bob", "alice-without-access"])
async def test_other_credentials_never_reach_alices_server(hub, alice_token, foreign_tokens, who):
    token = foreign_tokens[who]
    alice = Endpoint(hub.user_url("alice"), token=token, origin=PAGE_ORIGIN)
    for path in (
        "http_over_websocket",
        "http_over_websocket/proxied_ws/api/events/subscribe",
    ):
        with pytest.raises(HTTPClientError) as refused:
            await alice.open(path)
        assert refused.value.code == 403, (path, refused.value)
    for transports in (("websocket",), ("polling",), ("websocket", "polling")):
        with pytest.raises(HTTPClientError) as refused:
            await TunnelClient.connect(hub.user_url("alice"), token=token, transports=transports)
        assert refused.value.code == 403, transports
    http = AsyncHTTPClient(force_instance=True)
    try:
        polling_open = await http.fetch(
            alice.http_url("http_over_websocket/polling"),
            method="POST",
            body=b"{}",
            headers=alice.request_headers(json_body=True),
            raise_error=False,
            follow_redirects=False,
        )
    finally:
        http.close()
    assert polling_open.code == 403
    # Nor can they use a polling session of alice's, even knowing its id.
    owner = RawPolling(hub.user_url("alice"), alice_token)
    intruder = RawPolling(hub.user_url("alice"), token)
    try:
        assert (await owner.open()).code == 200
        intruder.session_id = owner.session_id
        assert (await intruder.recv(0, request_timeout=30)).code == 403
        assert (await intruder.send(0, [request_envelope("x", "GET", "/api/contents")])).code == 403
        assert (await intruder.delete()).code == 403
        assert (await owner.delete()).code == 204
    finally:
        owner.close()
        intruder.close()
    # diagnose answers anyone the page origin may serve, with its four fields only.
    probe = await alice.open("http_over_websocket/diagnose")
    probe.write_message("who")
    answer = json.loads(await asyncio.wait_for(probe.read_message(), 20))
    probe.close()
    assert answer == {
        "message_id": "who",
        "extension_version": __version__,
        "has_authentication_cookie": False,
        "is_outdated_extension": False,
    }
    if who == "bob":  # the same token does reach bob's own server
        async with await TunnelClient.connect(hub.user_url("bob"), token=token) as tunnel:
            assert (await tunnel.request("GET", "/api/contents")).status == 200


# -------------------------------------------------------------------- activity


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_tunnel_traffic_is_activity_of_the_server_as_the_hub_sees_it(
    hub, alice_token, transport
):
    quiet_since = datetime.now(timezone.utc)
    await asyncio.sleep(3)  # several activity intervals without traffic
    assert server_activity(hub, "alice") < quiet_since
    async with await TunnelClient.connect(
        hub.user_url("alice"), token=alice_token, transports=(transport,)
    ) as tunnel:
        await asyncio.sleep(3)  # an open tunnel without requests is not activity
        assert server_activity(hub, "alice") < quiet_since
        before_traffic = datetime.now(timezone.utc)
        assert (await tunnel.request("GET", "/api/contents")).status == 200
        deadline = time.monotonic() + 20
        while server_activity(hub, "alice") < before_traffic:
            assert time.monotonic() < deadline, "the hub never saw the tunnel's traffic"
            await asyncio.sleep(0.5)
