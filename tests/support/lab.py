"""JupyterLab in the browser tests: the page's network record, and running one cell.

Shared by tests/test_browser_lab.py and tests/test_browser_lab_nginx.py.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest

from jupyter_http_over_ws.lab.frontend import LabFrontend
from jupyter_http_over_ws.lab.pageserver import LabPageServer
from support.browser import jupyter_server
from support.ports import free_port

T = TypeVar("T")

TUNNEL_PATH = "/http_over_websocket"


@dataclass(frozen=True)
class Lab:
    """JupyterLab's page server and the Jupyter server it is for."""

    #: The Jupyter server's URL (``http://127.0.0.1:P/``) and port.
    server: str
    port: int
    token: str
    #: The page server's origin (``http://localhost:Q``), the one the server allows.
    page_origin: str
    #: The Jupyter server's root directory.
    root: Path

    def set_user_settings(self, plugin: str, settings: dict[str, Any]) -> None:
        """Write JupyterLab user settings for ``plugin`` (``@scope/package:name``) on the
        server, as the Settings Editor would: pages opened afterwards load them."""
        package, name = plugin.rsplit(":", 1)
        config = self.root.parent / "jupyter" / "config"  # lab_servers' JUPYTER_CONFIG_DIR
        path = config / "lab" / "user-settings" / package / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings))


@contextlib.contextmanager
def lab_servers(base: Path, port: int = 0, page_server_url: str = "") -> Iterator[Lab]:
    """The installed JupyterLab's page server on localhost, and a Jupyter server allowing it.

    The Jupyter server listens on ``port`` (default: a free one); the page is bound to
    ``page_server_url`` (default: that server's URL; a proxy's in front of it).
    """
    root = base / "root"
    root.mkdir()
    token = secrets.token_hex(16)
    port = port or free_port()
    server = f"http://127.0.0.1:{port}/"
    page = LabPageServer(
        LabFrontend.find(),
        "127.0.0.1",
        0,
        server_url=page_server_url or server,
        origin_host="localhost",
    )
    home = base / "jupyter"
    origin = page.origin
    with page, jupyter_server(home, port=port, token=token, root_dir=root, allow_origin=origin):
        yield Lab(server, port, token, origin, root)


@dataclass
class Network:
    """What a page asked for: every request's URL, every WebSocket's URL."""

    requests: list[str] = field(default_factory=list)
    sockets: list[str] = field(default_factory=list)
    #: Frames each socket received, by URL.
    frames: Counter[str] = field(default_factory=Counter)
    #: The text frames each socket sent, by URL (the first 2,000 characters of each).
    sent: defaultdict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    #: Why each request that failed failed, by URL (as Playwright words it: "csp", "net::...").
    failures: dict[str, str] = field(default_factory=dict)

    def watch(self, page: Any) -> None:
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("requestfailed", lambda r: self.failures.setdefault(r.url, r.failure or ""))
        page.on("websocket", self._socket)
        page.on("console", lambda m: print(f"[console.{m.type}] {m.text}"))
        page.on("pageerror", lambda e: print(f"[pageerror] {e}"))

    def _socket(self, ws: Any) -> None:
        self.sockets.append(ws.url)
        ws.on("framereceived", lambda _: self.frames.update([ws.url]))
        ws.on(
            "framesent", lambda p: self.sent[ws.url].append(p[:2000] if isinstance(p, str) else "")
        )

    def outside_the_tunnel(self, server: str) -> list[str]:
        """Requests and sockets to ``server``'s host that are not under the tunnel's path."""
        host = urlsplit(server).netloc
        return [
            url
            for url in self.requests + self.sockets
            if urlsplit(url).netloc == host and not urlsplit(url).path.startswith(TUNNEL_PATH)
        ]


class CuttableTunnel:
    """Passes the tunnel's WebSocket through, until :meth:`cut` closes it on the page."""

    def __init__(self) -> None:
        self.routes: list[Any] = []

    def route(self, page: Any) -> None:
        """Put this between ``page`` and the server (before the page opens the tunnel)."""
        page.route_web_socket(re.compile(r"/http_over_websocket\?"), self)

    def __call__(self, ws: Any) -> None:
        ws.connect_to_server()
        self.routes.append(ws)

    def cut(self) -> int:
        """Close every tunnel socket opened so far, as a network failure would; how many."""
        routes, self.routes = self.routes, []
        for ws in routes:
            ws.close(code=1011, reason="cut by the test's network")
        return len(routes)


def open_lab(context: Any, url: str, tunnel: CuttableTunnel | None = None) -> tuple[Any, Network]:
    """A new page at ``url``, its network watched from the first request."""
    page = context.new_page()
    if tunnel is not None:
        tunnel.route(page)
    network = Network()
    network.watch(page)
    page.goto(url)
    return page, network


def run_next_cell(page: Any, code: str, count: int) -> str:
    """Type ``code`` in the active (empty) cell, run it; the text of output ``count``."""
    page.keyboard.type(code)
    page.wait_for_selector(f'.jp-NotebookPanel .jp-Cell .cm-content:has-text("{code}")')
    page.keyboard.press("Shift+Enter")
    page.wait_for_function(
        "n => document.querySelectorAll('.jp-OutputArea-output').length >= n",
        arg=count,
        timeout=90_000,
    )
    outputs = page.query_selector_all(".jp-OutputArea-output")
    return str(outputs[count - 1].inner_text()).strip()


def run_first_cell(page: Any, code: str) -> str:
    """From the launcher: a new notebook, ``code`` in its cell, run; the output's text."""
    page.wait_for_selector(".jp-Launcher", timeout=90_000)
    page.click('.jp-LauncherCard[data-category="Notebook"]')
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell .cm-content", timeout=60_000)
    # Type once the notebook's session has its kernel (the status bar says "| Idle"; the
    # toolbar's indicator says idle before there is a session), and run once the text is
    # in the cell: JupyterLab runs nothing without a kernel or text, directly as here.
    page.get_by_text(re.compile(r"\| Idle$")).wait_for(timeout=60_000)
    page.click(".jp-NotebookPanel .jp-Cell .cm-content")
    page.keyboard.type(code)
    page.wait_for_selector(f'.jp-NotebookPanel .jp-Cell .cm-content:has-text("{code}")')
    page.keyboard.press("Shift+Enter")
    output = page.wait_for_selector(".jp-OutputArea-output", timeout=60_000)
    return str(output.inner_text()).strip()


def file_item(page: Any, name: str) -> Any:
    """The file browser's entry for ``name`` (a Playwright locator)."""
    text = page.locator(".jp-DirListing-itemText", has_text=re.compile(f"^{re.escape(name)}$"))
    return page.locator(".jp-DirListing-item", has=text)


def wait_for(condition: Callable[[], T], timeout: float = 60.0, page: Any = None) -> T:
    """``condition()``'s first truthy value, polled; the test fails after ``timeout``.

    A condition on what a page's events recorded (:class:`Network`) needs ``page``:
    Playwright's synchronous API runs event callbacks only while it is being called, so
    the poll then waits on the page instead of sleeping.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"not true after {timeout} s: {condition}")
        if page is None:
            time.sleep(0.1)
        else:
            page.wait_for_timeout(100)
