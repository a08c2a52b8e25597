"""The Python client's core over a fake transport: routing by message_id, streams, URLs.

``FakeTransport`` implements the client's ``Transport`` protocol (client/_transport.py)
in memory, so these tests need no server. The real transports are tested against a
real server in tests/test_tunnel_http.py, tests/test_polling_client.py and others.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

import pytest

from jupyter_http_over_ws.client import TunnelClient, TunnelClosedError
from jupyter_http_over_ws.client._connect import Endpoint
from jupyter_http_over_ws.client._responses import StreamingResponse, _StreamContext
from jupyter_http_over_ws.client._transport import OnClosed, OnMessage, Transport
from jupyter_http_over_ws.client._tunnel import _polling_endpoint
from jupyter_http_over_ws.wire.framing import (
    binary_hello,
    encode_binary_reply,
    parse_binary_message,
)
from jupyter_http_over_ws.wire.names import (
    DIAGNOSE_PATH,
    POLLING_PATH,
    PROXIED_WS_PREFIX,
    TUNNEL_PATH,
    CloseCode,
)
from jupyter_http_over_ws.wire.protocol import HttpRequest, encode_reply, parse_reply

URL = "http://localhost:8888/user/alice/"


class FakeTransport:
    """An in-memory transport: records what the client sends, delivers what a test says."""

    def __init__(self, name: Literal["websocket", "polling"] = "websocket") -> None:
        self.name: Literal["websocket", "polling"] = name
        #: As the real ones: binary replies over a WebSocket, JSON text only over polling.
        self.binary_replies = name == "websocket"
        self.framing = "json"
        self.extension_version: str | None = None
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.closed = False
        self.busy = False
        self.sent: list[tuple[str | bytes, bool]] = []
        self.on_message: OnMessage | None = None
        self.on_closed: OnClosed | None = None

    def attach(self, on_message: OnMessage, on_closed: OnClosed) -> None:
        self.on_message, self.on_closed = on_message, on_closed

    def send(self, message: str | bytes, binary: bool = False) -> asyncio.Future[None]:
        self.sent.append((message, binary))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def open_socket(self, path: str, subprotocols: list[str] | None) -> Any:
        raise NotImplementedError

    async def close(self) -> None:
        self.end(CloseCode.NORMAL, "closed by the client")

    # -- what a test does

    def deliver(self, message: str | bytes) -> None:
        assert self.on_message is not None, "the client did not attach"
        self.on_message(self, message)

    def end(self, code: int | None, reason: str | None) -> None:
        if self.closed:
            return
        self.closed, self.close_code, self.close_reason = True, code, reason
        assert self.on_closed is not None
        self.on_closed(self)

    def sent_objects(self) -> list[dict[str, Any]]:
        return [json.loads(message) for message, _ in self.sent]


def _is_transport(transport: Transport) -> Transport:
    """FakeTransport passes as a Transport (mypy checks this line when it reads tests)."""
    return transport


async def _wait_sent(fake: FakeTransport, count: int) -> None:
    """Wait until ``count`` frames are sent (a request task needs a turn of the loop)."""
    for _ in range(100):
        if len(fake.sent) >= count:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"expected {count} frames, got {fake.sent!r}")


async def _sent(fake: FakeTransport, count: int) -> list[dict[str, Any]]:
    """The JSON frames sent, once ``count`` are."""
    await _wait_sent(fake, count)
    return fake.sent_objects()


def _reply(message_id: Any, **fields: Any) -> str:
    """A JSON reply frame, as a text message (the WebSocket delivers text as ``str``)."""
    return encode_reply(message_id, **fields).decode()


def _client(fake: FakeTransport, **options: Any) -> TunnelClient:
    return TunnelClient(Endpoint(URL), _is_transport(fake), **options)


async def test_the_client_attaches_itself_to_the_transport():
    fake = FakeTransport()
    fake.extension_version = "9.9.9"
    client = _client(fake)
    assert fake.on_message is not None
    assert fake.on_closed is not None
    assert client.transport == "websocket"
    assert client.extension_version == "9.9.9"
    assert client.framing == "json"
    await client.close()


async def test_replies_are_routed_by_message_id_whatever_their_order():
    fake = FakeTransport()
    client = _client(fake)
    first = asyncio.ensure_future(client.request("GET", "/api/a"))
    second = asyncio.ensure_future(client.request("POST", "/api/b", body="x"))
    sent = await _sent(fake, 2)
    assert [(s["method"], s["path"]) for s in sent] == [("GET", "/api/a"), ("POST", "/api/b")]
    assert sent[0]["message_id"] != sent[1]["message_id"]
    a, b = sent[0]["message_id"], sent[1]["message_id"]
    # The second request's reply arrives first, in two frames; the first's in one.
    fake.deliver(_reply(b, done=False, status=201, status_text="Created", data=b"be"))
    fake.deliver(_reply(a, done=True, status=200, status_text="OK", data=b"a-body"))
    fake.deliver(_reply(b, done=True, data=b"-body"))
    reply_a, reply_b = await asyncio.gather(first, second)
    assert (reply_a.status, reply_a.reason, reply_a.body) == (200, "OK", b"a-body")
    assert (reply_b.status, reply_b.reason, reply_b.body) == (201, "Created", b"be-body")
    assert client.unmatched.empty()
    await client.close()


async def test_a_given_message_id_is_sent_as_it_is():
    fake = FakeTransport()
    client = _client(fake)
    task = asyncio.ensure_future(client.request("GET", "/api/x", message_id="mine"))
    (sent,) = await _sent(fake, 1)
    assert sent["message_id"] == "mine"
    fake.deliver(_reply("mine", done=True, status=204))
    assert (await task).status == 204
    await client.close()


async def test_a_reply_for_no_pending_request_goes_to_unmatched():
    fake = FakeTransport()
    client = _client(fake)
    fake.deliver(_reply(None, done=True, status=400, status_text="JSON input is required."))
    frame = client.unmatched.get_nowait()
    assert (frame.message_id, frame.status) == (None, 400)
    await client.close()


async def test_binary_framing_sends_binary_frames_and_reads_binary_replies():
    fake = FakeTransport()
    fake.framing = "binary"
    client = _client(fake)
    assert client.framing == "binary"
    task = asyncio.ensure_future(client.request("PUT", "/api/c", body=b"\x00\xff"))
    await _wait_sent(fake, 1)
    ((frame, binary),) = fake.sent
    assert binary is True
    assert isinstance(frame, bytes)
    request = parse_binary_message(frame)
    assert isinstance(request, HttpRequest)
    assert (request.method, request.body) == ("PUT", b"\x00\xff")
    reply = encode_binary_reply(request.message_id, done=True, status=200, data=b"\x01\x02")
    fake.deliver(reply)
    assert (await task).body == b"\x01\x02"
    await client.close()


async def test_a_hello_frame_sets_the_framing_and_the_extension_version():
    fake = FakeTransport()
    client = _client(fake)
    fake.deliver(binary_hello("1.2.3").decode())
    assert fake.framing == "binary"
    assert client.framing == "binary"
    assert fake.extension_version == client.extension_version == "1.2.3"
    assert client.unmatched.empty()
    await client.close()


async def test_cancel_sends_a_cancel_for_a_pending_request_only():
    fake = FakeTransport()
    client = _client(fake)
    task = asyncio.ensure_future(client.request("GET", "/api/slow"))
    (sent,) = await _sent(fake, 1)
    client.cancel("not-pending")
    client.cancel(sent["message_id"])
    assert fake.sent_objects()[1:] == [{"message_id": sent["message_id"], "cancel": True}]
    fake.deliver(_reply(sent["message_id"], done=True, status=499))
    assert (await task).status == 499
    await client.close()


async def test_a_stream_left_early_is_cancelled_and_drained():
    fake = FakeTransport()
    client = _client(fake)
    context = client.stream("GET", "/files/big.bin")
    assert fake.sent == []  # nothing goes out before the stream is entered
    entered = asyncio.ensure_future(context.__aenter__())
    (sent,) = await _sent(fake, 1)
    message_id = sent["message_id"]
    fake.deliver(_reply(message_id, done=False, status=200, data=b"chunk"))
    response = await entered
    assert response.status == 200
    assert not response.done
    leaving = asyncio.ensure_future(context.__aexit__(None, None, None))
    await _sent(fake, 2)
    assert fake.sent_objects()[1] == {"message_id": message_id, "cancel": True}
    fake.deliver(_reply(message_id, done=True))
    await leaving
    assert response.done
    await client.close()


async def test_a_transport_closed_by_the_server_fails_pending_requests_and_closes_the_tunnel():
    fake = FakeTransport()
    client = _client(fake, transports=("websocket", "polling"))
    task = asyncio.ensure_future(client.request("GET", "/api/a"))
    await _sent(fake, 1)
    fake.end(CloseCode.GOING_AWAY, "server shutting down")
    with pytest.raises(TunnelClosedError, match="code 1001"):
        await task
    await asyncio.wait_for(client.wait_closed(), 1)
    assert (client.close_code, client.close_reason) == (1001, "server shutting down")
    with pytest.raises(TunnelClosedError):
        await client.request("GET", "/api/b")


async def test_close_closes_the_transport():
    fake = FakeTransport()
    client = _client(fake)
    await client.close()
    assert fake.closed
    assert fake.close_code == CloseCode.NORMAL


# ------------------------------------------------------------------ the stream context


def _response(message_id: Any, queue: asyncio.Queue[Any], *, done: bool) -> StreamingResponse:
    return StreamingResponse(message_id, 200, "OK", {}, _frames=queue, _done=done)


async def test_the_stream_context_starts_through_its_callable_and_cancels_through_the_other():
    queue: asyncio.Queue[Any] = asyncio.Queue()
    started: list[str] = []
    cancelled: list[Any] = []

    async def start() -> StreamingResponse:
        started.append("start")
        return _response(7, queue, done=False)

    def cancel(message_id: Any) -> None:
        cancelled.append(message_id)
        queue.put_nowait(parse_reply(encode_reply(message_id, done=True)))

    context = _StreamContext(start, cancel)
    assert started == []
    async with context as response:
        assert started == ["start"]
        assert response.message_id == 7
    assert cancelled == [7]
    assert response.done


async def test_the_stream_context_does_not_cancel_a_finished_stream():
    cancelled: list[Any] = []

    async def start() -> StreamingResponse:
        return _response(8, asyncio.Queue(), done=True)

    async with _StreamContext(start, cancelled.append):
        pass
    assert cancelled == []


# ------------------------------------------------------------------ endpoint URLs


def test_endpoint_urls_sit_under_the_base_url():
    endpoint = Endpoint(URL)
    assert endpoint.ws_url(TUNNEL_PATH) == "ws://localhost:8888/user/alice/http_over_websocket"
    assert endpoint.ws_url(DIAGNOSE_PATH, {"min_version": "0.0.7"}) == (
        "ws://localhost:8888/user/alice/http_over_websocket/diagnose?min_version=0.0.7"
    )
    assert endpoint.ws_url(PROXIED_WS_PREFIX + "api/kernels/k/channels?session_id=s") == (
        "ws://localhost:8888/user/alice/http_over_websocket/proxied_ws/api/kernels/k/channels"
        "?session_id=s"
    )
    assert endpoint.http_url(f"{POLLING_PATH}/abc/recv", {"since": "3"}) == (
        "http://localhost:8888/user/alice/http_over_websocket/polling/abc/recv?since=3"
    )


def test_endpoint_urls_without_a_trailing_slash_and_over_tls():
    endpoint = Endpoint("https://hub.example/user/bob")
    assert endpoint.ws_url(TUNNEL_PATH) == "wss://hub.example/user/bob/http_over_websocket"
    assert (
        endpoint.http_url(POLLING_PATH)
        == "https://hub.example/user/bob/http_over_websocket/polling"
    )
    assert Endpoint("http://h:1").ws_url("/" + TUNNEL_PATH) == "ws://h:1/http_over_websocket"


def test_endpoint_headers_carry_the_credentials():
    endpoint = Endpoint(URL, token="t0k", cookies={"_xsrf": "x", "c": "1"}, origin="https://o")
    headers = endpoint.request_headers(json_body=True)
    assert headers == {
        "Content-Type": "application/json",
        "X-XSRFToken": "x",
        "Authorization": "token t0k",
        "Cookie": "_xsrf=x; c=1",
        "Origin": "https://o",
    }
    assert Endpoint(URL).request_headers() == {}


def test_polling_takes_the_token_of_an_auth_url_as_a_header():
    endpoint = Endpoint(URL)
    assert _polling_endpoint(endpoint, None) is endpoint
    with_auth = _polling_endpoint(endpoint, URL + "tree?token=from-url")
    assert with_auth.token == "from-url"
    assert with_auth.url == URL
    assert with_auth.request_headers()["Authorization"] == "token from-url"
    assert "token" not in with_auth.http_url(POLLING_PATH)
    # A token given already wins over the auth URL's.
    given = Endpoint(URL, token="given")
    assert _polling_endpoint(given, URL + "tree?token=from-url") is given


async def test_over_polling_a_binary_message_is_json_text():
    fake = FakeTransport("polling")
    client = _client(fake, transports=("polling",))
    assert client.transport == "polling"
    task = asyncio.ensure_future(client.request("GET", "/api/a"))
    (sent,) = await _sent(fake, 1)
    fake.deliver(encode_reply(sent["message_id"], done=True, status=200, data=b"ok"))
    assert (await task).body == b"ok"
    await client.close()


async def test_a_dropped_websocket_without_polling_closes_the_tunnel():
    fake = FakeTransport()
    client = _client(fake, transports=("websocket",))
    task = asyncio.ensure_future(client.request("GET", "/api/a"))
    await _sent(fake, 1)
    fake.end(None, None)  # no close frame: the network dropped it
    with pytest.raises(TunnelClosedError, match="code None"):
        await task
    await asyncio.wait_for(client.wait_closed(), 1)
    assert client.close_code is None
