"""``{base_url}http_over_websocket/proxied_ws/<path>`` against a real server and real kernels.

Every kernel is started through the tunnel and spoken to through a proxied socket,
in the legacy JSON protocol and in ``v1.kernel.websocket.jupyter.org``. A small echo
socket registered on the same server checks the relay's own contract (frame types,
close codes, path encoding) where a kernel cannot be made to show it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import uuid
from datetime import datetime
from http.cookies import SimpleCookie
from typing import Any

import pytest
from support.echo_socket import EchoSocket, register_echo_socket
from support.kernels import (
    V1,
    KernelSocket,
    Received,
    by_type,
    server_kernel_handler,
    stdout_text,
)
from support.waiting import eventually
from tornado import httpclient
from tornado.websocket import WebSocketClientConnection, WebSocketHandler, websocket_connect

import jupyter_http_over_ws.handlers.proxied_ws as proxied_ws_module
from jupyter_http_over_ws.client._connect import Endpoint

PROTOCOLS = [pytest.param(None, id="legacy"), pytest.param(V1, id="v1")]
OPEN_TIMEOUT = 15.0

# A 1x1 transparent PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)

# Registers a comm target in the kernel that answers the opening message and every
# later message with the same data and the very same binary buffers.
ECHO_COMM_TARGET = """
import comm

def _hows_echo_target(c, open_msg):
    @c.on_msg
    def _echo(msg):
        c.send({"echo": msg["content"]["data"]}, buffers=msg["buffers"])
    c.send({"opened": open_msg["content"]["data"]}, buffers=open_msg["buffers"])

comm.get_comm_manager().register_target("hows_echo", _hows_echo_target)
"""


# --------------------------------------------------------------------------- helpers


async def start_kernel(tunnel: Any) -> str:
    """Start a python3 kernel through the tunnel; returns its id."""
    reply = await tunnel.request("POST", "/api/kernels", body=json.dumps({"name": "python3"}))
    assert reply.status == 201, reply
    return str(reply.json()["id"])


def channels_path(kernel_id: str, session_id: str) -> str:
    return f"/api/kernels/{kernel_id}/channels?session_id={session_id}"


async def read_until_closed(connection: WebSocketClientConnection, timeout: float = 10.0) -> list:
    """Every message until the socket closes (``read_message`` returns ``None``)."""
    messages = []

    async def read_all() -> None:
        while (message := await connection.read_message()) is not None:
            messages.append(message)

    await asyncio.wait_for(read_all(), timeout)
    return messages


@pytest.fixture
def open_socket(hows_tunnel):
    """Opens proxied sockets through the tunnel and closes them after the test."""
    opened: list[WebSocketClientConnection] = []

    async def _open(path: str, subprotocols: list[str] | None = None) -> WebSocketClientConnection:
        connection = await asyncio.wait_for(
            hows_tunnel.websocket(path, subprotocols=subprotocols), OPEN_TIMEOUT
        )
        opened.append(connection)
        return connection

    yield _open
    for connection in opened:
        connection.close()


@pytest.fixture
def kernel_socket(open_socket):
    """Opens a proxied kernel channels socket speaking a given protocol, ready for requests.

    A fresh kernel may still be busy when the socket opens, and jupyter_server does not
    "nudge" a busy kernel (services/kernels/connection/channels.py), so its iopub
    subscription may not be established yet: a request sent at once can lose its iopub
    messages, directly as through the tunnel, and more often on a loaded machine.
    ``wait_ready`` asks for kernel_info until iopub answers, as a frontend does.
    """

    async def _open(
        kernel_id: str, protocol: str | None, session_id: str | None = None, ready: bool = True
    ):
        session_id = session_id or uuid.uuid4().hex
        connection = await open_socket(
            channels_path(kernel_id, session_id), [protocol] if protocol else None
        )
        socket = KernelSocket(connection, session_id, protocol)
        if ready:
            await socket.wait_ready()
        return socket

    return _open


@pytest.fixture
def echo_path(jp_serverapp, jp_base_url):
    """Register :class:`EchoSocket` at ``{base_url}hows-test/echo[/...]``; returns its path."""
    return register_echo_socket(jp_serverapp, jp_base_url, "hows-test/echo")


def assert_execute_sequence(messages: list[Received], msg_id: str) -> None:
    """The iopub and shell messages of one successful execution, in order."""
    iopub = [m for m in messages if m.channel == "iopub"]
    assert iopub[0].msg_type == "status"
    assert iopub[0].content["execution_state"] == "busy"
    assert iopub[-1].msg_type == "status"
    assert iopub[-1].content["execution_state"] == "idle"
    types = [m.msg_type for m in iopub]
    assert types.index("execute_input") < types.index("stream") < types.index("execute_result")
    assert all(m.replies_to(msg_id) for m in messages)


# ----------------------------------------------------------------------- executing


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_execute(hows_tunnel, kernel_socket, protocol):
    kid = await start_kernel(hows_tunnel)
    ks = await kernel_socket(kid, protocol)

    # The subprotocol is the same on both halves: what the client was told is what
    # the kernel handler speaks.
    assert ks.connection.selected_subprotocol == protocol
    assert server_kernel_handler(kid, ks.session).selected_subprotocol == protocol

    msg_id = await ks.execute('print("hello from the kernel")\n6 * 7')
    messages = await ks.collect(msg_id)

    assert_execute_sequence(messages, msg_id)
    assert stdout_text(messages) == "hello from the kernel\n"
    (result,) = by_type(messages, "execute_result")
    assert result.content["data"]["text/plain"] == "42"
    (reply,) = by_type(messages, "execute_reply")
    assert reply.channel == "shell"
    assert reply.content["status"] == "ok"
    assert reply.content["execution_count"] == result.content["execution_count"]
    # v1 messages are always binary; legacy messages without buffers are JSON text.
    assert {m.binary for m in messages} == {protocol == V1}
    if protocol == V1:
        # A v1 frame: the number of offsets, the offsets (64-bit little endian), then
        # the channel name, where the first offset points.
        for m in messages:
            count = int.from_bytes(m.frame[:8], "little")
            first = int.from_bytes(m.frame[8:16], "little")
            assert first == 8 * (count + 1)
            assert m.frame[first : first + len(m.channel)] == m.channel.encode()
    else:
        assert all(json.loads(m.frame)["channel"] == m.channel for m in messages)

    msg_id = await ks.send(ks.msg("kernel_info_request", {}))
    (info,) = by_type(await ks.collect(msg_id), "kernel_info_reply")
    assert info.content["language_info"]["name"] == "python"


async def test_subprotocol_is_chosen_upstream(hows_tunnel, open_socket):
    kid = await start_kernel(hows_tunnel)
    for offered, selected in [
        (["x.unknown.example", V1], V1),
        (["x.unknown.example"], None),
    ]:
        session = uuid.uuid4().hex
        connection = await open_socket(channels_path(kid, session), offered)
        assert connection.selected_subprotocol == selected, offered
        assert server_kernel_handler(kid, session).selected_subprotocol == selected, offered
        ks = KernelSocket(connection, session, selected)
        await ks.wait_ready()
        msg_id = await ks.execute("6 * 7")
        (result,) = by_type(await ks.collect(msg_id), "execute_result")
        assert result.content["data"]["text/plain"] == "42"


@pytest.mark.parametrize(
    "jp_server_config",
    [
        {
            "ServerApp": {"jpserver_extensions": {"jupyter_http_over_ws": True}},
            # The server insists on the legacy protocol.
            "ZMQChannelsWebsocketConnection": {"kernel_ws_protocol": ""},
        }
    ],
    ids=["server-prefers-legacy"],
)
async def test_client_learns_the_servers_choice_of_legacy(hows_tunnel, open_socket):
    kid = await start_kernel(hows_tunnel)
    session = uuid.uuid4().hex
    connection = await open_socket(channels_path(kid, session), [V1])
    # The original's defect: the client believed it spoke v1 while the kernel spoke legacy.
    assert connection.selected_subprotocol is None
    assert server_kernel_handler(kid, session).selected_subprotocol is None
    ks = KernelSocket(connection, session, None)
    await ks.wait_ready()
    msg_id = await ks.execute("6 * 7")
    messages = await ks.collect(msg_id)
    assert not any(m.binary for m in messages)
    (result,) = by_type(messages, "execute_result")
    assert result.content["data"]["text/plain"] == "42"


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_rich_display_and_errors(hows_tunnel, kernel_socket, protocol):
    kid = await start_kernel(hows_tunnel)
    ks = await kernel_socket(kid, protocol)

    code = (
        "import base64\n"
        "from IPython.display import HTML, Image, display\n"
        "display(HTML('<b>bold</b> &amp; <i>brave</i>'))\n"
        f"display(Image(data=base64.b64decode({base64.b64encode(PNG).decode()!r})))\n"
    )
    msg_id = await ks.execute(code)
    messages = await ks.collect(msg_id)
    html, image = by_type(messages, "display_data")
    assert html.content["data"]["text/html"] == "<b>bold</b> &amp; <i>brave</i>"
    assert base64.b64decode(image.content["data"]["image/png"]) == PNG
    assert "text/plain" in image.content["data"]
    assert by_type(messages, "execute_reply")[0].content["status"] == "ok"

    msg_id = await ks.execute("raise ValueError('boom 42')")
    messages = await ks.collect(msg_id)
    (error,) = by_type(messages, "error")
    assert error.channel == "iopub"
    assert error.content["ename"] == "ValueError"
    assert error.content["evalue"] == "boom 42"
    assert any("boom 42" in line for line in error.content["traceback"])
    (reply,) = by_type(messages, "execute_reply")
    assert reply.content["status"] == "error"
    assert reply.content["ename"] == "ValueError"

    # The kernel (and the socket) carry on after an error.
    msg_id = await ks.execute("print('still here')")
    assert stdout_text(await ks.collect(msg_id)) == "still here\n"


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_stdin_input_request(hows_tunnel, kernel_socket, protocol):
    kid = await start_kernel(hows_tunnel)
    ks = await kernel_socket(kid, protocol)

    msg_id = await ks.execute(
        "answer = input('name? ')\nprint('got', answer[::-1])", allow_stdin=True
    )
    before: list[Received] = []
    request = await ks.wait_for(
        lambda m: m.msg_type == "input_request" and m.replies_to(msg_id), keep=before
    )
    assert request.channel == "stdin"
    assert request.content["prompt"] == "name? "
    assert request.content["password"] is False

    reply = ks.msg("input_reply", {"value": "écho ✓"}, channel="stdin")
    reply["parent_header"] = request.msg["header"]
    await ks.send(reply)

    messages = before + await ks.collect(msg_id)
    assert "got ✓ ohcé\n" in stdout_text(messages)
    assert by_type(messages, "execute_reply")[0].content["status"] == "ok"


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_comm_binary_buffers_round_trip(hows_tunnel, kernel_socket, protocol):
    kid = await start_kernel(hows_tunnel)
    ks = await kernel_socket(kid, protocol)
    msg_id = await ks.execute(ECHO_COMM_TARGET)
    assert by_type(await ks.collect(msg_id), "execute_reply")[0].content["status"] == "ok"

    comm_id = uuid.uuid4().hex
    small = [bytes(range(256)), b"\xff\xfe\x00not utf-8\x80"]
    open_msg = ks.msg(
        "comm_open",
        {"comm_id": comm_id, "target_name": "hows_echo", "data": {"greeting": "hi"}},
        buffers=small,
    )
    open_id = await ks.send(open_msg)
    opened = await ks.wait_for(lambda m: m.msg_type == "comm_msg" and m.replies_to(open_id))
    assert opened.content["comm_id"] == comm_id
    assert opened.content["data"] == {"opened": {"greeting": "hi"}}
    assert opened.msg["buffers"] == small
    # The kernel's message had buffers: the server sent it as a binary frame, and
    # the relay kept it binary (the original re-sent it as text).
    assert opened.binary

    big = [os.urandom(512 * 1024), b"", b"\x00" * 3]
    message = ks.msg("comm_msg", {"comm_id": comm_id, "data": {"n": 2}}, buffers=big)
    message_id = await ks.send(message)
    echoed = await ks.wait_for(lambda m: m.msg_type == "comm_msg" and m.replies_to(message_id))
    assert echoed.content["data"] == {"echo": {"n": 2}}
    assert echoed.msg["buffers"] == big
    assert echoed.binary


async def test_interrupt(hows_tunnel, kernel_socket):
    kid = await start_kernel(hows_tunnel)
    ks = await kernel_socket(kid, None)
    msg_id = await ks.execute("import time\ntime.sleep(30)")
    seen: list[Received] = []
    await ks.wait_for(lambda m: m.msg_type == "execute_input" and m.replies_to(msg_id), keep=seen)
    await asyncio.sleep(0.3)  # let the kernel get into time.sleep

    loop = asyncio.get_running_loop()
    started = loop.time()
    reply = await hows_tunnel.request("POST", f"/api/kernels/{kid}/interrupt")
    assert reply.status == 204, reply
    messages = seen + await ks.collect(msg_id, timeout=10)
    assert loop.time() - started < 5
    (error,) = by_type(messages, "error")
    assert error.content["ename"] == "KeyboardInterrupt"
    assert by_type(messages, "execute_reply")[0].content["status"] == "error"
    assert messages[-1].msg_type in ("status", "execute_reply")
    assert any(m.msg_type == "status" and m.content["execution_state"] == "idle" for m in messages)


async def test_socket_survives_a_kernel_restart(hows_tunnel, kernel_socket):
    kid = await start_kernel(hows_tunnel)
    ks = await kernel_socket(kid, V1)
    msg_id = await ks.execute("x = 1")
    await ks.collect(msg_id)

    reply = await hows_tunnel.request("POST", f"/api/kernels/{kid}/restart")
    assert reply.status == 200, reply
    await ks.wait_ready()
    msg_id = await ks.execute("'x' in globals()")
    (result,) = by_type(await ks.collect(msg_id), "execute_result")
    assert result.content["data"]["text/plain"] == "False"  # a fresh kernel, same socket
    assert result.content["execution_count"] == 1


async def test_concurrent_sockets_keep_their_own_traffic(hows_tunnel, kernel_socket):
    kernels = await asyncio.gather(start_kernel(hows_tunnel), start_kernel(hows_tunnel))
    sockets = await asyncio.gather(kernel_socket(kernels[0], None), kernel_socket(kernels[1], V1))

    async def run(ks: KernelSocket, tag: str) -> str:
        msg_id = await ks.execute(f"for i in range(200): print('{tag}', i)")
        return stdout_text(await ks.collect(msg_id))

    async def http() -> list[int]:
        replies = await asyncio.gather(
            *(hows_tunnel.request("GET", "/api/kernels") for _ in range(10))
        )
        return [r.status for r in replies]

    first, second, statuses = await asyncio.gather(
        run(sockets[0], "first"), run(sockets[1], "second"), http()
    )
    assert first == "".join(f"first {i}\n" for i in range(200))
    assert second == "".join(f"second {i}\n" for i in range(200))
    assert statuses == [200] * 10


# ------------------------------------------------------------------------- closing


async def test_client_close_code_reaches_the_kernel_socket(hows_tunnel, kernel_socket):
    kid = await start_kernel(hows_tunnel)
    ks = await kernel_socket(kid, V1)
    handler = server_kernel_handler(kid, ks.session)
    assert handler is not None
    model = (await hows_tunnel.request("GET", f"/api/kernels/{kid}")).json()
    assert model["connections"] == 1

    ks.connection.close(4001, "bye")
    await read_until_closed(ks.connection)
    await eventually(lambda: handler.close_code is not None, message="kernel socket close")
    assert handler.close_code == 4001
    assert handler.close_reason == "bye"
    assert ks.connection.close_code == 4001  # the close handshake completed end to end

    async def connections() -> int:
        return int((await hows_tunnel.request("GET", f"/api/kernels/{kid}")).json()["connections"])

    for _ in range(100):
        if await connections() == 0:
            break
        await asyncio.sleep(0.05)
    assert await connections() == 0


async def test_server_closing_the_kernel_socket_closes_the_client(hows_tunnel, kernel_socket):
    # Deleting a kernel does not close its sockets in jupyter_server (a direct socket
    # stays open too); replacing a session does: the server closes the older socket.
    kid = await start_kernel(hows_tunnel)
    first = await kernel_socket(kid, None)
    old_handler = server_kernel_handler(kid, first.session)
    second = await kernel_socket(kid, None, session_id=first.session)
    await read_until_closed(first.connection)
    assert first.connection.close_code is None or first.connection.close_code < 4000
    assert old_handler.ws_connection is None or old_handler.ws_connection.is_closing()
    msg_id = await second.execute("6 * 7")
    assert by_type(await second.collect(msg_id), "execute_result")


async def test_deleting_a_terminal_closes_its_proxied_socket(hows_tunnel, open_socket):
    reply = await hows_tunnel.request("POST", "/api/terminals", body="{}")
    assert reply.status == 200, reply
    name = reply.json()["name"]
    connection = await open_socket(f"/terminals/websocket/{name}")
    first = await asyncio.wait_for(connection.read_message(), 10)
    assert json.loads(first) == ["setup", {}]

    await connection.write_message(json.dumps(["stdin", "echo $((6 * 7))x\r"]))
    output = ""
    while "42x" not in output:
        message = await asyncio.wait_for(connection.read_message(), 10)
        assert isinstance(message, str), message
        kind, *data = json.loads(message)
        if kind == "stdout":
            output += data[0]

    reply = await hows_tunnel.request("DELETE", f"/api/terminals/{name}")
    assert reply.status == 204, reply
    rest = await read_until_closed(connection)
    assert json.loads(rest[-1]) == ["disconnect", 1]


async def test_close_codes_pass_through_both_ways(hows_tunnel, open_socket, echo_path):
    connection = await open_socket(echo_path)
    await connection.write_message("close:4002:server says bye")
    assert await read_until_closed(connection) == []
    assert connection.close_code == 4002
    assert connection.close_reason == "server says bye"

    connection = await open_socket(echo_path)
    await eventually(lambda: len(EchoSocket.instances) == 2)
    connection.close(4003, "client says bye")
    await eventually(lambda: EchoSocket.instances[1].close_code is not None)
    assert EchoSocket.instances[1].close_code == 4003
    assert EchoSocket.instances[1].close_reason == "client says bye"

    connection = await open_socket(echo_path)
    connection.close(1000)
    await eventually(lambda: len(EchoSocket.instances) == 3)
    await eventually(lambda: EchoSocket.instances[2].close_code is not None)
    assert EchoSocket.instances[2].close_code == 1000


async def test_client_leaving_during_the_upgrade_closes_the_upstream(
    hows_tunnel, hows_token, echo_path, jp_base_url, jp_http_port, upstream_urls, monkeypatch
):
    handlers: list[Any] = []
    handler_class = proxied_ws_module.ProxiedWebSocketHandler
    real_open = handler_class.open

    def recording_open(self: Any, *args: Any, **kwargs: Any) -> None:
        handlers.append(self)
        real_open(self, *args, **kwargs)

    monkeypatch.setattr(handler_class, "open", recording_open)

    _reader, writer = await asyncio.open_connection("127.0.0.1", jp_http_port)
    writer.write(
        (
            f"GET {jp_base_url}http_over_websocket/proxied_ws{echo_path}?delay=0.5 HTTP/1.1\r\n"
            f"Host: localhost:{jp_http_port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: token {hows_token}\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    await eventually(lambda: len(upstream_urls) == 1, message="upstream connect started")
    writer.close()  # gone before the upstream socket is even open
    await eventually(lambda: len(EchoSocket.instances) == 1, message="upstream opened")
    await eventually(lambda: EchoSocket.instances[0].closed, message="upstream closed")
    # Whatever the relay started for the vanished client ended quietly.
    for handler in handlers:
        if handler._pump is not None:
            await asyncio.wait([handler._pump], timeout=5)
            assert handler._pump.cancelled() or handler._pump.exception() is None


# ------------------------------------------------------------------ relay contract


async def test_frames_keep_their_type(hows_tunnel, open_socket, echo_path):
    connection = await open_socket(echo_path, ["echo.a", "echo.b"])
    assert connection.selected_subprotocol == "echo.b"
    frames: list[str | bytes] = [
        "héllo ✓",
        b"plain ascii, but binary",
        bytes(range(256)),
        "",
        b"",
        '{"looks": "like json"}',
        os.urandom(4 * 1024 * 1024),
    ]
    for frame in frames:
        await connection.write_message(frame, binary=isinstance(frame, bytes))
    for frame in frames:
        echoed = await asyncio.wait_for(connection.read_message(), 10)
        assert type(echoed) is type(frame)
        assert echoed == frame


@pytest.mark.parametrize(
    ("suffix", "rest", "query"),
    [
        # One decoding only: "%2541" is "%41" to the target, not "A".
        ("/50%2541?x=1", "/50%41", "x=1"),
        # An encoded "?" or "#" belongs to the path, not to the query or a fragment.
        ("/a%3Fb%23c?session_id=s&y=%3F", "/a?b#c", "session_id=s&y=%3F"),
        ("/spaced%20name", "/spaced name", ""),
    ],
)
async def test_path_and_query_arrive_as_sent(
    hows_tunnel, open_socket, echo_path, upstream_urls, suffix, rest, query
):
    await open_socket(echo_path + suffix)
    await eventually(lambda: len(EchoSocket.instances) == 1)
    assert EchoSocket.instances[0].rest == rest
    assert EchoSocket.instances[0].query == query
    assert len(upstream_urls) == 1


# ----------------------------------------------------------------------- refusals


async def test_unknown_kernel_is_404(hows_tunnel, open_socket):
    with pytest.raises(httpclient.HTTPClientError) as info:
        await open_socket(channels_path(str(uuid.uuid4()), "s"))
    assert info.value.code == 404


async def test_non_websocket_targets_are_refused(hows_tunnel, open_socket):
    with pytest.raises(httpclient.HTTPClientError) as info:
        await open_socket("/api/status")  # a plain page: no WebSocket there
    assert info.value.code == 400
    with pytest.raises(httpclient.HTTPClientError) as info:
        await open_socket("/no/such/socket")
    assert info.value.code == 404


async def test_unauthenticated_upgrade_is_403(
    hows_tunnel, hows_server_url, echo_path, upstream_urls
):
    kid = await start_kernel(hows_tunnel)
    anonymous = Endpoint(hows_server_url)
    # The echo target itself would accept anyone: the proxy must refuse first.
    for target in (channels_path(kid, "s"), echo_path):
        with pytest.raises(httpclient.HTTPClientError) as info:
            await anonymous.open("http_over_websocket/proxied_ws" + target)
        assert info.value.code == 403
    with pytest.raises(httpclient.HTTPClientError) as info:
        await Endpoint(hows_server_url, token="wrong").open(
            "http_over_websocket/proxied_ws" + echo_path
        )
    assert info.value.code == 403
    assert upstream_urls == []


async def test_token_in_the_query_or_auth_url(hows_tunnel, hows_server_url, hows_token):
    kid = await start_kernel(hows_tunnel)
    anonymous = Endpoint(hows_server_url)
    auth_url = f"{hows_server_url}?token={hows_token}"
    for query in (
        {"token": hows_token},
        # What Colab-era clients send instead of credentials of their own.
        {"jupyter_http_over_ws_auth_url": auth_url},
    ):
        session = uuid.uuid4().hex
        connection = await asyncio.wait_for(
            anonymous.open(
                "http_over_websocket/proxied_ws" + channels_path(kid, session), query=query
            ),
            OPEN_TIMEOUT,
        )
        try:
            ks = KernelSocket(connection, session, None)
            await ks.wait_ready()  # a fresh kernel's first iopub messages may be dropped
            msg_id = await ks.execute("6 * 7")
            (result,) = by_type(await ks.collect(msg_id), "execute_result")
            assert result.content["data"]["text/plain"] == "42"
        finally:
            connection.close()

    with pytest.raises(httpclient.HTTPClientError) as info:
        await anonymous.open(
            "http_over_websocket/proxied_ws" + channels_path(kid, "s"),
            query={"jupyter_http_over_ws_auth_url": f"{hows_server_url}?token=wrong"},
        )
    assert info.value.code == 403


async def test_origin_checks(hows_tunnel, hows_server_url, hows_token, jp_http_port):
    kid = await start_kernel(hows_tunnel)
    foreign = "https://evil.example"

    async def kernel_info(endpoint: Endpoint) -> None:
        session = uuid.uuid4().hex
        connection = await asyncio.wait_for(
            endpoint.open("http_over_websocket/proxied_ws" + channels_path(kid, session)),
            OPEN_TIMEOUT,
        )
        try:
            ks = KernelSocket(connection, session, None)
            msg_id = await ks.send(ks.msg("kernel_info_request", {}))
            assert by_type(await ks.collect(msg_id), "kernel_info_reply")
        finally:
            connection.close()

    # A browser never sends a token on its own: a foreign page that holds one is trusted,
    # by the proxy and by the kernel handler behind it.
    await kernel_info(Endpoint(hows_server_url, token=hows_token, origin=foreign))

    with pytest.raises(httpclient.HTTPClientError) as info:
        await Endpoint(hows_server_url, origin=foreign).open(
            "http_over_websocket/proxied_ws" + channels_path(kid, "s")
        )
    assert info.value.code == 403

    # A browser sends the login cookie on its own: only the server's own origin may use it.
    response = await httpclient.AsyncHTTPClient().fetch(
        hows_server_url + "api/status", headers={"Authorization": f"token {hows_token}"}
    )
    cookie: SimpleCookie = SimpleCookie()
    for header in response.headers.get_list("Set-Cookie"):
        cookie.load(header)
    cookies = {name: morsel.value for name, morsel in cookie.items()}
    assert any(name.startswith("username-") for name in cookies), cookies

    with pytest.raises(httpclient.HTTPClientError) as info:
        await Endpoint(hows_server_url, cookies=cookies, origin=foreign).open(
            "http_over_websocket/proxied_ws" + channels_path(kid, "s")
        )
    assert info.value.code == 403

    await kernel_info(
        Endpoint(hows_server_url, cookies=cookies, origin=f"http://localhost:{jp_http_port}")
    )
    await kernel_info(Endpoint(hows_server_url, cookies=cookies))  # no Origin: not a browser

    # Behind a reverse proxy that rewrites Host, a browser's same-origin socket carries an
    # Origin unlike Host; Tornado 6.6 and later then trust the browser's Sec-Fetch-Site.
    # The kernel handler behind the relay must decide as it would for a direct socket.
    headers = {"Sec-Fetch-Site": "same-origin"}
    origin = "https://hub.example"

    async def outcome(opening: Any) -> int:
        try:
            connection = await asyncio.wait_for(opening, OPEN_TIMEOUT)
        except httpclient.HTTPClientError as e:
            return e.code
        connection.close()
        return 101

    direct = await outcome(
        websocket_connect(
            httpclient.HTTPRequest(
                hows_server_url.replace("http", "ws", 1) + channels_path(kid, "direct")[1:],
                headers={
                    "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items()),
                    "Origin": origin,
                    **headers,
                },
            )
        )
    )
    proxied = await outcome(
        Endpoint(hows_server_url, cookies=cookies, origin=origin, headers=headers).open(
            "http_over_websocket/proxied_ws" + channels_path(kid, "proxied")
        )
    )
    assert proxied == direct
    assert direct == (101 if hasattr(WebSocketHandler, "_check_cross_origin") else 403)


async def test_path_traversal_is_refused(hows_server_url, hows_token, upstream_urls):
    endpoint = Endpoint(hows_server_url, token=hows_token)
    for target in [
        "../../x",
        "../api/status",
        "%2e%2e/x",
        "%2E%2E/%2e%2e/etc/passwd",
        "api/kernels/../../../x",
        "api/..%2f..%2fx",
        "api/%2e/kernels",
        "./api/kernels",
        "..%5c..%5cx",
        "api/%2e%2e%5c%2e%2e%5cx",
    ]:
        with pytest.raises(httpclient.HTTPClientError) as info:
            await asyncio.wait_for(endpoint.open("http_over_websocket/proxied_ws/" + target), 10)
        assert info.value.code == 400, target
    # Nothing was opened on the client's behalf.
    assert upstream_urls == []

    # A "host" in the path is only a path on this same server (where it does not exist).
    with pytest.raises(httpclient.HTTPClientError) as info:
        await endpoint.open("http_over_websocket/proxied_ws//evil.example/x")
    assert info.value.code == 404
    assert len(upstream_urls) == 1
    # Dialled through the private entrance: the host part is a placeholder its
    # resolver ignores; only the path (on this server) comes from the client.
    assert upstream_urls[0] == "ws://relay.invalid/a%40b/evil.example/x", upstream_urls


# ----------------------------------------------------------------------- activity


async def test_kernel_activity_advances(hows_tunnel, kernel_socket, jp_serverapp):
    kid = await start_kernel(hows_tunnel)
    ks = await kernel_socket(kid, V1)
    kernel = jp_serverapp.kernel_manager.get_kernel(kid)

    msg_id = await ks.execute("1")  # let start-up activity settle
    await ks.collect(msg_id)
    before = kernel.last_activity
    await asyncio.sleep(0.05)

    msg_id = await ks.execute("print('busy')")
    await ks.collect(msg_id)
    # The server follows the kernel's state on an IOPub subscription of its own, which
    # can read the final idle after this socket did (the same holds for a direct socket).
    await eventually(
        lambda: kernel.last_activity > before and kernel.execution_state == "idle",
        message="the server records the activity and the final idle",
    )

    model = (await hows_tunnel.request("GET", f"/api/kernels/{kid}")).json()
    assert datetime.fromisoformat(model["last_activity"].replace("Z", "+00:00")) > before
    assert model["connections"] == 1


# ----------------------------------------------------------------------- base_url


@pytest.mark.parametrize("jp_base_url", ["/user/alice/"])
async def test_jupyterhub_like_base_url(
    hows_tunnel, hows_server_url, kernel_socket, upstream_urls, jp_base_url, jp_http_port
):
    assert hows_server_url.endswith("/user/alice/")
    kid = await start_kernel(hows_tunnel)
    ks = await kernel_socket(kid, V1)
    assert ks.connection.selected_subprotocol == V1
    msg_id = await ks.execute("6 * 7")
    (result,) = by_type(await ks.collect(msg_id), "execute_result")
    assert result.content["data"]["text/plain"] == "42"
    assert upstream_urls == [f"ws://relay.invalid/user/alice{channels_path(kid, ks.session)}"]

    # Outside base_url there is no such endpoint, and the relay cannot step out of it.
    outside = Endpoint(f"http://localhost:{jp_http_port}/", token=hows_tunnel.endpoint.token)
    with pytest.raises(httpclient.HTTPClientError) as info:
        await outside.open("http_over_websocket/proxied_ws" + channels_path(kid, "s"))
    assert info.value.code == 404
    with pytest.raises(httpclient.HTTPClientError) as info:
        await hows_tunnel.endpoint.open("http_over_websocket/proxied_ws/../../../api/status")
    assert info.value.code == 400
    assert len(upstream_urls) == 1


async def test_relays_go_through_a_private_entrance(hows_tunnel, jp_serverapp):
    ext = jp_serverapp.extension_manager.extension_points["jupyter_http_over_ws"].app
    socket = await hows_tunnel.websocket("/api/events/subscribe")
    entrance = ext.registry.entrance()
    directory = entrance._directory
    assert directory is not None
    assert os.stat(directory).st_mode & 0o777 == 0o700
    socket.close()
    await ext.stop_extension()
    assert not os.path.exists(directory)


@pytest.mark.parametrize(
    "headers",
    [{}, {"Upgrade": "h2c", "Connection": "Upgrade"}, {"Upgrade": "websocket"}],
    ids=["plain", "not-websocket", "no-connection-upgrade"],
)
async def test_a_request_that_is_not_an_upgrade_dials_nothing(
    hows_server_url, hows_token, upstream_urls, headers
):
    """Answered as the same request to the server's own socket is (400), nothing opened."""

    async def get(path: str) -> httpclient.HTTPResponse:
        request = httpclient.HTTPRequest(
            hows_server_url + path, headers={"Authorization": f"token {hows_token}", **headers}
        )
        return await httpclient.AsyncHTTPClient().fetch(request, raise_error=False)

    direct = await get("api/events/subscribe")
    relayed = await get("http_over_websocket/proxied_ws/api/events/subscribe")
    assert direct.code == 400
    assert (relayed.code, relayed.body) == (direct.code, direct.body)
    assert upstream_urls == []
