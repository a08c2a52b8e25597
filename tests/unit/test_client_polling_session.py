"""The polling transport's client side over a fake HTTP client, and a polled socket's channel.

No server: ``FakeHttp`` stands in for the keep-alive HTTP client and answers each
request as a test says. tests/test_polling_client.py runs the same code against a
real server.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from jupyter_http_over_ws.client._connect import Endpoint
from jupyter_http_over_ws.client._http import HttpResponse
from jupyter_http_over_ws.client._polled_socket import PolledWebSocket
from jupyter_http_over_ws.client._polling import PollingTransport
from jupyter_http_over_ws.client._transport import Transport
from jupyter_http_over_ws.wire.names import CloseCode
from jupyter_http_over_ws.wire.polling import (
    BinaryEnvelope,
    ClosedEnvelope,
    CloseEnvelope,
    Envelope,
    OpenedEnvelope,
    TextEnvelope,
    encode_batch,
    encode_envelope,
    parse_send,
)

BASE = "http://localhost:8888/base/"
SESSION = BASE + "http_over_websocket/polling/s1"


class FakeHttp:
    """Answers ``send`` with an acknowledgement, ``recv`` from a queue, ``DELETE`` with 204."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, bytes | None]] = []
        self.recv_answers: asyncio.Queue[HttpResponse] = asyncio.Queue()
        self.closed = False
        #: What the next ``send`` answer carries (first number, envelopes), if anything.
        self.send_carries: tuple[int, list[Envelope]] | None = None

    async def fetch(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Any = None,
        *,
        timeout: float = 60.0,
        connect_timeout: float = 20.0,
    ) -> HttpResponse:
        self.requests.append((method, url, body))
        if method == "DELETE":
            return HttpResponse(204, "No Content")
        if url.startswith(SESSION + "/send"):
            batch = parse_send(body or b"")
            ack = batch.seq + len(batch.messages)
            if self.send_carries is not None:
                (seq, carried), self.send_carries = self.send_carries, None
                body = encode_batch(seq, [encode_envelope(e) for e in carried], ack=ack)
                return HttpResponse(200, "OK", {}, body)
            return HttpResponse(200, "OK", {}, json.dumps({"ack": ack}).encode())
        assert url.startswith(SESSION + "/recv"), url
        return await self.recv_answers.get()

    def close(self) -> None:
        self.closed = True

    def answer_recv(self, seq: int, *envelopes: Envelope) -> None:
        body = encode_batch(seq, [encode_envelope(e) for e in envelopes])
        self.recv_answers.put_nowait(HttpResponse(200, "OK", {}, body))

    def urls(self, method: str) -> list[str]:
        return [url for m, url, _ in self.requests if m == method]


async def _turns(count: int = 20) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


def _session(http: FakeHttp) -> PollingTransport:
    session = {"session_id": "s1", "extension_version": "1.2.3", "poll_timeout": 5}
    return PollingTransport(Endpoint(BASE, token="t"), http, session)  # type: ignore[arg-type]


class Listener:
    """Records what a transport delivers."""

    def __init__(self) -> None:
        self.messages: list[str | bytes] = []
        self.closed: list[Transport] = []

    def on_message(self, transport: Transport, message: str | bytes) -> None:
        self.messages.append(message)

    def on_closed(self, transport: Transport) -> None:
        self.closed.append(transport)


async def test_a_session_does_nothing_until_attached():
    http = FakeHttp()
    transport = _session(http)
    await _turns()
    assert http.requests == []
    assert (transport.name, transport.framing, transport.binary_replies) == (
        "polling",
        "json",
        False,
    )
    assert transport.extension_version == "1.2.3"
    await transport.close()  # an unattached session closes too
    assert http.urls("DELETE") == [SESSION]
    assert transport.close_code == CloseCode.NORMAL
    assert http.closed


async def test_attached_it_polls_and_delivers_tunnel_messages_in_order():
    http, listener = FakeHttp(), Listener()
    transport = _session(http)
    transport.attach(listener.on_message, listener.on_closed)
    await _turns()
    assert http.urls("GET") == [SESSION + "/recv?since=0"]
    http.answer_recv(0, TextEnvelope(0, "first"), BinaryEnvelope(0, b"second"))
    await _turns()
    assert listener.messages == ["first", b"second"]
    assert http.urls("GET")[-1] == SESSION + "/recv?since=2"
    # An answer repeated after a lost one: what was seen is skipped.
    http.answer_recv(1, BinaryEnvelope(0, b"second"), TextEnvelope(0, "third"))
    await _turns()
    assert listener.messages == ["first", b"second", "third"]
    await transport.close()
    assert listener.closed == [transport]


async def test_send_resolves_once_acknowledged():
    http, listener = FakeHttp(), Listener()
    transport = _session(http)
    transport.attach(listener.on_message, listener.on_closed)
    await asyncio.wait_for(transport.send('{"message_id": 1}'), 1)
    ((_, url, body),) = [r for r in http.requests if r[0] == "POST"]
    assert url == SESSION + "/send?since=0"
    sent = parse_send(body or b"")
    assert (sent.seq, sent.messages) == (0, (TextEnvelope(0, '{"message_id": 1}'),))
    assert not transport.busy
    await transport.close()


async def test_replies_a_send_answer_carries_are_delivered_once():
    http, listener = FakeHttp(), Listener()
    transport = _session(http)
    transport.attach(listener.on_message, listener.on_closed)
    http.send_carries = (0, [TextEnvelope(0, "reply 1"), TextEnvelope(0, "reply 2")])
    await asyncio.wait_for(transport.send("request 1"), 1)
    await _turns()
    assert listener.messages == ["reply 1", "reply 2"]
    # The next send says how far the client has read; the poll's later answer repeats
    # one carried envelope, which is skipped.
    await asyncio.wait_for(transport.send("request 2"), 1)
    assert http.urls("POST")[-1] == SESSION + "/send?since=2"
    http.answer_recv(1, TextEnvelope(0, "reply 2"), TextEnvelope(0, "reply 3"))
    await _turns()
    assert listener.messages == ["reply 1", "reply 2", "reply 3"]
    assert http.urls("GET")[-1] == SESSION + "/recv?since=3"
    await transport.close()


async def test_a_session_the_server_forgot_ends_with_session_gone():
    http, listener = FakeHttp(), Listener()
    transport = _session(http)
    transport.attach(listener.on_message, listener.on_closed)
    http.recv_answers.put_nowait(HttpResponse(404, "Not Found"))
    await _turns()
    assert listener.closed == [transport]
    assert transport.close_code == CloseCode.SESSION_GONE
    assert type(transport.close_code) is int  # reported as the server's codes are
    assert transport.close_reason == "the server closed the polling session"
    future = transport.send("late")
    with pytest.raises(ConnectionError):
        await future
    await transport.close()
    assert listener.closed == [transport]  # told once


# ------------------------------------------------------------------ a polled socket


class FakeSender:
    """What a polled socket needs from its session: ``post``, acknowledged at once."""

    def __init__(self) -> None:
        self.posted: list[Envelope] = []

    def post(self, envelope: Envelope) -> asyncio.Future[None]:
        self.posted.append(envelope)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


async def test_a_polled_socket_opens_carries_messages_and_closes():
    sender = FakeSender()
    socket = PolledWebSocket(sender, 3)
    socket.receive(OpenedEnvelope(3, "v1.kernel.websocket.jupyter.org"))
    await socket.wait_opened(1)
    assert socket.selected_subprotocol == "v1.kernel.websocket.jupyter.org"
    await socket.write_message("text")
    await socket.write_message(b"\x00", binary=True)
    socket.receive(TextEnvelope(3, "back"))
    assert await socket.read_message() == "back"
    socket.close(1000, "done")
    socket.close()  # once only
    assert sender.posted == [
        TextEnvelope(3, "text"),
        BinaryEnvelope(3, b"\x00"),
        CloseEnvelope(3, 1000, "done"),
    ]
    with pytest.raises(ConnectionError):
        await socket.write_message("after close")


async def test_a_polled_socket_closed_without_a_code_reports_1005():
    socket = PolledWebSocket(FakeSender(), 1)
    socket.receive(OpenedEnvelope(1, None))
    socket.receive(ClosedEnvelope(1, None, "gone"))
    assert socket.ended
    assert await socket.read_message() is None
    assert socket.close_code == CloseCode.NO_STATUS
    assert type(socket.close_code) is int
    assert socket.close_reason == "gone"


@pytest.mark.parametrize(
    ("code", "status"), [(CloseCode.SESSION_GONE, 404), (4403, 403), (CloseCode.ABNORMAL, 502)]
)
async def test_a_refused_polled_socket_raises_the_upgrade_status(code, status):
    socket = PolledWebSocket(FakeSender(), 2)
    socket.receive(ClosedEnvelope(2, code, "refused"))
    with pytest.raises(HTTPClientError) as refusal:
        await socket.wait_opened(1)
    assert refusal.value.code == status
