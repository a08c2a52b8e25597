"""The page server of ``jupyter http-over-ws lab``: JupyterLab's files on another origin.

It answers ``GET`` and ``HEAD`` for:

- ``/lab`` and every path under it that is not one of the below: the page (JupyterLab
  routes ``/lab/tree/...`` and ``/lab/workspaces/...`` in the browser);
- ``/static/lab/...``: JupyterLab's bundles;
- ``/lab/extensions/<name>/...``: the federated extensions (ours, and the installed ones);
- ``/lab/api/themes/...``: the themes;
- ``/static/favicons/...``: jupyter_server's favicons;
- ``/hows-sw.js``: the page's Service Worker (``/hows-files/...`` is its to answer; the
  page server has nothing there);
- ``/``: a redirect to ``/lab`` (the browser keeps the ``#fragment``).

Everything else is a 404, files are read only from those directories (no ``..``, no
symbolic link out of them), and it never talks to the Jupyter server: the page reaches
that only through the tunnel.

The page is bound to one Jupyter server: every answer carries a Content-Security-Policy
that lets scripts come from the page's origin, that server's origin and the page's own
inline scripts (by hash) only, so a link whose ``#fragment`` names another server cannot
make the page run that server's code on this origin. JupyterLab compiles its settings
schemas with ``new Function`` (ajv), hence ``'unsafe-eval'``.
"""

from __future__ import annotations

import base64
import hashlib
import mimetypes
import shutil
from html.parser import HTMLParser
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from ..background_http import BackgroundHTTPServer
from .frontend import (
    APP_URL,
    LABEXTENSIONS_URL,
    THEMES_URL,
    LabFrontend,
)

__all__ = ["LabPageServer", "content_security_policy"]

_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".wasm": "application/wasm",
}


class _InlineScripts(HTMLParser):
    """The text of each inline script a browser would run, in document order."""

    _RUN = {"", "text/javascript", "application/javascript", "module"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.scripts: list[str] = []
        self._current: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "script":
            return
        found = dict(attrs)
        runs = (found.get("type") or "").strip().lower() in self._RUN
        self._current = [] if runs and "src" not in found else None

    def handle_data(self, data: str) -> None:
        if self._current is not None:
            self._current.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._current is not None:
            self.scripts.append("".join(self._current))
            self._current = None


def content_security_policy(page: str, server_url: str) -> str:
    """The lab page's Content-Security-Policy (the module's docstring says what it allows).

    ``page`` is the rendered page, whose inline scripts are allowed by their hashes;
    ``server_url`` is the Jupyter server the page is for.
    """
    parser = _InlineScripts()
    parser.feed(page)
    parser.close()
    hashes = [
        "'sha256-{}'".format(
            base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")
        )
        for text in parser.scripts
    ]
    parts = urlsplit(server_url)
    sources = ["'self'", "'unsafe-eval'", f"{parts.scheme}://{parts.netloc}", *hashes]
    return f"script-src {' '.join(sources)}; object-src 'none'"


def _inside(root: Path, relative: str) -> Path | None:
    """``root / relative`` if it is a file under ``root``, else None."""
    parts = [p for p in relative.split("/") if p]
    if any(p in (".", "..") or "\\" in p or "\x00" in p for p in parts):
        return None
    root = root.resolve()
    target = root.joinpath(*parts).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        return None
    return target


class _LabPageHandler(BaseHTTPRequestHandler):
    """One request to the page server (see the module's docstring)."""

    #: Set per server by :class:`LabPageServer` (a subclass per instance).
    page: bytes = b""
    #: :meth:`LabFrontend.asset_dirs`, longest prefix first.
    assets: dict[str, Path] = {}
    #: :meth:`LabFrontend.asset_files`.
    files: dict[str, Path] = {}
    policy: str = ""

    server_version = "jupyter-http-over-ws-lab"

    def do_GET(self) -> None:
        """The page or a file."""
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        """As GET, without the body."""
        self._answer(send_body=False)

    def _answer(self, *, send_body: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        if path == "/":
            self.send_response(HTTPStatus.FOUND)
            self.send_header("Location", APP_URL)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        file = self._file(path)
        if file is not None:
            self._send(
                file.open("rb"), file.stat().st_size, _content_type(file), send_body=send_body
            )
        elif path == APP_URL or (path.startswith(APP_URL + "/") and not _is_asset(path)):
            self._send(None, len(self.page), "text/html; charset=utf-8", send_body=send_body)
        else:
            self.send_error(HTTPStatus.NOT_FOUND)

    def _file(self, path: str) -> Path | None:
        if path in self.files:
            return self.files[path]
        for prefix, root in self.assets.items():
            if path.startswith(prefix + "/"):
                return _inside(root, path[len(prefix) + 1 :])
        return None

    def _send(self, body: Any, length: int, content_type: str, *, send_body: bool) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        try:
            if not send_body:
                return
            if body is None:
                self.wfile.write(self.page)
            else:
                shutil.copyfileobj(body, self.wfile)
        finally:
            if body is not None:
                body.close()

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Security-Policy", self.policy)
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("X-Content-Type-Options", "nosniff")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: the page's requests are not news."""


def _is_asset(path: str) -> bool:
    # Under /lab, these prefixes are files or nothing: a missing one is a 404, not the page.
    return path.startswith((LABEXTENSIONS_URL + "/", THEMES_URL + "/", APP_URL + "/api/"))


def _content_type(file: Path) -> str:
    kind = _TYPES.get(file.suffix.lower()) or mimetypes.guess_type(file.name)[0]
    return kind or "application/octet-stream"


class LabPageServer(BackgroundHTTPServer):
    """The page server, in a thread (``with`` stops it)."""

    def __init__(
        self,
        frontend: LabFrontend,
        host: str = "localhost",
        port: int = 0,
        *,
        server_url: str,
        origin_host: str = "",
    ) -> None:
        """Serve ``frontend`` on ``host:port`` for the Jupyter server at ``server_url``.

        ``origin_host`` (default: ``host``) is the host name the browser will use: the
        page config's URLs are on that origin.
        """
        super().__init__(host, port, _LabPageHandler, "lab-page-server")
        self.origin = f"http://{origin_host or host}:{self.port}"
        page = frontend.render(self.origin)
        self.httpd.RequestHandlerClass = type(
            "LabPageHandler",
            (_LabPageHandler,),
            {
                "page": page.encode("utf-8"),
                "assets": dict(
                    sorted(frontend.asset_dirs().items(), key=lambda item: -len(item[0]))
                ),
                "files": frontend.asset_files(),
                "policy": content_security_policy(page, server_url),
            },
        )
