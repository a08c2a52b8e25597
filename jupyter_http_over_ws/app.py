"""The jupyter_server extension: registration and every option.

Every setting is a traitlet on :class:`HttpOverWebSocketApp`, so it can be set
on the command line (``--HttpOverWebSocketApp.max_message_size=...``) or in a
``jupyter_server_config.py`` (``c.HttpOverWebSocketApp.max_message_size = ...``).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, Protocol

from jupyter_server.auth import IdentityProvider
from jupyter_server.extension.application import ExtensionApp
from tornado.ioloop import PeriodicCallback
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
from .polling import PollingRegistry
from .session import SessionLimits, TunnelSession
from .wire.protocol import PathPolicy
from .wsproxy import PROXIED_WS_PREFIX

#: Close code for a socket over ``max_sockets_per_user`` (4000 + HTTP 429).
TOO_MANY_SOCKETS_CODE = 4429
#: Close code for a tunnel closed by ``idle_timeout`` (4000 + HTTP 408).
IDLE_CODE = 4408


class ShutdownAware(Protocol):
    """A socket handler the extension ends on server shutdown."""

    async def shutdown(self) -> None:
        """Finish what can be finished and close the socket with 1001."""


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
            "The most tunnel sockets (http_over_websocket and proxied_ws together) one "
            "user may have open at once. The socket over the limit is closed right after "
            "it opens with code 4429 and a reason naming this option. 0 means no limit."
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
        20.0,
        config=True,
        help=(
            "Seconds to wait for this server to accept the upstream half of a proxied "
            "WebSocket (proxied_ws) before answering the client's upgrade with 504 (502 "
            "when it cannot be reached at all)."
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
        60.0,
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

    def admit(self, socket: Any) -> tuple[int, str] | None:
        """Register an opened socket, or say why it must close (``max_sockets_per_user``)."""
        return self.admit_as(self._user_key(socket), socket)

    def user_key(self, handler: Any) -> str:
        """Whose sockets (and polling sessions) ``handler``'s request opens."""
        return self._user_key(handler)

    def admit_as(self, username: str, socket: Any) -> tuple[int, str] | None:
        """Register a socket (or polling session or channel) of ``username``, or refuse it."""
        socket.tunnel_username = username
        if self.max_sockets_per_user:
            mine = sum(1 for s in self.sockets if getattr(s, "tunnel_username", None) == username)
            if mine >= self.max_sockets_per_user:
                self.log.warning(
                    "http_over_websocket: refusing a socket over the per-user limit (%s)",
                    self.max_sockets_per_user,
                )
                return (
                    TOO_MANY_SOCKETS_CODE,
                    f"Too many tunnel sockets for this user (limit {self.max_sockets_per_user}; "
                    "see HttpOverWebSocketApp.max_sockets_per_user)",
                )
        self.sockets.add(socket)
        return None

    @staticmethod
    def _user_key(socket: Any) -> str:
        # jupyter_server's own identity providers make up a new anonymous user for every
        # token-authenticated request, though a single person holds the token or the
        # password: their sockets all count as one user's. Providers that identify
        # users (JupyterHub's) override get_user, and their usernames are used.
        if type(socket.identity_provider).get_user is IdentityProvider.get_user:
            return ""
        user = socket.current_user
        return str(getattr(user, "username", user))

    def watch_idle(self, socket: Any) -> PeriodicCallback | None:
        """Close ``socket`` (code 4408) once its session has been idle ``idle_timeout`` s."""
        if not self.idle_timeout:
            return None
        timeout = self.idle_timeout

        def check() -> None:
            session = getattr(socket, "session", None)
            if session is not None and session.idle_seconds() >= timeout:
                reason = f"Idle for {timeout:g} s (HttpOverWebSocketApp.idle_timeout)"
                socket.close(IDLE_CODE, reason)

        callback = PeriodicCallback(check, max(min(timeout / 4, 5.0), 0.05) * 1000)
        callback.start()
        return callback

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: The tunnel sockets open on this server, ended cleanly on shutdown.
        self.sockets: set[ShutdownAware] = set()
        self._entrance: PrivateEntrance | None = None
        #: The open polling sessions (see docs/developers/polling.md).
        self.polling_sessions = PollingRegistry()

    def entrance(self) -> PrivateEntrance | None:
        """The private entrance relays dial (started on first use), if the platform has one."""
        if self._entrance is None and PrivateEntrance.available():
            serverapp = self.serverapp
            assert serverapp is not None
            entrance = PrivateEntrance(
                serverapp.web_app,
                max_body_size=getattr(serverapp, "max_body_size", None),
                max_buffer_size=getattr(serverapp, "max_buffer_size", None),
            )
            try:
                entrance.start()
            except OSError as e:  # e.g. a temporary directory that refuses sockets
                self.log.warning("http_over_websocket: no private relay entrance: %s", e)
                return None
            self._entrance = entrance
        return self._entrance

    def initialize_handlers(self) -> None:
        """Register the three endpoints under the server's ``base_url``."""
        options = {"extension": self}
        self.handlers.extend(
            [
                (r"/http_over_websocket/?", TunnelHandler, options),
                (r"/http_over_websocket/diagnose/?", DiagnoseHandler, options),
                ("/" + PROXIED_WS_PREFIX + "(.+)", ProxiedWebSocketHandler, options),
                # The browser client's ES modules (public, any origin; see handlers/static.py).
                (r"/http_over_websocket/static/(.*)", StaticHandler, {"path": str(static_root())}),
            ]
        )
        if self.allow_polling:
            self.handlers.extend(polling_handlers(options))

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
        await self.polling_sessions.close_all()
        if self._entrance is not None:
            await self._entrance.stop()
            self._entrance = None
