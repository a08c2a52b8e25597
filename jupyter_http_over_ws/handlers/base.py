"""What the extension's handlers share: options, credentials, origin, credential-free logs."""

from __future__ import annotations

import inspect
from types import TracebackType
from typing import TYPE_CHECKING, Any

from tornado.log import app_log
from tornado.web import HTTPError

from ..upgrade import UpgradeContext, capture_upgrade
from ..wire.handshake import AUTH_URL_ARG, auth_url_token, without_credentials

if TYPE_CHECKING:
    from ..app import HttpOverWebSocketApp
    from ..runtime import TunnelRegistry

__all__ = ["AUTH_URL_ARG", "CredentialFreeSummary", "TunnelSocketMixin"]


class CredentialFreeSummary:
    """Tornado's summary of a request, for its log lines, without credentials in the query.

    Tornado logs it when a handler raises ``HTTPError`` with a message (a refused
    ``proxied_ws`` upgrade: "404 GET …?token=… (ip): upstream refused the WebSocket"),
    at WARNING, and for an uncaught exception. Browser clients put ``?token=`` (or
    ``jupyter_http_over_ws_auth_url``) on their upgrades, so every handler of the
    extension drops those arguments here and keeps the others.
    """

    request: Any

    def _request_summary(self) -> str:
        request = self.request
        return f"{request.method} {without_credentials(request.uri)} ({request.remote_ip})"

    def log_exception(
        self,
        typ: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Tornado's log of a failed request, without the request's ``repr`` (its URI).

        An ``HTTPError`` is logged by Tornado, with the summary above; for any other
        exception Tornado appends ``repr(request)``, query and all.
        """
        if isinstance(value, HTTPError):
            super().log_exception(typ, value, tb)  # type: ignore[misc]
            return
        app_log.error("Uncaught exception %s", self._request_summary(), exc_info=value)


class TunnelSocketMixin(CredentialFreeSummary):
    """Mixed into the tunnel's handlers, before jupyter_server's ``WebSocketMixin``.

    The WebSocket handlers (tunnel, diagnose, proxied_ws) and the polling handlers.
    """

    extension: HttpOverWebSocketApp
    request: Any
    log: Any
    base_url: str

    def initialize(self, extension: HttpOverWebSocketApp) -> None:
        """Keep the extension, whose traitlets hold this server's tunnel settings."""
        self.extension = extension

    async def prepare(self, *args: Any, **kwargs: Any) -> None:
        """Adopt the auth URL's token as credentials, then let jupyter_server authenticate.

        Refused first: a request that came through a tunnel (see :meth:`_through_a_tunnel`).
        """
        if self._through_a_tunnel():
            # As jupyter_server's own host check does: nobody is authenticated, and the
            # error page must not ask who is (that would raise in write_error).
            self.current_user = None
            setattr(self, "_jupyter_current_user", None)  # noqa: B010 (jupyter_server's own)
            raise HTTPError(403, "The tunnel's own endpoints cannot be reached through the tunnel")
        self._adopt_auth_url_token()
        result = super().prepare(*args, **kwargs)  # type: ignore[misc]
        if inspect.isawaitable(result):
            await result

    @property
    def registry(self) -> TunnelRegistry:
        """What the tunnels hold open on this server: admission, sessions, the upstream dial."""
        return self.extension.registry

    @property
    def max_message_size(self) -> int:
        """The largest client message accepted, from ``HttpOverWebSocketApp.max_message_size``."""
        return int(self.extension.max_message_size)

    def query_text(self, name: str) -> str | None:
        """The last ``name`` query argument as text, never failing on bad UTF-8.

        Tornado's ``get_argument`` raises ``HTTPError(400)`` for invalid UTF-8; raised
        from ``open`` or ``on_message`` that drops the socket without a close frame.
        Undecodable bytes become U+FFFD, which the version checks then reject cleanly.
        """
        values = self.request.query_arguments.get(name)
        return values[-1].decode("utf-8", "replace").strip() if values else None

    def get_compression_options(self) -> dict[str, Any] | None:
        """Offer no permessage-deflate: bodies are mostly incompressible base64; CPU is dear."""
        return None

    def _through_a_tunnel(self) -> bool:
        """Whether this request is a tunnelled one, handed over in-process.

        The tunnel hands its requests to the application on a connection with no socket
        (``dispatch.InProcessDispatcher``); every request from a client comes on one with
        a stream (the server's port, or its private entrance). The tunnel's endpoints
        need that stream (an upgrade, an upstream dial from its address), and a tunnel
        inside a tunnel would only get around the limits: refused with 403, before
        anything is opened (a tunnelled ``proxied_ws`` used to dial, then fail with 500).
        """
        return getattr(self.request.connection, "stream", None) is None

    def _adopt_auth_url_token(self) -> None:
        """Use the token inside ``jupyter_http_over_ws_auth_url`` as this request's credentials.

        Colab-era clients send no other credentials: a cross-site upgrade carries no
        login cookie. The original fetched that URL to collect cookies; we never fetch
        it, never log it, and read its ``token`` once, as if the client had sent
        ``Authorization: token ...``, so jupyter_server's identity provider accepts it
        exactly as it would accept that token directly. Credentials the client sent
        itself take precedence.
        """
        auth_url = self.request.query_arguments.get(AUTH_URL_ARG)
        if not auth_url:
            return
        headers = self.request.headers
        if "Authorization" in headers or self.request.query_arguments.get("token"):
            return
        try:
            token = auth_url_token(auth_url[-1].decode("utf-8", "replace"), self.base_url)
        except ValueError as error:
            self.log.warning("Ignoring %s: %s", AUTH_URL_ARG, error)
            return
        if token:
            headers["Authorization"] = f"token {token}"

    def upgrade_context(self) -> UpgradeContext:
        """The identity every tunnelled request or socket of this upgrade inherits."""
        return capture_upgrade(self.request, self.base_url)
