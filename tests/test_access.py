"""Who may open the tunnel, and with which rights: jupyter_server decides, in the tunnel too."""

from __future__ import annotations

import json
import logging
from urllib.parse import urlencode

import pytest
from jupyter_server.auth import Authorizer
from support.login import direct, login_cookies
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from jupyter_http_over_ws import __version__
from jupyter_http_over_ws.client import TunnelClient, diagnose
from jupyter_http_over_ws.client._connect import Endpoint

pytestmark = pytest.mark.timeout(60)

ALLOWED = "https://allowed.example"
FOREIGN = "https://evil.example"


@pytest.fixture
def jp_server_config():
    return {
        "ServerApp": {
            "jpserver_extensions": {"jupyter_http_over_ws": True},
            "allow_origin": ALLOWED,
        }
    }


@pytest.mark.parametrize(
    "endpoint", ["http_over_websocket", "http_over_websocket/proxied_ws/api/kernels/x/channels"]
)
async def test_unauthenticated_upgrade_is_refused(hows_server_url, endpoint):
    with pytest.raises(HTTPClientError) as e:
        await Endpoint(hows_server_url).open(endpoint)
    assert e.value.code == 403


async def test_wrong_token_is_refused(hows_server_url):
    with pytest.raises(HTTPClientError) as e:
        await TunnelClient.connect(hows_server_url, token="wrong")
    assert e.value.code == 403


async def test_token_in_query(hows_server_url, hows_token):
    connection = await Endpoint(hows_server_url).open("http_over_websocket", {"token": hows_token})
    client = TunnelClient(Endpoint(hows_server_url), connection)
    reply = await client.request("GET", "/api/contents")
    assert reply.status == 200
    await client.close()


async def test_token_is_accepted_from_any_origin_as_jupyter_server_does(
    hows_server_url, hows_token
):
    # jupyter_server skips the origin check for token-authenticated requests.
    async with await TunnelClient.connect(hows_server_url, token=hows_token, origin=FOREIGN) as c:
        reply = await c.request(
            "PUT",
            "/api/contents/a.txt",
            body=json.dumps({"type": "file", "format": "text", "content": "x"}),
        )
        assert reply.status == 201


async def test_cookie_authentication(hows_server_url, hows_token, jp_root_dir):
    cookies = await login_cookies(hows_server_url, hows_token)
    async with await TunnelClient.connect(hows_server_url, cookies=cookies, origin=ALLOWED) as c:
        assert (await c.request("GET", "/api/contents")).status == 200
        # Cookie-authenticated writes pass the XSRF check with the upgrade's _xsrf cookie.
        put = await c.request(
            "PUT",
            "/api/contents/c.txt",
            body=json.dumps({"type": "file", "format": "text", "content": "c"}),
        )
        assert put.status == 201, put.text
        assert (jp_root_dir / "c.txt").read_text() == "c"


async def test_cookie_authentication_from_a_foreign_origin_is_refused(hows_server_url, hows_token):
    cookies = await login_cookies(hows_server_url, hows_token)
    with pytest.raises(HTTPClientError) as e:
        await TunnelClient.connect(hows_server_url, cookies=cookies, origin=FOREIGN)
    assert e.value.code == 403


async def test_xsrf_needs_what_it_needs_directly(hows_server_url, hows_token, jp_root_dir):
    cookies = await login_cookies(hows_server_url, hows_token)
    del cookies["_xsrf"]
    cookie_header = "; ".join(f"{k}={v}" for k, v in cookies.items())
    body = json.dumps({"type": "file", "format": "text", "content": "x"})
    straight = await direct(
        hows_server_url + "api/contents/x.txt", "PUT", body, Cookie=cookie_header
    )
    async with await TunnelClient.connect(hows_server_url, cookies=cookies) as c:
        tunnelled = await c.request("PUT", "/api/contents/x.txt", body=body)
        read = await c.request("GET", "/api/contents")
    assert straight.code == tunnelled.status == 403
    assert read.status == 200
    assert not (jp_root_dir / "x.txt").exists()


async def test_spoofed_host_is_refused_as_directly(hows_server_url, hows_token):
    straight = await direct(
        hows_server_url + "api/status",
        Authorization=f"token {hows_token}",
        Host="rebind.evil.example",
    )
    assert straight.code == 403
    with pytest.raises(HTTPClientError) as e:
        await TunnelClient.connect(
            hows_server_url, token=hows_token, headers={"Host": "rebind.evil.example"}
        )
    assert e.value.code == 403


@pytest.mark.parametrize(
    "path", ["http_over_websocket/diagnose", "http_over_websocket/proxied_ws/api/kernels"]
)
async def test_spoofed_host_is_refused_on_the_other_endpoints(
    hows_server_url, hows_token, upstream_urls, path
):
    with pytest.raises(HTTPClientError) as e:
        await Endpoint(
            hows_server_url, token=hows_token, headers={"Host": "rebind.evil.example"}
        ).open(path)
    assert e.value.code == 403
    assert upstream_urls == []


async def test_foreign_origin_opens_nothing_upstream(hows_server_url, hows_token, upstream_urls):
    """proxied_ws checks the origin before dialling: Tornado's own check comes too late."""
    cookies = await login_cookies(hows_server_url, hows_token)
    with pytest.raises(HTTPClientError) as e:
        await Endpoint(hows_server_url, cookies=cookies, origin=FOREIGN).open(
            "http_over_websocket/proxied_ws/api/kernels/0000/channels"
        )
    assert e.value.code == 403
    assert upstream_urls == []


@pytest.mark.parametrize(
    "jp_server_config",
    [
        {
            "ServerApp": {
                "jpserver_extensions": {"jupyter_http_over_ws": True},
                "allow_origin_pat": r"https://trusted\.example",
            }
        }
    ],
)
# jupyter_server warns when a pattern matched only as a prefix (and refuses the origin).
@pytest.mark.filterwarnings("ignore:allow_origin_pat:UserWarning")
async def test_allow_origin_pat_matches_the_whole_origin(
    hows_server_url, hows_token, upstream_urls
):
    """jupyter_server>=2.18 (CVE-2026-40110): a prefix-extended origin is foreign."""
    cookies = await login_cookies(hows_server_url, hows_token)
    trusted = "https://trusted.example"
    async with await TunnelClient.connect(hows_server_url, cookies=cookies, origin=trusted) as c:
        assert (await c.request("GET", "/api/status")).status == 200
    assert (await diagnose(hows_server_url, origin=trusted)).message_id
    lookalike = "https://trusted.example.evil.com"
    for path in [
        "http_over_websocket",
        "http_over_websocket/diagnose",
        "http_over_websocket/proxied_ws/api/kernels/0000/channels",
    ]:
        with pytest.raises(HTTPClientError) as e:
            await Endpoint(hows_server_url, cookies=cookies, origin=lookalike).open(path)
        assert e.value.code == 403, path
    assert upstream_urls == []


async def test_a_token_changed_mid_session_stops_working(hows_tunnel, jp_serverapp):
    """Each tunnelled request is authenticated afresh: nothing is cached from the upgrade."""
    assert (await hows_tunnel.request("GET", "/api/contents")).status == 200
    provider = jp_serverapp.identity_provider
    old_token, provider.token = provider.token, "a-new-token"
    try:
        assert (await hows_tunnel.request("GET", "/api/contents")).status == 403
    finally:
        provider.token = old_token
    assert (await hows_tunnel.request("GET", "/api/contents")).status == 200


async def test_client_cannot_override_identity_headers(hows_tunnel):
    reply = await hows_tunnel.request(
        "GET", "/api/status", headers={"Host": "rebind.evil.example", "Authorization": "token x"}
    )
    assert reply.status == 200


async def test_diagnose(hows_server_url):
    answer = await diagnose(hows_server_url, origin=ALLOWED, message="hello")
    assert answer.message_id == "hello"
    assert answer.extension_version == __version__
    assert answer.has_authentication_cookie is False
    assert answer.is_outdated_extension is False

    outdated = await diagnose(hows_server_url, min_version="99.0.0")
    assert outdated.is_outdated_extension is True
    with_cookie = await diagnose(hows_server_url, cookies={"_xsrf": "abc"})
    assert with_cookie.has_authentication_cookie is True


async def test_diagnose_checks_the_origin(hows_server_url):
    with pytest.raises(HTTPClientError) as e:
        await diagnose(hows_server_url, origin=FOREIGN)
    assert e.value.code == 403


async def test_diagnose_answers_every_frame(hows_server_url):
    connection = await Endpoint(hows_server_url).open("http_over_websocket/diagnose")
    for text in ["a", "b"]:
        connection.write_message(text)
        assert json.loads(await connection.read_message())["message_id"] == text
    connection.close()


@pytest.mark.parametrize(
    ("min_version", "reason"),
    [
        (
            "99.0.0",
            f"Requested version (99.0.0) > Current version ({__version__}). "
            "Please upgrade this package.",
        ),
        ("not a version", 'Invalid "min_version" provided: not a version'),
    ],
)
async def test_min_version_closes_with_a_valid_code(
    hows_server_url, hows_token, min_version, reason
):
    client = await TunnelClient.connect(hows_server_url, token=hows_token, min_version=min_version)
    await client.wait_closed()
    assert client.close_code == 4400
    assert client.close_reason == reason


async def test_old_min_version_is_accepted(hows_server_url, hows_token):
    async with await TunnelClient.connect(
        hows_server_url, token=hows_token, min_version="0.0.7"
    ) as c:
        assert (await c.request("GET", "/api/status")).status == 200


@pytest.fixture
def captured_logs():
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(self.format(record))

    handler = Keep(logging.DEBUG)
    root = logging.getLogger()
    loggers = [root, logging.getLogger("tornado.access"), logging.getLogger("ServerApp")]
    for logger in loggers:
        logger.addHandler(handler)
    yield records
    for logger in loggers:
        logger.removeHandler(handler)


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1:1", "forwarded.example:9999"])
async def test_auth_url_token(
    hows_server_url, hows_token, jp_serverapp, jp_base_url, host, captured_logs
):
    auth_url = f"http://{host}{jp_base_url}?token={hows_token}"
    async with await TunnelClient.connect(hows_server_url, auth_url=auth_url) as c:
        reply = await c.request("GET", "/api/contents")
        assert reply.status == 200
    assert captured_logs, "expected some log lines"
    assert not [line for line in captured_logs if hows_token in line]


async def test_auth_url_with_a_wrong_token_is_refused(hows_server_url, jp_base_url):
    with pytest.raises(HTTPClientError) as e:
        await TunnelClient.connect(
            hows_server_url, auth_url=f"http://localhost{jp_base_url}?token=no"
        )
    assert e.value.code == 403


async def test_auth_url_outside_base_url_is_ignored(hows_server_url, hows_token):
    with pytest.raises(HTTPClientError) as e:
        await TunnelClient.connect(
            hows_server_url, auth_url=f"http://localhost/elsewhere/?token={hows_token}"
        )
    assert e.value.code == 403


class ReadOnlyAuthorizer(Authorizer):
    """Lets every user read, but write nothing."""

    def is_authorized(self, handler, user, action, resource):
        return action == "read"


@pytest.mark.parametrize(
    "jp_server_config",
    [
        {
            "ServerApp": {
                "jpserver_extensions": {"jupyter_http_over_ws": True},
                "authorizer_class": ReadOnlyAuthorizer,
            }
        }
    ],
)
async def test_authorizer_applies_through_the_tunnel(hows_tunnel, hows_server_url, hows_token):
    body = json.dumps({"type": "file", "format": "text", "content": "x"})
    straight = await direct(
        hows_server_url + "api/contents/x.txt", "PUT", body, Authorization=f"token {hows_token}"
    )
    tunnelled = await hows_tunnel.request("PUT", "/api/contents/x.txt", body=body)
    assert straight.code == tunnelled.status == 403
    assert (await hows_tunnel.request("GET", "/api/contents")).status == 200
    # A kernel's channels need "execute" on kernels: refused directly and when proxied.
    channels = "api/kernels/00000000-0000-0000-0000-000000000000/channels"
    with pytest.raises(HTTPClientError) as straight_ws:
        await Endpoint(hows_server_url, token=hows_token).open(channels)
    with pytest.raises(HTTPClientError) as proxied_ws:
        await Endpoint(hows_server_url, token=hows_token).open(
            "http_over_websocket/proxied_ws/" + channels
        )
    assert straight_ws.value.code == proxied_ws.value.code == 403


@pytest.mark.parametrize(
    "path",
    [
        "http_over_websocket",
        "http_over_websocket/diagnose",
        "http_over_websocket/proxied_ws/api/kernels/0000/channels",
        "http_over_websocket/polling",
    ],
)
@pytest.mark.parametrize("how", ["token", "jupyter_http_over_ws_auth_url"])
async def test_a_refused_credential_is_never_logged(
    hows_server_url, jp_base_url, captured_logs, path, how
):
    """A wrong token is a near miss of the real one: refusals must not log it either."""
    secret = "wrong-token-3f9d2c7a51"
    value = secret if how == "token" else f"http://localhost{jp_base_url}?token={secret}"
    query = urlencode({how: value})
    headers = {"Origin": "https://elsewhere.example"}
    if path.endswith("polling"):
        url = f"{hows_server_url}{path}?{query}"
        request = HTTPRequest(url, method="POST", headers=headers, body=b"{}")
        response = await AsyncHTTPClient().fetch(request, raise_error=False)
        assert response.code == 403
    else:
        url = f"ws{hows_server_url[4:]}{path}?{query}"
        with pytest.raises(HTTPClientError) as refused:
            await websocket_connect(HTTPRequest(url, headers=headers))
        assert refused.value.code == 403
    refusals = [line for line in captured_logs if "403" in line and path in line]
    assert refusals, f"expected the refusal to be logged: {captured_logs}"
    assert not [line for line in captured_logs if secret in line]
