"""An asyncio client for the HTTP-over-WebSocket tunnel.

Example::

    from jupyter_http_over_ws.client import TunnelClient

    async with await TunnelClient.connect("http://localhost:8888/", token="...") as tunnel:
        reply = await tunnel.request("GET", "/api/contents")
        print(reply.status, reply.json())
        async with tunnel.stream("GET", "/files/big.bin") as download:
            async for chunk in download:
                ...
        kernel_socket = await tunnel.websocket("/api/kernels/<id>/channels")

It speaks the same protocol module as the server, so it talks to the original
extension too (it sends nothing the original did not accept).
"""

from __future__ import annotations

from ._diagnose import diagnose
from ._polled_socket import PolledWebSocket
from ._responses import Response, StreamingResponse
from ._tls_errors import WrongSchemeError
from ._tunnel import TunnelClient, TunnelClosedError, TunnelWebSocket

__all__ = [
    "PolledWebSocket",
    "Response",
    "StreamingResponse",
    "TunnelClient",
    "TunnelClosedError",
    "TunnelWebSocket",
    "WrongSchemeError",
    "diagnose",
]
