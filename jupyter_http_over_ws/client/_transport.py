"""What :class:`TunnelClient` needs from a transport: the :class:`Transport` protocol.

Two classes implement it: :class:`WebSocketTransport` (``_websocket.py``, one tunnel
socket) and :class:`PollingTransport` (``_polling.py``, a polling session over plain
HTTP). The client sends request frames through it, opens proxied sockets through it,
and hears of reply frames and of the end through the two listeners it attaches.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal, Protocol

from tornado.websocket import WebSocketClientConnection

from ._polled_socket import PolledWebSocket

#: The name of a transport, as ``TunnelClient.transport`` reports it.
TransportName = Literal["websocket", "polling"]

#: What :meth:`TunnelClient.websocket` returns: Tornado's connection over the WebSocket
#: transport, a :class:`PolledWebSocket` (same methods) over the polling transport.
TunnelWebSocket = WebSocketClientConnection | PolledWebSocket

#: Called with the transport and each tunnel message it receives (text or bytes).
OnMessage = Callable[["Transport", "str | bytes"], None]
#: Called with the transport once, when it has closed (``close_code`` is set by then,
#: or stays ``None`` when the connection dropped without a close frame).
OnClosed = Callable[["Transport"], None]


class Transport(Protocol):
    """One carrier of the tunnel: sends request frames, delivers reply frames.

    A transport delivers nothing until :meth:`attach` gives it its listeners.
    """

    @property
    def name(self) -> TransportName:
        """``"websocket"`` or ``"polling"``."""
        ...

    #: The framing request frames go out in: ``"json"``, or ``"binary"`` once the
    #: server confirmed it (the client sets it when a hello frame says so).
    framing: str
    #: The server's extension version, once this transport learned it.
    extension_version: str | None

    @property
    def binary_replies(self) -> bool:
        """Whether a binary message is a binary-framed reply (else UTF-8 JSON text)."""
        ...

    @property
    def close_code(self) -> int | None:
        """The close code, once the server has closed the transport."""
        ...

    @property
    def close_reason(self) -> str | None:
        """The close reason, once the server has closed the transport."""
        ...

    @property
    def closed(self) -> bool:
        """Whether the transport has closed."""
        ...

    @property
    def busy(self) -> bool:
        """Whether work is still under way on it (a retired transport closes once idle)."""
        ...

    def attach(self, on_message: OnMessage, on_closed: OnClosed) -> None:
        """Give the transport its listeners, and start delivering to them."""
        ...

    def send(self, message: str | bytes, binary: bool = False) -> Awaitable[None]:
        """Send one tunnel frame (a binary frame when ``binary``)."""
        ...

    async def open_socket(self, path: str, subprotocols: list[str] | None) -> TunnelWebSocket:
        """Open a proxied WebSocket to ``path`` (relative to ``base_url``)."""
        ...

    async def close(self) -> None:
        """Close the transport; the ``on_closed`` listener hears of it."""
        ...


def not_attached(*args: object) -> None:
    """The listener of a transport not attached yet: it has not started, so nothing arrives."""
