"""Ownership under identity providers that identify people (issue 11, finding 2).

Polling sessions and ``max_sockets_per_user`` are keyed on the user jupyter_server
authenticated, whichever way the provider identifies them: by overriding
``get_user`` (:class:`~support.users.TwoUsers`) or only ``get_user_token``
(:class:`~support.users.TokenUsers`). Only the single principal of jupyter_server's
own token path shares one key (tests/test_polling.py keeps the stock provider's case).
"""

from __future__ import annotations

import asyncio
import json

import pytest
from support.polling import RawPolling, request_envelope
from support.users import TokenUsers, TwoUsers

from jupyter_http_over_ws.client import TunnelClient

EXT = {"jupyter_http_over_ws": True}
PROVIDERS = {"get_user": TwoUsers, "get_user_token": TokenUsers}


def with_provider(name: str, **app: object) -> dict[str, object]:
    return {
        "ServerApp": {"jpserver_extensions": EXT, "identity_provider_class": PROVIDERS[name]},
        "HttpOverWebSocketApp": app,
    }


def each_provider(**app: object):
    return pytest.mark.parametrize(
        "jp_server_config", [with_provider(name, **app) for name in PROVIDERS], ids=list(PROVIDERS)
    )


@pytest.fixture
def raw(hows_server_url):
    clients = []

    def make(token):
        client = RawPolling(hows_server_url, token)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@each_provider()
async def test_a_polling_session_is_its_openers_alone(raw):
    alice, bob = raw("alice-token"), raw("bob-token")
    assert (await alice.open()).code == 200
    bob.session_id = alice.session_id
    envelope = [request_envelope(1, "GET", "/api/status")]
    # What a non-owner has always got under a get_user provider: no such session.
    for response in (await bob.send(0, envelope), await bob.recv(0), await bob.delete()):
        assert response.code == 404, response
    # Alice's session is untouched: nothing of Bob's went in, and it still works.
    assert json.loads((await alice.send(0, envelope)).body) == {"ack": 1}
    _, frames = await alice.collect(0, {1})
    assert frames[0].status == 200
    assert (await alice.delete()).code == 204


@each_provider(max_sockets_per_user=2)
async def test_each_user_has_a_socket_limit_of_their_own(raw, hows_server_url):
    alice_polling = raw("alice-token")
    assert (await alice_polling.open()).code == 200
    alice = await TunnelClient.connect(hows_server_url, token="alice-token")
    assert (await alice.request("GET", "/api/status")).status == 200
    # Alice is at her limit: one more socket of hers closes with 4429.
    over = await TunnelClient.connect(hows_server_url, token="alice-token")
    await asyncio.wait_for(over.wait_closed(), 10)
    assert over.close_code == 4429
    assert (await raw("alice-token").open()).code == 429
    # Bob has a limit of his own.
    bob = await TunnelClient.connect(hows_server_url, token="bob-token")
    assert (await bob.request("GET", "/api/status")).status == 200
    assert (await raw("bob-token").open()).code == 200
    for client in (alice, bob):
        await client.close()


@pytest.mark.parametrize(
    "jp_server_config", [with_provider("get_user_token", max_sockets_per_user=2)]
)
async def test_the_servers_own_token_is_one_principal_under_any_provider(raw, hows_token):
    """The stock token path makes up a new user per request: its sockets are one owner's."""
    first, second, third = raw(hows_token), raw(hows_token), raw(hows_token)
    assert (await first.open()).code == 200
    assert (await second.open()).code == 200
    assert (await third.open()).code == 429
    # ... and the session is still that principal's on the next request.
    assert (await first.send(0, [request_envelope(1, "GET", "/api/status")])).code == 200
    _, frames = await first.collect(0, {1})
    assert frames[0].status == 200
    # Alice is not that principal.
    assert (await raw("alice-token").open()).code == 200
