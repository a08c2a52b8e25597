"""A relay never targets the extension's own endpoints; admission before any dial.

Issue 11, finding 3: a ``proxied_ws`` path (or a polled channel's path) naming
``http_over_websocket/...`` again made one upgrade open one relay per level before
anything was counted. Such a path is refused with 403 (4403 for a polled channel)
by the one dial, however it is spelled, and a socket over ``max_sockets_per_user``
is refused before anything is dialled. ``upstream_urls`` (tests/conftest.py) lists
every upstream socket the dial opens.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from support.polling import RawPolling
from tornado.httpclient import HTTPClientError

from jupyter_http_over_ws.client import TunnelClient
from jupyter_http_over_ws.client._connect import Endpoint
from jupyter_http_over_ws.wire.polling import (
    ClosedEnvelope,
    OpenedEnvelope,
    OpenEnvelope,
    parse_batch,
)

EXT = {"jupyter_http_over_ws": True}
KERNEL = "api/kernels/00000000-0000-0000-0000-000000000000/channels"

#: Paths (relative to base_url, as a client writes them) naming the extension's endpoints.
OWN_ENDPOINTS = [
    "http_over_websocket/proxied_ws/api/events/subscribe",
    "http_over_websocket/proxied_ws/http_over_websocket/proxied_ws/" + KERNEL,
    "http_over_websocket",
    "http_over_websocket/diagnose",
    "http_over_websocket/polling",
    "http_over_websocket/static/index.js",
    "HTTP_Over_WebSocket/proxied_ws/api/events/subscribe",
    "http%5Fover%5Fwebsocket/proxied_ws/api/events/subscribe",
    "http_over_websocket%2Fproxied_ws%2Fapi/events/subscribe",
    "%2568ttp_over_websocket/proxied_ws/api/events/subscribe",
    "%EF%BD%88ttp_over_websocket/proxied_ws/api/events/subscribe",  # full-width h
    "http_over_websocket;x/proxied_ws/api/events/subscribe",
    "/http_over_websocket/proxied_ws/api/events/subscribe",
]


def config(**app: object) -> dict[str, object]:
    return {"ServerApp": {"jpserver_extensions": EXT}, "HttpOverWebSocketApp": app}


@pytest.mark.parametrize("path", OWN_ENDPOINTS)
async def test_proxied_ws_never_relays_to_the_extension(
    hows_server_url, hows_token, upstream_urls, path
):
    with pytest.raises(HTTPClientError) as e:
        await Endpoint(hows_server_url, token=hows_token).open(
            "http_over_websocket/proxied_ws/" + path
        )
    assert e.value.code == 403, path
    assert upstream_urls == []


async def recv_until(client: RawPolling, since: int, done) -> tuple[int, dict, set]:
    """Poll until ``done(closed, opened)``; returns (since, closed by channel, opened)."""
    closed: dict[int, tuple[int | None, str | None]] = {}
    opened: set[int] = set()
    while not done(closed, opened):
        batch = parse_batch((await client.recv(since)).body)
        for number, envelope in enumerate(batch.messages, batch.seq):
            since = number + 1
            if isinstance(envelope, ClosedEnvelope):
                closed[envelope.channel] = (envelope.code, envelope.reason)
            elif isinstance(envelope, OpenedEnvelope):
                opened.add(envelope.channel)
    return since, closed, opened


async def test_a_polled_channel_never_relays_to_the_extension(
    hows_server_url, hows_token, upstream_urls
):
    client = RawPolling(hows_server_url, hows_token)
    assert (await client.open()).code == 200
    opens = [OpenEnvelope(n, "/" + p.lstrip("/")) for n, p in enumerate(OWN_ENDPOINTS, 1)]
    assert (await client.send(0, opens)).code == 200
    _, closed, opened = await recv_until(client, 0, lambda c, o: len(c) == len(opens))
    assert opened == set()
    assert {code for code, _ in closed.values()} == {4403}, closed
    assert all("own endpoints" in (reason or "") for _, reason in closed.values())
    assert upstream_urls == []
    await client.delete()
    client.close()


@pytest.mark.parametrize("jp_server_config", [config(max_sockets_per_user=2)])
async def test_a_proxied_socket_over_the_limit_dials_nothing(hows_tunnel, upstream_urls):
    # hows_tunnel is one of the two sockets allowed; this one is the second.
    first = await hows_tunnel.websocket("/api/events/subscribe")
    assert len(upstream_urls) == 1
    over = await hows_tunnel.websocket("/api/events/subscribe")
    assert await asyncio.wait_for(over.read_message(), 10) is None
    assert over.close_code == 4429
    assert "max_sockets_per_user" in over.close_reason
    assert len(upstream_urls) == 1  # nothing was dialled for it
    first.close()


@pytest.mark.parametrize("jp_server_config", [config(max_sockets_per_user=2)])
async def test_a_polled_channel_over_the_limit_dials_nothing(
    hows_server_url, hows_token, upstream_urls
):
    client = RawPolling(hows_server_url, hows_token)
    assert (await client.open()).code == 200  # one of the two sockets allowed
    assert (await client.send(0, [OpenEnvelope(1, "/api/events/subscribe")])).code == 200
    since, closed, opened = await recv_until(client, 0, lambda c, o: 1 in c or 1 in o)
    assert opened == {1}
    assert len(upstream_urls) == 1
    assert (await client.send(1, [OpenEnvelope(2, "/api/events/subscribe")])).code == 200
    _, closed, _ = await recv_until(client, since, lambda c, o: 2 in c)
    code, reason = closed[2]
    assert code == 4429
    assert "max_sockets_per_user" in reason
    assert len(upstream_urls) == 1  # nothing was dialled for it
    await client.delete()
    client.close()


@pytest.mark.parametrize("jp_server_config", [config(max_sockets_per_user=1)])
async def test_a_tunnel_socket_over_the_limit_is_still_refused(hows_server_url, hows_token):
    """Unchanged: tunnel sockets dial nothing; they are counted as they open."""
    first = await TunnelClient.connect(hows_server_url, token=hows_token)
    over = await TunnelClient.connect(hows_server_url, token=hows_token)
    await asyncio.wait_for(over.wait_closed(), 10)
    assert over.close_code == 4429
    assert json.dumps(over.close_reason)
    await first.close()
