"""CORS and private-network preflights on the polling endpoints, vs the server's own API.

The polling transport is the only part of the extension a page reads with ``fetch``, so
its CORS answers decide what another site may read. For an origin the server does not
allow (a foreign site, a sandboxed page's ``null``), every polling endpoint must answer
a preflight and a request exactly as the server's own API does: never naming that
origin where the API does not, never with credentials, never granting Chromium's
private-network access. For an allowed origin the polling transport adds credentials
and private-network access (its purpose); nothing else differs.
"""

from __future__ import annotations

import json

import pytest
from support.attack import debug_logs, raw_request, secrets_in

pytestmark = [
    pytest.mark.timeout(120),
    # jupyter_server warns when a pattern matched only as a prefix (and refuses the origin).
    pytest.mark.filterwarnings("ignore:allow_origin_pat:UserWarning"),
]

ALLOWED = "https://allowed.example"
EXTENSION = {"jupyter_http_over_ws": True}
CONFIGS = {
    "allow_origin": {"allow_origin": ALLOWED},
    "allow_origin_pat": {"allow_origin_pat": r"https://allowed\.example"},
    "nothing allowed": {},
}
REFUSED_ORIGINS = ["https://evil.example", "null", "https://allowed.example.evil.example"]
CORS_HEADERS = (
    "Access-Control-Allow-Origin",
    "Access-Control-Allow-Credentials",
    "Access-Control-Allow-Private-Network",
)
PREFLIGHTS = {
    "with authorization": [
        ("Access-Control-Request-Method", "POST"),
        ("Access-Control-Request-Headers", "authorization, content-type"),
        ("Access-Control-Request-Private-Network", "true"),
    ],
    "without authorization": [
        ("Access-Control-Request-Method", "POST"),
        ("Access-Control-Request-Headers", "content-type"),
        ("Access-Control-Request-Private-Network", "true"),
    ],
}


@pytest.fixture(params=list(CONFIGS))
def jp_server_config(request):
    return {
        "ServerApp": {"jpserver_extensions": EXTENSION, **CONFIGS[request.param]},
        "HttpOverWebSocketApp": {"poll_timeout": 0.05},
    }


def cors(response) -> dict[str, str | None]:
    return {name: response.headers.get(name) for name in CORS_HEADERS}


@pytest.fixture
def server(hows_server_url, jp_http_port, jp_base_url, hows_token, jp_asyncio_loop):
    async def request(method, path, headers, body=b""):
        sent = [("Host", f"localhost:{jp_http_port}"), *headers]
        return await raw_request(jp_http_port, method, (jp_base_url + path).encode(), sent, body)

    auth = [("Authorization", f"token {hows_token}")]
    opened = jp_asyncio_loop.run_until_complete(
        request("POST", "http_over_websocket/polling", auth, b"{}")
    )
    session_id = json.loads(opened.body)["session_id"]
    with debug_logs() as lines:
        yield request, session_id, auth
    assert secrets_in(lines, [hows_token]) == []


def polling_paths(session_id: str) -> list[str]:
    base = "http_over_websocket/polling"
    return [base, f"{base}/{session_id}/send", f"{base}/{session_id}/recv", f"{base}/{session_id}"]


async def test_preflights_from_refused_origins_get_what_the_api_gives(server):
    request, session_id, _ = server
    for origin in REFUSED_ORIGINS:
        for name, preflight in PREFLIGHTS.items():
            headers = [("Origin", origin), *preflight]
            api = await request("OPTIONS", "api/contents", headers)
            for path in polling_paths(session_id):
                polling = await request("OPTIONS", path, headers)
                assert polling.status in (200, 204), (origin, name, path, polling.status)
                assert api.status in (200, 204)
                assert cors(polling) == cors(api), (origin, name, path)
                assert polling.headers.get("Access-Control-Allow-Private-Network") is None


async def test_requests_from_refused_origins_get_what_the_api_gives(server):
    """The answer itself (token or not): no CORS header the API would not give."""
    request, session_id, auth = server
    base = "http_over_websocket/polling"
    for origin in REFUSED_ORIGINS:
        for credentials in (auth, []):
            headers = [("Origin", origin), *credentials]
            api = await request("GET", "api/contents", headers)
            recv = await request("GET", f"{base}/{session_id}/recv?since=0", headers)
            assert recv.status == api.status, (origin, bool(credentials))
            api_write = await request("POST", "api/contents", headers, b'{"type": "file"}')
            send = await request(
                "POST", f"{base}/{session_id}/send", headers, b'{"seq":0,"messages":[]}'
            )
            assert send.status in (200, 201, 403, 404)
            assert (send.status == 200) == (api_write.status == 201), (origin, credentials)
            for response, direct in ((recv, api), (send, api_write)):
                polling_cors, api_cors = cors(response), cors(direct)
                # Refusals carry CORS headers on polling (so an allowed page can read
                # them); what they name must never be the refused origin.
                assert polling_cors["Access-Control-Allow-Origin"] in (
                    api_cors["Access-Control-Allow-Origin"],
                    None,
                    ALLOWED,
                ), (origin, polling_cors, api_cors)
                if api_cors["Access-Control-Allow-Origin"] != origin:
                    assert polling_cors["Access-Control-Allow-Origin"] != origin
                assert polling_cors["Access-Control-Allow-Credentials"] in (
                    api_cors["Access-Control-Allow-Credentials"],
                    None,
                )
                assert polling_cors["Access-Control-Allow-Private-Network"] is None


async def test_an_allowed_origin_gets_credentials_and_private_network_access(
    server, jp_server_config
):
    request, session_id, _ = server
    allowed = bool(jp_server_config["ServerApp"].get("allow_origin")) or bool(
        jp_server_config["ServerApp"].get("allow_origin_pat")
    )
    for path in polling_paths(session_id):
        preflight = await request(
            "OPTIONS", path, [("Origin", ALLOWED), *PREFLIGHTS["without authorization"]]
        )
        expected = (
            {
                "Access-Control-Allow-Origin": ALLOWED,
                "Access-Control-Allow-Credentials": "true",
                "Access-Control-Allow-Private-Network": "true",
            }
            if allowed
            else dict.fromkeys(CORS_HEADERS)
        )
        assert cors(preflight) == expected, path
