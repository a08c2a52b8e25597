"""The one upstream dial: opening one of this server's own WebSockets for a client.

Both transports relay proxied sockets (``proxied_ws`` over a WebSocket, channels
over polling), and both open their upstream half here, so every security decision
of a relay has one home:

- **which path**: the client's path is normalised (:func:`~.wire.protocol.normalize_path`
  refuses other hosts, ``..`` segments, control characters), refused with 403 if it
  names the extension's own endpoints (:func:`names_own_endpoint`: a relay never
  relays to a relay, so nesting cannot multiply one socket), and checked against
  ``allowed_paths``, before anything is opened;
- **who is counted**: the caller's admission (``max_sockets_per_user``) runs once the
  path is allowed and before anything is dialled (``dial(..., admit=...)``);
- **which address**: this server's private entrance, else the local address of the
  client's own connection (:func:`~.entrance.relay_target`), never anything derived
  from the client's ``Host`` header, so a relay cannot leave this server;
- **which headers**: the upgrade's identity headers (:mod:`.upgrade`), plus
  ``X-Real-Ip`` and ``X-Scheme`` through the entrance, which trusts them; credentials
  travel only there, never in the URL's query (where the upstream would log them);
- **which answer**: every failure becomes one :class:`UpstreamRefusedError` carrying the
  HTTP status the client is told (as that status over ``proxied_ws``, as close code
  4000 + status over polling).

Tests watch every upstream URL by replacing :func:`connect_upstream` in this module.
"""

from __future__ import annotations

import re
import unicodedata
from asyncio import Future
from collections.abc import Awaitable, Callable, Sequence
from typing import Final, Protocol
from urllib.parse import unquote

from tornado import httpclient, httputil
from tornado.iostream import IOStream
from tornado.netutil import Resolver
from tornado.web import Application
from tornado.websocket import (
    WebSocketClientConnection,
    WebSocketError,
    WebSocketProtocol,
    WebSocketProtocol13,
)

from .dispatch import RequestContext
from .entrance import PrivateEntrance, relay_target
from .kernel_in_process import (
    InProcessKernelSocket,
    InProcessRefusedError,
    KernelRoute,
    kernel_route,
    open_in_process,
)
from .upgrade import UpgradeContext
from .wire.handshake import without_credentials
from .wire.names import TUNNEL_PATH
from .wire.protocol import PathPolicy, ProtocolError, normalize_path
from .wsproxy import upstream_refusal_status

#: The reason a relay to the extension's own endpoints is refused (403).
OWN_ENDPOINT_REFUSAL: Final = "A relay cannot target the extension's own endpoints"


class UpstreamRefusedError(Exception):
    """The upstream WebSocket was not opened; ``status`` is the HTTP status for the client.

    ``cause`` is the error behind a refusal by or failure of the upstream (``None`` when
    the dial refused the path itself, or had no address to dial).
    """

    def __init__(self, status: int, reason: str, cause: Exception | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.cause = cause


class AdmissionRefusedError(Exception):
    """Raised by a dial's ``admit`` hook: the caller is over its limit; nothing was dialled.

    ``code`` and ``reason`` are the close the client gets (4429 and its reason).
    """

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


#: What :func:`names_own_endpoint` refuses, as it may be written: the first segment,
#: up to the first character that cannot be part of a route name.
_OWN_ENDPOINTS: Final = TUNNEL_PATH.casefold()
_ROUTE_NAME_RE: Final = re.compile(r"[a-z0-9_]*")


def names_own_endpoint(target: str) -> bool:
    """Whether ``target`` (normalised, relative to ``base_url``) is under the extension's own.

    That is ``http_over_websocket`` and everything under it (the tunnel, ``diagnose``,
    ``proxied_ws``, ``polling``, ``static``), however it is written: percent-encoded
    (once or more), in another case, in full-width or other compatibility forms, with
    repeated slashes, or with ``;``/``.``/other trailing characters on the segment.
    The check is deliberately wider than Tornado's own routing, which would not
    match most of these spellings: a relay has no reason to reach any of them.
    """
    route = target.partition("?")[0]
    for _ in range(8):  # "%25" decodes to "%": decode until nothing changes
        decoded = unquote(route, errors="replace")
        if decoded == route:
            break
        route = decoded
    route = unicodedata.normalize("NFKC", route).casefold()
    first = next((segment for segment in route.split("/") if segment), "")
    name = _ROUTE_NAME_RE.match(first)
    return name is not None and name.group(0) == _OWN_ENDPOINTS


class DialSettings(Protocol):
    """The options a dial reads, each time (``HttpOverWebSocketApp``'s traitlets)."""

    @property
    def path_policy(self) -> PathPolicy:
        """The compiled ``allowed_paths``."""

    @property
    def max_message_size(self) -> int:
        """The largest message accepted from the upstream socket, in bytes."""

    @property
    def connect_timeout(self) -> float:
        """Seconds to wait for the upstream socket to open."""


#: The opcode of a close frame (RFC 6455 section 5.5.1).
CLOSE_OPCODE: Final = 0x8


class UpstreamConnection(WebSocketClientConnection):
    """Tornado's client connection, also telling whether the upstream sent a close frame.

    Tornado reports ``close_code`` ``None`` both when the upstream sent a close frame
    without a code (jupyter_server's plain ``close()`` of a stale kernel socket) and when
    its connection ended without a close frame (its handler failed, its process went
    away). A client connected directly sees the first as 1005 and the second as 1006;
    a relay must pass the first on as it is and report the second
    (:func:`~.wsproxy.upstream_close`), so it needs :attr:`close_frame_received`.
    """

    #: Whether a close frame (with or without a code) came from the upstream.
    close_frame_received = False

    def get_websocket_protocol(self) -> WebSocketProtocol:
        """Tornado's protocol, noting the upstream's close frame on this connection."""
        return _CloseFrameNotingProtocol(self, mask_outgoing=True, params=self.params)


class _CloseFrameNotingProtocol(WebSocketProtocol13):
    """:class:`WebSocketProtocol13` that tells its :class:`UpstreamConnection` of a close frame.

    Tornado has no public hook for a received close frame: this overrides its private
    ``_handle_message(opcode, data)``, which every complete frame passes through.
    tests/test_upstream_lost.py (a real codeless close frame and a real dropped
    connection) and tests/unit/test_relay_helpers.py fail if Tornado changes it.
    """

    def _handle_message(self, opcode: int, data: bytes) -> Future[None] | None:
        if opcode == CLOSE_OPCODE and not self.client_terminated:
            handler = self.handler
            if isinstance(handler, UpstreamConnection):
                handler.close_frame_received = True
        return super()._handle_message(opcode, data)


def received_close_frame(connection: object) -> bool:
    """Whether the upstream ``connection`` ended with a close frame (``False`` if unknown).

    Only a connection :func:`connect_upstream` opened, or an in-process kernel socket,
    can tell; for any other the answer is ``False`` (a close without a code is then
    reported as a lost upstream).
    """
    return (
        isinstance(connection, (UpstreamConnection, InProcessKernelSocket))
        and connection.close_frame_received
    )


class UpstreamSocket(Protocol):
    """What a dial opens: Tornado's client connection, or an in-process kernel socket."""

    @property
    def selected_subprotocol(self) -> str | None: ...  # noqa: D102

    @property
    def close_code(self) -> int | None: ...  # noqa: D102

    @property
    def close_reason(self) -> str | None: ...  # noqa: D102

    def read_message(self) -> Awaitable[str | bytes | None]: ...  # noqa: D102

    def write_message(self, message: str | bytes, binary: bool = False) -> Awaitable[None]: ...  # noqa: D102

    def close(self, code: int | None = None, reason: str | None = None) -> None: ...  # noqa: D102


def upstream_request(
    url: str, headers: httputil.HTTPHeaders, *, connect_timeout: float
) -> httpclient.HTTPRequest:
    """The upgrade request for the upstream socket, every option given (none left to defaults).

    ``websocket_connect`` fills the options left ``None`` from Tornado's defaults; this
    request sets each of them itself (tests/unit/test_relay_helpers.py checks that none
    is left ``None``).
    """
    return httpclient.HTTPRequest(
        url,
        headers=httputil.HTTPHeaders(headers),
        connect_timeout=connect_timeout,
        request_timeout=connect_timeout,
        # The certificate is the server's own and the address its own socket's.
        validate_cert=False,
        follow_redirects=False,
        max_redirects=0,
        decompress_response=True,
        proxy_password="",
        allow_nonstandard_methods=False,
    )


async def connect_upstream(
    url: str,
    headers: httputil.HTTPHeaders,
    subprotocols: Sequence[str] | None,
    *,
    max_message_size: int,
    connect_timeout: float,
    resolver: Resolver | None = None,
    in_process: KernelRoute | None = None,
) -> UpstreamConnection | InProcessKernelSocket:
    """Open the upstream WebSocket; raises ``HTTPClientError`` with the server's refusal.

    The connection is an :class:`UpstreamConnection` (what ``websocket_connect`` opens,
    plus :attr:`~UpstreamConnection.close_frame_received`). With ``in_process`` (the
    route of a kernel's channels, see :mod:`.kernel_in_process`), nothing is dialled:
    jupyter_server's kernel handler runs here for ``url``'s request, and a refusal
    raises :class:`~.kernel_in_process.InProcessRefusedError`. Every upstream socket
    passes here either way (tests watch this function).
    """
    if in_process is not None:
        return await open_in_process(in_process, timeout=connect_timeout)
    connection = UpstreamConnection(
        upstream_request(url, headers, connect_timeout=connect_timeout),
        subprotocols=list(subprotocols) if subprotocols else None,
        max_message_size=max_message_size,
        resolver=resolver,
    )
    await connection.connect_future
    if connection.protocol is not None:  # small kernel messages must not wait for Nagle
        connection.protocol.set_nodelay(True)
    return connection


def relay_headers(upgrade: UpgradeContext, *, through_entrance: bool) -> httputil.HTTPHeaders:
    """The headers of an upstream upgrade: the client's identity, and its address inside."""
    headers = httputil.HTTPHeaders()
    for name, value in upgrade.headers:
        headers[name] = value
    if through_entrance:
        # The private entrance trusts these (only this process can write to it):
        # the upstream handler sees the client's own address and scheme.
        if upgrade.remote_ip:
            headers["X-Real-Ip"] = upgrade.remote_ip
        headers["X-Scheme"] = upgrade.protocol
    return headers


class UpstreamDialer:
    """Opens this server's WebSockets as one client: that client's identity, this server.

    The address is chosen once, when the client's request arrives (without the
    private entrance it is the local address of that request's connection, which
    a polling client may close before it opens a channel); the options are read at
    each dial.
    """

    def __init__(
        self,
        upgrade: UpgradeContext,
        settings: DialSettings,
        *,
        entrance: PrivateEntrance | None,
        stream: IOStream,
        application: Application | None = None,
    ) -> None:
        self._upgrade = upgrade
        self._settings = settings
        self._application = application
        self._origin = ""
        self._resolver: Resolver | None = None
        self._no_address: str | None = None
        try:
            self._origin, self._resolver = relay_target(entrance, stream)
        except OSError as error:  # e.g. a server on a Unix socket, with no private entrance
            self._no_address = str(error)

    async def dial(
        self,
        path: str,
        subprotocols: Sequence[str],
        *,
        query: str = "",
        admit: Callable[[], None] | None = None,
    ) -> UpstreamSocket:
        """Open ``path`` (relative to ``base_url``, as the client encoded it) upstream.

        ``query``, if any, is appended as it came (``proxied_ws`` takes it from its own
        request line; a polling client's path carries it), less its credential arguments
        (``token``, ``jupyter_http_over_ws_auth_url``). Raises :class:`UpstreamRefusedError`.

        ``admit``, if given, is called once the path is allowed and before anything is
        dialled (the caller counts the socket against ``max_sockets_per_user`` there);
        what it raises (:class:`AdmissionRefusedError`) ends the dial undialled.

        This is where the path is chosen: a kernel's channels, on a server whose kernel
        sockets can be served in-process (:mod:`.kernel_in_process`), run jupyter_server's
        own handler here, against the relay itself; anything else is relayed.
        """
        settings = self._settings
        try:
            target = normalize_path(path)
        except ProtocolError as e:
            raise UpstreamRefusedError(e.status, e.status_text) from None
        if names_own_endpoint(target):
            raise UpstreamRefusedError(403, OWN_ENDPOINT_REFUSAL)
        try:
            settings.path_policy.check(target)
        except ProtocolError as e:
            raise UpstreamRefusedError(e.status, e.status_text) from None
        if admit is not None:
            admit()
        if query:
            target += "?" + query
        # The credentials travel as the upgrade's Authorization header (see .upgrade);
        # in the URL the upstream handler would write them to the log.
        target = without_credentials(target)
        in_process = self._in_process_route(target, subprotocols)
        if in_process is None and self._no_address is not None:
            raise UpstreamRefusedError(502, self._no_address)
        url = self._origin + self._upgrade.base_url.rstrip("/") + target
        headers = relay_headers(self._upgrade, through_entrance=self._resolver is not None)
        try:
            return await connect_upstream(
                url,
                headers,
                subprotocols,
                max_message_size=settings.max_message_size,
                connect_timeout=settings.connect_timeout,
                resolver=self._resolver,
                in_process=in_process,
            )
        except InProcessRefusedError as e:
            raise UpstreamRefusedError(e.status, e.reason) from None
        except httpclient.HTTPClientError as e:
            status = upstream_refusal_status(e)
            raise UpstreamRefusedError(status, "upstream refused the WebSocket", e) from None
        except WebSocketError:  # answered, but not with an upgrade: no WebSocket there
            raise UpstreamRefusedError(400, "not a WebSocket endpoint") from None
        except OSError as e:
            raise UpstreamRefusedError(502, "cannot reach the upstream WebSocket", e) from None

    def _in_process_route(self, target: str, subprotocols: Sequence[str]) -> KernelRoute | None:
        """The kernel route to serve in-process for ``target``, or ``None`` (relay it)."""
        if self._application is None:
            return None
        upgrade = self._upgrade
        return kernel_route(
            self._application,
            upgrade.base_url.rstrip("/") + target,
            relay_headers(upgrade, through_entrance=False),
            subprotocols,
            RequestContext(upgrade.remote_ip, upgrade.protocol),
        )
