"""Serves the browser client (``js/src``) at ``{base_url}http_over_websocket/static/``.

The browser client is public code that a page on another origin imports as an ES
module, so it is served without authentication, with ``Access-Control-Allow-Origin:
*`` (a module import is a CORS request) and a JavaScript content type (browsers
refuse a module served as anything else). It holds no secrets and sets no cookies.

Public does not mean unchecked: like the server's own ``/static/`` (jupyter_server's
``FileFindHandler``), it answers only a ``Host`` that jupyter_server considers local
(``JupyterHandler.check_host``, against DNS rebinding; 403 otherwise), and a path the
file system cannot name (a NUL byte) is a 404, never an uncaught error.

In a wheel the modules ship inside the package (``jupyter_http_over_ws/static``);
in an editable install they are read from the repository's ``js/src``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.base.handlers import JupyterHandler
from tornado import web

from ..wire.names import STATIC_PREFIX
from .base import CredentialFreeSummary

__all__ = ["STATIC_PREFIX", "StaticHandler", "static_root"]

_CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".json": "application/json; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
}


def static_root() -> Path:
    """The directory holding the browser client's modules.

    The wheel's copy inside the package wins; an editable install or a source checkout
    falls back to the repository's ``js/src``.
    """
    packaged = Path(__file__).resolve().parent.parent / "static"
    if (packaged / "index.js").is_file():
        return packaged
    return Path(__file__).resolve().parents[2] / "js" / "src"


class StaticHandler(CredentialFreeSummary, JupyterHandler, web.StaticFileHandler):
    """The browser client's modules, importable from any origin, by a local ``Host`` only."""

    async def prepare(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """jupyter_server's host check, as for its own static files; no identity.

        ``JupyterHandler.prepare`` would also resolve the caller's identity, which may
        set a login cookie (a token in the query, or a server without authentication);
        public code needs no identity, so only the host check runs here.
        """
        self.current_user = self._jupyter_current_user = None
        if not self.check_host():
            raise web.HTTPError(403)

    @allow_unauthenticated
    def get(self, path: str, include_body: bool = True) -> Any:
        """A module, to anyone (see :meth:`prepare` for the one check)."""
        return super().get(path, include_body)

    @allow_unauthenticated
    def head(self, path: str) -> Any:
        """A module's headers, to anyone."""
        return super().head(path)

    def validate_absolute_path(self, root: str, absolute_path: str) -> str | None:
        """Tornado's checks (inside ``root``, a file), and 404 for a path no file has.

        A NUL byte (``index.js%00.py``) made ``os.path.realpath`` raise ``ValueError``:
        a 500 with a traceback in the log. The server's own static route answers 404.
        """
        if "\x00" in absolute_path:
            raise web.HTTPError(404)
        try:
            return super().validate_absolute_path(root, absolute_path)
        except ValueError as error:
            raise web.HTTPError(404) from error

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Tornado's short error page: jupyter_server's template would set an XSRF cookie."""
        web.RequestHandler.write_error(self, status_code, **kwargs)

    def set_default_headers(self) -> None:
        """Allow any origin: the modules are public and the answer carries no credentials."""
        self.set_header("Access-Control-Allow-Origin", "*")
        # The page may pin the files to a version, but a plain URL must see upgrades.
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Content-Type-Options", "nosniff")

    def get_content_type(self) -> str:
        """A JavaScript type for modules, which browsers insist on for ``import``."""
        suffix = Path(self.absolute_path or "").suffix.lower()
        return _CONTENT_TYPES.get(suffix) or super().get_content_type()

    @allow_unauthenticated
    def options(self, *args: str, **kwargs: str) -> None:
        """Answer a CORS preflight, including Chromium's private-network one."""
        self.set_header("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
        requested = self.request.headers.get("Access-Control-Request-Headers")
        if requested:
            self.set_header("Access-Control-Allow-Headers", requested)
        if self.request.headers.get("Access-Control-Request-Private-Network") == "true":
            self.set_header("Access-Control-Allow-Private-Network", "true")
        self.set_status(204)
        self.finish()
