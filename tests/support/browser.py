"""Shared parts of the browser tests: Debian's Chromium under Playwright, servers as subprocesses.

Playwright's sync API runs its own event loop, so it cannot share pytest-jupyter's:
the Jupyter server under test runs as a subprocess (``python -m jupyter_server``), and
the test pages come from a small static server on another origin.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from jupyter_http_over_ws.demo import server_command, stop_process, wait_until_up
from support import provision

REPO = Path(__file__).resolve().parents[2]
E2E = REPO / "e2e"
SERVICES_BUNDLE = E2E / "dist" / "services.js"

#: Chromium flags: headless, no sandbox (root in CI), and no traffic of its own.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


#: Run in a page: load the client (from the server) and @jupyterlab/services (from the
#: page's origin), then the test's body with ``a`` (its arguments) and these names.
PRELUDE = """
async (a) => {
  const client = await import(a.server + "http_over_websocket/static/index.js");
  const services = await import("/services.js");
  const connect = (extra) => client.connect({ url: a.server, token: a.token, ...(extra || {}) });
  const settingsFor = (tunnel) => services.ServerConnection.makeSettings({
    baseUrl: a.server,
    wsUrl: a.server.replace(/^http/, "ws"),
    fetch: tunnel.fetch,
    WebSocket: tunnel.WebSocket,
    Request,
    Headers,
    token: a.token,
  });
  const errorText = (e) => `${e && e.name}: ${e && e.message}`;
  // A python3 kernel through @jupyterlab/services over ``tunnel``, and its manager.
  const startKernel = async (tunnel) => {
    const kernels = new services.KernelManager({ serverSettings: settingsFor(tunnel) });
    return { kernels, kernel: await kernels.startNew({ name: "python3" }) };
  };
  // Run code on a @jupyterlab/services kernel: its reply, and its outputs in order.
  const execute = async (kernel, code) => {
    const outputs = [];
    const future = kernel.requestExecute({ code });
    future.onIOPub = (msg) => {
      const kinds = ["stream", "display_data", "execute_result", "error"];
      if (kinds.includes(msg.header.msg_type)) {
        outputs.push({ type: msg.header.msg_type, content: msg.content });
      }
    };
    let reply;
    try {
      reply = (await future.done).content;
    } catch (e) {
      reply = { status: "rejected", error: errorText(e) };
    }
    return { reply, outputs };
  };
  %s
}
"""

#: The test pages' HTML: nothing but a title; the tests bring their code along.
TEST_PAGE = (
    "<!doctype html><meta charset=utf-8><link rel=icon href='data:,'>"
    "<title>test page</title><p>test page</p>\n"
)


def stream_texts(outputs: list[dict[str, Any]]) -> dict[str, str]:
    """The kernel's stream outputs joined per stream name.

    A kernel may split one ``print`` into several stream messages (the text, then the
    newline), depending on when its output thread flushes.
    """
    texts: dict[str, str] = {}
    for output in outputs:
        if output["type"] == "stream":
            name = output["content"]["name"]
            texts[name] = texts.get(name, "") + output["content"]["text"]
    return texts


def kernel_code(display: dict[str, str]) -> str:
    """Code with every kind of output :func:`assert_kernel_outputs` checks (``display``'s data)."""
    return f"""
import sys
from IPython.display import display
print("to stdout")
print("to stderr", file=sys.stderr)
display({display!r}, raw=True)
6 * 7
"""


def assert_kernel_outputs(ok: Any, bad: Any, display: dict[str, str]) -> None:
    """The prelude's ``execute`` of :func:`kernel_code` (``ok``) and of ``1 / 0`` (``bad``)."""
    assert ok["reply"]["status"] == "ok", ok
    assert stream_texts(ok["outputs"]) == {"stdout": "to stdout\n", "stderr": "to stderr\n"}
    displays = [o["content"]["data"] for o in ok["outputs"] if o["type"] == "display_data"]
    assert displays == [display]
    results = [o["content"]["data"] for o in ok["outputs"] if o["type"] == "execute_result"]
    assert results == [{"text/plain": "42"}]
    errors = [o["content"] for o in bad["outputs"] if o["type"] == "error"]
    assert [(e["ename"], e["evalue"]) for e in errors] == [
        ("ZeroDivisionError", "division by zero")
    ]
    assert bad["reply"]["status"] in ("error", "rejected"), bad


def open_page(context: Any, url: str) -> Any:
    """A page at ``url`` whose console errors end up in the test's output."""
    page = context.new_page()
    page.on("console", lambda msg: print(f"[console.{msg.type}] {msg.text}"))
    page.on("pageerror", lambda err: print(f"[pageerror] {err}"))
    page.goto(url)
    return page


def run_in_page(page: Any, server: str, token: str, body: str, **args: Any) -> Any:
    """Run ``body`` (an async function's body, with the prelude's names) in ``page``."""
    return page.evaluate(PRELUDE % body, {"server": server, "token": token, **args})


@contextlib.contextmanager
def new_context(browser: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies, no cache), closed afterwards."""
    ctx = browser.new_context()
    ctx.set_default_timeout(60_000)
    try:
        yield ctx
    finally:
        ctx.close()


def chromium_path() -> str:
    """Debian's Chromium (CHROMIUM_BIN overrides); a clear failure when it is missing."""
    path = provision.locate(provision.CHROMIUM)
    if path is None:
        pytest.fail("Chromium not found: apt-get install chromium, or set CHROMIUM_BIN")
    return path


def page_dir(base: Path) -> Path:
    """``base/pages`` for a page server: :data:`TEST_PAGE` and the services bundle."""
    pages = base / "pages"
    pages.mkdir()
    (pages / "index.html").write_text(TEST_PAGE)
    shutil.copy(services_bundle(), pages / "services.js")
    return pages


class BlockedTunnelSocket:
    """A network that refuses the tunnel's WebSocket while :attr:`on`, then lets it through.

    Only the tunnel socket is blocked: not diagnose, not the proxied kernel sockets.
    """

    def __init__(self) -> None:
        self.on = True
        self.refused = 0

    def route(self, page: Any) -> None:
        """Put this network between ``page`` and the server."""
        page.route_web_socket(re.compile(r"/http_over_websocket\?"), self)

    def __call__(self, ws: Any) -> None:
        if self.on:
            self.refused += 1
            ws.close(code=1011, reason="blocked by the test's network")
        else:
            ws.connect_to_server()


def services_bundle() -> Path:
    """The esbuild bundle of @jupyterlab/services, built if only the build step is missing."""
    if not SERVICES_BUNDLE.is_file():
        if not (E2E / "node_modules" / "@jupyterlab" / "services").is_dir():
            pytest.fail("e2e/node_modules is missing: run `npm ci && npm run build` in e2e/")
        subprocess.run(["npm", "run", "build"], cwd=E2E, check=True)
    return SERVICES_BUNDLE


@contextlib.contextmanager
def launch_browser(extra_args: Sequence[str] = ()) -> Iterator[Any]:
    """A Playwright Chromium browser (Playwright gives it a fresh temporary profile).

    ``extra_args`` are added to :data:`CHROMIUM_ARGS`.
    """
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(
            executable_path=chromium_path(), args=[*CHROMIUM_ARGS, *extra_args], headless=True
        )
        try:
            yield browser
        finally:
            browser.close()
    finally:
        playwright.stop()


def jupyter_env(home: Path) -> dict[str, str]:
    """An environment that keeps the user's Jupyter config and runtime files out."""
    env = dict(os.environ)
    env.update(
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        IPYTHONDIR=str(home / "ipython"),
        JUPYTER_PLATFORM_DIRS="1",
        PYTHONUNBUFFERED="1",
        # js/testing on the path: the servers can load hows_echo (a body-echoing handler).
        PYTHONPATH=os.pathsep.join(
            p for p in (str(REPO / "js" / "testing"), env.get("PYTHONPATH")) if p
        ),
    )
    return env


#: The logs of the Jupyter servers :func:`jupyter_server` runs now.
_RUNNING_SERVER_LOGS: list[Path] = []
#: Those, and the ones started since the current test began (see conftest.py): a failed
#: test's report shows their tails.
_TEST_SERVER_LOGS: list[Path] = []


def new_test_for_server_logs() -> None:
    """A test begins: the servers it ran are the ones running now and those it starts."""
    _TEST_SERVER_LOGS[:] = _RUNNING_SERVER_LOGS


def server_log_tails(limit: int = 6000) -> list[tuple[str, str]]:
    """(title, tail) of the log of each server the current test ran, for its report."""
    return [
        (f"server log {log}", log.read_text(errors="replace")[-limit:])
        for log in _TEST_SERVER_LOGS
        if log.exists()
    ]


@contextlib.contextmanager
def jupyter_server(
    home: Path,
    *,
    port: int,
    token: str,
    root_dir: Path,
    extra: tuple[str, ...] = (),
    **origin: str,
) -> Iterator[subprocess.Popen[bytes]]:
    """A real Jupyter server with the extension, as a subprocess; its log in home/server.log."""
    home.mkdir(parents=True, exist_ok=True)
    command = server_command(
        port=port,
        token=token,
        root_dir=root_dir,
        extra=["--ServerApp.log_level=INFO", *extra],
        **origin,
    )
    with open(home / "server.log", "wb") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=jupyter_env(home),
        )
    _RUNNING_SERVER_LOGS.append(home / "server.log")
    _TEST_SERVER_LOGS.append(home / "server.log")
    try:
        try:
            wait_until_up(f"http://127.0.0.1:{port}/", process)
        except (RuntimeError, TimeoutError) as e:
            sys.stderr.write((home / "server.log").read_text(errors="replace")[-4000:])
            pytest.fail(str(e))
        yield process
    finally:
        stop_process(process)
        _RUNNING_SERVER_LOGS.remove(home / "server.log")


# ------------------------------------------------------------------------------ fixtures
# A browser test module re-exports these (``from support.browser import context as
# context``) so that pytest finds them there; module-scoped ones are per module.


@pytest.fixture
def jp_asyncio_loop() -> None:
    """Replace pytest-jupyter's autouse loop: Playwright's sync API runs its own."""


@pytest.fixture
def jp_server_cleanup() -> None:
    """Replace pytest-jupyter's autouse cleanup: no in-process server here, and no loop."""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium for the module; each test gets its own context (cookies, storage)."""
    with launch_browser() as b:
        yield b


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    """A fresh browser context per test: no cookies, no cache."""
    with new_context(browser) as ctx:
        yield ctx
