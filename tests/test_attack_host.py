"""DNS rebinding: every ``Host`` a rebinding page could send, on every endpoint, vs directly.

A page on ``evil.example`` (re-resolved to 127.0.0.1) talks to the server under a
foreign ``Host``. jupyter_server refuses non-local names (``check_host``); each of the
extension's endpoints must accept exactly the ``Host`` values the server's own API and
WebSockets accept, and refuse the others with the same status, before anything is
dialled. A difference in either direction is a finding.
"""

from __future__ import annotations

import json

import pytest
from support.attack import debug_logs, raw_request, secrets_in

pytestmark = pytest.mark.timeout(120)

#: ``Host`` values a rebinding page, a proxy or a confused client may present (``{port}``
#: is the server's); a list is several ``Host`` headers in one request.
HOSTS: list[str | list[str]] = [
    "localhost:{port}",
    "127.0.0.1:{port}",
    "[::1]:{port}",
    "127.0.0.2:{port}",
    "localhost",
    "evil.example",
    "evil.example:{port}",
    "localhost.evil:{port}",
    "localhost.:{port}",
    "127.0.0.1.:{port}",
    "LOCALHOST:{port}",
    "[::ffff:127.0.0.1]:{port}",
    "[0:0:0:0:0:0:0:1]:{port}",
    "0x7f.0.0.1:{port}",
    "2130706433:{port}",
    "127.1:{port}",
    "localhost:{port}@evil.example",
    "evil.example#@localhost:{port}",
    "localhost:{port}:80",
    "localhost:evil",
    "localhost%2eevil.example",
    "",
    ["localhost:{port}", "evil.example"],
    ["evil.example", "localhost:{port}"],
]

KERNEL_LIKE_SOCKET = "api/events/subscribe"  # a WebSocket of the server's own, no kernel needed
EXTENSION = {"jupyter_http_over_ws": True}
SHORT_POLLS = {"poll_timeout": 0.05}


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": EXTENSION}, "HttpOverWebSocketApp": SHORT_POLLS}


def host_headers(host: str | list[str], port: int) -> list[tuple[str, str]]:
    values = [host] if isinstance(host, str) else host
    return [("Host", value.format(port=port)) for value in values]


@pytest.fixture
def logs(jp_serverapp):
    with debug_logs() as lines:
        yield lines
    token = str(jp_serverapp.identity_provider.token)
    assert secrets_in(lines, [token]) == []


async def outcomes(port, base_url, token, host, session_id):
    """Status of the same request under ``host``: directly and on each endpoint."""
    auth = [("Authorization", f"token {token}")]
    headers = host_headers(host, port)

    async def plain(method, path, body=b""):
        target = (base_url + path).encode()
        return (await raw_request(port, method, target, headers + auth, body)).status

    async def upgrade(path, credentials=True):
        target = (base_url + path).encode()
        sent = headers + (auth if credentials else [])
        return (await raw_request(port, "GET", target, sent, upgrade=True)).status

    polling = "http_over_websocket/polling"
    return {
        "direct api": await plain("GET", "api/status"),
        "direct websocket": await upgrade(KERNEL_LIKE_SOCKET),
        "tunnel": await upgrade("http_over_websocket"),
        "diagnose": await upgrade("http_over_websocket/diagnose", credentials=False),
        "proxied_ws": await upgrade("http_over_websocket/proxied_ws/" + KERNEL_LIKE_SOCKET),
        "polling open": await plain("POST", polling, b"{}"),
        "polling send": await plain(
            "POST", f"{polling}/{session_id}/send", b'{"seq": 0, "messages": []}'
        ),
        "polling recv": await plain("GET", f"{polling}/{session_id}/recv?since=0"),
    }


@pytest.mark.parametrize("jp_base_url", ["/a%40b/", "/user/alice/"])  # pytest-jupyter's, a hub's
async def test_every_endpoint_takes_the_hosts_the_server_takes(
    hows_server_url, jp_http_port, jp_base_url, hows_token, upstream_urls, logs
):
    port = jp_http_port
    good = [("Host", f"localhost:{port}"), ("Authorization", f"token {hows_token}")]
    opened = await raw_request(
        port, "POST", f"{jp_base_url}http_over_websocket/polling".encode(), good, b"{}"
    )
    assert opened.status == 200
    session_id = json.loads(opened.body)["session_id"]

    differences = {}
    seen = set()
    for host in HOSTS:
        got = await outcomes(port, jp_base_url, hows_token, host, session_id)
        seen.add(got["direct api"])
        accepted = got["direct api"] == 200
        # Tornado before 6.5 read an empty Host as 127.0.0.1 (HTTPServerRequest.host), so
        # a plain request with one is answered, while its WebSocket protocol refuses an
        # upgrade whose Host header is empty (400). The endpoints answer as that upgrade.
        upgrade_taken = accepted and host != ""
        assert got["direct websocket"] == (101 if upgrade_taken else got["direct api"]) or (
            host == "" and got["direct websocket"] == 400
        ), (host, got)
        want = {
            "tunnel": got["direct websocket"],
            "diagnose": got["direct websocket"],
            "proxied_ws": got["direct websocket"],
            "polling open": got["direct api"],
            "polling send": got["direct api"],
            "polling recv": got["direct api"],
        }
        differ = {k: (got[k], v) for k, v in want.items() if got[k] != v}
        if differ:
            differences[str(host)] = differ
        if not accepted:
            # Refused before anything was dialled upstream.
            assert upstream_urls == [], (host, upstream_urls)
        upstream_urls.clear()
    assert differences == {}
    assert {200, 403} <= seen, "both kinds of Host were tried"
    # The refusals left the session as it was.
    recv = await raw_request(
        port,
        "GET",
        f"{jp_base_url}http_over_websocket/polling/{session_id}/recv?since=0".encode(),
        good,
    )
    assert recv.status == 200


@pytest.mark.parametrize(
    "jp_server_config",
    [
        {
            "ServerApp": {
                "jpserver_extensions": EXTENSION,
                "local_hostnames": ["localhost", "jupyter.internal"],
            },
            "HttpOverWebSocketApp": SHORT_POLLS,
        }
    ],
)
async def test_local_hostnames_apply_to_every_endpoint(
    hows_server_url, jp_http_port, jp_base_url, hows_token, logs
):
    """An operator's extra local name works everywhere; its look-alikes nowhere."""
    port = jp_http_port
    good = [("Host", f"localhost:{port}"), ("Authorization", f"token {hows_token}")]
    opened = await raw_request(
        port, "POST", f"{jp_base_url}http_over_websocket/polling".encode(), good, b"{}"
    )
    session_id = json.loads(opened.body)["session_id"]
    for host, expected in [
        ("jupyter.internal:{port}", (200, 101)),
        ("jupyter.internal.:{port}", (403, 403)),
        ("jupyter.internal.evil.example:{port}", (403, 403)),
        ("evil.jupyter.internal:{port}", (403, 403)),
    ]:
        got = await outcomes(port, jp_base_url, hows_token, host, session_id)
        rest, socket = expected
        assert got == {
            "direct api": rest,
            "direct websocket": socket,
            "tunnel": socket,
            "diagnose": socket,
            "proxied_ws": socket,
            "polling open": rest,
            "polling send": rest,
            "polling recv": rest,
        }, host
