"""Cross-site requests that carry only the login cookie, on every endpoint, vs directly.

A page on another site cannot read the server's cookies or token, but its requests (and
WebSocket upgrades, where ``SameSite`` allows) carry the login cookie. What it gets from
each endpoint of the extension must be exactly what it gets from the server's own API
and WebSockets with the same cookie and ``Origin``: a foreign or ``null`` origin refused,
no origin (a script, not a browser) treated as the server treats it, writes needing the
XSRF token as they do directly. A difference in either direction is a finding.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from jupyter_server.auth import passwd
from support.attack import cookie_header, debug_logs, login_cookies, raw_request, secrets_in

pytestmark = pytest.mark.timeout(120)

ALLOWED = "https://allowed.example"
ORIGINS = {
    "foreign": "https://evil.example",
    "null": "null",
    "absent": None,
    "allowed": ALLOWED,
    "look-alike": "https://allowed.example.evil.example",
    "own, other port": "http://localhost:1",
}
EVENTS = "api/events/subscribe"  # a WebSocket of the server's own, no kernel needed
POLLING = "http_over_websocket/polling"
FORM = "application/x-www-form-urlencoded"


PASSWORD = "correct horse battery staple"

#: The server configurations a cookie meets: the default (token, which also logs a
#: browser in), XSRF checks off, password-only login, and no authentication at all.
AUTH_CONFIGS = {
    "token": {},
    "disable_check_xsrf": {"ServerApp": {"disable_check_xsrf": True}},
    "password only": {
        "ServerApp": {"token": ""},
        "PasswordIdentityProvider": {"hashed_password": passwd(PASSWORD)},
    },
    "no auth": {"ServerApp": {"token": "", "password": ""}},
}


@pytest.fixture(params=list(AUTH_CONFIGS))
def auth(request):
    return request.param


@pytest.fixture
def jp_server_config(auth):
    config = {
        "ServerApp": {
            "jpserver_extensions": {"jupyter_http_over_ws": True},
            "allow_origin": ALLOWED,
        },
        "HttpOverWebSocketApp": {"poll_timeout": 0.05},
    }
    for section, values in AUTH_CONFIGS[auth].items():
        config.setdefault(section, {}).update(values)
    return config


class Site:
    """Requests to the test server with chosen cookies and ``Origin``, through raw sockets."""

    def __init__(self, port: int, base_url: str, cookies: dict[str, str]) -> None:
        self.port = port
        self.base_url = base_url
        self.cookies = cookies

    def headers(self, origin: str | None, xsrf: bool) -> list[tuple[str, str]]:
        headers = [("Host", f"localhost:{self.port}"), ("Cookie", cookie_header(self.cookies))]
        if origin is not None:
            headers.append(("Origin", origin))
        if xsrf:
            headers.append(("X-XSRFToken", self.cookies["_xsrf"]))
        return headers

    async def status(self, method, path, origin, xsrf=False, body=b"", upgrade=False):
        response = await raw_request(
            self.port,
            method,
            (self.base_url + path).encode(),
            self.headers(origin, xsrf),
            body,
            upgrade=upgrade,
        )
        return response.status

    async def open_session(self) -> str:
        """A polling session opened as the allowed page opens it (cookie, origin, XSRF)."""
        response = await raw_request(
            self.port,
            "POST",
            (self.base_url + POLLING).encode(),
            self.headers(ALLOWED, xsrf=True),
            b"{}",
        )
        assert response.status == 200, response
        return str(json.loads(response.body)["session_id"])


async def password_login(port: int, base_url: str) -> dict[str, str]:
    """Log in with the password through the login form, as a person does."""
    host = ("Host", f"localhost:{port}")
    page = await raw_request(port, "GET", f"{base_url}login".encode(), [host])
    cookies = cookies_set_by(page)
    form = urlencode({"password": PASSWORD, "_xsrf": cookies["_xsrf"]}).encode()
    answer = await raw_request(
        port,
        "POST",
        f"{base_url}login".encode(),
        [host, ("Cookie", cookie_header(cookies)), ("Content-Type", FORM)],
        form,
    )
    assert answer.status == 302, answer
    cookies.update(cookies_set_by(answer))
    return cookies


def cookies_set_by(response) -> dict[str, str]:
    cookies = {}
    for header in response.headers.get_list("Set-Cookie"):
        name, _, rest = header.partition("=")
        cookies[name] = rest.split(";")[0].strip('"')
    return cookies


async def anonymous_cookies(port: int, base_url: str) -> dict[str, str]:
    """Without authentication the server still sets a login cookie (a stable anonymous user)."""
    host = ("Host", f"localhost:{port}")
    cookies = cookies_set_by(
        await raw_request(port, "GET", f"{base_url}api/status".encode(), [host])
    )
    cookies.update(
        cookies_set_by(await raw_request(port, "GET", f"{base_url}login".encode(), [host]))
    )
    return cookies


@pytest.fixture
def site(hows_server_url, jp_http_port, jp_base_url, hows_token, jp_asyncio_loop, auth):
    if auth == "password only":
        cookies = jp_asyncio_loop.run_until_complete(password_login(jp_http_port, jp_base_url))
    elif auth == "no auth":
        cookies = jp_asyncio_loop.run_until_complete(anonymous_cookies(jp_http_port, jp_base_url))
    else:
        cookies = jp_asyncio_loop.run_until_complete(
            login_cookies(jp_http_port, jp_base_url, hows_token)
        )
    assert "_xsrf" in cookies, cookies
    assert auth == "no auth" or any(k.startswith("username-") for k in cookies), cookies
    login = [v for k, v in cookies.items() if k.startswith("username-")]
    with debug_logs() as lines:
        yield Site(jp_http_port, jp_base_url, cookies)
    assert secrets_in(lines, [hows_token, PASSWORD, *login]) == []


@pytest.mark.parametrize("xsrf", [False, True], ids=["no-xsrf-header", "xsrf-header"])
async def test_cookie_only_requests_get_what_they_get_directly(
    site, jp_root_dir, upstream_urls, xsrf
):
    differences = {}
    for name, origin in ORIGINS.items():
        session_id = await site.open_session()
        (jp_root_dir / "victim.txt").write_text("x")

        async def rest(method, path, body=b"", origin=origin):
            return await site.status(method, path, origin, xsrf, body)

        async def socket(path, origin=origin):
            return await site.status("GET", path, origin, xsrf, upgrade=True)

        direct_socket = await socket(EVENTS)
        direct_read = await rest("GET", "api/contents")
        direct_write = await rest("POST", "api/contents", b'{"type": "file"}')
        direct_delete = await rest("DELETE", "api/contents/victim.txt")
        pairs = {
            "tunnel": (await socket("http_over_websocket"), direct_socket),
            "proxied_ws": (await socket("http_over_websocket/proxied_ws/" + EVENTS), direct_socket),
            "polling open": (await rest("POST", POLLING, b"{}"), direct_write),
            "polling send": (
                await rest("POST", f"{POLLING}/{session_id}/send", b'{"seq":0,"messages":[]}'),
                direct_write,
            ),
            "polling recv": (
                await rest("GET", f"{POLLING}/{session_id}/recv?since=0"),
                direct_read,
            ),
            "polling delete": (await rest("DELETE", f"{POLLING}/{session_id}"), direct_delete),
        }
        # Statuses differ by endpoint kind (201 vs 200, 204 vs 200): compare the verdicts.
        differ = {
            endpoint: (tunnelled, straight)
            for endpoint, (tunnelled, straight) in pairs.items()
            if verdict(tunnelled) != verdict(straight)
        }
        if differ:
            differences[name] = differ
        if verdict(direct_socket) != "accepted":
            assert upstream_urls == [], name
        upstream_urls.clear()
    assert differences == {}


def verdict(status: int | None) -> str:
    """Accepted, or the refusal's status (the refusals must be the very same)."""
    return "accepted" if status in (101, 200, 201, 204) else str(status)


async def test_diagnose_refuses_the_origins_the_server_refuses(site):
    """diagnose needs no credentials, but checks the origin as the server's sockets do."""
    for name, origin in ORIGINS.items():
        direct = await site.status("GET", EVENTS, origin, upgrade=True)
        diagnose = await site.status("GET", "http_over_websocket/diagnose", origin, upgrade=True)
        assert diagnose == direct, name


async def test_a_cookie_tunnel_from_an_allowed_origin_writes_as_a_page_there_can(
    site, hows_server_url, jp_root_dir
):
    """The one deliberate difference: a cookie tunnel's writes carry the _xsrf cookie's token.

    Directly, the page sends it as ``X-XSRFToken`` (it can read the cookie: same site as
    the server, or it was handed the value); the tunnel takes it from the upgrade's
    ``_xsrf`` cookie (security.md, XSRF). Only an upgrade that passed the origin check
    gets that far: from any origin the server refuses, nothing is opened.
    """
    from jupyter_http_over_ws.client import TunnelClient

    body = json.dumps({"type": "file", "format": "text", "content": "x"})
    async with await TunnelClient.connect(
        hows_server_url, cookies=site.cookies, origin=ALLOWED
    ) as tunnel:
        reply = await tunnel.request("PUT", "/api/contents/written.txt", body=body)
    assert reply.status == 201
    assert (jp_root_dir / "written.txt").read_text() == "x"
    for name in ("foreign", "null", "look-alike"):
        status = await site.status("GET", "http_over_websocket", ORIGINS[name], upgrade=True)
        assert status == 403, name
