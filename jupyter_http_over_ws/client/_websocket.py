"""The client side of the WebSocket transport: one tunnel socket, proxied sockets beside it."""

from __future__ import annotations

import asyncio
from typing import Final

from tornado.websocket import WebSocketClientConnection

from ..wire.framing import FRAMING_HEADER
from ..wire.names import PROXIED_WS_PREFIX
from ._connect import Endpoint
from ._transport import OnClosed, OnMessage, not_attached


class WebSocketTransport:
    """The tunnel over a WebSocket (``{base_url}http_over_websocket``).

    It implements :class:`~._transport.Transport`: it reads the socket once
    :meth:`attach` has given it its listeners.
    """

    name: Final = "websocket"
    #: Binary messages on the tunnel socket are binary-framed replies.
    binary_replies: Final = True

    def __init__(self, endpoint: Endpoint, connection: WebSocketClientConnection) -> None:
        self.endpoint = endpoint
        self.connection = connection
        #: The framing the server confirmed on the upgrade (``"json"`` unless asked).
        self.framing = "json"
        if connection.headers is not None and connection.headers.get(FRAMING_HEADER) == "binary":
            self.framing = "binary"
        #: The server's extension version, once a binary-framing hello announced it.
        self.extension_version: str | None = None
        self._on_message: OnMessage = not_attached
        self._on_closed: OnClosed = not_attached
        self._reader: asyncio.Future[None] | None = None

    def attach(self, on_message: OnMessage, on_closed: OnClosed) -> None:
        """Deliver the socket's messages and its end to these listeners; start reading."""
        self._on_message = on_message
        self._on_closed = on_closed
        if self._reader is None:
            self._reader = asyncio.ensure_future(self._read_loop())

    @property
    def close_code(self) -> int | None:
        """The close code, once the server has closed the socket."""
        return self.connection.close_code

    @property
    def close_reason(self) -> str | None:
        """The close reason, once the server has closed the socket."""
        return self.connection.close_reason

    @property
    def closed(self) -> bool:
        """Whether the socket has closed (its reader has finished)."""
        return self._reader is not None and self._reader.done()

    @property
    def busy(self) -> bool:
        """A WebSocket is never retired, so it never counts as busy."""
        return False

    async def wait_closed(self) -> None:
        """Wait until the socket has closed."""
        if self._reader is None:
            raise RuntimeError("the WebSocket transport is not attached")
        await asyncio.shield(self._reader)

    async def _read_loop(self) -> None:
        try:
            while True:
                message = await self.connection.read_message()
                if message is None:
                    break
                self._on_message(self, message)
        finally:
            self._on_closed(self)

    def send(self, message: str | bytes, binary: bool = False) -> asyncio.Future[None]:
        """Send a tunnel frame."""
        return self.connection.write_message(message, binary=binary)

    async def open_socket(
        self, path: str, subprotocols: list[str] | None
    ) -> WebSocketClientConnection:
        """Open a proxied socket: its own WebSocket to ``…/proxied_ws/<path>``."""
        return await self.endpoint.open(
            PROXIED_WS_PREFIX + path.lstrip("/"), subprotocols=subprotocols
        )

    async def close(self) -> None:
        """Close the socket and wait (briefly) for the reader to finish."""
        self.connection.close()
        if self._reader is not None:
            await asyncio.wait([self._reader], timeout=5)
