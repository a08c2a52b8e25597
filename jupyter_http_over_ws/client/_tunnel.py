"""The tunnel client: many requests in flight on one socket, replies routed by ``message_id``."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import itertools
import os
from collections.abc import Callable, Mapping, Sequence
from ssl import SSLCertVerificationError, SSLContext
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tornado.httpclient import HTTPClientError
from tornado.websocket import WebSocketClientConnection

from ..wire.framing import encode_binary_request, parse_binary_reply, parse_hello
from ..wire.names import TUNNEL_PATH
from ..wire.protocol import (
    AUTH_URL_ARG,
    ReplyFrame,
    decode_object,
    encode_cancel,
    encode_request,
    parse_reply,
)
from ._connect import DEFAULT_MAX_MESSAGE_SIZE, Endpoint, client_ssl_context
from ._polling import PollingTransport
from ._responses import Response, StreamingResponse, _StreamContext
from ._tls_errors import wrong_scheme_error
from ._transport import Transport, TunnelWebSocket
from ._websocket import WebSocketTransport

__all__ = [
    "DEFAULT_UPGRADE_INTERVAL",
    "TRANSPORTS",
    "Transport",
    "TunnelClient",
    "TunnelClosedError",
    "TunnelWebSocket",
]


class TunnelClosedError(ConnectionError):
    """The tunnel socket closed before a reply was complete."""


#: The transports a client may use, in the order it tries them.
TRANSPORTS = ("websocket", "polling")
#: Seconds between attempts to move a polling client back to a WebSocket.
DEFAULT_UPGRADE_INTERVAL = 15.0


class TunnelClient:
    """One tunnel to a Jupyter server running the extension, over a WebSocket or polling.

    ``transport`` says which carries new requests (``"websocket"`` or ``"polling"``);
    ``on_transport_change`` callbacks and :meth:`wait_for_transport` observe changes.
    ``connection`` is an open tunnel WebSocket, or a :class:`Transport` (a
    ``PollingTransport``) the client attaches itself to.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        connection: WebSocketClientConnection | Transport | None = None,
        *,
        transports: Sequence[str] = ("websocket",),
        upgrade_query: Mapping[str, str] | None = None,
        upgrade_interval: float = DEFAULT_UPGRADE_INTERVAL,
        on_transport_change: Callable[[str], None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._ids = itertools.count(1)
        #: message_id -> (the queue its reply frames go to, the transport it went out on)
        self._pending: dict[Any, tuple[asyncio.Queue[ReplyFrame | BaseException], Transport]] = {}
        #: Reply frames that named no pending request (e.g. ``JSON input is required.``).
        self.unmatched: asyncio.Queue[ReplyFrame] = asyncio.Queue()
        self._transports = tuple(transports)
        self._upgrade_query = dict(upgrade_query or {})
        self._upgrade_interval = upgrade_interval
        self._listeners: list[Callable[[str], None]] = []
        if on_transport_change is not None:
            self._listeners.append(on_transport_change)
        self._changed = asyncio.Event()
        self._closed = asyncio.Event()
        self._closing = False
        self._retired: set[Transport] = set()
        self._upgrader: asyncio.Task[None] | None = None
        self._fallback: asyncio.Task[None] | None = None
        #: How many times the transport changed after connecting.
        self.transport_changes = 0
        if isinstance(connection, WebSocketClientConnection):
            transport: Transport = WebSocketTransport(endpoint, connection)
        else:
            assert connection is not None
            transport = connection
        self._extension_version = transport.extension_version
        self._current = self._attach(transport)
        self._start_upgrader()

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        token: str | None = None,
        cookies: Mapping[str, str] | None = None,
        origin: str | None = None,
        min_version: str | None = None,
        auth_url: str | None = None,
        headers: Mapping[str, str] | None = None,
        connect_timeout: float = 20.0,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        framing: str = "json",
        transports: Sequence[str] = TRANSPORTS,
        upgrade_interval: float = DEFAULT_UPGRADE_INTERVAL,
        on_transport_change: Callable[[str], None] | None = None,
        ssl: SSLContext | None = None,
        ca_file: str | os.PathLike[str] | None = None,
    ) -> TunnelClient:
        """Open the tunnel to the Jupyter server at ``url`` (including its ``base_url``).

        Credentials: ``token`` (sent as ``Authorization: token ...``), login ``cookies``,
        or ``auth_url``, a URL of this server carrying ``?token=`` as Colab-era clients
        send it. ``origin`` is the web origin to present, as a browser page would.
        ``framing="binary"`` asks for raw binary bodies (faster; servers that do not
        know it, like the original, keep using JSON frames and the client follows).

        ``transports`` (default ``("websocket", "polling")``) tries the WebSocket first
        and falls back to the polling transport (plain HTTP requests) when the upgrade
        fails, e.g. behind a proxy that drops ``Upgrade``, or when the WebSocket later
        breaks without a close frame (requests in flight on it fail with
        :class:`TunnelClosedError`; new ones wait for the polling session). While
        polling, it tries the WebSocket again after ``upgrade_interval`` seconds (backing
        off) and moves new work there once it gets through. ``on_transport_change(name)``
        is called on every change. ``transports=("websocket",)`` never polls.
        Raises ``tornado.httpclient.HTTPClientError`` (403) when the server refuses
        (credentials and origin refusals do not fall back: polling would get the same).

        TLS (``https://`` URLs): the server's certificate is always verified, against
        the system's CAs (``SSL_CERT_FILE`` names another bundle) unless ``ca_file``
        (a PEM file of the CAs to trust instead) or ``ssl`` (an ``ssl.SSLContext``, as
        asyncio and aiohttp take it) says otherwise. A certificate that does not verify
        raises ``ssl.SSLCertVerificationError`` naming the problem (unknown CA, wrong
        host name, expired) and the fix; it does not fall back to polling. ``http://``
        to a server that speaks only TLS, or ``https://`` to one that does not, raises
        :class:`WrongSchemeError` (a ``ConnectionError``) naming the URL to use, once
        the same address has answered with the other scheme.
        """
        unknown = set(transports) - set(TRANSPORTS)
        if unknown or not transports:
            raise ValueError(f"transports must be taken from {TRANSPORTS}, not {transports!r}")
        endpoint = Endpoint(
            url,
            token=token,
            cookies=dict(cookies or {}),
            origin=origin,
            headers=dict(headers or {}),
            connect_timeout=connect_timeout,
            max_message_size=max_message_size,
            ssl_context=client_ssl_context(ssl, ca_file),
        )
        query: dict[str, str] = {}
        if min_version:
            query["min_version"] = min_version
        if auth_url:
            query[AUTH_URL_ARG] = auth_url
        if framing != "json":
            query["framing"] = framing
        options: dict[str, Any] = {
            "transports": transports,
            "upgrade_query": query,
            "upgrade_interval": upgrade_interval,
            "on_transport_change": on_transport_change,
        }
        upgrade_error: Exception | None = None
        if "websocket" in transports:
            try:
                connection = await endpoint.open(TUNNEL_PATH, query)
            except Exception as error:
                # The wrong scheme fails the same way over polling: say so at once.
                await _raise_if_wrong_scheme(endpoint, error)
                if "polling" not in transports or _refused(error):
                    raise
                upgrade_error = error
            else:
                return cls(endpoint, connection, **options)
        endpoint = _polling_endpoint(endpoint, auth_url)
        try:
            transport = await PollingTransport.open(endpoint, min_version=min_version)
        except Exception as error:
            await _raise_if_wrong_scheme(endpoint, error)
            no_endpoint = isinstance(error, HTTPClientError) and error.code == 404
            if upgrade_error is not None and no_endpoint:
                # No polling endpoint (an older server, or allow_polling=False): the
                # WebSocket's failure is the one that explains the problem.
                raise upgrade_error from None
            raise
        return cls(endpoint, transport, **options)

    # ------------------------------------------------------------ transports

    @property
    def transport(self) -> str:
        """The transport new requests and sockets use: ``"websocket"`` or ``"polling"``."""
        return self._current.name

    @property
    def extension_version(self) -> str | None:
        """The server's jupyter-http-over-ws version, when a transport told it, else ``None``.

        The polling transport learns it when the session opens; the WebSocket transport
        from the hello frame of binary framing (``framing="binary"``), which arrives
        before the first reply. A JSON-framed WebSocket is not told (ask
        :func:`diagnose`). The last version learned is kept across transport changes.
        """
        return self._extension_version

    @property
    def framing(self) -> str:
        """The framing requests go out in: ``"json"``, or ``"binary"`` once confirmed."""
        return self._current.framing

    @framing.setter
    def framing(self, value: str) -> None:
        self._current.framing = value

    def add_transport_listener(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(transport_name)`` whenever the transport changes."""
        self._listeners.append(callback)

    def _attach(self, transport: Transport) -> Transport:
        """Route ``transport``'s reply frames and its end to this client."""
        transport.attach(self._on_message, self._on_transport_closed)
        return transport

    async def wait_for_transport(self, name: str, timeout: float | None = None) -> None:
        """Wait until ``transport`` is ``name`` (``asyncio.TimeoutError`` after ``timeout``)."""

        async def wait() -> None:
            while self.transport != name:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(wait(), timeout)

    def _start_upgrader(self) -> None:
        if (
            self._current.name == "polling"
            and "websocket" in self._transports
            and self._upgrade_interval > 0
        ):
            self._upgrader = asyncio.ensure_future(self._upgrade_loop())

    async def _upgrade_loop(self) -> None:
        """Try the WebSocket from time to time; once it works, move new work there."""
        delay = self._upgrade_interval
        while not self._closing and self._current.name == "polling":
            await asyncio.sleep(delay)
            try:
                connection = await self.endpoint.open(TUNNEL_PATH, self._upgrade_query)
            except Exception:  # still no WebSocket: keep polling
                # Back off (up to 20 intervals) so a proxy that never passes upgrades
                # costs the server one refused upgrade now and then, not a steady stream.
                delay = min(delay * 2, self._upgrade_interval * 20)
                continue
            if self._closing:
                connection.close()
                return
            old = self._current
            self._current = self._attach(WebSocketTransport(self.endpoint, connection))
            # Requests and sockets already on the polling session finish there; the
            # session is closed once nothing is left on it, so nothing is lost.
            self._retired.add(old)
            self._retire_when_idle(old)
            self._announce()

    def _retire_when_idle(self, transport: Transport) -> None:
        async def retire() -> None:
            def busy() -> bool:
                pending = any(t is transport for _, t in self._pending.values())
                return not transport.closed and (transport.busy or pending)

            while busy():  # noqa: ASYNC110 - two sources of work, checked together
                await asyncio.sleep(0.05)
            await transport.close()
            self._retired.discard(transport)

        task = asyncio.ensure_future(retire())
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    def _announce(self) -> None:
        self.transport_changes += 1
        self._changed.set()
        for callback in list(self._listeners):
            callback(self.transport)

    # ------------------------------------------------------------ frames

    def _on_message(self, transport: Transport, message: str | bytes) -> None:
        if isinstance(message, bytes) and transport.binary_replies:
            frame = parse_binary_reply(message)
        else:
            if isinstance(message, bytes):
                message = message.decode("utf-8")
            hello = parse_hello(message)
            if hello is not None:
                transport.framing = hello
                version = decode_object(message).get("extension_version")
                if isinstance(version, str):
                    transport.extension_version = self._extension_version = version
                return
            frame = parse_reply(message)
        entry = self._pending.get(frame.message_id)
        if entry is None:
            self.unmatched.put_nowait(frame)
            return
        queue, _ = entry
        if frame.done:
            del self._pending[frame.message_id]
        queue.put_nowait(frame)

    def _on_transport_closed(self, transport: Transport) -> None:
        error = TunnelClosedError(
            f"tunnel closed (code {transport.close_code}, reason {transport.close_reason!r})"
        )
        for message_id, (queue, owner) in list(self._pending.items()):
            if owner is transport:
                queue.put_nowait(error)
                del self._pending[message_id]
        if transport is not self._current:
            return
        if self._upgrader is not None:
            self._upgrader.cancel()
        if (
            transport.name == "websocket"
            and transport.close_code is None  # dropped by the network, not closed by the server
            and "polling" in self._transports
            and not self._closing
        ):
            self._fallback = asyncio.ensure_future(self._fall_back())
            return
        self._closed.set()
        self._changed.set()

    async def _fall_back(self) -> None:
        """The WebSocket broke without a close frame: carry on over a new polling session.

        Requests in flight on the broken socket have failed (the server cancelled them
        when it lost the socket); new ones wait here for the polling session.
        """
        query = self._upgrade_query
        endpoint = _polling_endpoint(self.endpoint, query.get(AUTH_URL_ARG))
        transport: Transport | None
        try:
            polling = await PollingTransport.open(endpoint, min_version=query.get("min_version"))
        except Exception:  # the server is gone too: the tunnel is closed
            transport = None
        else:
            transport = self._attach(polling)
        if transport is not None and self._closing:
            await transport.close()
            transport = None
        if transport is None:
            self._closed.set()
            self._changed.set()
            return
        if transport.extension_version is not None:
            self._extension_version = transport.extension_version
        self._current = transport
        self._announce()
        self._start_upgrader()

    async def _settled(self) -> None:
        """Wait for a fallback under way, so new work goes to the transport it opens."""
        if self._fallback is not None and not self._fallback.done():
            await asyncio.shield(self._fallback)

    @property
    def close_code(self) -> int | None:
        """The close code, once the server has closed the tunnel."""
        return self._current.close_code

    @property
    def close_reason(self) -> str | None:
        """The close reason, once the server has closed the tunnel."""
        return self._current.close_reason

    async def __aenter__(self) -> TunnelClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the tunnel; pending requests fail with :class:`TunnelClosedError`."""
        self._closing = True
        if self._upgrader is not None:
            self._upgrader.cancel()
        if self._fallback is not None:
            await asyncio.gather(self._fallback, return_exceptions=True)
        transports = [self._current, *self._retired]
        await asyncio.gather(*(t.close() for t in transports), return_exceptions=True)

    async def wait_closed(self) -> None:
        """Wait until the server closes the tunnel."""
        await self._closed.wait()

    def send_raw(self, message: str | bytes, *, binary: bool = False) -> None:
        """Send a frame as it is (tests of the server's input checks use this)."""
        self._current.send(message, binary)

    def _start(
        self,
        method: str,
        path: str,
        body: bytes | str | None,
        headers: Mapping[str, str] | None,
        message_id: Any = None,
    ) -> asyncio.Queue[ReplyFrame | BaseException]:
        transport = self._current
        if transport.closed or self._closed.is_set():
            raise TunnelClosedError("the tunnel is closed")
        if message_id is None:
            message_id = next(self._ids)
        queue: asyncio.Queue[ReplyFrame | BaseException] = asyncio.Queue()
        self._pending[message_id] = (queue, transport)
        if self.framing == "binary":
            raw = body.encode("utf-8") if isinstance(body, str) else body
            frame = encode_binary_request(message_id, method, path, body=raw, headers=headers)
            transport.send(frame, True)
        else:
            frame = encode_request(message_id, method, path, body=body, headers=headers)
            transport.send(frame, False)
        return queue

    def cancel(self, message_id: Any) -> None:
        """Ask the server to stop request ``message_id`` (its final frame still arrives)."""
        entry = self._pending.get(message_id)
        if entry is not None and not entry[1].closed:
            entry[1].send(encode_cancel(message_id), False)

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        message_id: Any = None,
    ) -> Response:
        """Send one request and return the whole response.

        ``path`` is relative to the server's ``base_url`` (``/api/contents``). The body
        arrives byte-exact: text and UTF-8 bytes travel as ``body``, other bytes as
        ``body_base64``.
        """
        stream = await self._stream(method, path, body, headers, message_id)
        body_bytes = await stream.read()
        return Response(stream.status, stream.reason, stream.headers, body_bytes)

    def stream(
        self,
        method: str,
        path: str,
        *,
        body: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> _StreamContext:
        """Send one request and read its body as it arrives.

        Example::

            async with tunnel.stream("GET", "/files/big.bin") as response:
                async for chunk in response: ...
        """
        return _StreamContext(
            functools.partial(self._stream, method, path, body, headers), self.cancel
        )

    async def _stream(
        self,
        method: str,
        path: str,
        body: bytes | str | None,
        headers: Mapping[str, str] | None,
        message_id: Any = None,
    ) -> StreamingResponse:
        await self._settled()
        queue = self._start(method, path, body, headers, message_id)
        first = await queue.get()
        if isinstance(first, BaseException):
            raise first
        if first.status is None:
            raise ValueError(f"reply without a status: {first!r}")
        return StreamingResponse(
            message_id=first.message_id,
            status=first.status,
            reason=first.status_text or "",
            headers=dict(first.headers or {}),
            _frames=queue,
            _first_data=first.data,
            _done=first.done,
        )

    async def websocket(
        self, path: str, *, subprotocols: list[str] | None = None
    ) -> TunnelWebSocket:
        """Open a WebSocket to ``path`` of this server through the tunnel.

        ``path`` is relative to ``base_url`` and may carry a query
        (``/api/kernels/<id>/channels?session_id=...``). Over the WebSocket transport
        this is Tornado's ``WebSocketClientConnection`` (through ``proxied_ws``), over
        the polling transport a :class:`PolledWebSocket` with the same methods
        (``read_message``, ``write_message``, ``close``, ``close_code``,
        ``selected_subprotocol``). Raises ``HTTPClientError`` when the server refuses.
        """
        await self._settled()
        socket: TunnelWebSocket = await self._current.open_socket(path, subprotocols)
        return socket


async def _raise_if_wrong_scheme(endpoint: Endpoint, error: BaseException) -> None:
    """Raise :class:`WrongSchemeError` if ``error`` came from ``http://`` to TLS or back."""
    mismatch = await wrong_scheme_error(
        endpoint.url, error, endpoint.connect_timeout, endpoint.ssl_context
    )
    if mismatch is not None:
        raise mismatch from error


def _refused(error: BaseException) -> bool:
    """Whether the server refused the tunnel (credentials, origin, certificate): no fallback."""
    if isinstance(error, SSLCertVerificationError):
        return True  # the polling transport meets the same certificate
    return isinstance(error, HTTPClientError) and error.code in (401, 403)


def _polling_endpoint(endpoint: Endpoint, auth_url: str | None) -> Endpoint:
    """``endpoint`` for polling: an auth URL's token travels as the Authorization header.

    Polling requests are plain API requests (the server would read the token from the
    query too, but a query token ends up in access logs).
    """
    if not auth_url or endpoint.token:
        return endpoint
    token = parse_qs(urlsplit(auth_url).query).get("token", [None])[-1]
    return dataclasses.replace(endpoint, token=token)
