"""A jupyter_server extension for the browser tests: echoes a request body, byte for byte.

Loaded into the subprocess server (``--ServerApp.jpserver_extensions=echo_body_extension=True``
with ``tests/`` on ``PYTHONPATH``), it gives the tests a real, authenticated handler that
shows exactly which bytes a tunnelled request delivered.
"""

from __future__ import annotations

import hashlib
from typing import Any

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web


class EchoBodyHandler(APIHandler):
    """``POST``/``PUT``: the body back, with its length and SHA-256 in headers."""

    @web.authenticated
    def post(self) -> None:
        body = self.request.body
        self.set_header("Content-Type", "application/octet-stream")
        self.set_header("X-Body-Length", str(len(body)))
        self.set_header("X-Body-Sha256", hashlib.sha256(body).hexdigest())
        self.set_header("X-Request-Content-Type", self.request.headers.get("Content-Type", ""))
        self.finish(body)

    put = post


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    return [{"module": "echo_body_extension"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    web_app = serverapp.web_app
    route = url_path_join(web_app.settings["base_url"], "test/echo-body")
    web_app.add_handlers(".*$", [(route, EchoBodyHandler)])
