"""Kernel sockets served in-process (jupyter_http_over_ws/kernel_in_process.py).

A proxied kernel socket runs jupyter_server's own ``KernelWebsocketHandler`` in this
process against the relay (one WebSocket instead of three). These tests show that the
path is taken (over the tunnel's WebSocket and over polling), that it behaves as a
direct socket does (both kernel protocols, the replacement of a socket by another
with the same session, restart and interrupt, close codes, Authorizer refusals),
that it falls back to the relay where jupyter_server is configured otherwise, and
they pin every jupyter_server and Tornado internal the path relies on.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import uuid
from typing import Any

import pytest
from jupyter_server.auth import Authorizer
from jupyter_server.gateway.connections import GatewayWebSocketConnection
from jupyter_server.services.kernels.connection.base import BaseKernelWebsocketConnection
from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection
from jupyter_server.services.kernels.websocket import KernelWebsocketHandler
from support.kernels import V1, KernelSocket, by_type, server_kernel_handler
from support.waiting import eventually
from tornado import web
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.httputil import HTTPHeaders
from tornado.websocket import (
    WebSocketClientConnection,
    WebSocketHandler,
    WebSocketProtocol,
    websocket_connect,
)

from jupyter_http_over_ws import kernel_in_process
from jupyter_http_over_ws import upstream as upstream_module
from jupyter_http_over_ws.client._connect import Endpoint
from jupyter_http_over_ws.dispatch import RequestContext
from jupyter_http_over_ws.kernel_in_process import InProcessKernelSocket, serves_in_process
from jupyter_http_over_ws.upstream import UpstreamConnection

pytestmark = pytest.mark.timeout(90)

PROTOCOLS = [pytest.param(None, id="legacy"), pytest.param(V1, id="v1")]
OPEN_TIMEOUT = 20.0


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def upstreams(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every upstream socket the one dial opened (the object, not its URL)."""
    opened: list[Any] = []
    real = upstream_module.connect_upstream

    async def spy(*args: Any, **kwargs: Any) -> Any:
        connection = await real(*args, **kwargs)
        opened.append(connection)
        return connection

    monkeypatch.setattr(upstream_module, "connect_upstream", spy)
    return opened


async def start_kernel(tunnel: Any) -> str:
    reply = await tunnel.request("POST", "/api/kernels", body=json.dumps({"name": "python3"}))
    assert reply.status == 201, reply
    return str(reply.json()["id"])


def channels_path(kernel_id: str, session_id: str) -> str:
    return f"/api/kernels/{kernel_id}/channels?session_id={session_id}"


async def tunnelled(
    tunnel: Any, kernel_id: str, protocol: str | None, session: str | None = None
) -> KernelSocket:
    session = session or uuid.uuid4().hex
    connection = await asyncio.wait_for(
        tunnel.websocket(
            channels_path(kernel_id, session), subprotocols=[protocol] if protocol else None
        ),
        OPEN_TIMEOUT,
    )
    return KernelSocket(connection, session, protocol)


async def direct(
    server_url: str, token: str, kernel_id: str, protocol: str | None, session: str | None = None
) -> KernelSocket:
    session = session or uuid.uuid4().hex
    url = server_url.replace("http", "ws", 1) + channels_path(kernel_id, session)[1:]
    request = HTTPRequest(url, headers={"Authorization": f"token {token}"})
    connection = await asyncio.wait_for(
        websocket_connect(request, subprotocols=[protocol] if protocol else None), OPEN_TIMEOUT
    )
    return KernelSocket(connection, session, protocol)


async def read_until_closed(connection: Any, timeout: float = 10.0) -> None:
    async def read_all() -> None:
        while await connection.read_message() is not None:
            pass

    await asyncio.wait_for(read_all(), timeout)


# ------------------------------------------------------------------ the path is taken


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_kernel_socket_is_served_in_process(hows_tunnel, upstreams, protocol):
    kid = await start_kernel(hows_tunnel)
    ks = await tunnelled(hows_tunnel, kid, protocol)
    await ks.wait_ready()
    assert [type(u) for u in upstreams] == [InProcessKernelSocket]
    assert ks.connection.selected_subprotocol == protocol
    handler = server_kernel_handler(kid, ks.session)
    assert isinstance(handler, KernelWebsocketHandler)
    assert type(handler).__name__ == "InProcessKernelHandler"
    assert handler.selected_subprotocol == protocol
    msg_id = await ks.execute("print('out'); 6 * 7")
    messages = await ks.collect(msg_id)
    (result,) = by_type(messages, "execute_result")
    assert result.content["data"]["text/plain"] == "42"
    assert all(m.binary == (protocol == V1) for m in messages)
    ks.connection.close()


async def test_polled_kernel_channel_is_served_in_process(hows_polling_tunnel, upstreams):
    kid = await start_kernel(hows_polling_tunnel)
    ks = await tunnelled(hows_polling_tunnel, kid, V1)
    await ks.wait_ready()
    assert [type(u) for u in upstreams] == [InProcessKernelSocket]
    msg_id = await ks.execute("6 * 7")
    (result,) = by_type(await ks.collect(msg_id), "execute_result")
    assert result.content["data"]["text/plain"] == "42"
    ks.connection.close()


async def test_other_sockets_stay_on_the_relay(hows_tunnel, upstreams):
    reply = await hows_tunnel.request("POST", "/api/terminals", body="{}")
    assert reply.status == 200, reply
    connection = await hows_tunnel.websocket(f"/terminals/websocket/{reply.json()['name']}")
    assert json.loads(await asyncio.wait_for(connection.read_message(), 10)) == ["setup", {}]
    assert [type(u) for u in upstreams] == [UpstreamConnection]
    connection.close()


class SubclassedConnection(ZMQChannelsWebsocketConnection):
    """Any kernel connection class other than jupyter_server's own: the relay takes it."""


@pytest.mark.parametrize(
    "jp_server_config",
    [
        {
            "ServerApp": {
                "jpserver_extensions": {"jupyter_http_over_ws": True},
                "kernel_websocket_connection_class": SubclassedConnection,
            }
        }
    ],
)
async def test_another_connection_class_falls_back_to_the_relay(
    hows_tunnel, upstreams, jp_serverapp
):
    assert not serves_in_process(jp_serverapp.web_app)
    kid = await start_kernel(hows_tunnel)
    ks = await tunnelled(hows_tunnel, kid, V1)
    await ks.wait_ready()
    assert [type(u) for u in upstreams] == [UpstreamConnection]
    msg_id = await ks.execute("6 * 7")
    assert by_type(await ks.collect(msg_id), "execute_result")
    ks.connection.close()


def test_gateway_mode_falls_back_to_the_relay(jp_serverapp):
    # jupyter_server in gateway mode sets this connection class (tests/test_gateway.py
    # runs kernels of a real gateway through the relay).
    app = jp_serverapp.web_app
    assert serves_in_process(app)
    app.settings["kernel_websocket_connection_class"] = GatewayWebSocketConnection
    try:
        assert not serves_in_process(app)
    finally:
        app.settings["kernel_websocket_connection_class"] = ZMQChannelsWebsocketConnection


# ---------------------------------------------------------------- as a direct socket


async def test_same_session_replaces_the_first_as_directly(
    hows_tunnel, hows_server_url, hows_token, upstreams
):
    kid = await start_kernel(hows_tunnel)
    ends = {}
    for name in ("direct", "tunnelled"):
        session = uuid.uuid4().hex
        if name == "direct":
            first = await direct(hows_server_url, hows_token, kid, None, session)
        else:
            first = await tunnelled(hows_tunnel, kid, None, session)
        await first.wait_ready()
        old = server_kernel_handler(kid, session)
        if name == "direct":
            second = await direct(hows_server_url, hows_token, kid, None, session)
        else:
            second = await tunnelled(hows_tunnel, kid, None, session)
        await read_until_closed(first.connection)
        assert server_kernel_handler(kid, session) is not old
        assert old.ws_connection is None or old.ws_connection.is_closing()
        await second.wait_ready()
        msg_id = await second.execute("6 * 7")
        assert by_type(await second.collect(msg_id), "execute_result")
        ends[name] = (first.connection.close_code, first.connection.close_reason)
        second.connection.close()
    assert ends["tunnelled"] == ends["direct"]
    assert all(isinstance(u, InProcessKernelSocket) for u in upstreams)


async def test_restart_and_interrupt(hows_tunnel, upstreams):
    kid = await start_kernel(hows_tunnel)
    ks = await tunnelled(hows_tunnel, kid, V1)
    await ks.wait_ready()
    msg_id = await ks.execute("import time\ntime.sleep(30)")
    await ks.wait_for(lambda m: m.msg_type == "execute_input" and m.replies_to(msg_id))
    await asyncio.sleep(0.3)
    reply = await hows_tunnel.request("POST", f"/api/kernels/{kid}/interrupt")
    assert reply.status == 204, reply
    (error,) = by_type(await ks.collect(msg_id, timeout=10), "error")
    assert error.content["ename"] == "KeyboardInterrupt"

    reply = await hows_tunnel.request("POST", f"/api/kernels/{kid}/restart")
    assert reply.status == 200, reply
    await ks.wait_ready()
    msg_id = await ks.execute("'time' in globals()")
    (result,) = by_type(await ks.collect(msg_id), "execute_result")
    assert result.content["data"]["text/plain"] == "False"
    assert [type(u) for u in upstreams] == [InProcessKernelSocket]
    ks.connection.close()


@pytest.fixture(params=["hows_tunnel", "hows_polling_tunnel"], ids=["websocket", "polling"])
def either_tunnel(request):
    """The tunnel over the WebSocket, then over polling."""
    return request.getfixturevalue(request.param)


async def test_client_close_code_reaches_the_handler(either_tunnel, upstreams):
    tunnel = either_tunnel
    kid = await start_kernel(tunnel)
    ks = await tunnelled(tunnel, kid, V1)
    await ks.wait_ready()
    handler = server_kernel_handler(kid, ks.session)
    ks.connection.close(4001, "bye")
    await read_until_closed(ks.connection)
    await eventually(lambda: handler.close_code is not None, message="kernel socket close")
    assert (handler.close_code, handler.close_reason) == (4001, "bye")
    assert ks.connection.close_code == 4001  # the server's echo of the client's close
    await eventually(lambda: server_kernel_handler(kid, ks.session) is None, message="unregistered")
    model = (await tunnel.request("GET", f"/api/kernels/{kid}")).json()
    assert model["connections"] == 0


@pytest.mark.parametrize(
    "jp_server_config",
    [
        {
            "ServerApp": {
                "jpserver_extensions": {"jupyter_http_over_ws": True},
                "tornado_settings": {"websocket_max_message_size": 4096},
            }
        }
    ],
)
async def test_a_frame_over_the_servers_limit_closes_as_directly(
    hows_tunnel, hows_server_url, hows_token, upstreams
):
    kid = await start_kernel(hows_tunnel)
    ends = []
    for ks in (
        await direct(hows_server_url, hows_token, kid, None),
        await tunnelled(hows_tunnel, kid, None),
    ):
        await ks.connection.write_message("x" * 5000)
        await read_until_closed(ks.connection)
        ends.append(ks.connection.close_code)
    assert ends[0] == ends[1] == 1009
    assert [type(u) for u in upstreams] == [InProcessKernelSocket]


async def test_unknown_kernel_is_404_as_directly(hows_tunnel, hows_server_url, hows_token):
    kid = str(uuid.uuid4())
    with pytest.raises(HTTPClientError) as straight:
        await direct(hows_server_url, hows_token, kid, None)
    with pytest.raises(HTTPClientError) as proxied:
        await tunnelled(hows_tunnel, kid, None)
    assert straight.value.code == proxied.value.code == 404


class NoExecuteAuthorizer(Authorizer):
    """Everything but ``execute`` on kernels (so kernels start, but nobody may talk to one)."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return not (action == "execute" and resource == "kernels")


@pytest.mark.parametrize(
    "jp_server_config",
    [
        {
            "ServerApp": {
                "jpserver_extensions": {"jupyter_http_over_ws": True},
                "authorizer_class": NoExecuteAuthorizer,
            }
        }
    ],
)
async def test_authorizer_refusal_as_directly(
    hows_tunnel, hows_polling_tunnel, hows_server_url, hows_token, upstreams
):
    kid = await start_kernel(hows_tunnel)
    with pytest.raises(HTTPClientError) as straight:
        await direct(hows_server_url, hows_token, kid, None)
    with pytest.raises(HTTPClientError) as proxied:
        await tunnelled(hows_tunnel, kid, None)
    assert straight.value.code == proxied.value.code == 403
    with pytest.raises(Exception) as polled:
        await tunnelled(hows_polling_tunnel, kid, V1)
    assert "403" in str(polled.value)
    assert upstreams == []  # refused: nothing opened


async def test_unauthenticated_is_403_before_anything_runs(hows_tunnel, hows_server_url, upstreams):
    kid = await start_kernel(hows_tunnel)
    with pytest.raises(HTTPClientError) as refused:
        await Endpoint(hows_server_url).open(
            "http_over_websocket/proxied_ws" + channels_path(kid, "s")
        )
    assert refused.value.code == 403
    assert upstreams == []


# ------------------------------------------------------------- the internals, pinned


def test_the_tornado_internals_exist():
    assert kernel_in_process.INTERNALS_PRESENT
    assert "_execute" in vars(web.RequestHandler)
    assert list(inspect.signature(web.RequestHandler._execute).parameters)[:2] == [
        "self",
        "transforms",
    ]
    get = inspect.getsource(WebSocketHandler.get)
    assert "self.get_websocket_protocol()" in get
    assert "accept_connection(self)" in get
    write = inspect.getsource(WebSocketHandler.write_message)
    assert "self.ws_connection.write_message(message, binary=binary)" in write
    assert "self.ws_connection.close(" in inspect.getsource(WebSocketHandler.close)
    assert "self.ws_connection.selected_subprotocol" in inspect.getsource(
        WebSocketHandler.selected_subprotocol.fget  # type: ignore[attr-defined]
    )
    assert "self.on_close()" in inspect.getsource(WebSocketHandler.on_connection_close)
    abstract = set(WebSocketProtocol.__abstractmethods__)
    assert abstract <= {
        "close",
        "is_closing",
        "accept_connection",
        "write_message",
        "selected_subprotocol",
        "write_ping",
        "_process_server_headers",
        "start_pinging",
        "_receive_frame_loop",
        "set_nodelay",
    }, abstract
    delegate_init = inspect.getsource(web._HandlerDelegate.__init__)
    for attribute in ("handler_class", "handler_kwargs", "path_args", "path_kwargs"):
        assert f"self.{attribute} =" in delegate_init


async def test_the_jupyter_server_internals_exist(jp_serverapp):
    from jupyter_server.services.kernels.handlers import default_handlers

    assert any(
        route[0].endswith("/channels") and route[1] is KernelWebsocketHandler
        for route in default_handlers
    )
    base_url = jp_serverapp.base_url.rstrip("/")
    route = kernel_in_process.kernel_route(
        jp_serverapp.web_app,
        f"{base_url}/api/kernels/{uuid.uuid4()}/channels",
        HTTPHeaders({"Host": "localhost"}),
        [],
        RequestContext("127.0.0.1", "http"),
    )
    assert route is not None
    assert route.delegate.handler_class is KernelWebsocketHandler
    assert set(route.delegate.path_kwargs) == {"kernel_id"}
    assert (
        jp_serverapp.web_app.settings["kernel_websocket_connection_class"]
        is ZMQChannelsWebsocketConnection
    )
    source = inspect.getsource(ZMQChannelsWebsocketConnection)
    # What the connection asks of its handler: only what the in-process protocol serves.
    assert "self.websocket_handler.write_message" in source
    assert "self.websocket_handler.selected_subprotocol" in source
    assert "stale_handler.close()" in source
    assert "_open_sessions[self.session_key] = self.websocket_handler" in source
    assert issubclass(ZMQChannelsWebsocketConnection, BaseKernelWebsocketConnection)
    pre_get = inspect.getsource(KernelWebsocketHandler.pre_get)
    assert 'is_authorized(self, user, "execute", "kernels")' in pre_get
    assert 'self.get_argument("session_id", None)' in pre_get
    assert "ws_authenticated" in inspect.getsource(KernelWebsocketHandler)
    assert "get_websocket_protocol" not in inspect.getsource(KernelWebsocketHandler)


def test_client_connection_and_in_process_socket_offer_the_same(jp_serverapp):
    for name in ("read_message", "write_message", "close"):
        assert callable(getattr(InProcessKernelSocket, name))
        assert callable(getattr(WebSocketClientConnection, name))
