"""Header smuggling inside tunnelled requests and relayed sockets, vs the same requests directly.

A tunnelled request's headers are JSON strings, not bytes on a connection: there is no
framing to confuse, but a client could try to make the handler see more than it could
directly. What must hold, for each header a client sends inside the tunnel:

- CR, LF, NUL or another control character in a name or value: 400 for that message,
  and the tunnel goes on serving;
- ``Content-Length`` (duplicated, conflicting, any case) and ``Transfer-Encoding``
  describe nothing: the handler sees the whole body and its true length;
- ``Host``, ``X-Forwarded-*``, ``X-Real-Ip``, ``X-Scheme``, ``Forwarded``: the handler
  sees the address, scheme and host it sees directly (jupyter_server trusts none of
  them by default);
- ``Cookie``, ``Authorization``: the tunnel's own credentials, never the client's;
- upgrade headers: no WebSocket inside a tunnelled request (the same 400 as a plain GET
  of that socket directly).

The same for the headers of a ``proxied_ws`` upgrade (compared on an echoing socket).
"""

from __future__ import annotations

import json

import pytest
import tornado
from support.attack import (
    MIRROR_PATH,
    debug_logs,
    raw_request,
    register_mirror,
    secrets_in,
)
from support.echo_socket import EchoSocket, register_echo_socket
from support.users import TwoUsers

from jupyter_http_over_ws.client._connect import Endpoint
from jupyter_http_over_ws.wire.protocol import parse_reply

pytestmark = pytest.mark.timeout(120)

BODY = "0\r\n\r\nPOST /smuggled HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"


class RawTunnel:
    """A tunnel socket fed JSON text by hand (duplicate keys, any header name)."""

    def __init__(self, connection) -> None:
        self.connection = connection
        self.count = 0

    async def request(self, text: str) -> tuple[int, dict, bytes]:
        """Send one hand-written message (``{id}`` is replaced); its status, headers, body."""
        self.count += 1
        self.connection.write_message(text.replace("{id}", str(self.count)))
        status, headers, body = None, {}, b""
        while True:
            frame = parse_reply(await self.connection.read_message())
            if frame.status is not None:
                status, headers = frame.status, frame.headers or {}
            body += frame.data or b""
            if frame.done:
                assert frame.message_id in (self.count, None)
                return status, headers, body


def message(method: str, path: str, headers: str = "{}", body: str = "") -> str:
    fields = [
        '"message_id": {id}',
        f'"method": {json.dumps(method)}',
        f'"path": {json.dumps(path)}',
        f'"headers": {headers}',
        f'"body": {json.dumps(body)}',
    ]
    return "{" + ", ".join(fields) + "}"


@pytest.fixture
def tunnel(hows_server_url, hows_token, jp_serverapp, jp_base_url, jp_asyncio_loop):
    register_mirror(jp_serverapp, jp_base_url)
    connection = jp_asyncio_loop.run_until_complete(
        Endpoint(hows_server_url, token=hows_token).open("http_over_websocket")
    )
    with debug_logs() as lines:
        yield RawTunnel(connection)
    connection.close()
    assert secrets_in(lines, [hows_token]) == []


async def direct_mirror(port, base_url, token, method, headers, body=b""):
    sent = [("Host", f"localhost:{port}"), ("Authorization", f"token {token}"), *headers]
    response = await raw_request(port, method, f"{base_url}{MIRROR_PATH}".encode(), sent, body)
    return response.status, json.loads(response.body) if response.status == 200 else None


BAD_HEADERS = {
    "CRLF in a value": '{"X-A": "a\\r\\nX-Injected: 1"}',
    "LF in a value": '{"X-A": "a\\nX-Injected: 1"}',
    "CR in a value": '{"X-A": "a\\rX-Injected: 1"}',
    "NUL in a value": '{"X-A": "a\\u0000b"}',
    "obs-fold": '{"X-A": "a\\r\\n b"}',
    "CRLF in a name": '{"X-A\\r\\nX-Injected": "1"}',
    "colon in a name": '{"X-Injected: 1\\r\\nX-A": "1"}',
    "space in a name": '{"X A": "1"}',
    "empty name": '{"": "1"}',
    "non-ASCII name": '{"X-\\u00e9": "1"}',
    "CRLF in a forbidden name": '{"Host\\r\\nX-Injected": "1"}',
}


async def test_control_characters_in_headers_are_refused_per_message(tunnel):
    for name, headers in BAD_HEADERS.items():
        status, _, _ = await tunnel.request(message("GET", MIRROR_PATH, headers))
        assert status == 400, name
    status, _, body = await tunnel.request(message("GET", MIRROR_PATH))
    assert status == 200
    assert not any("injected" in h[0] for h in json.loads(body)["headers"])


@pytest.mark.parametrize(
    "headers",
    [
        '{"Content-Length": "3"}',
        '{"Content-Length": "3", "Content-Length": "9999"}',
        '{"content-length": "3", "CONTENT-LENGTH": "70"}',
        '{"Content-Length": "-1"}',
        '{"Transfer-Encoding": "chunked"}',
        '{"Transfer-Encoding": "chunked", "Content-Length": "3"}',
        '{"transfer-encoding": "gzip, chunked"}',
        '{"TE": "trailers", "Trailer": "X-A", "Expect": "100-continue"}',
    ],
)
async def test_framing_headers_describe_nothing(tunnel, headers):
    status, _, body = await tunnel.request(message("POST", MIRROR_PATH, headers, BODY))
    assert status == 200
    seen = json.loads(body)
    assert seen["body"] == BODY
    names = [name for name, _ in seen["headers"]]
    assert names.count("content-length") == 1
    assert dict(seen["headers"])["content-length"] == str(len(BODY))
    assert not {"transfer-encoding", "te", "trailer", "expect"} & set(names)


FORWARDING = {
    "Host": "evil.example",
    "X-Forwarded-For": "203.0.113.9",
    "X-Forwarded-Host": "evil.example",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Port": "443",
    "X-Forwarded-Prefix": "/elsewhere",
    "X-Real-Ip": "203.0.113.9",
    "X-Scheme": "https",
    "Forwarded": "for=203.0.113.9;proto=https;host=evil.example",
    "X-Original-Url": "/elsewhere",
    "X-Rewrite-Url": "/elsewhere",
}


async def test_forwarding_headers_change_nothing_the_handler_sees(
    tunnel, jp_http_port, jp_base_url, hows_token
):
    for name, value in FORWARDING.items():
        status, _, body = await tunnel.request(
            message("GET", MIRROR_PATH, json.dumps({name: value}))
        )
        assert status == 200, name
        tunnelled = json.loads(body)
        extra = [] if name == "Host" else [(name, value)]
        direct_status, direct = await direct_mirror(
            jp_http_port, jp_base_url, hows_token, "GET", extra
        )
        assert direct_status == 200, name
        # (The user's name is not compared: a token without a login cookie is a new
        # anonymous user on each request, directly too.)
        for fact in ("remote_ip", "protocol", "host", "uri"):
            assert tunnelled[fact] == direct[fact], (name, fact)


async def test_credentials_inside_cannot_replace_the_tunnels(tunnel, hows_token):
    for headers in [
        '{"Cookie": "_xsrf=x; username-localhost-1=forged"}',
        '{"cookie": "a=b", "COOKIE": "c=d"}',
        '{"Authorization": "token forged"}',
        '{"authorization": "Basic Zm9vOmJhcg==", "Authorization": "token forged"}',
        '{"Proxy-Authorization": "token forged"}',
    ]:
        status, _, body = await tunnel.request(message("GET", MIRROR_PATH, headers))
        assert status == 200, headers
        seen = dict(json.loads(body)["headers"])
        assert "cookie" not in seen, headers
        assert seen["authorization"] == f"token {hows_token}", headers
        assert "proxy-authorization" not in seen


async def test_no_websocket_upgrade_inside_a_tunnelled_request(
    tunnel, jp_http_port, jp_base_url, hows_token
):
    upgrade = json.dumps(
        {
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version": "13",
        }
    )
    status, _, _ = await tunnel.request(message("GET", "api/events/subscribe", upgrade))
    direct = await raw_request(
        jp_http_port,
        "GET",
        f"{jp_base_url}api/events/subscribe".encode(),
        [("Host", f"localhost:{jp_http_port}"), ("Authorization", f"token {hows_token}")],
    )
    assert status == direct.status == 400


@pytest.mark.parametrize(
    "jp_server_config",
    [
        {
            "ServerApp": {
                "jpserver_extensions": {"jupyter_http_over_ws": True},
                "identity_provider_class": TwoUsers,
            }
        }
    ],
)
async def test_another_users_token_inside_is_ignored(hows_server_url, jp_serverapp, jp_base_url):
    register_mirror(jp_serverapp, jp_base_url)
    connection = await Endpoint(hows_server_url, token="alice-token").open("http_over_websocket")
    tunnel = RawTunnel(connection)
    for headers in ['{"Authorization": "token bob-token"}', '{"authorization": "token bob-token"}']:
        status, _, body = await tunnel.request(message("GET", MIRROR_PATH, headers))
        assert status == 200
        assert json.loads(body)["user"] == "alice"
    connection.close()


async def test_proxied_ws_upgrade_headers_change_nothing_upstream(
    hows_server_url, jp_serverapp, jp_http_port, jp_base_url, hows_token
):
    """The relayed socket sees the address, scheme and host a direct upgrade sees."""
    path = register_echo_socket(jp_serverapp, jp_base_url, "hows-attack-echo")
    forged = [(name, value) for name, value in FORWARDING.items() if name != "Host"]
    auth = [("Host", f"localhost:{jp_http_port}"), ("Authorization", f"token {hows_token}")]
    with debug_logs() as lines:
        for name, value in forged:
            for target in (path, "/http_over_websocket/proxied_ws" + path):
                response = await raw_request(
                    jp_http_port,
                    "GET",
                    (jp_base_url.rstrip("/") + target).encode(),
                    [*auth, (name, value)],
                    upgrade=True,
                )
                assert response.status == 101, (name, target)
            await eventually_two(EchoSocket.instances)
            direct, relayed = EchoSocket.instances[-2:]
            for fact in ("remote_ip", "protocol", "host"):
                assert getattr(relayed.request, fact) == getattr(direct.request, fact), name
            # The relay's own X-Real-Ip/X-Scheme (for its private entrance) carry the
            # client's real address and scheme; the forged values never arrive.
            assert value not in relayed.request.headers.get_list(name), name
            EchoSocket.instances.clear()
    assert secrets_in(lines, [hows_token]) == []


async def eventually_two(instances: list) -> None:
    from support.waiting import eventually

    await eventually(lambda: len(instances) >= 2)


FOREIGN = "https://evil.example"


@pytest.mark.parametrize(
    "jp_server_config",
    [
        {
            "ServerApp": {
                "jpserver_extensions": {"jupyter_http_over_ws": True},
                "tornado_settings": {"cross_origin_protection": True},
            }
        }
    ],
)
async def test_fetch_metadata_comes_from_the_upgrade_only(
    hows_server_url, jp_serverapp, jp_http_port, jp_base_url, hows_token
):
    """``Sec-*`` headers are the browser's (a page cannot set them): never the client's.

    With Tornado's ``cross_origin_protection``, a write from a foreign page is refused
    directly (its browser sends ``Origin`` and cannot forge ``Sec-Fetch-Site``); through
    a tunnel that page opened (with the token, so from any origin), a
    ``Sec-Fetch-Site: same-origin`` of its own must not make it pass.
    """
    register_mirror(jp_serverapp, jp_base_url)
    direct = await raw_request(
        jp_http_port,
        "POST",
        f"{jp_base_url}{MIRROR_PATH}".encode(),
        [
            ("Host", f"localhost:{jp_http_port}"),
            ("Authorization", f"token {hows_token}"),
            ("Origin", FOREIGN),
        ],
        b"x",
    )
    connection = await Endpoint(hows_server_url, token=hows_token, origin=FOREIGN).open(
        "http_over_websocket"
    )
    tunnel = RawTunnel(connection)
    for headers in [
        "{}",
        '{"Sec-Fetch-Site": "same-origin"}',
        '{"sec-fetch-site": "none", "Sec-Fetch-Mode": "navigate"}',
    ]:
        status, _, _ = await tunnel.request(message("POST", MIRROR_PATH, headers, "x"))
        assert status == direct.status, headers
    # Tornado 6.6 added cross_origin_protection (Python 3.10 still gets 6.5, where the
    # setting does nothing and both answers are 200).
    assert direct.status == (403 if tornado.version_info >= (6, 6) else 200)
    connection.close()


async def test_credentials_in_a_tunnelled_path_are_dropped(tunnel, hows_token):
    """A path's ``?token=`` neither authenticates the request nor reaches a log line.

    Credentials come from the upgrade (as for ``Authorization`` and ``Cookie`` inside);
    a refused request's log line (Tornado's summary, at WARNING) names the path it
    was given. The tunnel fixture fails if the token is in any log line.
    """
    for query, kept in [
        ("token=forged&x=1", "?x=1"),
        (f"x=1&token={hows_token}", "?x=1"),
        (f"%74oken={hows_token}", ""),
        ("jupyter_http_over_ws_auth_url=http%3A%2F%2Flocalhost%2F%3Ftoken%3Dforged", ""),
    ]:
        status, _, body = await tunnel.request(message("GET", f"{MIRROR_PATH}?{query}"))
        assert status == 200, query
        assert json.loads(body)["uri"].endswith(f"/{MIRROR_PATH}{kept}"), query
    status, _, _ = await tunnel.request(
        message("GET", f"api/contents/missing.txt?token={hows_token}")
    )
    assert status == 404
