"""``{base_url}http_over_websocket/proxied_ws/<path>``: relays a WebSocket to this server."""

from __future__ import annotations

import asyncio
from typing import Any

from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from tornado import httpclient, httputil, web
from tornado.websocket import WebSocketClientConnection, WebSocketClosedError, WebSocketHandler

from ..protocol import ProtocolError, normalize_path
from ..wsproxy import connect_upstream, is_binary, local_origin, sendable_close_code
from .base import TunnelSocketMixin


class ProxiedWebSocketHandler(TunnelSocketMixin, WebSocketMixin, WebSocketHandler, JupyterHandler):  # type: ignore[misc]
    """Opens the same WebSocket on this server, then relays frames both ways.

    The upstream socket is opened before the client's upgrade is accepted, so the
    subprotocol the upstream handler picks (for kernels,
    ``v1.kernel.websocket.jupyter.org`` or the legacy protocol) is the one the
    client is told, and an upstream refusal (404 for an unknown kernel, 403 from
    the server's authorizer) reaches the client as that same HTTP status.
    """

    upstream: WebSocketClientConnection | None = None
    _pump: asyncio.Task[None] | None = None

    @ws_authenticated
    async def get(self, path: str) -> None:
        """Authenticate (403 otherwise), check the origin, connect upstream, then upgrade."""
        # Tornado checks the origin only inside super().get(); check it before
        # anything is opened upstream on the client's behalf.
        error = self._check_cross_origin(self.check_origin)
        if error is not None:
            raise web.HTTPError(403, "Cross origin websockets not allowed")
        try:
            target = normalize_path(path)
        except ProtocolError as e:
            raise web.HTTPError(e.status, e.status_text) from None
        if self.request.query:
            target += "?" + self.request.query
        url = local_origin(self.request.connection.stream) + self.base_url.rstrip("/") + target
        offered = [
            p.strip()
            for p in self.request.headers.get("Sec-WebSocket-Protocol", "").split(",")
            if p.strip()
        ]
        try:
            self.upstream = await connect_upstream(
                url,
                self._upstream_headers(),
                offered,
                max_message_size=self.max_message_size,
                connect_timeout=self.extension.connect_timeout,
            )
        except httpclient.HTTPClientError as e:
            raise web.HTTPError(e.code, "upstream refused the WebSocket") from None
        except OSError as e:
            self.log.warning("http_over_websocket: cannot reach %s: %s", self.request.path, e)
            raise web.HTTPError(502, "cannot reach the upstream WebSocket") from None
        await super().get(path)
        if self.ws_connection is None and self.upstream is not None:
            self.upstream.close()  # the client's upgrade failed after all

    def _upstream_headers(self) -> httputil.HTTPHeaders:
        headers = httputil.HTTPHeaders()
        for name, value in self.upgrade_context().headers:
            headers[name] = value
        return headers

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        """Tell the client the subprotocol the upstream handler chose."""
        return self.upstream.selected_subprotocol if self.upstream is not None else None

    def open(self, *args: Any, **kwargs: Any) -> None:
        """Start relaying upstream messages to the client."""
        super().open(*args, **kwargs)
        self.set_nodelay(True)
        self._pump = asyncio.create_task(self._relay_upstream())

    async def _relay_upstream(self) -> None:
        upstream = self.upstream
        assert upstream is not None
        try:
            while True:
                message = await upstream.read_message()
                if message is None:
                    break
                await self.write_message(message, binary=is_binary(message))
        except WebSocketClosedError:
            return
        code = sendable_close_code(upstream.close_code)
        self.close(code, upstream.close_reason if code is not None else None)

    async def on_message(self, message: str | bytes) -> None:
        """Relay a client message upstream; Tornado waits for this before reading the next."""
        if self.upstream is None:
            return
        try:
            await self.upstream.write_message(message, binary=is_binary(message))
        except WebSocketClosedError:
            self.close(1011, "upstream closed")

    def on_close(self) -> None:
        """Pass the client's close (code and reason) upstream."""
        if self.upstream is not None:
            code = sendable_close_code(self.close_code)
            self.upstream.close(code, self.close_reason if code is not None else None)
        if self._pump is not None and not self._pump.done():
            self._pump.cancel()
