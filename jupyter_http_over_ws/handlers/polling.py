"""``{base_url}http_over_websocket/polling``: the tunnel over plain HTTP requests.

Thin handlers on jupyter_server's ``APIHandler``: every request is authenticated,
and its host, origin and (for cookie-authenticated writes) XSRF token checked by
jupyter_server exactly as for any API request, before anything here runs. The
session logic lives in the :mod:`..polling` package, built by the tunnel registry
(:mod:`..runtime`); the wire format in :mod:`..wire.polling`
and docs/developers/polling.md.
"""

from __future__ import annotations

import asyncio
from typing import Any

from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import origin_matches_pat
from tornado import web

from .._version import __version__
from ..polling import CLOSED_BY_CLIENT, PollingSession
from ..polling.session import SendBusyError
from ..runtime import Refusal
from ..wire.handshake import check_min_version
from ..wire.names import POLLING_PATH
from ..wire.polling import OutOfOrderError, parse_send
from ..wire.protocol import ProtocolError, dumps
from .base import TunnelSocketMixin

#: Request headers a cross-origin polling client may send (preflight answer).
ALLOWED_HEADERS = "Accept, Authorization, Content-Type, X-XSRFToken"


class PollingHandler(TunnelSocketMixin, APIHandler):
    """What every polling endpoint shares: options, CORS, the caller's identity."""

    # Like a WebSocket tunnel, a client waiting on a long poll is not API activity
    # (it would keep an idle server from being culled); the tunnelled requests are.
    _track_activity = False

    def set_cors_headers(self) -> None:
        """jupyter_server's CORS headers, plus credentials for an allowed origin.

        The WebSocket transport lets an allowed origin (``allow_origin``,
        ``allow_origin_pat``) use the browser's credentials; the polling transport
        must too, which for ``fetch`` means echoing the origin (never ``*``) with
        ``Access-Control-Allow-Credentials``.
        """
        super().set_cors_headers()
        origin = self.get_origin()
        if origin and self._origin_explicitly_allowed(origin):
            self.set_header("Access-Control-Allow-Origin", origin)
            self.set_header("Access-Control-Allow-Credentials", "true")
        self.add_header("Vary", "Origin")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """jupyter_server's JSON error, with the CORS headers a success would carry.

        Tornado clears every header before writing an error; without them a page of an
        allowed origin cannot read a refusal (its ``fetch`` only says "Failed to fetch").
        Not for a refusal before ``prepare()`` (a method Tornado does not know, 405):
        nobody is authenticated yet, and asking who would raise.
        """
        if hasattr(self, "_jupyter_current_user"):
            self.set_cors_headers()
        super().write_error(status_code, **kwargs)

    def check_xsrf_cookie(self) -> None:
        """Refuse an unauthenticated write as such, before any XSRF check.

        jupyter_server checks XSRF before authentication, so a wrong or missing token
        would be refused (and logged) as "'_xsrf' argument missing".
        """
        if hasattr(self, "_jupyter_current_user") and self.current_user is None:
            raise self._not_authenticated()
        super().check_xsrf_cookie()

    def get_login_url(self) -> str:
        """Never a login page: a polling request without valid credentials is a 403."""
        if not self.current_user:
            raise self._not_authenticated()
        return str(super().get_login_url())

    @staticmethod
    def _not_authenticated() -> web.HTTPError:
        return web.HTTPError(
            403, "Polling request not authenticated (no valid token, login cookie or auth URL)"
        )

    def _origin_explicitly_allowed(self, origin: str) -> bool:
        if self.allow_origin and self.allow_origin != "*":
            return bool(self.allow_origin == origin)
        if self.allow_origin_pat:
            return origin_matches_pat(self.allow_origin_pat, origin)
        return False

    @allow_unauthenticated
    def options(self, *args: Any, **kwargs: Any) -> None:
        """Answer a CORS preflight (jupyter_server has checked the origin: 404 if refused)."""
        super().options(*args, **kwargs)
        self.set_header("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS")
        self.set_header("Access-Control-Allow-Headers", ALLOWED_HEADERS)
        self.set_header("Access-Control-Max-Age", "600")
        origin = self.get_origin()
        if (
            origin
            and self._origin_explicitly_allowed(origin)
            and self.request.headers.get("Access-Control-Request-Private-Network") == "true"
        ):
            # Chromium's Private Network Access preflight for a loopback or LAN server.
            self.set_header("Access-Control-Allow-Private-Network", "true")
        self.set_status(204)
        self.finish()

    def polling_session(self, session_id: str) -> PollingSession:
        """The caller's open session ``session_id``, else 404 (also for another identity's)."""
        session = self.registry.polling_session(session_id, self)
        if session is None:
            raise web.HTTPError(404, "No such polling session")
        return session

    def write_json(self, status: int, body: Any) -> None:
        """Finish with ``body`` as JSON (bytes as they are) and no caching."""
        self.set_status(status)
        self.set_header("Cache-Control", "no-store")
        self.finish(body if isinstance(body, bytes) else dumps(body))


class PollingOpenHandler(PollingHandler):
    """``POST …/polling``: open a session for the authenticated caller."""

    @web.authenticated
    async def post(self) -> None:
        """Check ``min_version`` and the per-user limit, then open a session."""
        reason = check_min_version(self.get_argument("min_version", None), __version__)
        if reason is not None:
            self.log.warning("http_over_websocket: refusing a polling session: %s", reason)
            self.write_json(400, {"message": reason})
            return
        opened = self.registry.open_polling_session(self)
        if isinstance(opened, Refusal):
            self.write_json(429, {"message": opened.reason})
            return
        self.log.info("http_over_websocket: polling session opened")
        self.write_json(
            200,
            {
                "session_id": opened.id,
                "extension_version": __version__,
                "poll_timeout": self.extension.poll_timeout,
                "idle_timeout": self.extension.polling_idle_timeout,
            },
        )


class PollingSendHandler(PollingHandler):
    """``POST …/polling/<id>/send``: a batch of numbered client envelopes."""

    @web.authenticated
    async def post(self, session_id: str) -> None:
        """Deliver the new envelopes in order; answer the next number expected.

        With ``?since=N`` (the client's ``recv`` position), the answer also carries the
        envelopes from ``N`` on, as a ``recv``'s does, waiting briefly for the replies
        to what this send delivered (:meth:`PollingSession.replies_for_send`).
        """
        session = self.polling_session(session_id)
        since = self._since(session)
        session.begin_request()
        try:
            if len(self.request.body) > self.extension.max_message_size:
                self.write_json(413, {"message": "Batch larger than max_message_size"})
                return
            try:
                batch = parse_send(self.request.body)
            except ProtocolError as e:
                self.write_json(e.status, {"message": e.status_text})
                return
            taken_before = session.ack
            try:
                ack = await session.deliver_within(batch, self.extension.poll_timeout)
            except OutOfOrderError as gap:
                self.write_json(409, {"ack": gap.ack})
                return
            except SendBusyError as busy:
                # A client that does not read its replies: no second send waits for room.
                self.set_header("Retry-After", "1")
                message = "An earlier send waits for the client to read its replies"
                self.write_json(503, {"ack": busy.ack, "message": message})
                return
            # Backpressure: answer once proxied sockets have taken most of what was sent.
            await session.inbound_settled(self.extension.polling_buffer_size)
            if since is None:
                self.write_json(200, {"ack": ack})
                return
            self.write_json(200, await session.replies_for_send(ack, since, ack > taken_before))
        finally:
            session.end_request()

    def _since(self, session: PollingSession) -> int | None:
        """The ``since`` argument, if given; 400 unless it counts envelopes sent."""
        raw = self.get_argument("since", None)
        if raw is None:
            return None
        return _checked_since(raw, session)


class PollingReceiveHandler(PollingHandler):
    """``GET …/polling/<id>/recv?since=N``: acknowledge, then long-poll for envelopes."""

    _waiting: asyncio.Task[bytes] | None = None

    @web.authenticated
    async def get(self, session_id: str) -> None:
        """Answer the envelopes from ``since`` on, waiting up to ``poll_timeout`` for one."""
        session = self.polling_session(session_id)
        since = _checked_since(self.get_argument("since", "0"), session)
        session.begin_request()
        try:
            self._waiting = asyncio.ensure_future(
                session.receive(since, self.extension.poll_timeout)
            )
            try:
                body = await self._waiting
            except asyncio.CancelledError:
                return  # the client went away; the envelopes stay until acknowledged
        finally:
            session.end_request()
        self.write_json(200, body)

    def on_connection_close(self) -> None:
        """Stop waiting for a client that is gone."""
        if self._waiting is not None:
            self._waiting.cancel()
        super().on_connection_close()


class PollingSessionHandler(PollingHandler):
    """``DELETE …/polling/<id>``: close the session and release everything it holds."""

    @web.authenticated
    async def delete(self, session_id: str) -> None:
        """Cancel its in-flight requests and close its proxied sockets."""
        self.polling_session(session_id).close(CLOSED_BY_CLIENT, "Closed by the client")
        self.set_status(204)
        self.finish()


def _checked_since(raw: str, session: PollingSession) -> int:
    """A ``since`` argument as a number; 400 unless it counts envelopes the session sent."""
    try:
        since = int(raw)
    except ValueError:
        since = -1
    if not 0 <= since <= session.outgoing.next_seq:
        raise web.HTTPError(400, "since must count envelopes this session has sent")
    return since


def polling_handlers(options: dict[str, Any]) -> list[tuple[str, type, dict[str, Any]]]:
    """The routes of the polling transport, relative to ``base_url``."""
    prefix = "/" + POLLING_PATH
    return [
        (prefix + "/?", PollingOpenHandler, options),
        (prefix + "/([^/]+)/send", PollingSendHandler, options),
        (prefix + "/([^/]+)/recv", PollingReceiveHandler, options),
        (prefix + "/([^/]+)/?", PollingSessionHandler, options),
    ]
