"""The jupyter_server extension: registration and every option.

Every setting is a traitlet on :class:`HttpOverWebSocketApp`, so it can be set
on the command line (``--HttpOverWebSocketApp.max_message_size=...``) or in a
``jupyter_server_config.py`` (``c.HttpOverWebSocketApp.max_message_size = ...``).
"""

from __future__ import annotations

import re
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Float, Int, List, TraitError, Unicode, observe, validate

from ._version import __version__
from .entrance import PrivateEntrance
from .handlers import (
    DiagnoseHandler,
    ProxiedWebSocketHandler,
    StaticHandler,
    TunnelHandler,
    static_root,
)
from .handlers.polling import polling_handlers
from .runtime import TunnelRegistry
from .session import SessionLimits
from .wire.names import DIAGNOSE_PATH, PROXIED_WS_PREFIX, STATIC_PREFIX, TUNNEL_PATH
from .wire.protocol import PathPolicy

MiB = 1024 * 1024


class HttpOverWebSocketApp(ExtensionApp):
    """Tunnels HTTP requests and WebSockets to this server over one WebSocket."""

    name = "jupyter_http_over_ws"
    description = __doc__
    _path_policy: PathPolicy | None = None
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
        64 * 1024,
        config=True,
        help=(
            "The most response-body bytes carried by one reply frame (before base64), in "
            "bytes. The default, 64 KiB, is the original's chunk size and measured fastest "
            "here: a frame of about 87 KB stays below glibc's mmap threshold (128 KiB), "
            "while larger frames pay for a fresh memory mapping per buffer (see "
            "docs/developers/performance.md). It also bounds the unsent bytes buffered per "
            "request. Example: 262144."
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

    max_body_size = Int(
        0,
        config=True,
        help=(
            "The largest request body one tunnelled request may carry, in bytes; a larger "
            "one is answered with 413 and the socket stays open. 0 (the default) means the "
            "server's own limit, ServerApp.max_body_size (512 MiB unless configured), the "
            "same limit a direct request meets. Example: 64 * 1024 * 1024."
        ),
    )

    max_sockets_per_user = Int(
        64,
        config=True,
        help=(
            "The most tunnel sockets one user may have open at once: http_over_websocket "
            "and proxied_ws sockets, polling sessions and their proxied channels together. "
            "The socket over the limit is closed right after it opens with code 4429 and a "
            "reason naming this option (a polling session is refused with 429). 0 means "
            "no limit."
        ),
    )

    idle_timeout = Float(
        0.0,
        config=True,
        help=(
            "Seconds a tunnel socket may stay open with no message from its client and "
            "no request in flight before the server closes it with code 4408. 0 (the "
            "default) keeps idle tunnels open, as a frontend left open in a tab expects; "
            "WebSocket pings (the ws_ping_interval tornado setting) still detect dead peers. "
            "Example: 3600 for one hour."
        ),
    )

    connect_timeout = Float(
        60.0,
        config=True,
        help=(
            "Seconds to wait for this server to accept the upstream half of a proxied "
            "WebSocket (proxied_ws, or a polling session's channel) before answering the "
            "client's upgrade with 504 (502 when it cannot be reached at all); a polled "
            "channel closes with 4504 (4502). jupyter_server accepts a new kernel's "
            "channels only once the kernel is ready, which it waits for up to its own "
            "kernel_info_timeout (60 s by default): keep this at least as long, so a slow "
            "kernel start is waited for as a direct client would wait. Example: 120."
        ),
    )

    allow_polling = Bool(
        True,
        config=True,
        help=(
            "Whether clients may fall back to the polling transport (plain HTTP requests "
            "under http_over_websocket/polling) when a WebSocket upgrade does not get "
            "through, e.g. behind a reverse proxy that drops Upgrade. The same "
            "authentication, origin, XSRF and host checks apply as for every API request. "
            "False answers those URLs with 404."
        ),
    )

    polling_idle_timeout = Float(
        20.0,
        config=True,
        help=(
            "Seconds a polling session may go without any request from its client (a "
            "waiting long poll counts as one) before the server closes it and releases "
            "everything it holds: in-flight tunnelled requests are cancelled, proxied "
            "sockets closed. Must exceed poll_timeout plus the client's reconnect time. "
            "0 keeps sessions until the client closes them (not recommended). Example: 120."
        ),
    )

    poll_timeout = Float(
        25.0,
        config=True,
        help=(
            "The longest a polling client's receive request waits for something to "
            "deliver, in seconds, before it is answered with an empty batch and the client "
            "polls again. Keep it below the read timeout of proxies in between (nginx's "
            "proxy_read_timeout is 60 s by default). Example: 10."
        ),
    )

    polling_buffer_size = Int(
        4 * MiB,
        config=True,
        help=(
            "The most bytes one polling session holds for its client before the client "
            "acknowledges them, in bytes (encoded messages). When it is full, responses "
            "and proxied sockets wait (the same backpressure a slow WebSocket reader "
            "exerts), so a slow poller cannot grow the server's memory. It also bounds "
            "the bytes a send may leave waiting for a proxied socket. Example: 16 * 1024 * 1024."
        ),
    )

    @validate("max_message_size", "chunk_size", "polling_buffer_size")
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
        """The compiled ``allowed_paths``, compiled once per value (not per socket)."""
        if self._path_policy is None:
            self._path_policy = PathPolicy.compile(self.allowed_paths)
        return self._path_policy

    @observe("allowed_paths")
    def _recompile_paths(self, change: dict[str, Any]) -> None:
        self._path_policy = None

    @validate(
        "max_requests_in_flight",
        "max_body_size",
        "max_sockets_per_user",
        "idle_timeout",
        "polling_idle_timeout",
    )
    def _non_negative(self, proposal: dict[str, Any]) -> Any:
        value = proposal["value"]
        if value < 0:
            name = proposal["trait"].name
            raise TraitError(f"HttpOverWebSocketApp.{name} must be >= 0, not {value}")
        return value

    def session_limits(self) -> SessionLimits:
        """The limits each tunnel session enforces, from the options above."""
        max_body_size = self.max_body_size or int(getattr(self.serverapp, "max_body_size", 0))
        return SessionLimits(
            max_in_flight=self.max_requests_in_flight,
            max_body_size=max_body_size,
            path_policy=self.path_policy,
        )

    @validate("poll_timeout")
    def _positive_timeout(self, proposal: dict[str, Any]) -> float:
        value = float(proposal["value"])
        if value <= 0:
            raise TraitError(f"HttpOverWebSocketApp.poll_timeout must be > 0, not {value}")
        return value

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: What the tunnels hold open on this server (sockets, polling sessions, the
        #: private entrance), ended in order on shutdown.
        self.registry = TunnelRegistry(self, self._new_entrance)

    def _new_entrance(self) -> PrivateEntrance:
        serverapp = self.serverapp
        assert serverapp is not None
        return PrivateEntrance(
            serverapp.web_app,
            max_body_size=getattr(serverapp, "max_body_size", None),
            max_buffer_size=getattr(serverapp, "max_buffer_size", None),
        )

    def initialize_handlers(self) -> None:
        """Register the endpoints under the server's ``base_url`` (polling only if allowed)."""
        options = {"extension": self}
        static = {"path": str(static_root())}
        self.handlers.extend(
            [
                ("/" + TUNNEL_PATH + "/?", TunnelHandler, options),
                ("/" + DIAGNOSE_PATH + "/?", DiagnoseHandler, options),
                ("/" + PROXIED_WS_PREFIX + "(.+)", ProxiedWebSocketHandler, options),
                # The browser client's ES modules (public, any origin; see handlers/static.py).
                ("/" + STATIC_PREFIX + "(.*)", StaticHandler, static),
            ]
        )
        if self.allow_polling:
            self.handlers.extend(polling_handlers(options))

    async def stop_extension(self) -> None:
        """End every tunnel cleanly before the server stops (see :meth:`TunnelRegistry.shutdown`).

        In-flight tunnelled requests get their final frame (503 if their response
        had not started), then every socket closes with 1001 (going away).
        """
        await self.registry.shutdown()
