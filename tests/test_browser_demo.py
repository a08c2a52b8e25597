"""``jupyter http-over-ws demo`` as a person meets it: start it, open the URL, run code.

The test takes the README's screenshot: with ``HOWS_UPDATE_SCREENSHOT=1`` it writes
``docs/users/demo.png`` (otherwise the picture goes to the test's temporary directory).
"""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO
from urllib.parse import quote

import pytest
from support.browser import REPO, BlockedTunnelSocket, jupyter_env, launch_browser
from support.browser import jp_asyncio_loop as jp_asyncio_loop
from support.browser import jp_server_cleanup as jp_server_cleanup

from jupyter_http_over_ws import __version__

pytestmark = pytest.mark.slow

SCREENSHOT = REPO / "docs" / "users" / "demo.png"

CODE = """\
import platform, sys
print(f"Hello from {platform.system()} through the tunnel")
print("Python", sys.version.split()[0], file=sys.stderr)
from IPython.display import display
display({"text/plain": "a display_data output"}, raw=True)
sum(range(101))
"""


def _lines(stream: IO[str], into: queue.Queue[str]) -> None:
    for line in stream:
        into.put(line)


class Demo:
    """The demo command, running, with its output collected line by line."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        assert process.stdout is not None
        threading.Thread(target=_lines, args=(process.stdout, self.lines), daemon=True).start()

    def wait_for(self, pattern: str, timeout: float = 90) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            self.output.append(line)
            match = re.search(pattern, line)
            if match:
                return match
        pytest.fail(f"the demo never printed {pattern!r}; it printed:\n{''.join(self.output)}")


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    root = tmp_path / "project"
    root.mkdir()
    (root / "README.txt").write_text(
        "These files live on the Jupyter server's disk.\n"
        "The page lists and opens them through the tunnel.\n"
    )
    (root / "analysis.py").write_text("import statistics\nprint(statistics.mean([1, 2, 3]))\n")
    (root / "data").mkdir()
    (root / "data" / "numbers.csv").write_text("x,y\n1,2\n3,4\n")
    # The test presses Ctrl-C (SIGINT) as a user at a terminal would, where the demo runs
    # in the foreground with SIGINT's default action. A test run started in the background
    # of a shell script inherits SIGINT *ignored*, and a child inherits that through exec;
    # a handler is reset to the default action there instead, so one is set meanwhile.
    previous_sigint = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        process = subprocess.Popen(
            # Exactly the README's first command (the demo browses --root-dir, not cwd).
            [
                str(Path(sys.executable).parent / "jupyter"),
                "http-over-ws",
                "demo",
                "--root-dir",
                str(root),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=jupyter_env(tmp_path / "home"),
        )
    finally:
        signal.signal(signal.SIGINT, previous_sigint)
    running = Demo(process)
    try:
        yield running
    finally:
        if process.poll() is None:
            # As a user would stop it, so that it stops its Jupyter server (a session of
            # its own, which a SIGKILL of the demo would leave running) and its kernels.
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def _kernels_started_under(home: Path) -> list[int]:
    """The pids of kernel processes whose connection file lies under ``home``."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            command = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "ipykernel" in command and str(home) in command:
            pids.append(int(proc.name))
    return pids


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_demo_page_runs_code_through_the_tunnel(demo: Demo, tmp_path: Path) -> None:
    url = demo.wait_for(r"(http://localhost:\d+/#server=\S+&token=\S+)").group(1)
    server_port = int(re.search(r"server=http://127\.0\.0\.1:(\d+)/", url).group(1))  # type: ignore[union-attr]
    # Headless: the command printed a URL and opened nothing; the token is only in the
    # fragment, which browsers never send to a server.
    assert url.split("#", 1)[0].count("token") == 0

    with launch_browser() as browser:
        context = browser.new_context(viewport={"width": 1180, "height": 760})
        context.set_default_timeout(60_000)
        page = context.new_page()
        page.on("console", lambda msg: print(f"[console.{msg.type}] {msg.text}"))
        page.goto(url)
        page.wait_for_selector('#state[data-state="connected"]')
        assert page.text_content("#transport") == "websocket"
        assert page.text_content("#version") == __version__

        # Browse: the root lists the files, a directory opens, a text file shows.
        page.wait_for_selector("#file-list button:text-is('README.txt')")
        names = page.locator("#file-list button").all_text_contents()
        assert names == ["data", "analysis.py", "README.txt"]
        page.click("#file-list button:text-is('data')")
        page.wait_for_selector("#file-list button:text-is('numbers.csv')")
        page.click("#file-list button:text-is('numbers.csv')")
        page.wait_for_selector("#viewer-text:has-text('3,4')")
        page.click("#file-list button:text-is('..')")
        page.click("#file-list button:text-is('README.txt')")
        page.wait_for_selector("#viewer-text:has-text('through the tunnel')")

        # Run code in a kernel: stream, display and result outputs come back.
        page.wait_for_selector("#run:not([disabled])")
        page.fill("#code", CODE)
        page.click("#run")
        page.wait_for_selector("#exec-count:has-text('ok')")
        outputs = page.locator("#outputs pre").all_text_contents()
        assert outputs[0].startswith("Hello from Linux through the tunnel"), outputs
        assert any(o.startswith("Python 3.") for o in outputs), outputs
        assert "a display_data output" in outputs
        assert outputs[-1] == "5050"
        assert page.text_content("#kernel-state") == "python3, idle"

        target = SCREENSHOT if os.environ.get("HOWS_UPDATE_SCREENSHOT") else tmp_path / "demo.png"
        page.screenshot(path=str(target), full_page=True)
        assert target.stat().st_size > 10_000

        # An error shows as an error.
        page.fill("#code", "1 / 0")
        page.click("#run")
        page.wait_for_selector("#outputs pre.error")
        assert "ZeroDivisionError" in page.text_content("#outputs pre.error")  # type: ignore[operator]

        # The polling fallback, forced from the URL: the page says so, and code still runs.
        polling = context.new_page()
        polling.goto(url + "&transports=polling")
        polling.wait_for_selector('#state[data-state="connected"]')
        assert polling.text_content("#transport") == "polling"
        polling.wait_for_selector("#run:not([disabled])")
        polling.fill("#code", "print('polled', 2 ** 10)")
        polling.click("#run")
        polling.wait_for_selector("#exec-count:has-text('ok')")
        assert polling.locator("#outputs pre").all_text_contents() == ["polled 1024\n"]

        # A wrong token: the page says what failed and what to run.
        refused = context.new_page()
        refused.goto(re.sub(r"token=[^&]+", "token=wrong", url))
        refused.wait_for_selector('#state[data-state="failed"]')
        problem = refused.text_content("#problem") or ""
        assert "token" in problem, problem
        assert problem.count("jupyter http-over-ws doctor") == 1, problem
        assert refused.text_content("#state") == "refused"

        # Ctrl-C stops both servers cleanly, and a page still open says it lost the server.
        assert _port_open(server_port)
        demo.process.send_signal(signal.SIGINT)
        assert demo.process.wait(30) == 0
        demo.wait_for(r"Stopping the demo")
        assert not _port_open(server_port)
        # The kernels the page started went with the server.
        deadline = time.monotonic() + 15
        while _kernels_started_under(tmp_path / "home"):
            assert time.monotonic() < deadline, _kernels_started_under(tmp_path / "home")
            time.sleep(0.2)
        page.wait_for_selector('#state[data-state="failed"]')
        assert page.text_content("#state") == "disconnected"
        assert "Could not open a tunnel" in (page.text_content("#problem") or "")
        context.close()


def test_demo_page_shows_the_move_from_polling_to_the_websocket(demo: Demo) -> None:
    """The transport shown follows the client's ``transportchange``, not just the first one."""
    url = demo.wait_for(r"(http://localhost:\d+/#server=\S+&token=\S+)").group(1)
    blocked = BlockedTunnelSocket()

    with launch_browser() as browser:
        context = browser.new_context()
        context.set_default_timeout(60_000)
        page = context.new_page()
        page.on("console", lambda msg: print(f"[console.{msg.type}] {msg.text}"))
        # A network that refuses the tunnel's WebSocket (not the kernel's proxied sockets).
        blocked.route(page)
        page.goto(url)
        page.wait_for_selector('#state[data-state="connected"]')
        assert blocked.refused >= 1
        assert page.text_content("#transport") == "polling"

        # The network lets WebSockets through again: the client's next upgrade attempt
        # (the default interval, 15 s) moves to it, and the page shows the move.
        blocked.on = False
        page.wait_for_selector("#transport:text-is('websocket')", timeout=45_000)
        assert page.text_content("#version") == __version__
        assert page.get_attribute("#state", "data-state") == "connected"
        context.close()


#: What a hostile server hands out as "the browser client": it marks the page it runs in.
FOREIGN_CLIENT = b"""
globalThis.pwned = "foreign code ran";
export async function connect() { globalThis.pwned = "foreign code connected"; }
export async function diagnose() { return {}; }
"""


class _ForeignHandler(BaseHTTPRequestHandler):
    """Serves :data:`FOREIGN_CLIENT` for every path, to anyone, and records each request."""

    requests: list[str]

    def do_GET(self) -> None:
        self.requests.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "text/javascript")
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Content-Length", str(len(FOREIGN_CLIENT)))
        self.end_headers()
        self.wfile.write(FOREIGN_CLIENT)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def foreign() -> Iterator[tuple[int, list[str]]]:
    """A server on another port that would hand the page code: its port, its requests."""
    requests: list[str] = []
    handler = type("Handler", (_ForeignHandler,), {"requests": requests})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(httpd.server_address[1]), requests
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_demo_page_loads_no_code_from_a_hostile_fragment(
    demo: Demo, foreign: tuple[int, list[str]]
) -> None:
    url = demo.wait_for(r"(http://localhost:\d+/#server=\S+&token=\S+)").group(1)
    page_origin = url.split("#", 1)[0].rstrip("/")
    server = re.search(r"server=(http://127\.0\.0\.1:\d+/)", url).group(1)  # type: ignore[union-attr]
    token = re.search(r"token=([^&]+)", url).group(1)  # type: ignore[union-attr]
    foreign_port, foreign_requests = foreign
    foreign_url = f"http://127.0.0.1:{foreign_port}/"
    data_client = "data:text/javascript," + quote(FOREIGN_CLIENT.decode(), safe="")
    hostile = {
        # Another server, on the same host as Jupyter: the same site, so its script would
        # have the page's origin and could ride the user's Jupyter login cookie.
        quote(foreign_url, safe=""): ("server not allowed", f"not from {foreign_url}"),
        # The right server with another path or user info is another URL.
        quote(server + "x/", safe=""): ("server not allowed", "only from the Jupyter server"),
        quote(server.replace("//", "//me@"), safe=""): ("server not allowed", "only from"),
        quote(data_client, safe=""): ("server not allowed", "http:// or https:// URL, not data:"),
        quote("javascript:globalThis.pwned=1", safe=""): ("server not allowed", "not javascript:"),
        "not%20a%20url": ("server not allowed", "not a URL"),
    }

    with launch_browser() as browser:
        context = browser.new_context()
        context.set_default_timeout(60_000)
        for fragment_server, (state, words) in hostile.items():
            page = context.new_page()
            page.on("console", lambda msg: print(f"[console.{msg.type}] {msg.text}"))
            page.goto(f"{page_origin}/#server={fragment_server}&token={token}")
            page.wait_for_selector('#state:not([data-state="connecting"])')
            assert page.evaluate("globalThis.pwned") is None, fragment_server
            assert page.get_attribute("#state", "data-state") == "failed", fragment_server
            assert page.text_content("#state") == state, fragment_server
            problem = page.text_content("#problem") or ""
            assert words in problem, (fragment_server, problem)
            assert page.evaluate("typeof globalThis.demoTunnel") == "undefined"
            page.close()

        # The browser enforces the same (Content-Security-Policy): even code in the page
        # could not import from a data: URL or another server.
        page = context.new_page()
        page.goto(url)
        page.wait_for_selector('#state[data-state="connected"]')
        blocked = page.evaluate(
            """async (urls) => {
                const out = [];
                for (const u of urls) {
                    try { await import(u); out.push("loaded " + u); }
                    catch (e) { out.push("blocked"); }
                }
                return out;
            }""",
            [data_client, foreign_url + "http_over_websocket/static/index.js"],
        )
        assert blocked == ["blocked", "blocked"]
        assert page.evaluate("globalThis.pwned") is None

        # No request ever reached the foreign server.
        assert foreign_requests == []

        # The printed URL still works (the normal fragment), also without a trailing slash.
        assert page.text_content("#version") == __version__
        assert page.text_content("#server-url") == server
        bare = context.new_page()
        bare.goto(url.replace(quote(server, safe=":/"), server.rstrip("/")))
        bare.wait_for_selector('#state[data-state="connected"]')
        context.close()
