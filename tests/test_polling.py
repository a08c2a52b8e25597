"""The polling transport's server side against a real jupyter_server, request by request."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import time
import uuid

import pytest
from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection
from support.kernels import V1, decode, encode, make_msg
from support.polling import RawPolling, request_envelope
from support.users import TwoUsers

from jupyter_http_over_ws.wire.polling import (
    BinaryEnvelope,
    ClosedEnvelope,
    OpenedEnvelope,
    OpenEnvelope,
    TextEnvelope,
    encode_batch,
    encode_envelope,
    parse_batch,
    parse_send_answer,
)
from jupyter_http_over_ws.wire.protocol import parse_reply

pytestmark = pytest.mark.timeout(90)

EXT = {"jupyter_http_over_ws": True}
ALLOWED = "https://colab.example"


def config(**app):
    return {"ServerApp": {"jpserver_extensions": EXT}, "HttpOverWebSocketApp": app}


@pytest.fixture
def captured_access():
    """The access log lines the server writes while a test runs."""
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    handler = Keep(logging.DEBUG)
    logger = logging.getLogger("tornado.access")
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)


@pytest.fixture
def raw(hows_server_url, hows_token):
    clients = []

    def make(token=hows_token, **headers):
        client = RawPolling(hows_server_url, token, dict(headers))
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def extension(jp_serverapp):
    return next(iter(jp_serverapp.extension_manager.extension_apps["jupyter_http_over_ws"]))


async def test_request_and_reply_over_polling(raw, jp_root_dir):
    (jp_root_dir / "x.txt").write_text("hello")
    client = raw()
    opened = await client.open()
    assert opened.code == 200
    info = json.loads(opened.body)
    assert set(info) == {"session_id", "extension_version", "poll_timeout", "idle_timeout"}
    sent = await client.send(0, [request_envelope(1, "GET", "/files/x.txt")])
    assert sent.code == 200
    assert json.loads(sent.body) == {"ack": 1}
    _, frames = await client.collect(0, {1})
    assert frames[0].status == 200
    assert b"".join(f.data or b"" for f in frames) == b"hello"
    assert (await client.delete()).code == 204
    assert (await client.recv(0)).code == 404


async def test_duplicate_and_out_of_order_sends(raw, jp_root_dir):
    client = raw()
    await client.open()
    envelopes = [request_envelope(i, "GET", "/api/status") for i in range(4)]
    # A gap (envelope 2 before 0 and 1) is refused whole, with the number expected.
    gap = await client.send(2, envelopes[2:])
    assert gap.code == 409
    assert json.loads(gap.body) == {"ack": 0}
    assert json.loads((await client.send(0, envelopes[:2])).body) == {"ack": 2}
    # A resend of 0..2 (its answer "lost") delivers only 2.
    assert json.loads((await client.send(0, envelopes[:3])).body) == {"ack": 3}
    assert json.loads((await client.send(1, envelopes[1:4])).body) == {"ack": 4}
    assert json.loads((await client.send(0, envelopes[:1])).body) == {"ack": 4}
    since, frames = await client.collect(0, {0, 1, 2, 3})
    finals = [f.message_id for f in frames if f.done]
    assert sorted(finals) == [0, 1, 2, 3]  # each request ran exactly once
    # Nothing else arrives: no duplicate reply is on its way.
    late = await client.recv(since, request_timeout=30)
    assert parse_batch(late.body).messages == ()


async def test_envelopes_reach_a_proxied_socket_once_and_in_order(raw, hows_tunnel):
    kernel = await hows_tunnel.request("POST", "/api/kernels", body=json.dumps({"name": "python3"}))
    kernel_id = kernel.json()["id"]
    client = raw()
    await client.open()
    path = f"/api/kernels/{kernel_id}/channels?session_id={uuid.uuid4().hex}"
    assert (await client.send(0, [OpenEnvelope(1, path, (V1,))])).code == 200
    kernel_session = uuid.uuid4().hex

    def execute(code):
        msg = make_msg("execute_request", {"code": code, "silent": False}, session=kernel_session)
        return BinaryEnvelope(1, encode(msg, V1))

    batch = [execute(f"print({i})") for i in range(1, 5)]
    assert (await client.send(3, batch[2:])).code == 409
    assert json.loads((await client.send(1, batch[:2])).body) == {"ack": 3}
    assert json.loads((await client.send(1, batch)).body) == {"ack": 5}  # 1, 2 again
    since, printed, opened = 0, [], None
    deadline = time.monotonic() + 60
    while len(printed) < 4 and time.monotonic() < deadline:
        response = await client.recv(since)
        parsed = parse_batch(response.body)
        for number, envelope in enumerate(parsed.messages, parsed.seq):
            if number < since:
                continue
            since = number + 1
            if isinstance(envelope, OpenedEnvelope):
                opened = envelope.protocol
            elif isinstance(envelope, BinaryEnvelope):
                msg = decode(envelope.data, V1)
                if msg["header"]["msg_type"] == "stream":
                    printed.append(msg["content"]["text"])
    assert opened == V1
    # In order; a kernel may send a newline as its own stream message.
    assert "".join(printed) == "1\n2\n3\n4\n"
    await client.delete()
    await hows_tunnel.request("DELETE", f"/api/kernels/{kernel_id}")


async def test_a_lost_recv_answer_is_delivered_again(raw, jp_root_dir, jp_http_port, jp_base_url):
    client = raw()
    await client.open()
    await client.send(0, [request_envelope("a", "GET", "/api/status")])
    first = parse_batch((await client.recv(0)).body)
    assert first.messages
    # The client "lost" that answer: asking from the same point gives the same envelopes.
    again = parse_batch((await client.recv(0)).body)
    assert again == first
    # Dropped mid-way on the wire: a raw request whose connection closes as the answer
    # starts arriving.
    await client.send(1, [request_envelope("b", "GET", "/api/status")])
    reader, writer = await asyncio.open_connection("127.0.0.1", jp_http_port)
    writer.write(
        f"GET {jp_base_url}http_over_websocket/polling/{client.session_id}/recv?since=1"
        " HTTP/1.1\r\n"
        f"Host: localhost:{jp_http_port}\r\nAuthorization: token {client.token}\r\n\r\n".encode()
    )
    await writer.drain()
    assert (await reader.read(12)).startswith(b"HTTP/1.1 200")
    writer.close()
    answer = parse_batch((await client.recv(1)).body)
    assert answer.seq == 1
    assert json.loads(answer.messages[0].text)["message_id"] == "b"


async def test_a_send_with_since_carries_the_replies_and_the_waiting_recv_stays(raw):
    client = raw()
    await client.open()
    poll = asyncio.ensure_future(client.recv(0))
    await asyncio.sleep(0.1)  # the recv waits
    sent = await client.send(0, [request_envelope(1, "GET", "/api/status")], since=0)
    assert sent.code == 200
    answer = json.loads(sent.body)
    assert answer["ack"] == 1
    carried = parse_send_answer(sent.body)[1]
    assert carried is not None
    assert carried.seq == 0
    replies = [parse_reply(e.text) for e in carried.messages]
    assert replies[0].message_id == 1
    assert replies[0].status == 200
    assert replies[-1].done
    # The recv does not answer what the send carried: it goes on waiting.
    await asyncio.sleep(0.3)
    assert not poll.done()
    # The next send acknowledges those; its reply comes in its own answer again.
    since = carried.seq + len(carried.messages)
    second = parse_send_answer(
        (await client.send(1, [request_envelope(2, "GET", "/api/status")], since=since)).body
    )
    assert second[0] == 2
    assert second[1] is not None
    assert second[1].seq == since
    assert parse_reply(second[1].messages[0].text).message_id == 2
    assert not poll.done()
    # What no send carries wakes the recv: a reply that comes later than a send waits.
    late = [request_envelope(3, "GET", "/api/status")]
    await client.send(2, late)  # no since: an older client's send
    answer = parse_batch((await asyncio.wait_for(poll, 10)).body)
    ids = [parse_reply(e.text).message_id for e in answer.messages]
    assert 3 in ids
    assert 1 not in ids  # acknowledged by the second send's since


async def test_a_send_with_since_answers_the_envelopes_again_after_a_lost_answer(raw):
    client = raw()
    await client.open()
    first = await client.send(0, [request_envelope("a", "GET", "/api/status")], since=0)
    carried = parse_send_answer(first.body)[1]
    assert carried is not None
    assert carried.messages
    # The answer was "lost": the client sends the same batch again, from the same since.
    again = parse_send_answer(
        (await client.send(0, [request_envelope("a", "GET", "/api/status")], since=0)).body
    )
    assert again[0] == 1
    assert again[1] == carried  # the same envelopes, the request not run twice
    # And a recv from that point gets them too (a client that polls instead).
    assert parse_batch((await client.recv(0)).body).messages == carried.messages


async def test_a_send_with_a_bad_since_is_refused_whole(raw):
    client = raw()
    await client.open()
    for since in ("5", "-1", "x"):
        response = await client.fetch(
            f"/{client.session_id}/send?since={since}",
            "POST",
            encode_batch(0, [encode_envelope(request_envelope(1, "GET", "/api/status"))]),
        )
        assert response.code == 400
    # Nothing of those sends was taken: envelope 0 is still expected.
    assert json.loads((await client.send(0, [])).body) == {"ack": 0}


@pytest.mark.parametrize("jp_server_config", [config(poll_timeout=0.3)])
async def test_a_poll_times_out_empty_and_is_renewed(raw, jp_root_dir):
    client = raw()
    opened = json.loads((await client.open()).body)
    assert opened["poll_timeout"] == 0.3
    started = time.monotonic()
    empty = await client.recv(0)
    assert 0.25 < time.monotonic() - started < 5
    assert parse_batch(empty.body).messages == ()
    # The renewed poll waits, and answers as soon as something arrives.
    poll = asyncio.ensure_future(client.recv(0))
    await asyncio.sleep(0.05)
    await client.send(0, [request_envelope(1, "GET", "/api/status")])
    answer = parse_batch((await poll).body)
    assert json.loads(answer.messages[0].text)["message_id"] == 1


async def test_a_newer_poll_ends_the_older(raw):
    client = raw()
    await client.open()
    older = asyncio.ensure_future(client.recv(0))
    await asyncio.sleep(0.2)
    newer = asyncio.ensure_future(client.recv(0))
    assert parse_batch((await asyncio.wait_for(older, 10)).body).messages == ()
    await client.send(0, [request_envelope(1, "GET", "/api/status")])
    assert parse_batch((await newer).body).messages


@pytest.mark.parametrize(
    "jp_server_config",
    [{"ServerApp": {"jpserver_extensions": EXT, "identity_provider_class": TwoUsers}}],
)
async def test_a_session_belongs_to_the_identity_that_opened_it(raw):
    alice, bob, nobody = raw("alice-token"), raw("bob-token"), raw(None)
    assert (await alice.open()).code == 200
    bob.session_id = nobody.session_id = alice.session_id
    envelope = [request_envelope(1, "GET", "/api/status")]
    for response in (await bob.send(0, envelope), await bob.recv(0), await bob.delete()):
        assert response.code == 404, response
    for response in (await nobody.send(0, envelope), await nobody.recv(0), await nobody.delete()):
        assert response.code == 403, response
    # Alice's session is untouched: nothing of Bob's went in, and it still works.
    assert json.loads((await alice.send(0, envelope)).body) == {"ack": 1}
    _, frames = await alice.collect(0, {1})
    assert frames[0].status == 200
    assert (await nobody.open()).code == 403


@pytest.mark.parametrize(
    "jp_server_config",
    [{"ServerApp": {"jpserver_extensions": EXT, "allow_origin": ALLOWED}}],
)
async def test_cors_preflight_and_credentials(raw):
    client = raw(None)
    preflight = await client.fetch(
        "",
        "OPTIONS",
        headers={
            "Origin": ALLOWED,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
            "Access-Control-Request-Private-Network": "true",
        },
    )
    assert preflight.code == 204
    headers = preflight.headers
    assert headers["Access-Control-Allow-Origin"] == ALLOWED
    assert headers["Access-Control-Allow-Credentials"] == "true"
    assert headers["Access-Control-Allow-Private-Network"] == "true"
    assert "POST" in headers["Access-Control-Allow-Methods"]
    assert "authorization" in headers["Access-Control-Allow-Headers"].lower()
    refused = await client.fetch(
        "/x/recv",
        "OPTIONS",
        headers={
            "Origin": "https://evil.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Private-Network": "true",
        },
    )
    # jupyter_server answers every preflight; the browser refuses what it lacks.
    assert refused.headers.get("Access-Control-Allow-Origin") in (None, ALLOWED)
    assert "Access-Control-Allow-Credentials" not in refused.headers
    assert "Access-Control-Allow-Private-Network" not in refused.headers


@pytest.mark.parametrize(
    "jp_server_config",
    [{"ServerApp": {"jpserver_extensions": EXT, "allow_origin": ALLOWED}}],
)
async def test_cross_origin_requests(raw, hows_token):
    good = raw(hows_token, Origin=ALLOWED)
    opened = await good.open()
    assert opened.code == 200
    assert opened.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert opened.headers["Access-Control-Allow-Credentials"] == "true"
    # jupyter_server lets token-authenticated scripts in from anywhere, but a browser
    # page of another origin gets no CORS answer naming it, so it cannot read a reply.
    evil = raw(hows_token, Origin="https://evil.example")
    answer = await evil.open()
    assert answer.headers.get("Access-Control-Allow-Origin") != "https://evil.example"
    assert "Access-Control-Allow-Credentials" not in answer.headers
    # Without a token (cookies only), another origin is refused outright.
    assert (await raw(None, Origin="https://evil.example").open()).code in (403, 404)


def assert_readable_cross_origin(response, code):
    """A refusal a browser page of the allowed origin can read (not "Failed to fetch")."""
    assert response.code == code, response
    assert response.headers.get("Access-Control-Allow-Origin") == ALLOWED, (code, response.headers)
    assert response.headers.get("Access-Control-Allow-Credentials") == "true"
    assert "message" in json.loads(response.body) or "ack" in json.loads(response.body)


@pytest.mark.parametrize(
    "jp_server_config",
    [
        {
            "ServerApp": {"jpserver_extensions": EXT, "allow_origin": ALLOWED},
            "HttpOverWebSocketApp": {"max_sockets_per_user": 1, "max_message_size": 4096},
        }
    ],
)
async def test_refusals_carry_cors_headers_for_the_allowed_origin(raw, hows_token, caplog):
    wrong = raw("wrong-token", Origin=ALLOWED)
    wrong.session_id = "x"
    caplog.clear()
    for response in (
        await wrong.open(),
        await wrong.send(0, [request_envelope(1, "GET", "/api/status")]),
        await wrong.recv(0),
        await wrong.delete(),
    ):
        assert_readable_cross_origin(response, 403)
        assert "authenticat" in json.loads(response.body)["message"]
    in_query = raw(None, Origin=ALLOWED)
    assert_readable_cross_origin(await in_query.fetch("/x/recv?since=0&token=wrong-token"), 403)
    assert_readable_cross_origin(await in_query.open("?token=wrong-token"), 403)
    # The log names the failed authentication, not a missing XSRF token, nor the token.
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "_xsrf" not in logged
    assert "authenticat" in logged
    assert "wrong-token" not in logged

    good = raw(hows_token, Origin=ALLOWED)
    assert_readable_cross_origin(await good.open("?min_version=99.0.0"), 400)
    assert (await good.open()).code == 200
    assert_readable_cross_origin(await raw(hows_token, Origin=ALLOWED).open(), 429)
    assert_readable_cross_origin(await good.recv(5), 400)
    assert_readable_cross_origin(await good.fetch(f"/{good.session_id}/send", "POST", b"{"), 400)
    assert_readable_cross_origin(await good.send(3, [request_envelope(1, "GET", "/")]), 409)
    big = request_envelope(1, "PUT", "/api/contents/x.txt", body="A" * 8192)
    assert_readable_cross_origin(await good.send(0, [big]), 413)
    lost = raw(hows_token, Origin=ALLOWED)
    lost.session_id = "no-such-session"
    assert_readable_cross_origin(await lost.recv(0), 404)
    assert_readable_cross_origin(await lost.send(0, []), 404)
    assert_readable_cross_origin(await lost.delete(), 404)


async def test_cookie_authenticated_writes_need_the_xsrf_token(raw, hows_server_url, hows_token):
    # Log in as a browser would, keeping the login and _xsrf cookies.
    client = raw(None)
    login = await client.http.fetch(
        hows_server_url + f"?token={hows_token}", follow_redirects=False, raise_error=False
    )
    cookies = "; ".join(c.split(";")[0] for c in login.headers.get_list("Set-Cookie"))
    assert "_xsrf=" in cookies
    xsrf = next(c.split("=", 1)[1] for c in cookies.split("; ") if c.startswith("_xsrf="))
    client.headers["Cookie"] = cookies
    assert (await client.open()).code == 403  # no X-XSRFToken: jupyter_server refuses
    client.headers["X-XSRFToken"] = xsrf
    assert (await client.open()).code == 200


async def test_min_version_too_new_is_refused_with_the_reason(raw):
    response = await raw().open("?min_version=99.0.0")
    assert response.code == 400
    assert "Please upgrade this package" in json.loads(response.body)["message"]


@pytest.mark.parametrize("jp_server_config", [config(polling_buffer_size=256 * 1024)])
async def test_a_slow_poller_holds_bounded_memory(raw, jp_root_dir, jp_serverapp):
    payload = os.urandom(8 * 1024 * 1024)
    (jp_root_dir / "big.bin").write_bytes(payload)
    client = raw()
    await client.open()
    await client.send(0, [request_envelope(1, "GET", "/files/big.bin")])
    (session,) = list(extension(jp_serverapp).registry.polling_sessions)
    await asyncio.sleep(1.0)  # the handler runs until the buffer is full, then waits
    assert 0 < session.outgoing.buffered_bytes <= 256 * 1024 + 100 * 1024
    # Polling drains it, and the download arrives whole.
    _, frames = await client.collect(0, {1})
    body = b"".join(f.data or b"" for f in frames)
    assert body == payload


@pytest.mark.parametrize(
    "jp_server_config", [config(polling_idle_timeout=0.5, polling_buffer_size=65536)]
)
async def test_expiry_releases_requests_and_sockets(raw, hows_tunnel, jp_root_dir, jp_serverapp):
    (jp_root_dir / "big.bin").write_bytes(os.urandom(4 * 1024 * 1024))
    kernel = await hows_tunnel.request("POST", "/api/kernels", body=json.dumps({"name": "python3"}))
    kernel_id = kernel.json()["id"]
    client = raw()
    await client.open()
    kernel_session = uuid.uuid4().hex
    path = f"/api/kernels/{kernel_id}/channels?session_id={kernel_session}"
    await client.send(
        0, [OpenEnvelope(1, path, (V1,)), request_envelope(7, "GET", "/files/big.bin")]
    )
    ext = extension(jp_serverapp)
    (session,) = list(ext.registry.polling_sessions)
    deadline = time.monotonic() + 20
    while session.channels.get(1) is None or session.channels[1].upstream is None:
        assert time.monotonic() < deadline, session.channels
        await client.recv(0)  # stay alive (acknowledging nothing) until the kernel is up
        await asyncio.sleep(0.1)
    channel = session.channels[1]
    upstream = channel.upstream
    assert upstream is not None
    assert session.tunnel.in_flight == 1  # the download, stuck on the full buffer
    # Expiry cancels in-flight requests itself (one not stuck on the buffer, e.g. a slow
    # upstream, would not notice the buffer closing).
    (download,) = list(session.tunnel._in_flight)
    open_sessions = ZMQChannelsWebsocketConnection._open_sessions
    assert f"{kernel_id}:{kernel_session}" in open_sessions  # the kernel's own handler
    assert session in ext.registry.sockets
    assert channel in ext.registry.sockets
    # The client stops polling: after the idle timeout everything is released.
    deadline = time.monotonic() + 10
    while session.closed is None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert session.closed is not None
    assert session.closed[0] == 4408
    await asyncio.sleep(0.2)
    assert session.tunnel.in_flight == 0
    assert download.cancelled()
    protocol = upstream.protocol
    assert protocol is None or protocol.client_terminated or protocol.server_terminated
    assert session not in ext.registry.sockets
    assert channel not in ext.registry.sockets
    for _ in range(100):  # the server's kernel handler sees its client leave
        if f"{kernel_id}:{kernel_session}" not in open_sessions:
            break
        await asyncio.sleep(0.05)
    assert f"{kernel_id}:{kernel_session}" not in open_sessions
    assert len(ext.registry.polling_sessions) == 0
    assert (await client.recv(0)).code == 404
    await hows_tunnel.request("DELETE", f"/api/kernels/{kernel_id}")


async def test_refused_channels_say_why(raw, hows_tunnel):
    client = raw()
    await client.open()
    await client.send(
        0,
        [
            OpenEnvelope(1, "/api/kernels/no-such-kernel/channels"),
            OpenEnvelope(2, "/api/status"),
            OpenEnvelope(3, "/../etc/passwd"),
        ],
    )
    closed = {}
    since = 0
    while len(closed) < 3:
        batch = parse_batch((await client.recv(since)).body)
        for number, envelope in enumerate(batch.messages, batch.seq):
            since = number + 1
            assert isinstance(envelope, ClosedEnvelope)
            closed[envelope.channel] = envelope.code
    assert closed == {1: 4404, 2: 4400, 3: 4400}


async def test_polled_channels_open_through_the_one_dial(raw, upstream_urls, jp_base_url):
    # The seam proxied_ws tests watch sees a polled channel's upstream too: the path
    # joined to base_url, through the private entrance; a refused path is never dialled.
    client = raw()
    await client.open()
    await client.send(
        0, [OpenEnvelope(1, "/../etc/passwd"), OpenEnvelope(2, "/api/events/subscribe")]
    )
    seen: dict[int, object] = {}
    since = 0
    while 2 not in seen:
        batch = parse_batch((await client.recv(since)).body)
        for number, envelope in enumerate(batch.messages, batch.seq):
            since = number + 1
            seen.setdefault(envelope.channel, envelope)
    assert isinstance(seen[1], ClosedEnvelope)
    assert isinstance(seen[2], OpenedEnvelope)
    assert upstream_urls == [
        "ws://relay.invalid" + jp_base_url.rstrip("/") + "/api/events/subscribe"
    ]


async def test_malformed_sends_are_400(raw):
    client = raw()
    await client.open()
    for body in (
        b"not json",
        b"[]",
        b'{"seq": -1, "messages": []}',
        b'{"seq": 0, "messages": [{"channel": "x", "text": "a"}]}',
    ):
        response = await client.fetch(f"/{client.session_id}/send", "POST", body)
        assert response.code == 400, body
    # A bad tunnel message on channel 0 gets the tunnel's own error reply.
    await client.send(0, [TextEnvelope(0, "not json")])
    batch = parse_batch((await client.recv(0)).body)
    assert json.loads(batch.messages[0].text) == {
        "status": 400,
        "statusText": "JSON input is required.",
        "done": True,
    }
    assert (
        encode_envelope(BinaryEnvelope(1, b"\x00"))
        == b'{"channel":1,"binary":"' + base64.b64encode(b"\x00") + b'"}'
    )


@pytest.mark.parametrize("jp_server_config", [config(polling_buffer_size=65536)])
async def test_server_shutdown_ends_polling_sessions(raw, jp_root_dir, jp_serverapp):
    (jp_root_dir / "big.bin").write_bytes(os.urandom(2 * 1024 * 1024))
    client = raw()
    await client.open()
    await client.send(0, [request_envelope(1, "GET", "/files/big.bin")])
    ext = extension(jp_serverapp)
    (session,) = list(ext.registry.polling_sessions)
    await asyncio.sleep(0.3)
    assert session.tunnel.in_flight == 1
    await ext.stop_extension()
    assert session.closed is not None
    assert session.closed[0] == 1001
    assert session.tunnel.in_flight == 0
    assert len(ext.registry.polling_sessions) == 0
    assert (await client.recv(0)).code == 404


@pytest.mark.parametrize(
    "jp_server_config",
    [
        config(
            max_sockets_per_user=2,
            max_requests_in_flight=1,
            allowed_paths=["/api/(status|kernels)", "/files/"],
        )
    ],
)
async def test_the_tunnels_limits_apply_to_polling_sessions(raw, hows_tunnel, jp_root_dir):
    # hows_tunnel holds one of the two sockets allowed; this session is the second.
    (jp_root_dir / "big.bin").write_bytes(os.urandom(4 * 1024 * 1024))
    client = raw()
    assert (await client.open()).code == 200
    third = raw()
    over = await third.open()
    assert over.code == 429
    assert "max_sockets_per_user" in json.loads(over.body)["message"]
    # A proxied channel would be one more socket: refused with 4429.
    kernel = await hows_tunnel.request("POST", "/api/kernels", body=json.dumps({"name": "python3"}))
    path = f"/api/kernels/{kernel.json()['id']}/channels"
    await client.send(
        0,
        [
            OpenEnvelope(1, path),
            OpenEnvelope(2, "/api/contents/x/channels"),
            request_envelope(1, "GET", "/files/big.bin"),
            request_envelope(2, "GET", "/api/status"),
            request_envelope(3, "GET", "/api/contents"),
        ],
    )
    statuses, closed, since = {}, {}, 0
    while len(closed) < 2 or len(statuses) < 3:
        batch = parse_batch((await client.recv(since)).body)
        for number, envelope in enumerate(batch.messages, batch.seq):
            since = number + 1
            if isinstance(envelope, ClosedEnvelope):
                closed[envelope.channel] = envelope.code
            elif isinstance(envelope, TextEnvelope):
                frame = json.loads(envelope.text)
                if "status" in frame:
                    statuses[frame["message_id"]] = frame["status"]
    assert closed == {1: 4429, 2: 4403}  # the socket limit; allowed_paths
    assert statuses == {1: 200, 2: 429, 3: 403}  # in flight; allowed_paths
    await hows_tunnel.request("DELETE", f"/api/kernels/{kernel.json()['id']}")


@pytest.mark.parametrize("jp_server_config", [config(max_sockets_per_user=3)])
async def test_one_send_cannot_make_the_server_dial_many_upstream_sockets(raw, captured_access):
    """Opens over the session's channel cap are refused before anything is dialled."""
    client = raw()
    assert (await client.open()).code == 200
    opens = [OpenEnvelope(number, "/api/events/subscribe") for number in range(1, 51)]
    assert (await client.send(0, opens)).code == 200
    closed, opened, since = {}, set(), 0
    while len(closed) + len(opened) < 50:
        batch = parse_batch((await client.recv(since)).body)
        for number, envelope in enumerate(batch.messages, batch.seq):
            since = number + 1
            if isinstance(envelope, ClosedEnvelope):
                closed[envelope.channel] = (envelope.code, envelope.reason)
            elif isinstance(envelope, OpenedEnvelope):
                opened.add(envelope.channel)
    # The session is one of the user's 3 sockets: 2 channels open; the third was refused
    # by the per-user count before its dial; the other 47 by the session's cap.
    assert len(opened) == 2
    assert all(code == 4429 for code, _ in closed.values())
    undialled = [c for c, (_, reason) in closed.items() if "polling session" in reason]
    assert len(undialled) == 47
    dialled = [line for line in captured_access if "/api/events/subscribe" in line]
    assert len(dialled) <= 2, dialled  # access lines of sockets still open may come later
    await client.delete()


async def test_the_host_check_applies(raw, jp_http_port):
    client = raw(Host="attacker.example")
    assert (await client.open()).code == 403
