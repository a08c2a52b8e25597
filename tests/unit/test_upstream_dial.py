"""The one upstream dial, with the connection faked: path, address, headers, refusals."""

from __future__ import annotations

import socket
from types import SimpleNamespace

import pytest
from tornado.httpclient import HTTPClientError
from tornado.simple_httpclient import HTTPTimeoutError
from tornado.websocket import WebSocketError

from jupyter_http_over_ws import upstream
from jupyter_http_over_ws.upgrade import UpgradeContext
from jupyter_http_over_ws.upstream import UpstreamDialer, UpstreamRefusedError, relay_headers
from jupyter_http_over_ws.wire.protocol import PathPolicy

UPGRADE = UpgradeContext(
    base_url="/base/",
    headers=(("Host", "example.org"), ("Authorization", "token t"), ("Origin", "https://a.b")),
    remote_ip="203.0.113.7",
    protocol="https",
)

ENTRANCE = SimpleNamespace(resolver=object())  # what relay_target reads of the entrance


def settings(allowed=()):
    return SimpleNamespace(
        path_policy=PathPolicy.compile(allowed), max_message_size=4096, connect_timeout=3.0
    )


@pytest.fixture
def dials(monkeypatch):
    """Every call the dial makes to connect_upstream; ``dials.outcome`` is its answer."""
    calls = []

    async def fake(url, headers, subprotocols, **kwargs):
        calls.append(SimpleNamespace(url=url, headers=headers, protocols=subprotocols, **kwargs))
        if isinstance(fake.outcome, BaseException):
            raise fake.outcome
        return fake.outcome

    fake.outcome = "upstream"
    calls_view = SimpleNamespace(calls=calls, fake=fake)
    monkeypatch.setattr(upstream, "connect_upstream", fake)
    return calls_view


def dialer(allowed=(), entrance=ENTRANCE, stream=None):
    return UpstreamDialer(UPGRADE, settings(allowed), entrance=entrance, stream=stream)


async def test_dials_the_entrance_with_the_clients_identity(dials):
    assert await dialer().dial("/api/x%2541", ["p.a", "p.b"], query="a=1") == "upstream"
    (call,) = dials.calls
    assert call.url == "ws://relay.invalid/base/api/x%2541?a=1"
    assert call.protocols == ["p.a", "p.b"]
    assert call.resolver is ENTRANCE.resolver
    assert call.max_message_size == 4096
    assert call.connect_timeout == 3.0
    assert dict(call.headers) == {
        "Host": "example.org",
        "Authorization": "token t",
        "Origin": "https://a.b",
        "X-Real-Ip": "203.0.113.7",
        "X-Scheme": "https",
    }


@pytest.mark.parametrize(
    ("path", "query", "sent"),
    [
        # proxied_ws passes its own query; a polling channel's path carries it.
        ("/api/k/channels", "session_id=s&token=t", "/api/k/channels?session_id=s"),
        ("/api/k/channels?token=t&session_id=s", "", "/api/k/channels?session_id=s"),
        (
            "/api/k/channels",
            "jupyter_http_over_ws_auth_url=http%3A%2F%2Fh%2F%3Ftoken%3Dt",
            "/api/k/channels",
        ),
    ],
)
async def test_credentials_never_travel_in_the_upstream_url(dials, path, query, sent):
    await dialer().dial(path, [], query=query)
    (call,) = dials.calls
    assert call.url == "ws://relay.invalid/base" + sent
    # They travel as the upgrade's header (upgrade.capture_upgrade puts ?token= there).
    assert call.headers["Authorization"] == "token t"


async def test_without_an_entrance_it_dials_the_clients_own_local_address(dials):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    try:
        port = listener.getsockname()[1]
        stream = SimpleNamespace(socket=listener)
        await dialer(entrance=None, stream=stream).dial("api/y", [])
    finally:
        listener.close()
    (call,) = dials.calls
    assert call.url == f"ws://127.0.0.1:{port}/base/api/y"
    assert call.resolver is None
    assert "X-Real-Ip" not in call.headers  # only the private entrance trusts these
    assert "X-Scheme" not in call.headers


@pytest.mark.parametrize(
    ("path", "status"),
    [("/../etc/passwd", 400), ("//evil.example/x", 400), ("http://evil.example/", 400)],
)
async def test_a_bad_path_is_refused_before_anything_is_dialled(dials, path, status):
    with pytest.raises(UpstreamRefusedError) as refused:
        await dialer().dial(path, [])
    assert refused.value.status == status
    assert refused.value.cause is None
    assert dials.calls == []


async def test_allowed_paths_apply_before_dialling(dials):
    with pytest.raises(UpstreamRefusedError) as refused:
        await dialer(allowed=["/api/kernels"]).dial("/api/events/subscribe", [])
    assert refused.value.status == 403
    assert "allowed_paths" in refused.value.reason
    assert dials.calls == []
    await dialer(allowed=["/api/kernels"]).dial("/api/kernels/k/channels", [])
    assert len(dials.calls) == 1


OWN_ENDPOINTS = [
    "/http_over_websocket",
    "/http_over_websocket/",
    "/http_over_websocket?x=1",
    "/http_over_websocket/proxied_ws/http_over_websocket/proxied_ws/api/kernels/k/channels",
    "/http_over_websocket/diagnose",
    "/http_over_websocket/polling/abc/recv",
    "/http_over_websocket/static/index.js",
    "http_over_websocket/proxied_ws/api/x",  # no leading slash
    "/HTTP_OVER_WEBSOCKET/proxied_ws/api/x",
    "/http%5Fover%5Fwebsocket/proxied_ws/api/x",
    "/http_over_websocket%2Fproxied_ws/api/x",
    "/%2568ttp_over_websocket/proxied_ws/api/x",  # encoded twice
    "/%252568ttp_over_websocket/proxied_ws/api/x",  # three times
    "/\uff48ttp_over_websocket/proxied_ws/api/x",  # full-width h
    "/%EF%BD%88ttp_over_websocket/proxied_ws/api/x",  # the same, percent-encoded
    "/http_over_websocket;a=b/proxied_ws/api/x",
    "/http_over_websocket./proxied_ws/api/x",
    "/http_over_websocket%00/proxied_ws/api/x",
]


@pytest.mark.parametrize("path", OWN_ENDPOINTS)
async def test_the_extensions_own_endpoints_are_never_dialled(dials, path):
    """Issue 11, finding 3: a relay to a relay would multiply one socket, uncounted."""
    admitted = []
    with pytest.raises(UpstreamRefusedError) as refused:
        await dialer().dial(path, [], admit=lambda: admitted.append(path))
    assert refused.value.status == 403
    assert refused.value.reason == upstream.OWN_ENDPOINT_REFUSAL
    assert refused.value.cause is None
    assert dials.calls == []
    assert admitted == []  # refused before it is counted, like any refused path


@pytest.mark.parametrize(
    "path",
    [
        "/api/kernels/http_over_websocket/channels",  # only the first segment names ours
        "/http_over_websocket_other/x",
        "/files/http_over_websocket",
        "/api/contents?path=http_over_websocket",
    ],
)
async def test_paths_that_only_mention_the_extension_are_dialled(dials, path):
    await dialer().dial(path, [])
    assert len(dials.calls) == 1


def test_names_own_endpoint_reads_a_normalised_target():
    assert upstream.names_own_endpoint("/http_over_websocket/proxied_ws/x")
    assert upstream.names_own_endpoint("//http_over_websocket")  # empty segments skipped
    assert not upstream.names_own_endpoint("/")
    assert not upstream.names_own_endpoint("/api/status?http_over_websocket")


async def test_admission_comes_after_the_path_checks_and_before_the_dial(dials):
    order = []

    def admit():
        order.append(("admit", len(dials.calls)))

    await dialer(allowed=["/api/kernels"]).dial("/api/kernels/k/channels", [], admit=admit)
    assert order == [("admit", 0)]  # nothing dialled yet when admitted
    assert len(dials.calls) == 1
    with pytest.raises(UpstreamRefusedError):  # a refused path is not counted
        await dialer(allowed=["/api/kernels"]).dial("/api/events/subscribe", [], admit=admit)
    assert order == [("admit", 0)]


async def test_a_refused_admission_dials_nothing(dials):
    def over_limit():
        raise upstream.AdmissionRefusedError(4429, "Too many tunnel sockets for this user")

    with pytest.raises(upstream.AdmissionRefusedError) as refused:
        await dialer().dial("/api/kernels/k/channels", [], admit=over_limit)
    assert (refused.value.code, refused.value.reason) == (
        4429,
        "Too many tunnel sockets for this user",
    )
    assert dials.calls == []


async def test_no_address_to_dial_is_a_502_with_the_reason(dials):
    stream = SimpleNamespace(socket=None)  # e.g. a server on a Unix socket
    with pytest.raises(UpstreamRefusedError) as refused:
        await dialer(entrance=None, stream=stream).dial("/api/x", [])
    assert refused.value.status == 502
    assert "cannot relay WebSockets" in refused.value.reason
    assert dials.calls == []


@pytest.mark.parametrize(
    ("error", "status", "reason", "has_cause"),
    [
        (HTTPClientError(404), 404, "upstream refused the WebSocket", True),
        (HTTPClientError(403), 403, "upstream refused the WebSocket", True),
        (HTTPClientError(302), 400, "upstream refused the WebSocket", True),
        (HTTPClientError(599), 502, "upstream refused the WebSocket", True),
        (HTTPTimeoutError("Timeout"), 504, "upstream refused the WebSocket", True),
        (WebSocketError("Non-websocket response"), 400, "not a WebSocket endpoint", False),
        (ConnectionRefusedError("refused"), 502, "cannot reach the upstream WebSocket", True),
    ],
)
async def test_every_failure_is_one_refusal_with_its_status(
    dials, error, status, reason, has_cause
):
    dials.fake.outcome = error
    with pytest.raises(UpstreamRefusedError) as refused:
        await dialer().dial("/api/x", [])
    assert (refused.value.status, refused.value.reason) == (status, reason)
    assert (refused.value.cause is error) is has_cause


def test_relay_headers_without_a_remote_address():
    context = UpgradeContext(base_url="/", headers=(), remote_ip=None, protocol="http")
    assert dict(relay_headers(context, through_entrance=True)) == {"X-Scheme": "http"}
    assert dict(relay_headers(context, through_entrance=False)) == {}
