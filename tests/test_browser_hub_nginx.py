"""A page in Chromium uses alice's hub server through an nginx that drops upgrades.

Layout (all on loopback): a real JupyterHub (``support/hub.py``) at
``http://127.0.0.1:H/``; nginx at ``http://127.0.0.1:N/`` in front of it, configured as
an old reverse proxy (HTTP/1.0 upstream, ``Upgrade`` not forwarded); the page at
``http://localhost:Q/``, another site, allowed by ``c.Spawner.args``. The page knows
only nginx's URL and a hub token for alice's server.

The hub's single-user servers accept ``?token=`` on a WebSocket
(``JUPYTERHUB_ALLOW_TOKEN_IN_URL=1``), so the WebSocket works straight to the hub and
only nginx breaks it (with the hub's defaults Chromium's WebSocket is refused anyway:
``tests/test_browser_hub.py``). Through nginx the client's default ``connect()`` falls
back to polling, whose requests carry the token in the ``Authorization`` header, and an
unmodified ``@jupyterlab/services`` lists, uploads and downloads files byte-exact and
runs code with outputs.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from support.browser import assert_kernel_outputs, kernel_code, open_page, page_dir, run_in_page
from support.browser import browser as browser
from support.browser import context as context
from support.browser import jp_asyncio_loop as jp_asyncio_loop
from support.browser import jp_server_cleanup as jp_server_cleanup
from support.hub import Hub
from support.nginx import Nginx

from jupyter_http_over_ws.demo import PageServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

#: Random bytes, then every byte value: a byte lost, changed or moved shows.
PAYLOAD = os.urandom(2 * 1024 * 1024 + 3) + bytes(range(256))

#: What the kernel displays.
DISPLAY = {"text/plain": "a display", "text/markdown": "**a display**"}

WORK = """
        // Retry the WebSocket often: through the old proxy each retry fails again.
        const tunnel = await connect({ upgradeInterval: 500 });
        const changes = [];
        tunnel.addEventListener("transportchange", (e) => changes.push(e.detail.transport));
        const out = { transport: tunnel.transport };
        const contents = new services.ContentsManager({ serverSettings: settingsFor(tunnel) });

        // List files.
        out.names = (await contents.get("")).content.map((f) => f.name);

        // Download a binary file through /files/, byte for byte.
        const down = await tunnel.fetch("files/payload.bin");
        const bytes = new Uint8Array(await down.arrayBuffer());
        out.downStatus = down.status;
        out.downLength = bytes.length;
        out.downSha = Array.from(
          new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)),
          (b) => b.toString(16).padStart(2, "0"),
        ).join("");

        // Upload the same bytes back as a new file, through the Contents API.
        let binary = "";
        for (let i = 0; i < bytes.length; i += 0x8000) {
          binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
        }
        const saved = await contents.save("uploaded.bin", {
          type: "file", format: "base64", content: btoa(binary),
        });
        out.upSize = saved.size;

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

WEBSOCKET_ONLY = """
        try {
          const tunnel = await connect({ transports: ["websocket"] });
          const transport = tunnel.transport;
          tunnel.close();
          return { opened: true, transport };
        } catch (e) {
          return { opened: false, kind: e.kind, websocket: e.websocket, message: e.message };
        }
"""


@dataclass(frozen=True)
class HubBehindNginx:
    """The hub, the dropping nginx in front of it, the page, and alice's token."""

    hub: Hub
    nginx: Nginx
    page: str
    token: str

    @property
    def alice_through_nginx(self) -> str:
        return f"{self.nginx.url('/')}user/alice/"

    def run(self, context: Any, server: str, body: str, **args: Any) -> Any:
        page = open_page(context, self.page)
        try:
            return run_in_page(page, server, self.token, body, **args)
        finally:
            page.close()


@pytest.fixture(scope="module")
def behind_nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubBehindNginx]:
    base = tmp_path_factory.mktemp("hub-nginx-browser")
    with PageServer(page_dir(base)) as pages:
        origin = f"http://localhost:{pages.port}"
        hub = Hub(
            base / "hub",
            page_origin=origin,
            environment={"JUPYTERHUB_ALLOW_TOKEN_IN_URL": "1"},
        )
        nginx = Nginx(base / "nginx", hub.port, upgrades=False)
        hub.start()
        try:
            nginx.start()
            hub.start_server("alice")
            token = hub.new_token("alice", ["access:servers!user=alice"], note="browser")
            (hub.home("alice") / "payload.bin").write_bytes(PAYLOAD)
            yield HubBehindNginx(hub, nginx, origin + "/", token)
        finally:
            nginx.stop()
            left = hub.stop()
        assert left == [], f"processes left after the hub stopped: {left}\n{hub.log()[-3000:]}"


def test_the_websocket_fails_through_nginx_and_works_straight_to_the_hub(
    context: Any, behind_nginx: HubBehindNginx
) -> None:
    through = behind_nginx.run(context, behind_nginx.alice_through_nginx, WEBSOCKET_ONLY)
    print(through)
    assert through["opened"] is False, through
    assert through["kind"] == "unreachable", through
    assert through["websocket"] == "dropped", through
    assert through["message"].startswith("WebSocket upgrades do not reach the server"), through
    assert "token" not in through["message"].split("(tried")[0], through
    straight = behind_nginx.run(context, behind_nginx.hub.user_url("alice"), WEBSOCKET_ONLY)
    assert straight == {"opened": True, "transport": "websocket"}
    # nginx passed the upgrade on as a plain GET, which alice's server refused.
    log = behind_nginx.nginx.access_log()
    assert re.search(r'"GET /user/alice/http_over_websocket\?[^"]*" 400 ', log), log
    assert " 101 " not in log


def test_services_works_over_polling_through_nginx(
    context: Any, behind_nginx: HubBehindNginx
) -> None:
    home = behind_nginx.hub.home("alice")
    (home / "uploaded.bin").unlink(missing_ok=True)
    result = behind_nginx.run(
        context, behind_nginx.alice_through_nginx, WORK, code=kernel_code(DISPLAY)
    )
    summary = {k: v for k, v in result.items() if k not in ("ok", "bad")}
    print(summary)
    assert result["transport"] == "polling", summary
    assert result["transportAfter"] == "polling", summary
    assert result["changes"] == [], summary
    assert "payload.bin" in result["names"]
    assert result["downStatus"] == 200
    assert result["downLength"] == len(PAYLOAD)
    assert result["downSha"] == hashlib.sha256(PAYLOAD).hexdigest()
    assert result["upSize"] == len(PAYLOAD)
    assert (home / "uploaded.bin").read_bytes() == PAYLOAD
    assert_kernel_outputs(result["ok"], result["bad"], DISPLAY)

    log = behind_nginx.nginx.access_log()
    # The first attempt and retries while the work went on, each refused.
    refused = re.findall(r'"GET /user/alice/http_over_websocket\?[^"]*" 400 ', log)
    assert len(refused) >= 2, log
    polls = re.findall(r'"(?:POST|GET|DELETE) /user/alice/http_over_websocket/polling[^"]*"', log)
    assert polls, log
    # Polling carries the token in its Authorization header, never in a URL.
    assert not [line for line in polls if "token=" in line]
