"""Tunnel HTTP requests and WebSockets to a Jupyter server over one WebSocket.

The server extension is imported lazily, so ``jupyter_http_over_ws.client`` and
``jupyter_http_over_ws.wire.protocol`` stay usable without starting a server.
"""

from __future__ import annotations

from typing import Any

from ._version import __version__

__all__ = ["__version__", "load_jupyter_server_extension"]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """Tell jupyter_server where the extension app lives."""
    from .app import HttpOverWebSocketApp

    return [{"module": "jupyter_http_over_ws", "app": HttpOverWebSocketApp}]


def _load_jupyter_server_extension(serverapp: Any) -> Any:
    """Load the extension into a running ``ServerApp`` (the legacy entry point)."""
    from .app import HttpOverWebSocketApp

    return HttpOverWebSocketApp._load_jupyter_server_extension(serverapp)  # type: ignore[no-untyped-call]


#: The name the original package (and old configs) used.
load_jupyter_server_extension = _load_jupyter_server_extension
