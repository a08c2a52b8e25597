"""A tiny jupyter_server extension for the JS client's tests: echoes request bodies.

``/hows-echo`` answers any method with the exact bytes it received, and with the
request's method, content type and body digest in headers, so a test can check that a
body of any fetch type travelled byte-exact through the tunnel; ``/hows-redirect``
redirects there. Authenticated like every other API handler. Loaded by js/testing/server.js
and by the browser tests (tests/support/browser.py puts this folder on PYTHONPATH).
"""

from __future__ import annotations

import hashlib
from typing import Any

from jupyter_server.base.handlers import APIHandler
from tornado import web


class EchoHandler(APIHandler):
    """Answer with the request body, byte for byte."""

    def check_xsrf_cookie(self) -> None:
        """Token-authenticated tests only; XSRF is jupyter_server's (tested elsewhere)."""

    @web.authenticated
    def _echo(self) -> None:
        body = self.request.body
        self.set_header("Content-Type", "application/octet-stream")
        self.set_header("X-Echo-Method", self.request.method or "")
        self.set_header("X-Echo-Content-Type", self.request.headers.get("Content-Type", ""))
        self.set_header("X-Echo-Sha256", hashlib.sha256(body).hexdigest())
        self.set_header("X-Echo-Length", str(len(body)))
        self.finish(body)

    get = post = put = patch = delete = _echo


class RedirectHandler(APIHandler):
    """Redirect to ``/hows-echo`` with the status in ``?status=`` (default 302)."""

    def check_xsrf_cookie(self) -> None:
        """As for the echo."""

    @web.authenticated
    def _redirect(self) -> None:
        status = int(self.get_argument("status", "302"))
        self.redirect(self.base_url.rstrip("/") + "/hows-echo", status=status)

    get = post = put = _redirect


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    return [{"module": "hows_echo"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    base = serverapp.web_app.settings["base_url"].rstrip("/")
    serverapp.web_app.add_handlers(
        ".*$",
        [(base + "/hows-echo", EchoHandler), (base + "/hows-redirect", RedirectHandler)],
    )
