"""``tunnel.diagnose()`` in Chromium behind an nginx that drops WebSocket upgrades.

The layout of ``test_browser_nginx.py``: Jupyter (allowing only the page's origin), an
*old* nginx in front of it (HTTP/1.0 upstream, ``Upgrade`` not forwarded), and the page
on another origin that knows only nginx's URL. The tunnel works there over polling;
``diagnose()`` must say so, with the extension's version and the doctor's words for the
proxy, instead of calling the server unreachable. Through an nginx that passes upgrades
it answers from the diagnose socket, as before.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.browser import browser as browser
from support.browser import context as context
from support.browser import jp_asyncio_loop as jp_asyncio_loop
from support.browser import jp_server_cleanup as jp_server_cleanup
from support.browser import jupyter_server, open_page, page_dir, run_in_page
from support.nginx import Nginx
from support.ports import free_port

from jupyter_http_over_ws import __version__
from jupyter_http_over_ws.demo import PageServer
from jupyter_http_over_ws.doctor.polling import POLLING_STILL_CONNECTS, PROXY_FIX, UPGRADES_DROPPED

pytestmark = pytest.mark.slow

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


@dataclass(frozen=True)
class Servers:
    jupyter_port: int
    token: str
    page: str


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    """Jupyter (allowing the page's origin only) and the page server."""
    base = tmp_path_factory.mktemp("browser-nginx-diagnose")
    pages = page_dir(base)
    root = base / "root"
    root.mkdir()
    token = secrets.token_hex(16)
    port = free_port()
    with PageServer(pages) as page:
        origin = f"http://localhost:{page.port}"
        with jupyter_server(
            base / "jupyter", port=port, token=token, root_dir=root, allow_origin=origin
        ):
            yield Servers(jupyter_port=port, token=token, page=f"{origin}/")


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
