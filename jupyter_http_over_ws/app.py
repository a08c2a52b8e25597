"""The jupyter_server extension: registration and every option.

Every setting is a traitlet on :class:`HttpOverWebSocketApp`, so it can be set
on the command line (``--HttpOverWebSocketApp.max_message_size=...``) or in a
``jupyter_server_config.py`` (``c.HttpOverWebSocketApp.max_message_size = ...``).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, Protocol

from jupyter_server.extension.application import ExtensionApp
from traitlets import Float, Int, List, TraitError, Unicode, validate

from ._version import __version__
from .handlers import DiagnoseHandler, ProxiedWebSocketHandler, TunnelHandler
from .protocol import PathPolicy
from .session import TunnelSession


class ShutdownAware(Protocol):
    """A socket handler the extension ends on server shutdown."""

    async def shutdown(self) -> None:
        """Finish what can be finished and close the socket with 1001."""


MiB = 1024 * 1024


class HttpOverWebSocketApp(ExtensionApp):
    """Tunnels HTTP requests and WebSockets to this server over one WebSocket."""

    name = "jupyter_http_over_ws"
    description = __doc__
    version = __version__
    # A server extension only: it adds handlers to whichever app started the server
    # (jupyter server, jupyter notebook, jupyter lab) and never becomes the default app.
    load_other_extensions = True

    max_message_size = Int(
        128 * MiB,
        config=True,
        help=(
            "The largest WebSocket message a tunnel client may send, in bytes. A request "
            "body travels base64-encoded inside one message, so a body of N bytes needs "
            "about 4/3 N plus a few hundred bytes. A larger message closes the socket with "
            "code 1009. Example: 256 * 1024 * 1024 for bodies up to about 190 MiB."
        ),
    )

    chunk_size = Int(
        256 * 1024,
        config=True,
        help=(
            "The most response-body bytes carried by one reply frame (before base64), in "
            "bytes. Larger frames cost fewer frames per megabyte; smaller ones interleave "
            "concurrent replies more finely. Example: 65536, the original's chunk size."
        ),
    )

    max_requests_in_flight = Int(
        1000,
        config=True,
        help=(
            "The most tunnelled HTTP requests one socket may have running at once; a "
            "request over the limit is answered with status 429 and the socket stays "
            "open. 0 means no limit."
        ),
    )

    allowed_paths = List(
        Unicode(),
        default_value=[],
        config=True,
        help=(
            "Regular expressions for the paths (relative to base_url, query left out) that "
            "tunnelled requests and proxied WebSockets may reach, each matched from the "
            "start of the path. A request for any other path is answered with 403. The "
            "default, an empty list, allows every path the server serves; the server's own "
            "authentication and authorization apply either way. Example: "
            "['/api/(contents|kernels|sessions|kernelspecs)', '/files/']."
        ),
    )

    connect_timeout = Float(
        20.0,
        config=True,
        help=(
            "Seconds to wait for this server to accept the upstream half of a proxied "
            "WebSocket (proxied_ws) before answering the client's upgrade with 502."
        ),
    )

    @validate("max_message_size", "chunk_size")
    def _positive(self, proposal: dict[str, Any]) -> int:
        value = int(proposal["value"])
        if value < 1024:
            name = proposal["trait"].name
            raise TraitError(f"HttpOverWebSocketApp.{name} must be at least 1024, not {value}")
        return value

    @validate("allowed_paths")
    def _valid_patterns(self, proposal: dict[str, Any]) -> list[str]:
        patterns = list(proposal["value"])
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as e:
                raise TraitError(
                    f"HttpOverWebSocketApp.allowed_paths: invalid pattern {pattern!r}: {e}"
                ) from None
        return patterns

    @property
    def path_policy(self) -> PathPolicy:
        """The compiled ``allowed_paths``."""
        return PathPolicy.compile(self.allowed_paths)

    @validate("max_requests_in_flight")
    def _non_negative(self, proposal: dict[str, Any]) -> int:
        value = int(proposal["value"])
        if value < 0:
            raise TraitError(
                f"HttpOverWebSocketApp.max_requests_in_flight must be >= 0, not {value}"
            )
        return value

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: The tunnel sockets open on this server, ended cleanly on shutdown.
        self.sockets: set[ShutdownAware] = set()

    def initialize_handlers(self) -> None:
        """Register the three endpoints under the server's ``base_url``."""
        options = {"extension": self}
        self.handlers.extend(
            [
                (r"/http_over_websocket/?", TunnelHandler, options),
                (r"/http_over_websocket/diagnose/?", DiagnoseHandler, options),
                (r"/http_over_websocket/proxied_ws/(.+)", ProxiedWebSocketHandler, options),
            ]
        )

    @property
    def sessions(self) -> list[TunnelSession]:
        """The sessions of the open tunnel sockets."""
        return [s for s in (getattr(h, "session", None) for h in self.sockets) if s is not None]

    async def stop_extension(self) -> None:
        """End every tunnel cleanly before the server stops.

        In-flight tunnelled requests get their final frame (503 if their response
        had not started), then every socket closes with 1001 (going away).
        """
        sockets = list(self.sockets)
        self.sockets.clear()
        await asyncio.gather(*(s.shutdown() for s in sockets), return_exceptions=True)
