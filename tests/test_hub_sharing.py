"""Two hub users on one single-user server: what the tunnel keeps apart.

JupyterHub lets alice share her server with bob (``POST /hub/api/shares/alice/``,
JupyterHub 5+); bob's token then carries ``access:servers!server=alice/`` and
alice's server authenticates him as *bob*. Everything the tunnel keeps per user
is keyed on that name, as the hub resolved it (issue 12): bob cannot use alice's
polling session even knowing its id, and each has a ``max_sockets_per_user`` of
their own on her server. The limit is set as an operator sets any server option,
through a config directory on ``JUPYTER_CONFIG_PATH`` in the spawner's environment.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from support.hub import Hub
from support.polling import RawPolling, request_envelope

from jupyter_http_over_ws.client import TunnelClient

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

#: The limit each user gets on alice's server.
SOCKETS_PER_USER = 2


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """A hub whose servers allow each user two sockets; alice's server shared with bob."""
    work = tmp_path_factory.mktemp("hub-sharing")
    config = work / "server-config"
    config.mkdir()
    (config / "jupyter_server_config.json").write_text(
        json.dumps({"HttpOverWebSocketApp": {"max_sockets_per_user": SOCKETS_PER_USER}})
    )
    hub = Hub(
        work,
        page_origin="https://frontend.example",
        environment={"JUPYTER_CONFIG_PATH": str(config)},
    )
    hub.start()
    try:
        hub.start_server("alice")
        status, share = hub.api("POST", "shares/alice/", {"user": "bob"})
        assert status == 200, share
        yield hub
    finally:
        left = hub.stop()
    assert left == [], f"processes left after the hub stopped: {left}\n{hub.log()[-3000:]}"


@pytest.fixture(scope="module")
def tokens(hub):
    """alice's token for her server, and bob's for the same server (through the share)."""
    return {
        "alice": hub.new_token("alice", ["access:servers!user=alice"]),
        "bob": hub.new_token("bob", ["access:servers!server=alice/"]),
    }


@pytest.fixture
def raw(hub):
    """Polling clients of alice's server; each test deletes the sessions it opened."""
    clients: list[RawPolling] = []

    def make(token: str) -> RawPolling:
        client = RawPolling(hub.user_url("alice"), token)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


async def test_the_shared_server_knows_bob_as_bob(hub, tokens):
    """The premise: alice's server resolves each token to its own hub user."""
    for who, token in tokens.items():
        async with await TunnelClient.connect(hub.user_url("alice"), token=token) as tunnel:
            reply = await tunnel.request("GET", "/api/me")
            assert reply.status == 200
            assert json.loads(reply.body)["identity"]["username"] == who


async def test_bob_cannot_use_alices_polling_session(raw, tokens):
    alice, bob = raw(tokens["alice"]), raw(tokens["bob"])
    assert (await alice.open()).code == 200
    bob.session_id = alice.session_id
    envelope = [request_envelope(1, "GET", "/api/status")]
    for response in (await bob.send(0, envelope), await bob.recv(0), await bob.delete()):
        assert response.code == 404, response
    # Alice's session is untouched: nothing of bob's went in, and it still works.
    assert json.loads((await alice.send(0, envelope)).body) == {"ack": 1}
    _, frames = await alice.collect(0, {1})
    assert frames[0].status == 200
    assert (await alice.delete()).code == 204


async def test_each_user_has_a_socket_limit_of_their_own_on_the_shared_server(hub, raw, tokens):
    url = hub.user_url("alice")
    alice_polling = raw(tokens["alice"])
    assert (await alice_polling.open()).code == 200
    alice = await TunnelClient.connect(url, token=tokens["alice"])
    bob = None
    try:
        assert (await alice.request("GET", "/api/status")).status == 200
        # Alice is at her limit: one more socket of hers closes with 4429 ...
        over = await TunnelClient.connect(url, token=tokens["alice"])
        await asyncio.wait_for(over.wait_closed(), 10)
        assert over.close_code == 4429
        assert (await raw(tokens["alice"]).open()).code == 429
        # ... and bob, on the same server, still has both of his.
        bob = await TunnelClient.connect(url, token=tokens["bob"])
        assert (await bob.request("GET", "/api/status")).status == 200
        bob_polling = raw(tokens["bob"])
        assert (await bob_polling.open()).code == 200
        assert (await bob_polling.delete()).code == 204
        assert (await alice_polling.delete()).code == 204
    finally:
        for client in (alice, bob):
            if client is not None:
                await client.close()
