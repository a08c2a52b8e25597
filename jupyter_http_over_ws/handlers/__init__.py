"""Thin Tornado handlers: each authenticates, authorizes and hands off."""

from __future__ import annotations

from .diagnose import DiagnoseHandler
from .proxied_ws import ProxiedWebSocketHandler
from .static import StaticHandler, static_root
from .tunnel import TunnelHandler

__all__ = [
    "DiagnoseHandler",
    "ProxiedWebSocketHandler",
    "StaticHandler",
    "TunnelHandler",
    "static_root",
]
