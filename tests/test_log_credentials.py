"""No credential reaches a log line or a relayed URL: every endpoint, both transports.

Browser clients put the server's token in the query: on the tunnel's upgrade and on
every ``proxied_ws`` socket (js/src), and JupyterLab puts it on its kernel sockets'
URLs, which the polling transport relays as a channel's path. Colab-era clients send
``jupyter_http_over_ws_auth_url`` instead. Refused or not, none of it may appear in
any log line of the server, at any level, nor in the URL a relay dials (the upstream
handler would log it in turn): credentials travel inside as an ``Authorization`` header.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from support.kernels import KernelSocket
from support.logs import debug_logs
from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from tornado.websocket import WebSocketClientConnection

from jupyter_http_over_ws.client._connect import Endpoint

pytestmark = pytest.mark.timeout(180)

OPEN_TIMEOUT = 20.0
AUTH_URL_ARG = "jupyter_http_over_ws_auth_url"


@pytest.fixture
def server_logs(jp_serverapp: Any) -> Iterator[list[str]]:
    """Every record any of the server's loggers writes during the test, at DEBUG and up.

    Asks for ``jp_serverapp`` first, so the loggers of the running server (tornado's,
    ``ServerApp``, the extension's) exist and are lowered too.
    """
    with debug_logs() as lines:
        yield lines


async def start_kernel(tunnel: Any) -> str:
    """Start a python3 kernel through ``tunnel`` (credentials in a header); its id."""
    reply = await tunnel.request("POST", "/api/kernels", body='{"name": "python3"}')
    assert reply.status == 201, reply
    return str(reply.json()["id"])


def credentials(how: str, hows_server_url: str, token: str) -> dict[str, str]:
    """The query argument a client of kind ``how`` authenticates with."""
    if how == "token":
        return {"token": token}
    return {AUTH_URL_ARG: f"{hows_server_url}?token={token}"}


def refused_targets() -> list[tuple[str, int]]:
    """Paths a relay refuses, with the status: unknown kernel, bad path, no WebSocket."""
    return [
        (f"api/kernels/{uuid.uuid4()}/channels?session_id=stale", 404),
        ("api/%2e%2e/kernels?session_id=bad", 400),
        ("api/status?session_id=plain", 400),
        ("no/such/socket?session_id=none", 404),
    ]


async def kernel_answers(connection: Any, session: str) -> None:
    """The kernel answers on ``connection``: it was authenticated upstream."""
    try:
        await KernelSocket(connection, session, None).wait_ready()
    finally:
        connection.close()


def assert_no_credentials(token: str, lines: list[str], upstream_urls: list[str]) -> None:
    leaked = [line for line in lines if token in line]
    assert not leaked, "the token was logged:\n" + "\n".join(leaked)
    assert upstream_urls, "expected relays to have been dialled"
    for url in upstream_urls:
        assert token not in url, url
        assert "token" not in url.partition("?")[2], url
        assert AUTH_URL_ARG not in url, url


@pytest.mark.parametrize("how", ["token", AUTH_URL_ARG])
async def test_proxied_ws_with_credentials_in_the_query_logs_none(
    hows_tunnel, hows_server_url, hows_token, server_logs, upstream_urls, how
):
    kernel_id = await start_kernel(hows_tunnel)
    query = credentials(how, hows_server_url, hows_token)
    # Nothing but the query authenticates these upgrades.
    anonymous = Endpoint(hows_server_url)
    for target, status in refused_targets():
        with pytest.raises(HTTPClientError) as refused:
            await asyncio.wait_for(
                anonymous.open("http_over_websocket/proxied_ws/" + target, query=query),
                OPEN_TIMEOUT,
            )
        assert refused.value.code == status, target

    session = uuid.uuid4().hex
    connection: WebSocketClientConnection = await asyncio.wait_for(
        anonymous.open(
            f"http_over_websocket/proxied_ws/api/kernels/{kernel_id}/channels?session_id={session}",
            query=query,
        ),
        OPEN_TIMEOUT,
    )
    await kernel_answers(connection, session)
    await asyncio.sleep(0.2)  # the upstream handler's last log lines

    # The refusals were logged, with the query's other arguments kept.
    assert [line for line in server_logs if "session_id=stale" in line], server_logs
    assert_no_credentials(hows_token, server_logs, upstream_urls)


@pytest.mark.parametrize("how", ["token", AUTH_URL_ARG])
async def test_polled_channels_with_credentials_in_the_path_log_none(
    hows_tunnel, hows_polling_tunnel, hows_server_url, hows_token, server_logs, upstream_urls, how
):
    kernel_id = await start_kernel(hows_tunnel)
    [(name, value)] = credentials(how, hows_server_url, hows_token).items()
    suffix = f"&{name}={quote(value, safe='')}"
    for target, status in refused_targets():
        with pytest.raises(HTTPClientError) as refused:
            await asyncio.wait_for(
                hows_polling_tunnel.websocket("/" + target + suffix), OPEN_TIMEOUT
            )
        assert refused.value.code == status, target

    session = uuid.uuid4().hex
    connection = await asyncio.wait_for(
        hows_polling_tunnel.websocket(
            f"/api/kernels/{kernel_id}/channels?session_id={session}{suffix}"
        ),
        OPEN_TIMEOUT,
    )
    await kernel_answers(connection, session)
    await asyncio.sleep(0.2)

    assert [line for line in server_logs if "session_id=stale" in line], server_logs
    assert_no_credentials(hows_token, server_logs, upstream_urls)


async def test_every_other_endpoint_with_a_token_in_the_query_logs_none(
    hows_server_url, hows_token, server_logs
):
    query = {"token": hows_token}
    anonymous = Endpoint(hows_server_url)
    # The tunnel: opened, and closed by the server for a min_version it cannot meet.
    tunnel = await anonymous.open("http_over_websocket", query=query)
    tunnel.close()
    late = await anonymous.open("http_over_websocket", query={**query, "min_version": "999"})
    assert await late.read_message() is None
    assert late.close_code == 4400
    # The diagnose socket.
    diagnose = await anonymous.open("http_over_websocket/diagnose", query=query)
    await diagnose.write_message("probe")
    assert await diagnose.read_message() is not None
    diagnose.close()

    http = AsyncHTTPClient()
    # Polling: a session that does not exist, and one opened with the query's token.
    polling = hows_server_url + "http_over_websocket/polling"
    missing = await http.fetch(
        f"{polling}/no-such-session/recv?since=0&token={hows_token}", raise_error=False
    )
    assert missing.code == 404
    opened = await http.fetch(
        f"{polling}?token={hows_token}", method="POST", body=b"{}", raise_error=False
    )
    assert opened.code == 200
    session_id = json.loads(opened.body)["session_id"]
    closed = await http.fetch(
        f"{polling}/{session_id}?token={hows_token}", method="DELETE", raise_error=False
    )
    assert closed.code == 204
    # The static client: found, missing, and a path the file system refuses.
    static = hows_server_url + "http_over_websocket/static/"
    for name in ("index.js", "no-such-module.js", "index.js%00.py"):
        await http.fetch(f"{static}{name}?token={hows_token}", raise_error=False)
    await asyncio.sleep(0.2)

    assert [line for line in server_logs if "no-such-session" in line], server_logs
    leaked = [line for line in server_logs if hows_token in line]
    assert not leaked, "the token was logged:\n" + "\n".join(leaked)


async def test_the_query_token_authenticates_upstream_as_it_did_the_upgrade(
    hows_tunnel, hows_server_url, hows_token, upstream_urls
):
    """jupyter_server reads ``?token=`` before the header: the relay must carry the same one.

    The upstream URL no longer carries the query's token, so the header it does carry
    must be the query's, not a stale one the client also sent.
    """
    kernel_id = await start_kernel(hows_tunnel)
    session = uuid.uuid4().hex
    stale_header = Endpoint(hows_server_url, token="stale-token")
    connection = await asyncio.wait_for(
        stale_header.open(
            f"http_over_websocket/proxied_ws/api/kernels/{kernel_id}/channels?session_id={session}",
            query={"token": hows_token},
        ),
        OPEN_TIMEOUT,
    )
    await kernel_answers(connection, session)
    assert len(upstream_urls) == 1
    assert hows_token not in upstream_urls[0]
