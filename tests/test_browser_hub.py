"""The browser client under a real JupyterHub: a page on another origin, in Chromium.

The page (``http://localhost:Q/``, another site than the hub at ``http://127.0.0.1:P/``)
imports our client from alice's server (``/user/alice/http_over_websocket/static/``)
and an unmodified ``@jupyterlab/services``, and uses alice's server with a hub API
token scoped to it, through the hub's proxy: over the tunnel's WebSocket and over the
polling fallback. The hub is :mod:`support.hub`'s; the page's origin is allowed as an
operator allows it (``c.Spawner.args``).

How the token travels: polling sends it in the ``Authorization`` header, which the hub's
single-user server always accepts. A browser cannot set headers on a WebSocket, so the
client puts it in the tunnel WebSocket's URL (``?token=``); JupyterHub 5+ accepts that
only with ``Sec-Fetch-Mode: websocket``, which Chromium does not send on a WebSocket
handshake. So with the hub's defaults the WebSocket is refused (403) and ``connect()``
falls back to polling; with ``JUPYTERHUB_ALLOW_TOKEN_IN_URL=1`` in the single-user
servers' environment (``c.Spawner.environment``) the WebSocket works too.
"""

from __future__ import annotations

import base64
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.browser import assert_kernel_outputs, kernel_code, open_page, page_dir, run_in_page
from support.browser import browser as browser
from support.browser import context as context
from support.browser import jp_asyncio_loop as jp_asyncio_loop
from support.browser import jp_server_cleanup as jp_server_cleanup
from support.hub import Hub

from jupyter_http_over_ws.demo import PageServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

#: What the kernel test displays.
DISPLAY = {"text/plain": "a display", "text/markdown": "**a display**"}

#: (hub, transports asked for, transport expected): "default" is a hub with JupyterHub's
#: defaults, "token-in-url" one whose servers accept ?token= (JUPYTERHUB_ALLOW_TOKEN_IN_URL).
CASES = [
    pytest.param("default", ["polling"], "polling", id="polling"),
    pytest.param("default", None, "polling", id="default-falls-back-to-polling"),
    pytest.param("token-in-url", ["websocket"], "websocket", id="websocket-token-in-url"),
]

#: The environment of each hub's single-user servers.
HUB_ENVIRONMENTS = {"default": {}, "token-in-url": {"JUPYTERHUB_ALLOW_TOKEN_IN_URL": "1"}}


class HubPage:
    """The hub, and the page server on another origin that the hub's servers allow."""

    def __init__(self, hub: Hub, page: str, token: str) -> None:
        self.hub = hub
        self.page = page
        self.token = token

    @property
    def server(self) -> str:
        return self.hub.user_url("alice")

    def run(self, context: Any, body: str, **args: Any) -> Any:
        """Open the page and run ``body`` there against alice's server with the token."""
        page = open_page(context, self.page)
        try:
            return run_in_page(page, self.server, self.token, body, **args)
        finally:
            page.close()


@contextlib.contextmanager
def running_hub(base: Path, environment: dict[str, str]) -> Iterator[HubPage]:
    """A running hub with alice's server, a page server, and a token for alice's server."""
    with PageServer(page_dir(base)) as pages:
        origin = f"http://localhost:{pages.port}"
        hub = Hub(base / "hub", page_origin=origin, environment=environment)
        hub.start()
        try:
            hub.start_server("alice")
            token = hub.new_token("alice", ["access:servers!user=alice"], note="browser")
            yield HubPage(hub, origin + "/", token)
        finally:
            left = hub.stop()
        assert left == [], f"processes left after the hub stopped: {left}\n{hub.log()[-3000:]}"


@pytest.fixture(scope="module")
def default_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubPage]:
    """A hub with JupyterHub's defaults (``?token=`` only with Sec-Fetch-Mode: websocket)."""
    with running_hub(tmp_path_factory.mktemp("hub-default"), HUB_ENVIRONMENTS["default"]) as hub:
        yield hub


@pytest.fixture(scope="module")
def token_in_url_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubPage]:
    """A hub whose single-user servers accept ``?token=`` (JUPYTERHUB_ALLOW_TOKEN_IN_URL)."""
    environment = HUB_ENVIRONMENTS["token-in-url"]
    with running_hub(tmp_path_factory.mktemp("hub-token-in-url"), environment) as hub:
        yield hub


def hub_of(request: pytest.FixtureRequest, kind: str) -> HubPage:
    """The hub of ``kind``, started when a test first asks for it."""
    fixture = {"default": "default_hub", "token-in-url": "token_in_url_hub"}[kind]
    page: HubPage = request.getfixturevalue(fixture)
    return page


@pytest.mark.parametrize(("kind", "transports", "expected"), CASES)
def test_services_lists_uploads_and_downloads_files_byte_exact(
    context: Any, request: pytest.FixtureRequest, kind: str, transports: Any, expected: str
) -> None:
    hub_page = hub_of(request, kind)
    uploaded = os.urandom(200_000) + bytes(range(256))
    on_disk = bytes(range(256))[::-1] * 300 + os.urandom(1000)
    name = f"from-the-page-{kind}-{expected}.bin"
    disk_name = f"from-the-disk-{kind}-{expected}.bin"
    (hub_page.hub.home("alice") / disk_name).write_bytes(on_disk)
    result = hub_page.run(
        context,
        """
        const tunnel = await connect(a.transports ? { transports: a.transports } : {});
        const contents = new services.ContentsManager({ serverSettings: settingsFor(tunnel) });
        const saved = await contents.save(a.name, {
          type: "file", format: "base64", content: a.uploaded,
        });
        const listing = await contents.get("");
        const roundTrip = await contents.get(a.name, { format: "base64", content: true });
        const fromDisk = await contents.get(a.diskName, { format: "base64", content: true });
        // The raw bytes too, through /files/ (no base64 on the way).
        const raw = new Uint8Array(await (await tunnel.fetch("files/" + a.diskName)).arrayBuffer());
        let binary = "";
        for (const byte of raw) binary += String.fromCharCode(byte);
        const out = {
          transport: tunnel.transport,
          saved: saved.path,
          names: listing.content.map((f) => f.name),
          roundTrip: roundTrip.content.replace(/\\n/g, ""),
          fromDisk: fromDisk.content.replace(/\\n/g, ""),
          raw: btoa(binary),
        };
        tunnel.close();
        return out;
        """,
        transports=transports,
        name=name,
        diskName=disk_name,
        uploaded=base64.b64encode(uploaded).decode(),
    )
    assert result["transport"] == expected
    assert result["saved"] == name
    assert {name, disk_name} <= set(result["names"])
    assert (hub_page.hub.home("alice") / name).read_bytes() == uploaded
    assert base64.b64decode(result["roundTrip"]) == uploaded
    assert base64.b64decode(result["fromDisk"]) == on_disk
    assert base64.b64decode(result["raw"]) == on_disk


@pytest.mark.parametrize(("kind", "transports", "expected"), CASES)
def test_services_runs_code_with_outputs(
    context: Any, request: pytest.FixtureRequest, kind: str, transports: Any, expected: str
) -> None:
    hub_page = hub_of(request, kind)
    result = hub_page.run(
        context,
        """
        const tunnel = await connect(a.transports ? { transports: a.transports } : {});
        const { kernels, kernel } = await startKernel(tunnel);
        const ok = await execute(kernel, a.code);
        const bad = await execute(kernel, "1 / 0");
        const transport = tunnel.transport;
        await kernel.shutdown();
        kernels.dispose();
        tunnel.close();
        return { ok, bad, transport };
        """,
        transports=transports,
        code=kernel_code(DISPLAY),
    )
    assert result["transport"] == expected
    assert_kernel_outputs(result["ok"], result["bad"], DISPLAY)


def test_polling_never_puts_the_token_in_a_url(context: Any, default_hub: HubPage) -> None:
    """The hub refuses ``?token=`` on HTTP: every polling request carries the header."""
    hub_page = default_hub
    result = hub_page.run(
        context,
        """
        const tunnel = await connect({ transports: ["polling"] });
        const listing = await (await tunnel.fetch("api/contents")).json();
        const transport = tunnel.transport;
        tunnel.close();
        return { transport, type: listing.type };
        """,
    )
    assert result == {"transport": "polling", "type": "directory"}
    polling = [
        line
        for line in hub_page.hub.log().splitlines()
        if "/user/alice/http_over_websocket/polling" in line
    ]
    assert polling, "the single-user server logged no polling request"
    assert not [line for line in polling if hub_page.token in line or "token=" in line]


def test_the_websocket_is_refused_with_the_hubs_defaults(
    context: Any, default_hub: HubPage
) -> None:
    """Chromium sends no ``Sec-Fetch-Mode: websocket``, so the hub's server refuses ``?token=``."""
    result = default_hub.run(
        context,
        """
        try {
          await connect({ transports: ["websocket"] });
          return { opened: true };
        } catch (e) {
          return { opened: false, kind: e.kind, message: e.message };
        }
        """,
    )
    assert result["opened"] is False
    assert result["kind"] == "refused"
    assert "JUPYTERHUB_ALLOW_TOKEN_IN_URL" in result["message"]
    refused = [
        line
        for line in default_hub.hub.log().splitlines()
        if " 403 GET /user/alice/http_over_websocket?" in line
    ]
    assert refused, "the single-user server did not log the refused upgrade"
