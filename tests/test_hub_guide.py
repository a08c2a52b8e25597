"""The JupyterHub deployment guide's configuration, run: a hub with every tested snippet.

``docs/operators/jupyterhub.md`` marks each ``jupyterhub_config.py`` snippet an operator
copies with ``<!-- tested: hub-config -->``. This module reads them from the guide,
puts the test's own paths and secrets in for the guide's placeholders (the certificate
files, the port, the services' secrets from the environment, as the guide reads them),
appends them to the test hub's configuration (``support.hub.Hub(extra_config=...)``)
and uses the tunnel through that hub, as the guide says a frontend does:

- TLS at the hub's proxy (``c.JupyterHub.ssl_cert``/``ssl_key``): ``wss://`` and
  ``https://`` polling through configurable-http-proxy, to single-user servers on plain
  HTTP behind it;
- the page origins (``c.Spawner.args`` with ``allow_origin_pat``): ``diagnose`` and the
  polling preflight for allowed and other origins, without ``allow_credentials``;
- a service that makes tokens (scope ``tokens`` only), and an OAuth client service
  whose tokens carry ``access:servers!user``: both tokens open alice's tunnel;
- ``JUPYTERHUB_ALLOW_TOKEN_IN_URL``: ``?token=`` on a WebSocket without
  ``Sec-Fetch-Mode``.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import os
import re
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from email.message import Message
from pathlib import Path

import pytest
from support.hub import Hub
from support.tls import LocalCA
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from jupyter_http_over_ws import __version__
from jupyter_http_over_ws.client import TunnelClient, diagnose
from jupyter_http_over_ws.client._connect import Endpoint

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "operators" / "jupyterhub.md"
MARK = "<!-- tested: hub-config -->"

#: Origins the guide's ``allow_origin_pat`` admits, and one it must not.
ALLOWED_ORIGINS = ("https://app.frontend.example", "https://staging.frontend.example")
OTHER_ORIGINS = ("https://elsewhere.example", "https://app.frontend.example.evil.example")
#: The guide's OAuth redirect URI (the frontend's callback).
REDIRECT_URI = "https://app.frontend.example/oauth_callback"

TRANSPORTS = ["websocket", "polling"]


def guide_snippets(text: str) -> list[str]:
    """The code of every fenced block right after the marker (indented ones too)."""
    pattern = re.compile(
        r"^[ \t]*" + re.escape(MARK) + r"\n([ \t]*)```python\n(.*?)^[ \t]*```", re.M | re.S
    )
    snippets = []
    for match in pattern.finditer(text):
        indent = match.group(1)
        lines = match.group(2).splitlines()
        snippets.append("\n".join(line.removeprefix(indent) for line in lines) + "\n")
    return snippets


class GuideHub(Hub):
    """The test hub with TLS at its proxy: its public URL is ``https://``."""

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/"


@pytest.fixture(scope="module")
def local_ca(tmp_path_factory):
    return LocalCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def secrets_env():
    return {
        "FRONTEND_BACKEND_TOKEN": secrets.token_hex(16),
        "FRONTEND_OAUTH_SECRET": secrets.token_hex(16),
    }


def operator_config(hub: Hub, certificate, snippets: list[str]) -> str:
    """The guide's snippets with the test's paths and port put in for the placeholders."""
    text = "\n".join(snippets)
    for placeholder, value in {
        '"https://:443"': repr(hub.url),
        '"/etc/jupyterhub/tls/fullchain.pem"': repr(str(certificate.certfile)),
        '"/etc/jupyterhub/tls/hub.key"': repr(str(certificate.keyfile)),
    }.items():
        assert text.count(placeholder) == 1, placeholder
        text = text.replace(placeholder, value)
    if os.geteuid() == 0:  # CI's containers: the spawner runs the servers as root
        text += 'c.Spawner.args.append("--ServerApp.allow_root=True")\n'
    return text


@pytest.fixture(scope="module")
def hub(tmp_path_factory, local_ca, secrets_env):
    """A hub running the guide's configuration, with alice's server; stopped cleanly."""
    snippets = guide_snippets(GUIDE.read_text())
    hub = GuideHub(tmp_path_factory.mktemp("hub"), page_origin="https://unused.example")
    hub.extra_config = operator_config(hub, local_ca.issue(), snippets)
    with pytest.MonkeyPatch.context() as patch:
        # The hub reads its services' secrets from its environment, as the guide has it;
        # urllib (Hub.api) trusts the test CA.
        for name, value in secrets_env.items():
            patch.setenv(name, value)
        patch.setenv("SSL_CERT_FILE", str(local_ca.ca_file))
        hub.start()
        try:
            hub.start_server("alice")
            yield hub
        finally:
            left = hub.stop()
    assert left == [], f"processes left after the hub stopped: {left}\n{hub.log()[-3000:]}"


@pytest.fixture(scope="module")
def alice_token(hub):
    return hub.new_token("alice", ["access:servers!user=alice"], note="frontend")


def https_fetch(local_ca: LocalCA, **kwargs):
    """A tornado HTTPS request trusting the test CA only."""
    return HTTPRequest(ssl_options=local_ca.ssl_context(), **kwargs)


async def fetch(local_ca: LocalCA, **kwargs):
    http = AsyncHTTPClient(force_instance=True)
    try:
        return await http.fetch(https_fetch(local_ca, **kwargs), raise_error=False)
    finally:
        http.close()


async def use_alices_server(hub: Hub, local_ca: LocalCA, token: str, transport: str) -> None:
    """List alice's files and send one back byte-exact, through the tunnel over TLS."""
    payload = os.urandom(100_000)
    name = f"guide-{transport}-{secrets.token_hex(4)}.bin"
    async with await TunnelClient.connect(
        hub.user_url("alice"), token=token, transports=(transport,), ca_file=local_ca.ca_file
    ) as tunnel:
        assert tunnel.transport == transport
        (hub.home("alice") / name).write_bytes(payload)
        listing = await tunnel.request("GET", "/api/contents")
        assert listing.status == 200
        assert name in [item["name"] for item in listing.json()["content"]]
        download = await tunnel.request("GET", f"/files/{name}")
        assert download.status == 200
        assert download.body == payload


# ----------------------------------------------------------------------- the snippets


def test_the_guide_marks_every_hub_config_snippet_it_shows():
    text = GUIDE.read_text()
    snippets = guide_snippets(text)
    assert len(snippets) == text.count(MARK) == 7
    for snippet in snippets:
        compile(snippet, "jupyterhub_config.py", "exec")
    # Every jupyterhub_config.py snippet of the guide, outside the tests' own section,
    # is one of the marked ones.
    operator_part = text.split("## Hub configuration used by the tests")[0]
    shown = re.findall(r"^[ \t]*```python\n[ \t]*# jupyterhub_config\.py\n", operator_part, re.M)
    assert len(shown) == len(snippets)


async def test_the_hub_runs_the_guide_config_and_the_extension_loads(hub, local_ca):
    config = (hub.work / "jupyterhub_config.py").read_text()
    assert "allow_origin_pat" in config
    assert "ssl_cert" in config
    assert "jupyter_http_over_ws" not in config
    diagnosis = await diagnose(
        hub.user_url("alice"), origin=ALLOWED_ORIGINS[0], ca_file=local_ca.ca_file
    )
    assert diagnosis.extension_version == __version__
    # The guide's idle culler runs as a hub-managed service with its role.
    assert "Starting service 'idle-culler'" in hub.log()
    # ... and its first round asks the hub for the users with its role's scopes.
    deadline = time.monotonic() + 30
    while not re.search(r"200 GET /hub/api/users\S* \(idle-culler@", hub.log()):
        assert time.monotonic() < deadline, hub.log()[-3000:]
        await asyncio.sleep(0.5)


# --------------------------------------------------------------------------------- TLS


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_tls_at_the_hubs_proxy(hub, local_ca, alice_token, transport):
    assert hub.user_url("alice").startswith("https://")
    await use_alices_server(hub, local_ca, alice_token, transport)
    # Behind the proxy the single-user server speaks plain HTTP: the hub's route to it.
    assert re.search(
        r"Adding user alice to proxy /user/alice/ => http://127\.0\.0\.1:\d+", hub.log()
    )
    # Plain HTTP to the TLS port fails: the proxy speaks only HTTPS there.
    http = AsyncHTTPClient(force_instance=True)
    try:
        with pytest.raises(Exception):  # noqa: B017 - a broken exchange, whatever its kind
            await http.fetch(hub.user_url("alice").replace("https://", "http://") + "api/status")
    finally:
        http.close()


# ---------------------------------------------------------------------- origins and CORS


@pytest.mark.parametrize("origin", ALLOWED_ORIGINS + OTHER_ORIGINS)
async def test_the_page_origins_the_guide_allows(hub, local_ca, alice_token, origin):
    allowed = origin in ALLOWED_ORIGINS
    # diagnose carries no credentials: the origin decides.
    if allowed:
        diagnosis = await diagnose(hub.user_url("alice"), origin=origin, ca_file=local_ca.ca_file)
        assert diagnosis.extension_version == __version__
    else:
        with pytest.raises(HTTPClientError) as refused:
            await diagnose(hub.user_url("alice"), origin=origin, ca_file=local_ca.ca_file)
        assert refused.value.code == 403
    # Polling from a page: the answers carry Access-Control-Allow-Origin (and
    # -Credentials, without ServerApp.allow_credentials) for an allowed origin only, so
    # a page on another origin cannot read them.
    headers = {"Origin": origin, "Authorization": f"token {alice_token}"}
    polling = hub.user_url("alice") + "http_over_websocket/polling"
    opened = await fetch(
        local_ca,
        url=polling,
        method="POST",
        body="{}",
        headers={**headers, "Content-Type": "application/json"},
    )
    assert opened.code in (200, 201), opened.body
    session = json.loads(opened.body)["session_id"]
    closed = await fetch(local_ca, url=f"{polling}/{session}", method="DELETE", headers=headers)
    assert closed.code in (200, 204)
    for answer in (opened, closed):
        if allowed:
            assert answer.headers.get("Access-Control-Allow-Origin") == origin
            assert answer.headers.get("Access-Control-Allow-Credentials") == "true"
        else:
            assert "Access-Control-Allow-Origin" not in answer.headers
            assert "Access-Control-Allow-Credentials" not in answer.headers
    if allowed:  # the browser's preflight before such a request
        preflight = await fetch(
            local_ca,
            url=polling,
            method="OPTIONS",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
        assert preflight.code in (200, 204)
        assert preflight.headers.get("Access-Control-Allow-Origin") == origin
        assert "Authorization" in preflight.headers.get("Access-Control-Allow-Headers", "")


async def test_the_guide_does_not_set_allow_credentials(hub):
    assert "allow_credentials" not in (hub.work / "jupyterhub_config.py").read_text()


async def test_a_token_authenticated_tunnel_is_not_origin_checked(hub, local_ca, alice_token):
    # jupyter_server skips the origin check of a token-authenticated upgrade, under the
    # hub too: the token is what admits it.
    async with await TunnelClient.connect(
        hub.user_url("alice"),
        token=alice_token,
        origin=OTHER_ORIGINS[0],
        transports=("websocket",),
        ca_file=local_ca.ca_file,
    ) as tunnel:
        assert (await tunnel.request("GET", "/api/status")).status == 200


# ----------------------------------------------------------------------------- tokens


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_service_with_only_the_tokens_scope_makes_tunnel_tokens(
    hub, local_ca, secrets_env, transport
):
    status, reply = hub.api(
        "POST",
        "users/alice/tokens",
        {"scopes": ["access:servers!user=alice"], "note": "frontend", "expires_in": 600},
        token=secrets_env["FRONTEND_BACKEND_TOKEN"],
    )
    assert status == 201, reply
    # The scopes it asked for, and the identity scopes every token has.
    assert "access:servers!user=alice" in reply["scopes"]
    assert not [s for s in reply["scopes"] if not s.startswith(("access:", "read:users:"))]
    await use_alices_server(hub, local_ca, reply["token"], transport)
    # The service itself cannot use alice's server: it only makes tokens.
    with pytest.raises(HTTPClientError) as refused:
        await TunnelClient.connect(
            hub.user_url("alice"),
            token=secrets_env["FRONTEND_BACKEND_TOKEN"],
            transports=(transport,),
            ca_file=local_ca.ca_file,
        )
    assert refused.value.code == 403


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def oauth_access_token(hub: Hub, local_ca: LocalCA, client_secret: str) -> dict:
    """The OAuth authorization-code flow the guide describes, as alice in a browser."""
    jar = http.cookiejar.CookieJar()
    context = local_ca.ssl_context()
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(jar),
        urllib.request.HTTPSHandler(context=context),
        _NoRedirect(),
    )

    def call(url: str, data: dict | None = None) -> tuple[int, Message, bytes]:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        try:
            with opener.open(urllib.request.Request(url, data=body), timeout=30) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.headers, error.read()

    hub_url = hub.url + "hub/"
    status, _, _ = call(hub_url + "login")
    assert status == 200
    xsrf = next(cookie.value for cookie in jar if cookie.name == "_xsrf")
    status, _, body = call(
        hub_url + "login", {"username": "alice", "password": hub.password, "_xsrf": xsrf}
    )
    assert status == 302, body[-500:]
    state = secrets.token_hex(8)
    query = urllib.parse.urlencode(
        {
            "client_id": "service-frontend",
            "redirect_uri": REDIRECT_URI,
            "response_type": "code",
            "state": state,
        }
    )
    status, headers, body = call(hub_url + "api/oauth2/authorize?" + query)
    assert status == 302, body[-500:]
    location = urllib.parse.urlsplit(headers.get("Location", ""))
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT_URI
    returned = urllib.parse.parse_qs(location.query)
    assert returned["state"] == [state]
    # The frontend's backend exchanges the code for a token (no cookie of alice's).
    request = urllib.request.Request(
        hub_url + "api/oauth2/token",
        data=urllib.parse.urlencode(
            {
                "grant_type": "authorization_code",
                "code": returned["code"][0],
                "redirect_uri": REDIRECT_URI,
                "client_id": "service-frontend",
                "client_secret": client_secret,
            }
        ).encode(),
    )
    with urllib.request.urlopen(request, timeout=30, context=context) as response:
        return dict(json.loads(response.read()))


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_an_oauth_token_of_the_frontend_service_opens_the_tunnel(
    hub, local_ca, secrets_env, transport
):
    grant = oauth_access_token(hub, local_ca, secrets_env["FRONTEND_OAUTH_SECRET"])
    token = grant["access_token"]
    status, model = hub.api("GET", "user", token=token)
    assert status == 200, model
    assert model["name"] == "alice"
    assert "access:servers!user=alice" in model["scopes"], model["scopes"]
    assert not [s for s in model["scopes"] if not s.startswith(("access:", "read:users:"))]
    assert 0 < grant["expires_in"] <= 24 * 3600  # the guide's oauth_token_expires_in
    await use_alices_server(hub, local_ca, token, transport)


def test_the_hub_refuses_tokens_that_outlive_the_guides_limit(hub, secrets_env):
    for expires_in in (8 * 24 * 3600, None):  # over a week, and never
        status, reply = hub.api(
            "POST",
            "users/alice/tokens",
            {"scopes": ["access:servers!user=alice"], "expires_in": expires_in},
            token=secrets_env["FRONTEND_BACKEND_TOKEN"],
        )
        if expires_in is None:  # no expiry asked: the hub gives the longest allowed
            assert status == 201, reply
            assert reply["expires_at"] is not None
        else:
            assert status == 400, reply


# ----------------------------------------------------------------- tokens in URLs


async def test_allow_token_in_url_admits_a_websocket_without_sec_fetch_mode(
    hub, local_ca, alice_token
):
    # With the guide's JUPYTERHUB_ALLOW_TOKEN_IN_URL, Chromium's upgrade (no
    # Sec-Fetch-Mode) with ?token= is accepted; hub 5+ refuses it by default (test_hub.py).
    alice = Endpoint(hub.user_url("alice"), ssl_context=local_ca.ssl_context())
    (await alice.open("http_over_websocket", {"token": alice_token})).close()
