"""The Python client over the polling transport against a real jupyter_server (no proxy)."""

from __future__ import annotations

import asyncio
import base64
import json
import os

import pytest
from jupyter_server.utils import url_path_join
from support.echo_socket import EchoSocket, register_echo_socket
from support.waiting import eventually
from tornado import httpclient
from tornado.web import RequestHandler, URLSpec

from jupyter_http_over_ws._version import __version__
from jupyter_http_over_ws.client import TunnelClient
from jupyter_http_over_ws.client._connect import Endpoint
from jupyter_http_over_ws.client._polling import PollingTransport

pytestmark = pytest.mark.timeout(90)

EXT = {"jupyter_http_over_ws": True}
BOTH = ("websocket", "polling")


def config(**app):
    return {"ServerApp": {"jpserver_extensions": EXT}, "HttpOverWebSocketApp": app}


@pytest.fixture
def polling_tunnel(hows_polling_tunnel):
    """The pytest plugin's polling-only tunnel (``hows_polling_tunnel``)."""
    return hows_polling_tunnel


def extension(jp_serverapp):
    return next(iter(jp_serverapp.extension_manager.extension_apps["jupyter_http_over_ws"]))


def transport(tunnel: TunnelClient) -> PollingTransport:
    current = tunnel._current
    assert isinstance(current, PollingTransport)
    return current


async def test_rest_api_over_polling(polling_tunnel, jp_root_dir):
    assert polling_tunnel.transport == "polling"
    model = {"type": "file", "format": "text", "content": "hi ✓"}
    created = await polling_tunnel.request("PUT", "/api/contents/a.txt", body=json.dumps(model))
    assert created.status == 201
    assert (jp_root_dir / "a.txt").read_text() == "hi ✓"
    payload = os.urandom(2 * 1024 * 1024 + 5)
    binary = {"type": "file", "format": "base64", "content": base64.b64encode(payload).decode()}
    up = await polling_tunnel.request("PUT", "/api/contents/b.bin", body=json.dumps(binary))
    assert up.status == 201
    down = await polling_tunnel.request("GET", "/files/b.bin")
    assert down.body == payload
    head = await polling_tunnel.request("HEAD", "/files/a.txt")
    assert head.status == 200
    assert head.body == b""
    missing = await polling_tunnel.request("GET", "/api/contents/nope")
    assert missing.status == 404


async def test_many_requests_in_flight_over_polling(polling_tunnel, jp_root_dir):
    for i in range(10):
        (jp_root_dir / f"f{i}.txt").write_text(f"content {i}")
    replies = await asyncio.gather(
        *(polling_tunnel.request("GET", f"/files/f{i}.txt") for i in range(10))
    )
    assert [r.body for r in replies] == [f"content {i}".encode() for i in range(10)]


@pytest.mark.parametrize("jp_server_config", [config(polling_buffer_size=128 * 1024)])
async def test_dropped_poll_answers_lose_nothing(polling_tunnel, jp_root_dir):
    payload = os.urandom(3 * 1024 * 1024)
    (jp_root_dir / "big.bin").write_bytes(payload)
    polls = transport(polling_tunnel)
    chunks = []
    async with polling_tunnel.stream("GET", "/files/big.bin") as response:
        async for chunk in response:
            chunks.append(chunk)
            if len(chunks) % 5 == 1:
                polls.drop_next_poll()  # the answer under way is thrown away
    assert b"".join(chunks) == payload
    assert polls.dropped_polls >= 3


@pytest.mark.parametrize("jp_server_config", [config(polling_buffer_size=64 * 1024)])
async def test_repeated_answers_and_lost_send_answers_deliver_each_message_once(
    polling_tunnel, jp_root_dir
):
    # A network that repeats every other recv answer (a stale copy instead of a new
    # request) and loses every other send answer after the server has acted on it (the
    # client sends the same batch again; the answer may have carried replies, which the
    # server then gives again). Both sides must skip what they already have.
    polls = transport(polling_tunnel)
    real_fetch = polls._http.fetch
    seen = {"recv": 0, "send": 0, "replayed": 0, "lost": 0, "lost_replies": 0}
    previous: list[object] = []

    async def unreliable_fetch(url, method="GET", body=None, headers=None, **kwargs):
        action = "recv" if "/recv?" in url else "send" if "/send?since=" in url else None
        if action == "recv":
            seen["recv"] += 1
            if previous and seen["recv"] % 2 == 0:
                seen["replayed"] += 1
                return previous[-1]
        response = await real_fetch(url, method, body, headers, **kwargs)
        if action == "recv" and response.code == 200:
            previous.append(response)
        if action == "send":
            seen["send"] += 1
            if seen["send"] % 2 == 1:
                seen["lost"] += 1
                seen["lost_replies"] += b'"messages":[{' in response.body
                raise OSError("connection reset after the server took the batch")
        return response

    polls._http.fetch = unreliable_fetch  # type: ignore[method-assign]
    payloads = [os.urandom(100_000 + i) for i in range(6)]
    for i, payload in enumerate(payloads):
        (jp_root_dir / f"r{i}.bin").write_bytes(payload)
    replies = await asyncio.gather(
        *(polling_tunnel.request("GET", f"/files/r{i}.bin") for i in range(6))
    )
    assert [r.body for r in replies] == payloads
    model = {"type": "file", "format": "text", "content": "once"}
    put = await polling_tunnel.request("PUT", "/api/contents/once.txt", body=json.dumps(model))
    assert put.status == 201
    assert polling_tunnel.unmatched.empty()  # no reply frame came twice
    assert seen["replayed"] >= 3
    assert seen["lost"] >= 1
    assert seen["lost_replies"] >= 1


@pytest.mark.parametrize("jp_server_config", [config(poll_timeout=0.2)])
async def test_empty_polls_are_renewed(polling_tunnel):
    polls = transport(polling_tunnel)
    assert polls.poll_timeout == 0.2
    await asyncio.sleep(1.5)
    assert polls.polls_answered >= 3  # empty answers after each timeout, then a new poll
    assert (await polling_tunnel.request("GET", "/api/status")).status == 200


async def test_leaving_a_stream_early_cancels_it_on_the_server(
    polling_tunnel, jp_root_dir, jp_serverapp
):
    (jp_root_dir / "big.bin").write_bytes(os.urandom(16 * 1024 * 1024))
    async with polling_tunnel.stream("GET", "/files/big.bin") as response:
        async for _ in response:
            break
    (session,) = list(extension(jp_serverapp).registry.polling_sessions)
    for _ in range(100):
        if session.tunnel.in_flight == 0:
            break
        await asyncio.sleep(0.05)
    assert session.tunnel.in_flight == 0
    assert (await polling_tunnel.request("GET", "/api/status")).status == 200


async def test_the_servers_version_is_public_on_either_transport(
    polling_tunnel, hows_server_url, hows_token
):
    assert polling_tunnel.extension_version == __version__
    binary = await TunnelClient.connect(
        hows_server_url, token=hows_token, transports=("websocket",), framing="binary"
    )
    plain = await TunnelClient.connect(hows_server_url, token=hows_token, transports=("websocket",))
    try:
        # The binary-framing hello announces it before the first reply.
        assert (await binary.request("GET", "/api/status")).status == 200
        assert binary.framing == "binary"
        assert binary.extension_version == __version__
        # A JSON-framed WebSocket is not told.
        assert (await plain.request("GET", "/api/status")).status == 200
        assert plain.extension_version is None
    finally:
        await binary.close()
        await plain.close()


async def test_the_plugins_polling_fixture(hows_polling_tunnel, jp_serverapp):
    tunnel = hows_polling_tunnel
    assert tunnel.transport == "polling"
    assert isinstance(tunnel._current, PollingTransport)
    sessions = extension(jp_serverapp).registry.polling_sessions
    assert len(sessions) == 1  # a real session on the server, not a WebSocket
    assert (await tunnel.request("GET", "/api/status")).status == 200
    assert tunnel._upgrader is None  # polling only: it never tries the WebSocket


async def test_closing_the_client_closes_the_session(hows_server_url, hows_token, jp_serverapp):
    tunnel = await TunnelClient.connect(hows_server_url, token=hows_token, transports=("polling",))
    sessions = extension(jp_serverapp).registry.polling_sessions
    assert len(sessions) == 1
    await tunnel.close()
    assert len(sessions) == 0


async def test_refusals_over_polling(hows_server_url, hows_token):
    with pytest.raises(httpclient.HTTPClientError) as refused:
        await TunnelClient.connect(hows_server_url, token="wrong", transports=BOTH)
    assert refused.value.code == 403
    with pytest.raises(httpclient.HTTPClientError) as outdated:
        await TunnelClient.connect(
            hows_server_url, token=hows_token, transports=("polling",), min_version="99.0"
        )
    assert outdated.value.code == 400


async def test_proxied_socket_refusals_keep_their_status(polling_tunnel):
    with pytest.raises(httpclient.HTTPClientError) as refused:
        await polling_tunnel.websocket("/api/kernels/no-such-kernel/channels")
    assert refused.value.code == 404


@pytest.mark.parametrize("jp_server_config", [config(allow_polling=False)])
async def test_polling_can_be_turned_off(hows_server_url, hows_token):
    with pytest.raises(httpclient.HTTPClientError) as refused:
        await TunnelClient.connect(hows_server_url, token=hows_token, transports=("polling",))
    assert refused.value.code == 404


async def test_auth_url_credentials_work_over_polling(hows_server_url, hows_token):
    tunnel = await TunnelClient.connect(
        hows_server_url, auth_url=f"{hows_server_url}?token={hows_token}", transports=("polling",)
    )
    try:
        assert (await tunnel.request("GET", "/api/contents")).status == 200
    finally:
        await tunnel.close()
    # The auth URL's token is what authenticates: a wrong one is refused, over either.
    for transports in (("polling",), BOTH):
        with pytest.raises(httpclient.HTTPClientError) as refused:
            await TunnelClient.connect(
                hows_server_url, auth_url=f"{hows_server_url}?token=wrong", transports=transports
            )
        assert refused.value.code == 403


@pytest.fixture
def echo_path(jp_serverapp, jp_base_url):
    """Register :class:`EchoSocket` at ``{base_url}hows-poll/echo[/...]``; returns its path."""
    return register_echo_socket(jp_serverapp, jp_base_url, "hows-poll/echo")


async def test_proxied_frames_and_close_codes_over_polling(polling_tunnel, echo_path):
    socket = await polling_tunnel.websocket(echo_path, subprotocols=["echo.a", "echo.b"])
    assert socket.selected_subprotocol == "echo.b"
    await socket.write_message("text ✓")
    await socket.write_message(b"\x00\xffbinary", binary=True)
    assert await socket.read_message() == "text ✓"
    assert await socket.read_message() == b"\x00\xffbinary"
    await socket.write_message("close:4002:server says bye")
    assert await socket.read_message() is None
    assert socket.close_code == 4002
    assert socket.close_reason == "server says bye"

    other = await polling_tunnel.websocket(echo_path)
    assert other.selected_subprotocol is None
    await eventually(lambda: len(EchoSocket.instances) == 2)
    other.close(4003, "client says bye")
    await eventually(lambda: EchoSocket.instances[1].close_code is not None)
    assert EchoSocket.instances[1].close_code == 4003
    assert EchoSocket.instances[1].close_reason == "client says bye"
    assert await asyncio.wait_for(other.read_message(), 10) is None  # the server's answer


@pytest.mark.parametrize("jp_base_url", ["/user/alice/"])
async def test_polling_under_a_base_url(hows_server_url, hows_token, jp_root_dir, echo_path):
    (jp_root_dir / "x.txt").write_text("hello")
    async with await TunnelClient.connect(
        hows_server_url, token=hows_token, transports=("polling",)
    ) as tunnel:
        reply = await tunnel.request("GET", "/files/x.txt")
        assert reply.body == b"hello"
        socket = await tunnel.websocket(echo_path)
        await socket.write_message("ping")
        assert await socket.read_message() == "ping"
        socket.close()


async def test_many_polling_clients_at_once(hows_server_url, hows_token, jp_root_dir, jp_serverapp):
    for i in range(10):
        (jp_root_dir / f"f{i}.txt").write_text(f"content {i}" * 1000)

    async def one_client(n: int) -> None:
        async with await TunnelClient.connect(
            hows_server_url, token=hows_token, transports=("polling",)
        ) as tunnel:
            replies = await asyncio.gather(
                *(tunnel.request("GET", f"/files/f{(n + i) % 10}.txt") for i in range(10))
            )
            for i, reply in enumerate(replies):
                assert reply.body == (f"content {(n + i) % 10}" * 1000).encode()

    await asyncio.gather(*(one_client(n) for n in range(20)))
    assert len(extension(jp_serverapp).registry.polling_sessions) == 0


class Gate(RequestHandler):
    """Answers a GET once the test opens the gate (a reply the server has not finished)."""

    entered: asyncio.Event
    opened: asyncio.Event

    async def get(self):
        Gate.entered.set()
        await Gate.opened.wait()
        self.finish("through the gate")


@pytest.fixture
def gate_path(jp_serverapp, jp_base_url):
    Gate.entered, Gate.opened = asyncio.Event(), asyncio.Event()
    router = jp_serverapp.web_app.wildcard_router
    router.rules.insert(0, URLSpec(url_path_join(jp_base_url, r"hows-poll/gate"), Gate))
    return "/hows-poll/gate"


@pytest.mark.parametrize("last", ["request", "socket"])
async def test_upgrading_keeps_open_sockets_and_requests_on_the_polling_session(
    hows_server_url, hows_token, jp_serverapp, echo_path, gate_path, last
):
    # A client that starts on polling (as behind a proxy that drops upgrades) and finds
    # the WebSocket at its first retry, with a proxied socket open and a request the
    # server has not answered yet on the polling session: both finish there, new work
    # goes to the WebSocket, and the polling session is closed once neither is left
    # (whichever of the two ends last).
    endpoint = Endpoint(hows_server_url, token=hows_token)
    polled = await PollingTransport.open(endpoint, lambda *a: None, lambda *a: None)
    changes: list[str] = []
    tunnel = TunnelClient(
        endpoint, polled, transports=BOTH, upgrade_interval=0.5, on_transport_change=changes.append
    )
    sessions = extension(jp_serverapp).registry.polling_sessions

    async def close_socket() -> None:
        socket.close()
        assert await asyncio.wait_for(socket.read_message(), 10) is None

    async def answer_request() -> None:
        Gate.opened.set()
        assert (await asyncio.wait_for(waiting, 10)).body == b"through the gate"

    try:
        assert tunnel.transport == "polling"
        socket = await tunnel.websocket(echo_path)
        waiting = asyncio.ensure_future(tunnel.request("GET", gate_path))
        await asyncio.wait_for(Gate.entered.wait(), 10)
        await tunnel.wait_for_transport("websocket", timeout=10)
        assert changes == ["websocket"]
        # The socket opened on polling still carries frames both ways after the switch.
        await socket.write_message("after the switch")
        assert await asyncio.wait_for(socket.read_message(), 10) == "after the switch"
        assert (await tunnel.request("GET", "/api/status")).status == 200  # on the WebSocket
        first, then = (
            (close_socket, answer_request) if last == "request" else (answer_request, close_socket)
        )
        await first()
        await asyncio.sleep(0.5)
        assert not polled.closed  # kept while the other is unfinished
        assert len(sessions) == 1
        await then()
        await eventually(lambda: polled.closed and len(sessions) == 0)
        assert tunnel.transport == "websocket"
        assert (await tunnel.request("GET", "/api/status")).status == 200
    finally:
        await tunnel.close()


async def test_a_broken_websocket_falls_back_to_polling(hows_server_url, hows_token, jp_serverapp):
    # The network drops the tunnel WebSocket (no close frame, as when a proxy or NAT
    # forgets the connection): a client allowed to poll carries on over polling; a request
    # made while it reconnects waits for the new transport. A close the server decides
    # (a close code) still ends the tunnel: those are covered by the tunnel's own tests.
    changes: list[str] = []
    tunnel = await TunnelClient.connect(
        hows_server_url,
        token=hows_token,
        transports=BOTH,
        upgrade_interval=0,
        on_transport_change=changes.append,
    )
    try:
        broken = tunnel._current
        assert tunnel.transport == "websocket"
        broken.connection.stream.close()
        while not broken.closed:
            await asyncio.sleep(0)  # the request must start as soon as it breaks
        assert tunnel._fallback is not None
        assert not tunnel._fallback.done()
        reply = await tunnel.request("GET", "/api/status")  # waits for the fallback
        assert reply.status == 200
        assert tunnel.transport == "polling"
        assert changes == ["polling"]
        assert len(extension(jp_serverapp).registry.polling_sessions) == 1
        assert not tunnel._closed.is_set()
    finally:
        await tunnel.close()
    # A client that may not poll is closed by the same break.
    only = await TunnelClient.connect(hows_server_url, token=hows_token, transports=("websocket",))
    only._current.connection.stream.close()
    await asyncio.wait_for(only.wait_closed(), 10)
    assert only.transport == "websocket"
    await only.close()
