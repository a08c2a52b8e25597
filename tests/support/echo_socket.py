"""A WebSocket on the server under test that echoes frames, for the relay's own contract.

A kernel cannot be made to show frame types, close codes and reasons, subprotocol choice
or path encoding on demand; this socket can. Tests register it with
:func:`register_echo_socket` and look at :attr:`EchoSocket.instances` afterwards.
"""

from __future__ import annotations

import asyncio
from typing import Any

from jupyter_server.utils import url_path_join
from tornado.routing import URLSpec
from tornado.websocket import WebSocketHandler

__all__ = ["EchoSocket", "register_echo_socket"]


class EchoSocket(WebSocketHandler):
    """A test socket on the server: echoes frames with their type, closes on request.

    ``close:<code>:<reason>`` makes it close with that code and reason; ``close`` with
    a close frame without a code (as jupyter_server's plain ``close()`` of a stale
    kernel socket); ``drop`` closes its connection without a close frame, as a failing
    handler or process would. Every instance records its path argument, query and the
    close it saw.
    """

    instances: list[EchoSocket] = []
    closed = False

    async def get(self, *args: Any, **kwargs: Any) -> None:
        # ?delay=<seconds> holds the upgrade back, as a busy server might.
        await asyncio.sleep(float(self.get_query_argument("delay", "0")))
        await super().get(*args, **kwargs)

    def on_close(self) -> None:
        self.closed = True

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        return "echo.b" if "echo.b" in subprotocols else None

    def open(self, rest: str | None = None) -> None:
        self.rest = rest
        self.query = self.request.query
        EchoSocket.instances.append(self)

    async def on_message(self, message: str | bytes) -> None:
        if isinstance(message, str) and message.startswith("close:"):
            _, code, reason = message.split(":", 2)
            self.close(int(code), reason)
            return
        if message == "close":
            self.close()
            return
        if message == "drop":
            # The TCP (or Unix) stream itself, under the WebSocket: no close frame.
            assert self.ws_connection is not None
            self.ws_connection.stream.close()
            return
        await self.write_message(message, binary=isinstance(message, bytes))


def register_echo_socket(serverapp: Any, base_url: str, path: str) -> str:
    """Register :class:`EchoSocket` at ``{base_url}{path}[/...]``; returns ``/{path}``.

    The instances of earlier tests are forgotten.
    """
    EchoSocket.instances = []
    router = serverapp.web_app.wildcard_router
    # First, ahead of jupyter_server's catch-all 404 handler.
    router.rules.insert(0, URLSpec(url_path_join(base_url, rf"{path}(/.*)?"), EchoSocket))
    return f"/{path}"
