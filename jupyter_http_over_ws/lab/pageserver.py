"""The page server of ``jupyter http-over-ws lab``: JupyterLab's files on another origin.

It answers ``GET`` and ``HEAD`` for:

- ``/lab`` and every path under it that is not one of the below: the page (JupyterLab
  routes ``/lab/tree/...`` and ``/lab/workspaces/...`` in the browser);
- ``/static/lab/...``: JupyterLab's bundles;
- ``/lab/extensions/<name>/...``: the federated extensions (ours, and the installed ones);
- ``/lab/api/themes/...``: the themes;
- ``/static/favicons/...``: jupyter_server's favicons;
- ``/``: a redirect to ``/lab`` (the browser keeps the ``#fragment``).

Everything else is a 404, files are read only from those directories (no ``..``, no
symbolic link out of them), and it never talks to the Jupyter server: the page reaches
that only through the tunnel.
"""

from __future__ import annotations

import mimetypes
import shutil
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from ..background_http import BackgroundHTTPServer
from .frontend import (
    APP_URL,
    FAVICONS_URL,
    LABEXTENSIONS_URL,
    STATIC_URL,
    THEMES_URL,
    LabFrontend,
)

__all__ = ["LabPageServer"]

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


def _favicons_dir() -> Path:
    import jupyter_server

    return Path(jupyter_server.__file__).resolve().parent / "static" / "favicons"


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
    frontend: LabFrontend
    page: bytes = b""
    extensions: dict[str, Path] = {}
    favicons: Path = Path()

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
        for prefix, root in (
            (STATIC_URL, self.frontend.static_dir),
            (THEMES_URL, self.frontend.themes_dir),
            (FAVICONS_URL, self.favicons),
        ):
            if path.startswith(prefix + "/"):
                return _inside(root, path[len(prefix) + 1 :])
        if path.startswith(LABEXTENSIONS_URL + "/"):
            rest = path[len(LABEXTENSIONS_URL) + 1 :]
            for name, root in self.extensions.items():
                if rest.startswith(name + "/"):
                    return _inside(root, rest[len(name) + 1 :])
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
        origin_host: str = "",
    ) -> None:
        """Serve ``frontend`` on ``host:port``; the page's origin names ``origin_host``.

        ``origin_host`` (default: ``host``) is the host name the browser will use: the
        page config's URLs are on that origin.
        """
        super().__init__(host, port, _LabPageHandler, "lab-page-server")
        self.origin = f"http://{origin_host or host}:{self.port}"
        self.httpd.RequestHandlerClass = type(
            "LabPageHandler",
            (_LabPageHandler,),
            {
                "frontend": frontend,
                "page": frontend.render(self.origin).encode("utf-8"),
                "extensions": frontend.extension_dirs(),
                "favicons": _favicons_dir(),
            },
        )
