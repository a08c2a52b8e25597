"""A page in Chromium works with Jupyter through a real nginx, old or current.

Layout (all on loopback):

- Jupyter with the extension at ``http://127.0.0.1:P/``, ``allow_origin`` the page's
  origin (``http://localhost:Q``) and nothing else;
- nginx (Debian's package) at ``http://127.0.0.1:N/`` proxying to it, configured either
  as an *old* reverse proxy (HTTP/1.0 upstream, ``Upgrade`` not forwarded: every
  WebSocket upgrade fails) or as nginx's documentation recommends (upgrades pass);
- the test page at ``http://localhost:Q/``, another origin and another site than nginx's.

The page knows only nginx's URL. It connects with the default transports: behind the
old proxy the WebSocket fails and the polling transport takes over, behind the current
one the WebSocket is used. Either way the same work gets done: list files, download and
upload a binary file byte-exact, run code on a kernel through ``@jupyterlab/services``.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.browser import (
    assert_kernel_outputs,
    jupyter_server,
    kernel_code,
    open_page,
    page_dir,
    run_in_page,
)
from support.browser import browser as browser
from support.browser import context as context
from support.browser import jp_asyncio_loop as jp_asyncio_loop
from support.browser import jp_server_cleanup as jp_server_cleanup
from support.nginx import Nginx
from support.ports import free_port

from jupyter_http_over_ws import __version__
from jupyter_http_over_ws.demo import PageServer
from jupyter_http_over_ws.doctor.polling import POLLING_STILL_CONNECTS, PROXY_FIX, UPGRADES_DROPPED

pytestmark = pytest.mark.slow

#: Random bytes, then every byte value: a byte lost, changed or moved shows.
PAYLOAD = os.urandom(512 * 1024 + 3) + bytes(range(256))

#: What the kernel displays.
DISPLAY = {"text/plain": "a display"}

WORK = """
        // Retry the WebSocket often: behind the old proxy each retry fails again.
        const tunnel = await connect({ upgradeInterval: 500 });
        const changes = [];
        tunnel.addEventListener("transportchange", (e) => changes.push(e.detail.transport));
        const out = { transport: tunnel.transport };

        // List files.
        const listing = await tunnel.fetch("api/contents");
        out.listStatus = listing.status;
        out.names = (await listing.json()).content.map((f) => f.name);

        // Download a binary file, byte for byte.
        const down = await tunnel.fetch("files/payload.bin");
        const bytes = new Uint8Array(await down.arrayBuffer());
        out.downStatus = down.status;
        out.downLength = bytes.length;
        out.downSha = Array.from(
          new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)),
          (b) => b.toString(16).padStart(2, "0"),
        ).join("");

        // Upload the same bytes back as a new file (the Contents API: base64 in JSON).
        let binary = "";
        for (let i = 0; i < bytes.length; i += 0x8000) {
          binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
        }
        const model = { type: "file", format: "base64", content: btoa(binary) };
        const up = await tunnel.fetch("api/contents/uploaded.bin", {
          method: "PUT",
          body: JSON.stringify(model),
          headers: { "Content-Type": "application/json" },
        });
        out.upStatus = up.status;
        out.upSize = (await up.json()).size;

        // Run code on a kernel: @jupyterlab/services over tunnel.fetch and tunnel.WebSocket.
        const { kernels, kernel } = await startKernel(tunnel);
        out.ok = await execute(kernel, a.code);
        out.bad = await execute(kernel, "1 / 0");
        await kernel.shutdown();
        kernels.dispose();

        out.transportAfter = tunnel.transport;
        out.changes = changes;
        tunnel.close();
        return out;
"""


@dataclass(frozen=True)
class Servers:
    """Jupyter, its files and the page, for this module."""

    jupyter_port: int
    token: str
    root: Path
    page: str
    log: Path


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    """Jupyter (allowing the page's origin only) and the page server."""
    base = tmp_path_factory.mktemp("browser-nginx")
    pages = page_dir(base)
    root = base / "root"
    root.mkdir()
    (root / "payload.bin").write_bytes(PAYLOAD)
    token = secrets.token_hex(16)
    port = free_port()
    with PageServer(pages) as page:
        origin = f"http://localhost:{page.port}"
        with jupyter_server(
            base / "jupyter", port=port, token=token, root_dir=root, allow_origin=origin
        ):
            yield Servers(
                jupyter_port=port,
                token=token,
                root=root,
                page=f"{origin}/",
                log=base / "jupyter" / "server.log",
            )


@pytest.mark.parametrize(
    ("upgrades", "expected"),
    [(False, "polling"), (True, "websocket")],
    ids=["old-proxy", "upgrading-proxy"],
)
def test_page_works_through_nginx(
    servers: Servers, context: Any, tmp_path: Path, upgrades: bool, expected: str
) -> None:
    (servers.root / "uploaded.bin").unlink(missing_ok=True)
    proxy = Nginx(tmp_path / "nginx", servers.jupyter_port, upgrades=upgrades)
    proxy.start()
    try:
        page = open_page(context, servers.page)
        result = run_in_page(page, proxy.url("/"), servers.token, WORK, code=kernel_code(DISPLAY))
        if result["transport"] == "polling":
            # tunnel.close() deletes the polling session on the server, through nginx.
            proxy.access_log_with("DELETE /http_over_websocket/polling/")
    finally:
        proxy.stop()
    log = proxy.access_log()
    summary = {k: v for k, v in result.items() if k not in ("ok", "bad")}
    print(summary)

    # The transport: the fallback behind the old proxy, the WebSocket behind the other.
    assert result["transport"] == expected, summary
    assert result["transportAfter"] == expected, summary
    assert result["changes"] == [], summary
    upgrades_refused = re.findall(r'"GET /http_over_websocket\?[^"]*" 400 ', log)
    polls = re.findall(r'"(?:POST|GET|DELETE) /http_over_websocket/polling[^"]*" 20\d ', log)
    if expected == "polling":
        # The first attempt and at least one retry while the work went on (seconds).
        assert len(upgrades_refused) >= 2, log
        assert polls, log
        assert " 101 " not in log
        assert re.search(r'"DELETE /http_over_websocket/polling/[^/ ?"]+ HTTP/1.1" 204 ', log), log
    else:
        assert not upgrades_refused, log
        assert not polls, log
        # The tunnel, then the kernel's socket (proxied_ws), both upgraded through nginx.
        assert re.search(r'"GET /http_over_websocket\?[^"]*" 101 ', log), log
        assert re.search(r'"GET /http_over_websocket/proxied_ws/[^"]*" 101 ', log), log

    # Files listed, the binary file downloaded and uploaded byte-exact.
    assert result["listStatus"] == 200
    assert "payload.bin" in result["names"]
    assert result["downStatus"] == 200
    assert result["downLength"] == len(PAYLOAD)
    assert result["downSha"] == hashlib.sha256(PAYLOAD).hexdigest()
    assert result["upStatus"] == 201, summary
    assert result["upSize"] == len(PAYLOAD)
    assert (servers.root / "uploaded.bin").read_bytes() == PAYLOAD

    # Code ran on a kernel, with its outputs.
    assert_kernel_outputs(result["ok"], result["bad"], DISPLAY)


# tunnel.diagnose() behind each proxy: through the old one, the tunnel works over
# polling, and diagnose() must say so (the extension's version, the doctor's words for the
# proxy) instead of calling the server unreachable; through the current one it answers
# from the diagnose socket, as before.
DIAGNOSE = """
        const tunnel = await connect({ upgradeInterval: 0 });
        const out = { transport: tunnel.transport, version: tunnel.version };
        try {
          out.answer = await tunnel.diagnose();
        } catch (e) {
          out.rejected = errorText(e);
        }
        try {
          await client.diagnose({ url: a.server });
          out.standalone = "resolved";
        } catch (e) {
          out.standalone = { kind: e.kind, websocket: e.websocket, message: e.message };
        }
        tunnel.close();
        return out;
"""


def test_diagnose_behind_a_proxy_that_drops_upgrades(
    servers: Servers, context: Any, tmp_path: Path
) -> None:
    proxy = Nginx(tmp_path / "nginx", servers.jupyter_port, upgrades=False)
    proxy.start()
    try:
        page = open_page(context, servers.page)
        result = run_in_page(page, proxy.url("/"), servers.token, DIAGNOSE)
    finally:
        proxy.stop()
    log = proxy.access_log()
    print(result)

    assert result["transport"] == "polling", result
    assert "rejected" not in result, result
    answer = result["answer"]
    assert answer["extension_version"] == __version__ == result["version"]
    assert answer["transport"] == "polling"
    assert answer["websocket"] == "dropped"
    assert answer["polling"] == "works"
    assert answer["is_outdated_extension"] is False
    message = answer["message"]
    assert message.startswith("WebSocket upgrades do not reach the server: "), message
    assert f", so {UPGRADES_DROPPED}." in message
    assert POLLING_STILL_CONNECTS in message
    assert "not reachable" not in message
    assert answer["fix"] == PROXY_FIX
    # diagnose() alone cannot know that polling works, but it says why its socket failed.
    assert result["standalone"]["kind"] == "unreachable", result
    assert result["standalone"]["websocket"] == "dropped", result
    assert UPGRADES_DROPPED in result["standalone"]["message"]
    # nginx turned the diagnose upgrade into a plain request, which the extension refused.
    assert re.search(r'"GET /http_over_websocket/diagnose HTTP/1.1" 400 ', log), log
    assert " 101 " not in log


def test_diagnose_through_a_proxy_that_passes_upgrades(
    servers: Servers, context: Any, tmp_path: Path
) -> None:
    proxy = Nginx(tmp_path / "nginx", servers.jupyter_port, upgrades=True)
    proxy.start()
    try:
        page = open_page(context, servers.page)
        result = run_in_page(page, proxy.url("/"), servers.token, DIAGNOSE)
    finally:
        proxy.stop()
    assert result["transport"] == "websocket", result
    # The endpoint's own answer, unchanged.
    assert set(result["answer"]) == {
        "message_id",
        "extension_version",
        "has_authentication_cookie",
        "is_outdated_extension",
    }, result
    assert result["answer"]["extension_version"] == __version__
    assert result["standalone"] == "resolved"
