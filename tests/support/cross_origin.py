"""The browser tests' cross-origin layout: Jupyter, and test pages on other origins.

Layout (all on loopback):

- Jupyter with the extension at ``http://127.0.0.1:P/``, token ``T``, allowing the
  origins ``http://localhost:Q`` and ``http://127.0.0.1:Q`` (``allow_origin_pat``);
- the test page at ``http://localhost:Q/``: cross-origin *and* cross-site (an IP
  address is a site of its own), the case the tunnel is for;
- the same page server reached as ``http://127.0.0.1:Q/``: cross-origin but same-site,
  to contrast what a login cookie does;
- a second page server at ``http://127.0.0.1:R/``: an origin the server does not allow
  (same site as the server, so a login cookie goes along and only the origin is wrong).

The page imports the client from the server (``http_over_websocket/static/index.js``)
and an unmodified ``@jupyterlab/services`` from npm (bundled by esbuild in ``e2e/``).
The server also loads ``hows_echo`` (``js/testing/hows_echo.py``, shared with the node
tests), a real handler that echoes request bodies, to check the bytes a tunnelled
request delivers.

A test module re-exports the ``setup`` fixture (``from support.cross_origin import setup
as setup``): each module gets servers of its own.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from jupyter_http_over_ws.demo import PageServer
from support.browser import jupyter_server, open_page, page_dir, run_in_page
from support.ports import free_port

ALL_BYTES = bytes(range(256)) * 64  # 16 KiB, every byte value, in every position mod 256
BIG_SIZE = 512 * 1024 * 1024  # a sparse file: costs no disk, takes seconds to send whole


@dataclass(frozen=True)
class Setup:
    """What the tests need to know about the servers."""

    server: str
    token: str
    root: Path
    page: str
    same_site_page: str
    foreign_page: str
    pid: int


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """Jupyter and the page servers for this module."""
    base = tmp_path_factory.mktemp("browser")
    pages = page_dir(base)
    root = base / "root"
    root.mkdir()
    (root / "hello.txt").write_text("hello from the server's disk\n")
    (root / "all-bytes.bin").write_bytes(ALL_BYTES)
    with open(root / "big.bin", "wb") as f:
        f.truncate(BIG_SIZE)

    token = secrets.token_hex(16)
    port = free_port()
    with PageServer(pages) as page, PageServer(pages) as foreign:
        pattern = rf"^http://(localhost|127\.0\.0\.1):{page.port}$"
        with jupyter_server(
            base / "jupyter",
            port=port,
            token=token,
            root_dir=root,
            allow_origin_pat=pattern,
            # A real handler that echoes request bodies (js/testing/hows_echo.py).
            extra=("--ServerApp.jpserver_extensions=hows_echo=True",),
        ) as process:
            yield Setup(
                server=f"http://127.0.0.1:{port}/",
                token=token,
                root=root,
                page=f"http://localhost:{page.port}/",
                same_site_page=f"http://127.0.0.1:{page.port}/",
                foreign_page=f"http://127.0.0.1:{foreign.port}/",
                pid=process.pid,
            )


def run(page: Any, setup: Setup, body: str, token: str | None = None, **args: Any) -> Any:
    """Run ``body`` (an async function's body, with the prelude's names) in the page."""
    return run_in_page(page, setup.server, setup.token if token is None else token, body, **args)


def run_on_page(context: Any, setup: Setup, body: str, **args: Any) -> Any:
    """Open the test page (cross-site, allowed) in ``context`` and run ``body`` there."""
    return run(open_page(context, setup.page), setup, body, **args)


def log_in(context: Any, setup: Setup) -> list[dict[str, Any]]:
    """Log in to Jupyter the way a person does (its URL with ?token=), returning its cookies."""
    page = open_page(context, f"{setup.server}tree?token={setup.token}")
    page.close()
    return [c for c in context.cookies() if c["domain"] == "127.0.0.1"]
