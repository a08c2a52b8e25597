"""``jupyter http-over-ws lab URL``: this machine's JupyterLab, for a server elsewhere.

Serves the installed JupyterLab from a page server on ``localhost`` (another origin, and
another site, than a server on ``127.0.0.1`` or any other host), prints the page's URL
with the server and token in its ``#fragment`` (never sent to any server), and waits for
Ctrl-C. The server must have jupyter-http-over-ws and allow the page's origin
(``--ServerApp.allow_origin=http://localhost:PORT``); the command checks that first and
says what to change.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import threading
import webbrowser
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

from .checks import check
from .frontend import APP_URL, LabFrontend, LabNotFoundError
from .pageserver import LabPageServer

__all__ = ["add_parser", "lab_url", "run", "split_token"]

#: The page server's port by default: fixed, so that ``allow_origin`` can name it.
DEFAULT_PORT = 8890


def split_token(url: str) -> tuple[str, str | None]:
    """``url`` without its ``token`` query parameter, and that token (as Jupyter prints it)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an http(s) URL of a Jupyter server: {url!r}")
    token = next((v for k, v in parse_qsl(parts.query) if k == "token"), None)
    # Jupyter prints its URL as .../lab?token=... or .../tree?token=...: the server's
    # base URL is what comes before those.
    page = re.search(r"/(lab|tree)(/|$)", parts.path)
    path = parts.path[: page.start() + 1] if page else parts.path
    if not path.endswith("/"):
        path += "/"
    return urlunsplit((parts.scheme, parts.netloc, path, "", "")), token


def lab_url(page_origin: str, server_url: str, token: str, path: str = APP_URL) -> str:
    """The page's URL at ``path`` (with any query): the server and the token in the fragment."""
    fragment = f"server={quote(server_url, safe=':/')}&token={quote(token, safe='')}"
    return f"{page_origin}{path}#{fragment}"


def run_export(args: argparse.Namespace, frontend: LabFrontend, server_url: str, token: str) -> int:
    """Write the page's files for a static host (``--export DIR --origin ORIGIN``)."""
    from .export import ExportError, export, page_origin

    if not args.origin:
        print("--export needs --origin: where the files will be served from", file=sys.stderr)
        return 1
    try:
        origin = page_origin(args.origin)
        index = export(frontend, Path(args.export), origin=origin, server_url=server_url)
    except (ExportError, OSError) as e:
        print(e, file=sys.stderr)
        return 1
    print(f"Wrote the page ({index}) and its files, for {origin} and the server at {server_url}.")
    print(f"Serve {args.export} at {origin}/ on any static host, then open")
    print(f"    {lab_url(origin, server_url, token, APP_URL + '/')}")
    print("(the token is in the #fragment; the files hold none).")
    problem = check(server_url, origin, token, frontend.version)
    if problem:
        print(f"Warning: {problem}")
    host = urlsplit(origin).hostname or ""
    if origin.startswith("http://") and host not in ("localhost", "127.0.0.1", "::1"):
        print(
            "Warning: browsers refuse a page on plain http:// (not localhost) the permission "
            "to reach a server on this machine or a private network: serve it over https://."
        )
    return 0


class _StopError(Exception):
    """Raised by the SIGTERM handler to leave the wait like Ctrl-C does."""


def run(args: argparse.Namespace) -> int:
    """Serve the page until Ctrl-C or SIGTERM."""
    try:
        server_url, token = split_token(args.url)
        frontend = LabFrontend.find()
    except (ValueError, LabNotFoundError) as e:
        print(e, file=sys.stderr)
        return 1
    token = token or os.environ.get("JUPYTER_TOKEN", "")
    if args.export:
        return run_export(args, frontend, server_url, token)
    try:
        page = LabPageServer(
            frontend, "127.0.0.1", args.port, server_url=server_url, origin_host="localhost"
        )
    except OSError as e:
        print(f"Cannot serve on port {args.port}: {e} (choose another: --port)", file=sys.stderr)
        return 1
    problem = check(server_url, page.origin, token, frontend.version)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        raise _StopError

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        page.start()
        url = lab_url(page.origin, server_url, token)
        print(f"JupyterLab {frontend.version} from this machine, on {page.origin}", flush=True)
        print(f"for the Jupyter server at {server_url}, through the tunnel.", flush=True)
        if problem:
            print(f"Warning: {problem}", flush=True)
        if not token:
            print("No token (none in the URL, no JUPYTER_TOKEN): the page sends none.", flush=True)
        print("Open this URL in a browser (the token is in the #fragment):", flush=True)
        print(f"    {url}", flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        if args.open_browser:
            webbrowser.open(url)
        threading.Event().wait()
    except (KeyboardInterrupt, _StopError):
        print("Stopping.", flush=True)
    finally:
        page.stop()
        signal.signal(signal.SIGTERM, previous)
    return 0


def add_parser(commands: Any) -> None:
    """Add the ``lab`` subcommand to the CLI's subparsers."""
    lab = commands.add_parser(
        "lab",
        help="serve this machine's JupyterLab on localhost, for a server it reaches by the tunnel",
        description=(
            "Serve the JupyterLab installed here from http://localhost:PORT and print a URL "
            "that opens it on the Jupyter server at URL, every request and socket going "
            "through the tunnel. The server must allow the page's origin "
            "(--ServerApp.allow_origin=http://localhost:PORT). The token comes from URL's "
            "?token= (paste the URL Jupyter printed) or the JUPYTER_TOKEN variable."
        ),
    )
    lab.add_argument("url", help="the Jupyter server's URL, base_url included")
    lab.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"the page server's port on localhost (default: {DEFAULT_PORT})",
    )
    lab.add_argument(
        "--open-browser",
        action="store_true",
        help="also open the page in a browser (default: only print its URL)",
    )
    lab.add_argument(
        "--export",
        metavar="DIR",
        help=(
            "write the page's files to DIR (new or empty) for any static host, instead of "
            "serving them; needs --origin"
        ),
    )
    lab.add_argument(
        "--origin",
        help="with --export: the origin the files will be served from (https://host[:port])",
    )
    lab.set_defaults(run=run)
