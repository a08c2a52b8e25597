"""Serves the browser client (``js/src``) at ``{base_url}http_over_websocket/static/``.

The browser client is public code that a page on another origin imports as an ES
module, so it is served without authentication, with ``Access-Control-Allow-Origin:
*`` (a module import is a CORS request) and a JavaScript content type (browsers
refuse a module served as anything else). It holds no secrets and sets no cookies.

In a wheel the modules ship inside the package (``jupyter_http_over_ws/static``);
in an editable install they are read from the repository's ``js/src``.
"""

from __future__ import annotations

from pathlib import Path

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


class StaticHandler(CredentialFreeSummary, web.StaticFileHandler):
    """The browser client's modules, importable from any origin."""

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
