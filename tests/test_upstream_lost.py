"""How a relay's upstream ended reaches the client: lost (1014), or its close frame as it came.

The upstream is a real socket on the server under test (:class:`EchoSocket`). On
``drop`` it closes its stream under the WebSocket (no close frame, as a failing handler
or process): the relay tells the client with 1014 and a reason, over both transports,
rather than a close without a code that it could not tell from a deliberate one. On
``close`` it sends a close frame without a code (jupyter_server's plain ``close()`` of a
stale kernel socket): the client sees exactly what it sees directly.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from support.echo_socket import EchoSocket, register_echo_socket
from support.waiting import eventually
from tornado import httputil

from jupyter_http_over_ws.client._connect import Endpoint
from jupyter_http_over_ws.upstream import UpstreamConnection, connect_upstream
from jupyter_http_over_ws.wire.names import CloseCode
from jupyter_http_over_ws.wsproxy import UPSTREAM_LOST_REASON

pytestmark = pytest.mark.timeout(60)

TRANSPORTS = ["websocket", "polling"]


@pytest.fixture
def echo_path(jp_serverapp, jp_base_url):
    """Register :class:`EchoSocket` at ``{base_url}hows-lost/echo[/...]``; returns its path."""
    return register_echo_socket(jp_serverapp, jp_base_url, "hows-lost/echo")


@pytest.fixture
def open_socket(hows_tunnel, hows_polling_tunnel, hows_server_url, hows_token):
    """Open the echo socket ``"directly"``, or relayed over ``"websocket"`` or ``"polling"``."""

    async def open_(how, path):
        if how == "directly":
            return await Endpoint(hows_server_url, token=hows_token).open(path.lstrip("/"))
        tunnel = hows_tunnel if how == "websocket" else hows_polling_tunnel
        return await asyncio.wait_for(tunnel.websocket(path), 10)

    return open_


async def end_with(socket, order: str) -> None:
    """Check the socket works, then tell the upstream to end (``drop`` or ``close``)."""
    await socket.write_message("ping")
    assert await asyncio.wait_for(socket.read_message(), 10) == "ping"
    await socket.write_message(order)
    assert await asyncio.wait_for(socket.read_message(), 10) is None
    await eventually(lambda: EchoSocket.instances[0].closed, message="the upstream's close")


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_lost_upstream_closes_the_client_with_1014_and_a_reason(
    open_socket, echo_path, transport
):
    straight = await open_socket("directly", echo_path)
    await end_with(straight, "drop")
    # Directly, the client learns nothing but that the connection ended (1006 in a browser).
    assert (straight.close_code, straight.close_reason) == (None, None)

    EchoSocket.instances.clear()
    socket = await open_socket(transport, echo_path)
    await end_with(socket, "drop")
    assert socket.close_code == CloseCode.UPSTREAM_LOST == 1014
    assert socket.close_reason == UPSTREAM_LOST_REASON


async def test_a_close_frame_without_a_code_passes_through_as_it_came(open_socket, echo_path):
    straight = await open_socket("directly", echo_path)
    await end_with(straight, "close")
    assert (straight.close_code, straight.close_reason) == (None, None)

    EchoSocket.instances.clear()
    relayed = await open_socket("websocket", echo_path)
    await end_with(relayed, "close")
    # A close frame without a code, exactly as directly (a browser reports it as 1005).
    assert (relayed.close_code, relayed.close_reason) == (None, None)


async def test_a_close_frame_without_a_code_reaches_a_polled_socket_without_one(
    open_socket, echo_path
):
    EchoSocket.instances.clear()
    polled = await open_socket("polling", echo_path)
    await end_with(polled, "close")
    # The `closed` envelope carries no code: the polling client reports it as a browser
    # reports a close frame without a code, 1005.
    assert polled.close_code == CloseCode.NO_STATUS == 1005
    assert polled.close_reason is None


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_an_upstream_close_code_still_passes_through(open_socket, echo_path, transport):
    socket = await open_socket(transport, echo_path)
    await socket.write_message("close:1000:done")
    assert await asyncio.wait_for(socket.read_message(), 10) is None
    assert (socket.close_code, socket.close_reason) == (1000, "done")


@pytest.mark.parametrize(("order", "close_frame"), [("close", True), ("drop", False)])
async def test_the_upstream_connection_tells_a_close_frame_from_a_lost_connection(
    hows_server_url, hows_token, echo_path, order, close_frame
):
    """Pins the private Tornado hook UpstreamConnection relies on (``_handle_message``).

    Tornado itself reports ``close_code`` ``None`` in both cases; if it stops passing
    close frames through ``WebSocketProtocol13._handle_message``, this fails.
    """
    url = "ws" + hows_server_url.removeprefix("http") + echo_path.lstrip("/")
    headers = httputil.HTTPHeaders({"Authorization": f"token {hows_token}"})
    connection = await connect_upstream(
        url, headers, None, max_message_size=1 << 20, connect_timeout=10
    )
    assert isinstance(connection, UpstreamConnection)
    await end_with(connection, order)
    assert (connection.close_code, connection.close_reason) == (None, None)
    assert connection.close_frame_received is close_frame


async def test_a_replaced_kernel_socket_closes_through_the_relay_as_directly(
    hows_tunnel, open_socket
):
    """jupyter_server closes a stale kernel socket (same session id) with a plain close().

    That close frame carries no code: relayed, the client must see no code either (not
    1014), exactly as directly.
    """
    reply = await hows_tunnel.request("POST", "/api/kernels", body='{"name": "python3"}')
    assert reply.status == 201, reply
    kernel_id = reply.json()["id"]
    seen = {}
    for how in ["directly", "websocket", "polling"]:
        path = f"/api/kernels/{kernel_id}/channels?session_id={uuid.uuid4().hex}"
        stale = await open_socket(how, path)
        fresh = await open_socket("directly", path)  # replaces the stale one
        while await asyncio.wait_for(stale.read_message(), 10) is not None:
            pass
        seen[how] = (stale.close_code, stale.close_reason)
        fresh.close()
    # A close frame without a code: no code directly and over proxied_ws; the polling
    # client reports a `closed` envelope without a code as 1005, as a browser would.
    assert seen == {
        "directly": (None, None),
        "websocket": (None, None),
        "polling": (CloseCode.NO_STATUS, None),
    }
