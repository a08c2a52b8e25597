"""``jupyter http-over-ws demo``: the tunnel at work, for a person with a browser.

It starts two servers on this machine:

- a Jupyter server with the extension, on ``127.0.0.1`` and a port of its own, with a
  fresh token and ``allow_origin`` set to the page's origin (and nothing else);
- a static server for the demo page (``demo_page/``) on ``localhost`` and another port:
  another origin, and another *site*, so the page is exactly the cross-site frontend the
  tunnel exists for.

It prints the page's URL with the server and the token in the fragment (``#...``),
which browsers never send to any server, and waits. The page imports the browser
client from the Jupyter server (only from the one the demo started, which the page
server names in ``/config.json`` and in its Content-Security-Policy: a fragment that
names another server, or a ``data:`` URL, is refused), connects with the token (a
``SameSite=Lax`` login cookie would not reach a cross-site upgrade), browses files and
runs code in a kernel through the tunnel. Ctrl-C (or SIGTERM) stops both servers.

The helpers here (:func:`free_port`, :class:`PageServer`, :func:`server_command`,
:func:`wait_until_up`) are reused by the browser tests.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import webbrowser
from collections.abc import Mapping, Sequence
from http.server import SimpleHTTPRequestHandler
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import quote, urlsplit

from .background_http import BackgroundHTTPServer

__all__ = [
    "CONFIG_PATH",
    "PAGE_DIR",
    "PageServer",
    "content_security_policy",
    "free_port",
    "page_url",
    "run",
    "server_command",
    "stop_process",
    "wait_until_up",
]

#: The demo page shipped in the package.
PAGE_DIR = Path(__file__).resolve().parent / "demo_page"
#: Where the demo page reads the one server it may use (see :class:`PageServer`).
CONFIG_PATH = "/config.json"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class _QuietHandler(SimpleHTTPRequestHandler):
    """Static files, no directory listings' worth of logging, never cached."""

    extensions_map: dict[str, str] = {
        **SimpleHTTPRequestHandler.extensions_map,
        ".js": "text/javascript",
        ".mjs": "text/javascript",
        ".css": "text/css",
        ".html": "text/html",
    }

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: the page's requests are not the demo's news."""


class _DemoPageHandler(_QuietHandler):
    """The demo page, told which server it may use, and held to it by the browser.

    ``GET /config.json`` names the Jupyter server the demo started; the page loads the
    browser client from it and from nowhere else, whatever its ``#fragment`` says. The
    ``Content-Security-Policy`` makes the browser enforce the same: scripts only from
    the page's own origin and that server's (no ``data:``, no inline script).
    """

    #: Set per server by :class:`PageServer` (a subclass per instance).
    server_url: str = ""

    def do_GET(self) -> None:
        """The config, or a file of the page."""
        if self.path.split("?", 1)[0] == CONFIG_PATH:
            body = json.dumps({"server": self.server_url}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def end_headers(self) -> None:
        self.send_header("Content-Security-Policy", content_security_policy(self.server_url))
        super().end_headers()


def content_security_policy(server_url: str) -> str:
    """The demo page's policy: scripts from itself and from ``server_url``'s origin only."""
    parts = urlsplit(server_url)
    return (
        f"script-src 'self' {parts.scheme}://{parts.netloc}; "
        "object-src 'none'; base-uri 'none'; form-action 'none'"
    )


class PageServer(BackgroundHTTPServer):
    """A static HTTP server for one directory, in a thread (``with`` stops it)."""

    def __init__(
        self,
        directory: Path | str,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        server_url: str | None = None,
    ) -> None:
        """Serve ``directory``; with ``server_url``, as the demo page bound to that server.

        ``server_url`` (an http(s) URL) is the only server the page may load code from:
        it is served as ``/config.json`` and in every answer's Content-Security-Policy.
        """
        base: type[_QuietHandler] = _QuietHandler
        if server_url is not None:
            if urlsplit(server_url).scheme not in ("http", "https"):
                raise ValueError(f"the demo's server must be an http(s) URL, not {server_url!r}")
            base = type("DemoPageHandler", (_DemoPageHandler,), {"server_url": server_url})
        handler = functools.partial(base, directory=str(directory))
        super().__init__(host, port, handler, "demo-page-server")


def server_command(
    *,
    port: int,
    token: str,
    root_dir: Path | str,
    allow_origin: str | None = None,
    allow_origin_pat: str | None = None,
    ip: str = "127.0.0.1",
    extra: Sequence[str] = (),
) -> list[str]:
    """The command line of a Jupyter server with the extension enabled.

    The extension is enabled on the command line as well, so the demo works from a
    source checkout whose ``jupyter-config`` was not installed.
    """
    command = [
        sys.executable,
        "-m",
        "jupyter_server",
        "--no-browser",
        f"--ip={ip}",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root_dir}",
        "--ServerApp.jpserver_extensions=jupyter_http_over_ws=True",
    ]
    if allow_origin is not None:
        command.append(f"--ServerApp.allow_origin={allow_origin}")
    if allow_origin_pat is not None:
        command.append(f"--ServerApp.allow_origin_pat={allow_origin_pat}")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # Jupyter refuses to run as root unless told; the demo is local and loopback-only.
        command.append("--allow-root")
    command.extend(extra)
    return command


def wait_until_up(url: str, process: subprocess.Popen[Any], timeout: float = 60.0) -> None:
    """Wait until the Jupyter server at ``url`` answers ``GET api``, or raise."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the Jupyter server exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(url + "api", timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"the Jupyter server at {url} did not answer in {timeout:g} s")
        time.sleep(0.1)


def stop_process(process: subprocess.Popen[Any], timeout: float = 15.0) -> None:
    """Ask a server to stop (SIGTERM: Jupyter shuts its kernels down), then insist."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def shut_down_jupyter(
    process: subprocess.Popen[Any], server_url: str, token: str, timeout: float = 12.0
) -> None:
    """Stop the Jupyter server with its kernels, then make sure the process is gone.

    ``POST /api/shutdown`` makes the server shut its kernels down before it exits; a
    SIGTERM alone left the kernels the page had started running after the demo ended.
    ``timeout`` bounds the whole polite part (the request and the exit after it), so
    Ctrl-C stops the demo within about ``timeout`` + 10 seconds whatever the server does.
    """
    deadline = time.monotonic() + timeout
    if process.poll() is None:
        request = urllib.request.Request(  # noqa: S310 - our own server's http URL
            f"{server_url}api/shutdown",
            method="POST",
            headers={"Authorization": f"token {token}"},
        )
        with contextlib.suppress(OSError):
            urllib.request.urlopen(request, timeout=timeout).close()  # noqa: S310
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(max(0.1, deadline - time.monotonic()))
    stop_process(process, timeout=5.0)


def page_url(page_origin: str, server_url: str, token: str) -> str:
    """The page's URL: server and token in the fragment, which is never sent to a server."""
    return f"{page_origin}/#server={quote(server_url, safe=':/')}&token={quote(token, safe='')}"


def _has_python_kernel() -> bool:
    """Whether Jupyter can start the ``python3`` kernel the page runs code in."""
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        return "python3" in KernelSpecManager().find_kernel_specs()
    except Exception:  # any failure here only means "cannot tell": say so below
        return False


class _StopError(Exception):
    """Raised by the SIGTERM handler to leave the wait loop like Ctrl-C does."""


def run(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    """Run the demo until Ctrl-C, SIGTERM or the Jupyter server's exit."""
    token = args.token or secrets.token_urlsafe(24)
    port = args.port or free_port("127.0.0.1")
    root_dir = Path(args.root_dir or os.getcwd()).resolve()
    server_url = f"http://127.0.0.1:{port}/"
    # The page loads code from this server only, whatever its #fragment names.
    page = PageServer(PAGE_DIR, host="127.0.0.1", port=args.page_port or 0, server_url=server_url)
    # "localhost" and "127.0.0.1" are different sites: the page is truly cross-site.
    page_origin = f"http://localhost:{page.port}"
    command = server_command(
        port=port,
        token=token,
        root_dir=root_dir,
        allow_origin=page_origin,
        extra=[f"--ServerApp.log_level={args.log_level}"],
    )

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        raise _StopError

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    # A session of its own: Ctrl-C in the terminal reaches the demo only, which then
    # stops the server with SIGTERM instead of Jupyter asking "Shutdown (y/[n])?".
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        command, stdin=subprocess.DEVNULL, start_new_session=True, env=env
    )
    try:
        wait_until_up(server_url, process)
        page.start()
        url = page_url(page_origin, server_url, token)
        print(f"Jupyter server with the tunnel: {server_url} (root {root_dir})", flush=True)
        print(f"Demo page on another origin:    {page_origin}/", flush=True)
        print("Open this URL in a browser (the token is in the #fragment):", flush=True)
        print(f"    {url}", flush=True)
        if not _has_python_kernel():
            print(
                "No python3 kernel here (pip install ipykernel): the page can browse files "
                "but not run code.",
                flush=True,
            )
        print("Press Ctrl-C to stop.", flush=True)
        if args.open_browser:
            webbrowser.open(url)
        process.wait()
        print(f"The Jupyter server exited with status {process.returncode}.", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, _StopError):
        print("Stopping the demo.", flush=True)
        return 0
    except (RuntimeError, TimeoutError) as e:
        print(f"The demo could not start: {e}", file=sys.stderr)
        return 1
    finally:
        with contextlib.suppress(Exception):
            page.stop()
        shut_down_jupyter(process, server_url, token)
        signal.signal(signal.SIGTERM, previous)


def add_parser(commands: Any) -> None:
    """Add the ``demo`` subcommand to the CLI's subparsers."""
    demo = commands.add_parser(
        "demo",
        help="start a Jupyter server and a page on another origin that uses it through the tunnel",
        description=(
            "Start a Jupyter server with the tunnel (127.0.0.1, its own token) and a demo "
            "page on another origin (localhost), print the page's URL and wait for Ctrl-C."
        ),
    )
    demo.add_argument("--root-dir", help="the directory the page browses (default: here)")
    demo.add_argument("--port", type=int, default=0, help="Jupyter's port (default: a free one)")
    demo.add_argument(
        "--page-port", type=int, default=0, help="the page server's port (default: a free one)"
    )
    demo.add_argument("--token", help="the Jupyter token (default: a fresh random one)")
    demo.add_argument(
        "--open-browser",
        action="store_true",
        help="also open the page in a browser (default: only print its URL)",
    )
    demo.add_argument(
        "--log-level", default="WARN", help="the Jupyter server's log level (default: WARN)"
    )
    demo.set_defaults(run=run)
