"""The tunnels' runtime state on one server: who holds what, and how it all ends.

:class:`HttpOverWebSocketApp` holds the configuration; a :class:`TunnelRegistry`
holds what is open (jupyter_server_terminals splits its app and its
``TerminalManager`` the same way). The registry

- knows whose a socket is (:func:`owner_key`) and counts every open socket, polling
  session and polled channel against ``max_sockets_per_user``, in a mapping of
  owners to what they hold;
- builds every :class:`~.session.TunnelSession` (for the WebSocket transport and
  for channel 0 of the polling transport) through one factory;
- builds the one upstream dial a client's relays use (:class:`~.upstream.UpstreamDialer`),
  through the private entrance it starts on first use;
- holds the polling sessions (:class:`~.polling.PollingTable`) and opens them;
- closes idle tunnels (``idle_timeout``) and ends everything in order on shutdown.

Handlers reach it through ``TunnelSocketMixin.registry``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Callable
from typing import Any, Final, NamedTuple, Protocol

from jupyter_server.auth import IdentityProvider
from jupyter_server.auth.identity import PasswordIdentityProvider
from jupyter_server.auth.login import LoginFormHandler
from tornado.httputil import HTTPServerRequest
from tornado.ioloop import PeriodicCallback
from tornado.web import Application

from .dispatch import InProcessDispatcher
from .entrance import PrivateEntrance
from .polling import PollingSession, PollingTable
from .replies import SendFrame
from .session import SessionLimits, TunnelSession
from .upgrade import UpgradeContext
from .upstream import DialSettings, UpstreamDialer
from .wire.framing import JSON, Framing
from .wire.names import CloseCode


class Refusal(NamedTuple):
    """Why an opened socket must close at once: its close code and reason."""

    code: int
    reason: str


class Admitted(Protocol):
    """Something counted against ``max_sockets_per_user`` and ended on server shutdown.

    A tunnel or proxied socket's handler, a polling session, a polled channel.
    """

    async def shutdown(self) -> None:
        """The server is stopping: finish what can be finished, then close (1001)."""


class Identified(Protocol):
    """A request jupyter_server has authenticated (any ``JupyterHandler``)."""

    @property
    def identity_provider(self) -> IdentityProvider:
        """The server's identity provider."""

    @property
    def current_user(self) -> Any:
        """Who the identity provider says the request is."""


class ClientHandler(Identified, Protocol):
    """The handler a client opens a tunnel through (one with ``TunnelSocketMixin``)."""

    @property
    def application(self) -> Application:
        """The server's Tornado application, which runs tunnelled requests."""

    @property
    def request(self) -> HTTPServerRequest:
        """The upgrade request (or the polling transport's ``POST …/polling``)."""

    @property
    def log(self) -> logging.Logger:
        """The server's logger."""

    def upgrade_context(self) -> UpgradeContext:
        """The identity every tunnelled request or socket of this client inherits."""


class SocketHandler(Identified, Admitted, Protocol):
    """A WebSocket handler counted as one of its user's sockets."""


class TunnelSettings(DialSettings, Protocol):
    """The options the registry reads, each time (``HttpOverWebSocketApp``'s traitlets)."""

    @property
    def max_sockets_per_user(self) -> int:
        """Most sockets, polling sessions and channels one user holds (0: no limit)."""

    @property
    def idle_timeout(self) -> float:
        """Seconds a tunnel socket may stay idle (0: forever)."""

    @property
    def chunk_size(self) -> int:
        """The most body bytes per reply frame."""

    @property
    def polling_buffer_size(self) -> int:
        """The most bytes a polling session holds unacknowledged."""

    @property
    def polling_idle_timeout(self) -> float:
        """Seconds a polling session may go without a request (0: forever)."""

    @property
    def log(self) -> logging.Logger:
        """The extension's logger."""

    def session_limits(self) -> SessionLimits:
        """The limits each tunnel session enforces."""


#: The :class:`~jupyter_server.auth.IdentityProvider` methods that decide who a request is.
#: ``generate_anonymous_user`` and ``get_token`` are not among them: the one invents a
#: user, the other only finds the credential that the others check.
USER_METHODS: Final = (
    "get_user",
    "_get_user",
    "get_user_token",
    "get_user_cookie",
    "user_from_cookie",
    "process_login_form",
)

#: jupyter_server's own providers: one credential (the server's token, or its password),
#: so one principal, whatever user each request is given.
_STOCK_PROVIDERS: Final = (IdentityProvider, PasswordIdentityProvider)


def identifies_nobody(provider: IdentityProvider) -> bool:
    """Whether ``provider`` decides who a request is exactly as jupyter_server's own do.

    It does when every :data:`USER_METHODS` method its class has comes from
    ``IdentityProvider`` or ``PasswordIdentityProvider``, and its login handler is the
    stock ``LoginFormHandler`` (a custom one can log users in under their own names).
    """
    for name in USER_METHODS:
        owner = next((k for k in type(provider).__mro__ if name in vars(k)), None)
        if owner not in _STOCK_PROVIDERS:
            return False
    return provider.login_handler_class is LoginFormHandler


def holds_the_server_token(handler: Identified) -> bool:
    """Whether ``handler``'s request was authenticated with the server's own token."""
    provider = handler.identity_provider
    server_token = str(provider.token or "")
    if not server_token or not provider.is_token_authenticated(handler):  # type: ignore[arg-type]
        return False
    presented = provider.get_token(handler) or ""  # type: ignore[arg-type]
    return hmac.compare_digest(presented.encode(), server_token.encode())


def owner_key(handler: Identified) -> str:
    """Whose sockets (and polling sessions) ``handler``'s request opens.

    The authenticated user as jupyter_server resolved it for this request
    (``handler.current_user``, its ``username``), for every identity provider, with
    one exception, keyed ``""``: the single principal of jupyter_server's own
    providers. They have one credential (the server's token, or its password) and make
    up a new anonymous user for each token-authenticated request (and, with
    authentication off, for each request without a login cookie), so their users are
    one person, who would otherwise get a new key per request. That is:

    - a provider that :func:`identifies_nobody` (``IdentityProvider``,
      ``PasswordIdentityProvider``, or a subclass that changes none of the ways they
      decide who a request is): every request is that principal;
    - under any other provider, a request authenticated with the server's own token
      (:func:`holds_the_server_token`; a subclass that identifies users by
      ``get_user_token`` and leaves the server's token to the stock path).

    Everyone else, under a provider that overrides ``get_user``, ``get_user_token``,
    ``get_user_cookie`` or another of :data:`USER_METHODS`, is keyed by username, so
    one user cannot reach another's polling session, and each user has a
    ``max_sockets_per_user`` of their own.
    """
    if identifies_nobody(handler.identity_provider) or holds_the_server_token(handler):
        return ""
    user = handler.current_user
    return str(getattr(user, "username", user))


class TunnelRegistry:
    """What the tunnels of one server hold open, whose it is, and the order it ends in."""

    def __init__(
        self, settings: TunnelSettings, make_entrance: Callable[[], PrivateEntrance]
    ) -> None:
        self._settings = settings
        self._make_entrance = make_entrance
        self._entrance: PrivateEntrance | None = None
        #: What each owner (see :func:`owner_key`) holds open, and whose each thing is.
        self._owners: dict[str, set[Admitted]] = {}
        self._owner_of: dict[Admitted, str] = {}
        #: The open polling sessions (see docs/developers/polling.md).
        self.polling_sessions = PollingTable()

    # ------------------------------------------------------------ owners and admission

    def admit(self, owner: str, opened: Admitted) -> Refusal | None:
        """Count ``opened`` as ``owner``'s, or say why it must close (``max_sockets_per_user``)."""
        limit = self._settings.max_sockets_per_user
        held = self._owners.get(owner, set())
        if limit and len(held) >= limit:
            self._settings.log.warning(
                "http_over_websocket: refusing a socket over the per-user limit (%s)", limit
            )
            return Refusal(
                CloseCode.TOO_MANY_SOCKETS,
                f"Too many tunnel sockets for this user (limit {limit}; "
                "see HttpOverWebSocketApp.max_sockets_per_user)",
            )
        self._owners.setdefault(owner, held).add(opened)
        self._owner_of[opened] = owner
        return None

    def admit_socket(self, handler: SocketHandler) -> Refusal | None:
        """Count a WebSocket handler as its user's, or say why it must close."""
        return self.admit(owner_key(handler), handler)

    def release(self, opened: Admitted) -> None:
        """``opened`` has closed: it no longer counts (nothing happens if it never did)."""
        owner = self._owner_of.pop(opened, None)
        if owner is None:
            return
        held = self._owners.get(owner, set())
        held.discard(opened)
        if not held:
            self._owners.pop(owner, None)

    @property
    def sockets(self) -> list[Admitted]:
        """Everything open and counted: sockets, polling sessions, polled channels."""
        return list(self._owner_of)

    @property
    def sessions(self) -> list[TunnelSession]:
        """The sessions of the open tunnel sockets (WebSocket transport)."""
        found = (getattr(opened, "session", None) for opened in self._owner_of)
        return [session for session in found if isinstance(session, TunnelSession)]

    # ------------------------------------------------------------ building tunnels

    def tunnel_session(
        self, handler: ClientHandler, send: SendFrame, *, framing: Framing = JSON
    ) -> TunnelSession:
        """A tunnel session running ``handler``'s client's requests in this server."""
        dispatcher = InProcessDispatcher(
            handler.application,
            handler.request.server_connection,
            handler.upgrade_context(),
            chunk_size=self._settings.chunk_size,
            framing=framing,
        )
        return TunnelSession(
            dispatcher, send, limits=self._settings.session_limits(), log=handler.log
        )

    def dialer(self, handler: ClientHandler) -> UpstreamDialer:
        """The one upstream dial for ``handler``'s client (see :mod:`.upstream`)."""
        connection: Any = handler.request.connection
        return UpstreamDialer(
            handler.upgrade_context(),
            self._settings,
            entrance=self.entrance(),
            stream=connection.stream,
            application=handler.application,
        )

    def open_polling_session(self, handler: ClientHandler) -> PollingSession | Refusal:
        """Open a polling session for ``handler``'s caller, or say why not."""
        settings = self._settings
        owner = owner_key(handler)
        session = PollingSession(
            owner,
            lambda send: self.tunnel_session(handler, send),
            self.dialer(handler).dial,
            buffer_size=settings.polling_buffer_size,
            log=handler.log,
            admission=self,
            max_channels=settings.max_sockets_per_user,
        )
        refusal = self.admit(owner, session)
        if refusal is not None:
            session.close(*refusal)
            return refusal
        session.add_close_callback(self.release)
        self.polling_sessions.add(session, settings.polling_idle_timeout)
        return session

    def polling_session(self, session_id: str, handler: Identified) -> PollingSession | None:
        """``handler``'s caller's open polling session ``session_id``, else ``None``."""
        return self.polling_sessions.get(session_id, owner_key(handler))

    def watch_idle(
        self, session: TunnelSession, close: Callable[[int, str], None]
    ) -> PeriodicCallback | None:
        """Call ``close(4408, reason)`` once ``session`` has been idle ``idle_timeout`` s."""
        timeout = self._settings.idle_timeout
        if not timeout:
            return None

        def check() -> None:
            if session.idle_seconds() >= timeout:
                close(CloseCode.IDLE, f"Idle for {timeout:g} s (HttpOverWebSocketApp.idle_timeout)")

        callback = PeriodicCallback(check, max(min(timeout / 4, 5.0), 0.05) * 1000)
        callback.start()
        return callback

    def entrance(self) -> PrivateEntrance | None:
        """The private entrance relays dial (started on first use), if the platform has one."""
        if self._entrance is None and PrivateEntrance.available():
            entrance = self._make_entrance()
            try:
                entrance.start()
            except OSError as e:  # e.g. a temporary directory that refuses sockets
                self._settings.log.warning("http_over_websocket: no private relay entrance: %s", e)
                return None
            self._entrance = entrance
        return self._entrance

    # ------------------------------------------------------------ the end

    async def shutdown(self) -> None:
        """End every tunnel cleanly before the server stops.

        In-flight tunnelled requests get their final frame (503 if their response
        had not started), then every socket closes with 1001 (going away). The
        polling sessions end next, and the private entrance last (stopping it cuts
        every relay still open through it).
        """
        opened = list(self._owner_of)
        self._owners.clear()
        self._owner_of.clear()
        await asyncio.gather(*(o.shutdown() for o in opened), return_exceptions=True)
        await self.polling_sessions.close_all()
        if self._entrance is not None:
            await self._entrance.stop()
            self._entrance = None
