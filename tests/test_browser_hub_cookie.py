"""The hub's login cookie: a page on the hub's own site, and one on another site, in Chromium.

A person logs in at ``/hub/login`` (the dummy authenticator's real form) and lands on
``/user/alice/``, where the hub's OAuth sets the single-user server's own cookie
(``jupyterhub-user-alice``, ``HttpOnly``, ``SameSite=Lax``, path ``/user/alice/``) and
the server its ``_xsrf`` cookie (same path, readable by scripts there). Then, in that
same browser, with no token at all:

- a page on the hub's own site, served by a hub service (``c.JupyterHub.services``, so
  the proxy routes ``/services/pages/`` to a static server; it imports our client from
  alice's server's static route, the client that matches the server's extension): the
  tunnel's WebSocket carries the cookie and everything works, writes included (the
  server takes the XSRF token from the upgrade's ``_xsrf`` cookie). Polling does not:
  every cookie-authenticated polling request needs ``X-XSRFToken``, and the page cannot
  read ``_xsrf`` outside ``/user/alice/``. The client's message says so and what to do;
- a page under ``/user/alice/`` (JupyterLab's, where an extension runs) reads ``_xsrf``,
  so polling works there with the cookie alone;
- a page on another site (``http://localhost:Q`` against the hub at ``127.0.0.1``): the
  browser sends none of the hub's cookies, neither to the hub nor to the page's own
  server, both transports are refused, and the message names the fix (a hub API token in
  the ``Authorization`` header), which then works;
- the Python client with the cookies copied from the browser (what a doctor that took
  cookies would meet): both transports, but only with ``jupyterhub-session-id`` too;
- the doctor, which takes no cookies, run without credentials: what it says;
- ``JUPYTERHUB_ALLOW_WEBSOCKET_COOKIE_AUTH=0``: no effect on Chromium's tunnel today.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from support.browser import (
    PRELUDE,
    TEST_PAGE,
    assert_kernel_outputs,
    kernel_code,
    new_context,
    open_page,
    services_bundle,
    stream_texts,
)
from support.browser import browser as browser
from support.browser import jp_asyncio_loop as jp_asyncio_loop
from support.browser import jp_server_cleanup as jp_server_cleanup
from support.hub import Hub
from tornado.httpclient import HTTPClientError

from jupyter_http_over_ws.client import TunnelClient

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

#: The hub service whose static server holds the page on the hub's own site.
SERVICE = "pages"

#: The cookies a login leaves: name -> the path it is set for.
HUB_COOKIES = {
    "jupyterhub-hub-login": "/hub/",
    "jupyterhub-session-id": "/",
    "jupyterhub-user-alice": "/user/alice/",
}

DISPLAY = {"text/plain": "a cookie display", "text/markdown": "**a cookie display**"}

#: Run in a page: files both ways and code, with ``connect`` of the prelude (no token).
FILES_AND_CODE = """
const tunnel = await connect({ transports: a.transports });
const contents = new services.ContentsManager({ serverSettings: settingsFor(tunnel) });
const saved = await contents.save(a.name, { type: "file", format: "base64", content: a.uploaded });
const listing = await contents.get("");
const roundTrip = await contents.get(a.name, { format: "base64", content: true });
// The raw bytes too, through /files/ (no base64 on the way).
const raw = new Uint8Array(await (await tunnel.fetch("files/" + a.name)).arrayBuffer());
let binary = "";
for (const byte of raw) binary += String.fromCharCode(byte);
// Writes of every kind: PUT (save, above), POST (a kernel), PATCH (rename), DELETE.
const renamed = await contents.rename(a.name, "renamed-" + a.name);
const { kernels, kernel } = await startKernel(tunnel);
const ok = await execute(kernel, a.code);
const bad = await execute(kernel, "1 / 0");
await kernel.shutdown();
kernels.dispose();
await contents.delete(renamed.path);
const out = {
  transport: tunnel.transport,
  saved: saved.path,
  names: listing.content.map((f) => f.name),
  roundTrip: roundTrip.content.replace(/\\n/g, ""),
  raw: btoa(binary),
  renamed: renamed.path,
  ok,
  bad,
  pageCookies: document.cookie,
};
tunnel.close();
return out;
"""

#: Run in a page: what connect() says without a token.
REFUSAL = """
try {
  const tunnel = await connect({ transports: a.transports });
  const transport = tunnel.transport;
  tunnel.close();
  return { opened: transport };
} catch (e) {
  return { opened: false, kind: e.kind, message: e.message, pageCookies: document.cookie };
}
"""


class _RecordingHandler(SimpleHTTPRequestHandler):
    """A static file handler that notes each request's path, Host and Cookie headers."""

    server: RecordingPageServer

    def do_GET(self) -> None:
        self.server.seen.append((self.path, self.headers.get("Host"), self.headers.get("Cookie")))
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reads :attr:`RecordingPageServer.seen` instead."""


class RecordingPageServer(ThreadingHTTPServer):
    """The pages' static server on loopback, recording what reaches it.

    The hub's proxy reaches it at ``/services/pages/``; the other site's page is its
    ``/`` as ``http://localhost:PORT/``.
    """

    daemon_threads = True

    def __init__(self, directory: Path) -> None:
        handler = functools.partial(_RecordingHandler, directory=str(directory))
        super().__init__(("127.0.0.1", 0), handler)
        self.port = int(self.server_address[1])
        self.seen: list[tuple[str, str | None, str | None]] = []
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    def __enter__(self) -> RecordingPageServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self._thread.join(5)
        self.server_close()


@dataclass
class HubSite:
    """The hub, the page server, and a browser context where alice logged in."""

    hub: Hub
    pages: RecordingPageServer
    context: Any
    #: The page the login landed on (JupyterLab at /user/alice/lab): a page under
    #: /user/alice/, as a JupyterLab extension's code runs in.
    lab: Any
    requests: list[Any] = field(default_factory=list)

    @property
    def server(self) -> str:
        return self.hub.user_url("alice")

    @property
    def service_page(self) -> str:
        """The page on the hub's own site (the hub service's)."""
        return f"{self.hub.url}services/{SERVICE}/"

    @property
    def other_site_page(self) -> str:
        """The page on another site: the same static server, as ``localhost``."""
        return f"http://localhost:{self.pages.port}/"

    def cookies(self) -> dict[str, dict[str, Any]]:
        """The browser's cookies for the hub's host, by name and path."""
        return {
            f"{c['name']}@{c['path']}": c
            for c in self.context.cookies()
            if c["domain"] == "127.0.0.1"
        }


def run_here(page: Any, server: str, body: str, services_js: str, **args: Any) -> Any:
    """Run ``body`` in ``page`` with the prelude and no token; services.js from ``services_js``."""
    prelude = PRELUDE.replace('"/services.js"', "a.servicesJs")
    return page.evaluate(
        prelude % body, {"server": server, "token": None, "servicesJs": services_js, **args}
    )


def log_in(context: Any, hub: Hub) -> Any:
    """Log in as alice with the login form; returns the page it lands on (her server's)."""
    page = open_page(context, f"{hub.url}hub/login")
    page.fill("#username_input", "alice")
    page.fill("#password_input", hub.password)
    page.click("#login_submit")
    page.wait_for_url(re.compile(r"/user/alice/"))
    page.wait_for_load_state("load")
    return page


@contextlib.contextmanager
def hub_site(browser: Any, base: Path, environment: dict[str, str]) -> Iterator[HubSite]:
    """A hub with a pages service, alice's server running, and alice logged in."""
    root = base / "pages"
    own_site = root / "services" / SERVICE
    own_site.mkdir(parents=True)
    for directory in (root, own_site):
        (directory / "index.html").write_text(TEST_PAGE)
        shutil.copy(services_bundle(), directory / "services.js")
    with RecordingPageServer(root) as pages:
        service = {"name": SERVICE, "url": f"http://127.0.0.1:{pages.port}"}
        hub = Hub(
            base / "hub",
            page_origin=f"http://localhost:{pages.port}",
            environment=environment,
            # The pages' server as a hub service: the proxy routes /services/pages/ to it.
            extra_config=f"c.JupyterHub.services.append({service!r})",
        )
        hub.start()
        try:
            hub.start_server("alice")
            with new_context(browser) as context:
                requests: list[Any] = []
                context.on("request", lambda request: requests.append(request))
                lab = log_in(context, hub)
                yield HubSite(hub, pages, context, lab, requests)
        finally:
            left = hub.stop()
        assert left == [], f"processes left after the hub stopped: {left}\n{hub.log()[-3000:]}"


@pytest.fixture(scope="module")
def site(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubSite]:
    """The hub with JupyterHub's defaults, and alice logged in."""
    with hub_site(browser, tmp_path_factory.mktemp("hub-cookie"), {}) as hub:
        yield hub


def headers_of(site: HubSite, pattern: str) -> list[dict[str, str]]:
    """The headers the browser sent with each request whose URL matches ``pattern``."""
    return [r.all_headers() for r in list(site.requests) if re.search(pattern, r.url)]


def test_logging_in_sets_the_servers_own_cookie(site: HubSite) -> None:
    cookies = site.cookies()
    for name, path in HUB_COOKIES.items():
        cookie = cookies[f"{name}@{path}"]
        assert cookie["httpOnly"] is True, cookie
        assert cookie["sameSite"] == "Lax", cookie
    # The server's XSRF cookie: on its path only, and readable by scripts there.
    xsrf = cookies["_xsrf@/user/alice/"]
    assert xsrf["httpOnly"] is False
    assert "_xsrf=" in site.lab.evaluate("document.cookie")


def test_a_page_on_the_hubs_site_works_with_the_cookie_over_the_websocket(
    site: HubSite,
) -> None:
    uploaded = os.urandom(100_000) + bytes(range(256))
    page = open_page(site.context, site.service_page)
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    try:
        result = run_here(
            page,
            site.server,
            FILES_AND_CODE,
            f"/services/{SERVICE}/services.js",
            transports=["websocket"],
            name="cookie-ws.bin",
            uploaded=base64.b64encode(uploaded).decode(),
            code=kernel_code(DISPLAY),
        )
    finally:
        page.close()
    assert result["transport"] == "websocket"
    assert result["saved"] == "cookie-ws.bin"
    assert "cookie-ws.bin" in result["names"]
    assert base64.b64decode(result["roundTrip"]) == uploaded
    assert base64.b64decode(result["raw"]) == uploaded
    assert result["renamed"] == "renamed-cookie-ws.bin"
    assert_kernel_outputs(result["ok"], result["bad"], DISPLAY)
    assert not (site.hub.home("alice") / "renamed-cookie-ws.bin").exists()  # DELETE went through
    # The page cannot read the server's _xsrf cookie (it is set for /user/alice/ only):
    # the writes passed the hub's XSRF check because the server took the token from the
    # upgrade's cookies. And no token travelled in any URL.
    assert "_xsrf" not in result["pageCookies"]
    tunnel_sockets = [url for url in sockets if "/user/alice/http_over_websocket?" in url]
    assert tunnel_sockets, sockets
    assert not [url for url in sockets if "token=" in url]


def test_polling_from_the_hubs_site_needs_the_servers_xsrf_cookie(site: HubSite) -> None:
    page = open_page(site.context, site.service_page)
    try:
        refused = run_here(
            page, site.server, REFUSAL, f"/services/{SERVICE}/services.js", transports=["polling"]
        )
        opened = headers_of(site, r"/user/alice/http_over_websocket/polling$")
    finally:
        page.close()
    print(refused)
    assert refused["opened"] is False
    assert refused["kind"] == "refused"
    message = refused["message"]
    assert "403: Polling request not authenticated" in message
    assert "the login cookie went along" in message
    assert "needs the server's _xsrf cookie (sent as X-XSRFToken)" in message
    assert "it is set for /user/alice/ only" in message
    assert "Use the WebSocket transport" in message
    assert "access:servers!user=alice" in message
    assert f"{site.hub.url}hub/token" in message
    # The browser did send the cookie; what was missing is the XSRF header.
    assert opened
    assert "jupyterhub-user-alice=" in opened[-1].get("cookie", "")
    assert "x-xsrftoken" not in opened[-1]


def test_polling_works_with_the_cookie_from_a_page_under_the_servers_path(
    site: HubSite,
) -> None:
    """JupyterLab's page (/user/alice/lab), where an extension runs, reads ``_xsrf``."""
    uploaded = bytes(range(256))[::-1] * 200 + os.urandom(2000)
    before = len(site.requests)
    result = run_here(
        site.lab,
        site.server,
        FILES_AND_CODE,
        f"{site.hub.url}services/{SERVICE}/services.js",
        transports=["polling"],
        name="cookie-polling.bin",
        uploaded=base64.b64encode(uploaded).decode(),
        code=kernel_code(DISPLAY),
    )
    assert result["transport"] == "polling"
    assert "cookie-polling.bin" in result["names"]
    assert base64.b64decode(result["roundTrip"]) == uploaded
    assert base64.b64decode(result["raw"]) == uploaded
    assert result["renamed"] == "renamed-cookie-polling.bin"
    assert_kernel_outputs(result["ok"], result["bad"], DISPLAY)
    assert not (site.hub.home("alice") / "renamed-cookie-polling.bin").exists()
    # Every polling request carried the cookie and the _xsrf cookie's value, no token.
    xsrf = site.cookies()["_xsrf@/user/alice/"]["value"]
    # (Not those the client aborted when it closed: their headers were never sent.)
    polls = [
        (r.url, r.all_headers())
        for r in list(site.requests)[before:]
        if "/user/alice/http_over_websocket/polling" in r.url and r.failure is None
    ]
    assert len(polls) > 3
    for url, headers in polls:
        assert "jupyterhub-user-alice=" in headers.get("cookie", "")
        assert headers.get("x-xsrftoken") == xsrf
        assert "authorization" not in headers
        assert "token=" not in url


def test_a_page_on_another_site_gets_no_cookie_and_is_told_to_use_a_token(
    site: HubSite,
) -> None:
    site.pages.seen.clear()
    before = len(site.requests)
    page = open_page(site.context, site.other_site_page)
    try:
        default = run_here(page, site.server, REFUSAL, "/services.js", transports=None)
        polling = run_here(page, site.server, REFUSAL, "/services.js", transports=["polling"])
        token = site.hub.new_token("alice", ["access:servers!user=alice"], note="cookie test")
        with_token = page.evaluate(
            """async (a) => {
              const client = await import(a.server + "http_over_websocket/static/index.js");
              const tunnel = await client.connect({ url: a.server, token: a.token });
              const listing = await (await tunnel.fetch("api/contents")).json();
              const out = { transport: tunnel.transport, type: listing.type };
              tunnel.close();
              return out;
            }""",
            {"server": site.server, "token": token},
        )
        to_hub = [
            r.all_headers()
            for r in list(site.requests)[before:]
            if r.url.startswith(site.hub.url) and r.frame.page is page
        ]
    finally:
        page.close()
    print(default, polling)
    hub_host = f"127.0.0.1:{site.hub.port}"
    page_host = f"localhost:{site.pages.port}"
    for refused in (default, polling):
        assert refused["opened"] is False
        assert refused["kind"] == "refused"
        message = refused["message"]
        assert "no token was given, and browsers do not send a login cookie" in message
        assert f"they belong to {hub_host} alone, and this page is on {page_host}" in message
        assert "access:servers!user=alice" in message
        assert f"{site.hub.url}hub/token" in message
        assert "Authorization header" in message
        assert "Python client" in message
    assert "403: Polling request not authenticated" in polling["message"]
    # The fix the message names works from the same page: a hub API token (polling, as
    # the hub refuses ?token= on the browser's WebSocket).
    assert with_token == {"transport": "polling", "type": "directory"}
    # None of the hub's cookies went anywhere from this page: not to the hub...
    assert to_hub
    assert not [h for h in to_hub if "cookie" in h], to_hub
    # ...nor to the page's own server (another host: the cookies are 127.0.0.1's).
    from_page = [(path, cookie) for path, host, cookie in site.pages.seen if host == page_host]
    assert from_page
    assert [cookie for _, cookie in from_page] == [None] * len(from_page)


def test_cookies_ignore_ports_but_not_paths(site: HubSite) -> None:
    """The page server as ``127.0.0.1:Q`` (another origin, same host): what it receives."""
    site.pages.seen.clear()
    page = open_page(site.context, f"http://127.0.0.1:{site.pages.port}/")
    page.close()
    cookies = [cookie or "" for _, _, cookie in site.pages.seen]
    assert cookies
    # The session id (path /) reaches any port of the hub's host; the login cookies,
    # set for /hub/ and /user/alice/, do not reach this server's other paths.
    assert all("jupyterhub-session-id=" in c for c in cookies)
    assert not [c for c in cookies if "jupyterhub-hub-login" in c or "jupyterhub-user-" in c]


async def python_client_with(cookies: dict[str, str], url: str, origin: str) -> dict[str, Any]:
    """What the Python client does with the browser's cookies, over each transport."""
    out: dict[str, Any] = {}
    for transport in ("websocket", "polling"):
        try:
            tunnel = await TunnelClient.connect(
                url, cookies=cookies, origin=origin, transports=(transport,)
            )
        except HTTPClientError as error:
            out[transport] = error.code
            continue
        async with tunnel:
            listing = await tunnel.request("GET", "/api/contents")
            body = json.dumps({"type": "file", "format": "text", "content": transport})
            saved = await tunnel.request("PUT", f"/api/contents/py-{transport}.txt", body=body)
            out[transport] = (tunnel.transport, listing.status, saved.status)
    return out


def test_the_python_client_with_the_browsers_cookies(site: HubSite) -> None:
    """What a doctor that took the browser's cookies would meet: both transports work.

    The cookies the browser sends to ``/user/alice/``: the login cookie, ``_xsrf`` (the
    client sends its value as ``X-XSRFToken`` on polling; the server adds it to
    tunnelled writes) and ``jupyterhub-session-id``, which JupyterHub binds the
    ``_xsrf`` value to: without it every write is refused (403), and so is polling.
    """
    cookies = {c["name"]: c["value"] for c in site.context.cookies(site.server)}
    assert sorted(cookies) == ["_xsrf", "jupyterhub-session-id", "jupyterhub-user-alice"]
    origin = site.hub.url.rstrip("/")
    without_session = {k: v for k, v in cookies.items() if k != "jupyterhub-session-id"}
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # Playwright owns this thread's loop
        outcome = pool.submit(asyncio.run, python_client_with(cookies, site.server, origin))
        assert outcome.result(timeout=120) == {
            "websocket": ("websocket", 200, 201),
            "polling": ("polling", 200, 201),
        }
        assert (site.hub.home("alice") / "py-polling.txt").read_text() == "polling"
        partial = pool.submit(asyncio.run, python_client_with(without_session, site.server, origin))
        assert partial.result(timeout=120) == {"websocket": ("websocket", 200, 403), "polling": 403}


def doctor(*args: str) -> subprocess.CompletedProcess[str]:
    """The doctor as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "jupyter_http_over_ws.doctor", *args, "--no-kernel"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_doctor_without_credentials_on_the_hubs_user_url(site: HubSite) -> None:
    """The doctor takes no cookies: without a token it says credentials are needed."""
    hub_origin = site.hub.url.rstrip("/")
    other_origin = site.other_site_page.rstrip("/")
    same = doctor(site.server, "--origin", hub_origin)
    other = doctor(site.server, "--origin", other_origin)
    print(same.stdout, other.stdout, same.stderr[-2000:], other.stderr[-2000:])
    hub_host = urlsplit(site.hub.url).netloc
    for result in (same, other):
        assert result.returncode == 1
        assert "The jupyter_http_over_ws extension" in result.stdout
        assert (
            "The hub's single-user server (alice's server) requires a hub API token, and "
            "none was given (the tunnel upgrade answered 403)." in result.stdout
        )
        assert "access:servers!user=alice" in result.stdout
        # ... and what the login cookie can do instead, for which pages.
        assert f"serves only pages on the hub's own host ({hub_host})" in result.stdout
    assert f"The server accepts WebSockets from {hub_origin}" in same.stdout
    assert f"The server accepts WebSockets from {other_origin}" in other.stdout
    # Only for the page on another site: the browser withholds the login cookie.
    withheld = "browsers withhold the login cookie (SameSite=Lax"
    assert withheld in other.stdout
    assert withheld not in same.stdout


def test_the_hubs_websocket_cookie_switch_does_not_stop_chromium(
    browser: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """``JUPYTERHUB_ALLOW_WEBSOCKET_COOKIE_AUTH=0``, as it stands today: no effect on Chromium.

    JupyterHub refuses a cookie on a WebSocket only when the upgrade says
    ``Sec-Fetch-Mode: websocket``, which Chromium does not send; so the cookie still
    opens the tunnel (by the same rule, JupyterLab's kernel sockets too). This pins
    today's behaviour: if the extension starts to honour the switch itself, this test
    must change.
    """
    environment = {"JUPYTERHUB_ALLOW_WEBSOCKET_COOKIE_AUTH": "0"}
    base = tmp_path_factory.mktemp("hub-cookie-locked")
    with hub_site(browser, base, environment) as locked:
        page = open_page(locked.context, locked.service_page)
        try:
            result = run_here(
                page,
                locked.server,
                """
                const tunnel = await connect({ transports: ["websocket"] });
                const { kernels, kernel } = await startKernel(tunnel);
                const ran = await execute(kernel, a.code);
                await kernel.shutdown();
                kernels.dispose();
                const transport = tunnel.transport;
                tunnel.close();
                return { transport, ran };
                """,
                f"/services/{SERVICE}/services.js",
                code="import os; print(os.environ.get('JUPYTERHUB_ALLOW_WEBSOCKET_COOKIE_AUTH'))",
            )
        finally:
            page.close()
    assert result["transport"] == "websocket"
    # The kernel inherits the single-user server's environment: the switch was set there.
    assert stream_texts(result["ran"]["outputs"]) == {"stdout": "0\n"}
