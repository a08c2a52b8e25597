"""A proxied kernel socket served in-process: jupyter_server's own kernel handler, no inner socket.

A relayed socket crosses three WebSockets: the client's, the relay's upstream
connection, and the private entrance's (:mod:`.entrance`), where jupyter_server's
``KernelWebsocketHandler`` runs. For the kernel channels that handler can run in this
process against the relay itself: :func:`open_in_process` builds the upgrade request
the relay would have sent, routes it through the server's own application, and runs
the handler the route names, unchanged (its authentication, ``is_authorized(...,
"execute", "kernels")``, the 404 of an unknown kernel, the ``session_id`` argument and
the replacement of a stale socket of the same session, its subprotocol choice, its
origin check, its log line), with one difference: its WebSocket protocol object
(Tornado's documented seam, ``get_websocket_protocol``) is :class:`_InProcessProtocol`,
which hands frames to an :class:`InProcessKernelSocket` instead of writing them to
a TCP stream. The relay reads and writes that socket as it reads and writes
Tornado's client connection, so a frame crosses one WebSocket, the client's.

Only the configuration this was written against takes this path
(:func:`serves_in_process`): the route's handler is exactly jupyter_server's
``KernelWebsocketHandler`` and ``kernel_websocket_connection_class`` is exactly
``ZMQChannelsWebsocketConnection`` (gateway mode, or any other class, stays on the
relay), and the Tornado internals used here exist (:data:`INTERNALS_PRESENT`).
tests/test_kernel_in_process.py pins each of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

from tornado import httputil
from tornado.web import Application, RequestHandler
from tornado.websocket import WebSocketClosedError, WebSocketHandler, WebSocketProtocol

from .dispatch import RequestContext

#: The Tornado internals this module relies on (each pinned by a test):
#: ``RequestHandler._execute(transforms, *args, **kwargs)`` runs a handler as Tornado's
#: HTTP server does; ``WebSocketHandler.on_ws_connection_close(code, reason)`` is what
#: a protocol calls when the socket ends; ``Application.find_handler(request)`` returns
#: a delegate with ``handler_class``, ``handler_kwargs``, ``path_args``, ``path_kwargs``.
INTERNALS_PRESENT: Final = (
    callable(getattr(RequestHandler, "_execute", None))
    and callable(getattr(WebSocketHandler, "on_ws_connection_close", None))
    and callable(getattr(WebSocketHandler, "get_websocket_protocol", None))
    and callable(getattr(Application, "find_handler", None))
)

#: What Tornado closes a socket with when a client frame exceeds ``websocket_max_message_size``.
MESSAGE_TOO_BIG: Final = (1009, "message too big")


def _kernel_classes() -> tuple[type[Any], type[Any]] | None:
    """jupyter_server's kernel handler and its ZMQ connection class, if importable."""
    try:
        from jupyter_server.services.kernels.connection.channels import (
            ZMQChannelsWebsocketConnection,
        )
        from jupyter_server.services.kernels.websocket import KernelWebsocketHandler
    except ImportError:  # pragma: no cover - every supported jupyter_server has them
        return None
    return KernelWebsocketHandler, ZMQChannelsWebsocketConnection


class InProcessKernelSocket:
    """The relay's side of an in-process kernel socket: what Tornado's client connection offers.

    ``read_message`` gives the handler's frames in order (``str`` for text, ``bytes`` for
    binary, ``None`` once the socket ended); ``write_message`` hands a client frame to
    the handler's ``on_message`` (waiting, like Tornado, until its ``open`` finished);
    ``close`` is the client's close. ``close_code``, ``close_reason`` and
    :attr:`close_frame_received` say how the handler ended the socket.
    """

    def __init__(self) -> None:
        self.selected_subprotocol: str | None = None
        self.close_code: int | None = None
        self.close_reason: str | None = None
        #: Whether the handler closed the socket (``False``: it failed, or has not).
        self.close_frame_received = False
        self._frames: deque[str | bytes] = deque()
        self._reader: asyncio.Future[str | bytes | None] | None = None
        self._ended = False
        self._opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._protocol: _InProcessProtocol | None = None
        #: The task running the kernel handler (Tornado's ``_execute``) for this socket.
        self.handler_task: asyncio.Future[Any] | None = None
        self._forward: Callable[[str | bytes], None] | None = None

    # -- the relay's side ------------------------------------------------------------

    def read_message(self) -> Awaitable[str | bytes | None]:
        """The next frame from the handler, or ``None`` once the socket ended."""
        future: asyncio.Future[str | bytes | None] = asyncio.get_running_loop().create_future()
        if self._frames:
            future.set_result(self._frames.popleft())
        elif self._ended:
            future.set_result(None)
        else:
            self._reader = future
        return future

    def write_message(self, message: str | bytes, binary: bool = False) -> Awaitable[None]:
        """Hand one client frame to the handler; fails with ``WebSocketClosedError`` once ended.

        Once the handler's ``open`` has finished and its ``on_message`` is synchronous
        (the kernel handler's is), the frame is handled before this returns, and the
        awaitable is already done.
        """
        if binary and isinstance(message, str):
            message = message.encode()
        elif not binary and not isinstance(message, str):
            message = bytes(message).decode()
        protocol = self._protocol
        if self._opened.done() and protocol is not None and not self._ended:
            handled = protocol.deliver_now(message)
            if handled is None:
                return _done()
            return handled
        return self._write_when_open(message)

    async def _write_when_open(self, message: str | bytes) -> None:
        if not self._opened.done():
            await self._opened
        protocol = self._protocol
        if self._ended or protocol is None:
            raise WebSocketClosedError()
        handled = protocol.deliver_now(message)
        if handled is not None:
            await handled

    def forward_to(self, forward: Callable[[str | bytes], None]) -> None:
        """Hand the handler's frames to ``forward`` as they are written (and those waiting).

        ``read_message`` then gives only the end (``None``). For a relay whose client
        socket buffers writes itself (``proxied_ws``): no task switch per frame.
        """
        while self._frames:
            forward(self._frames.popleft())
        self._forward = forward

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        """The client closes the socket (or has gone): the handler's ``on_close`` runs.

        The socket then reads as closed with the client's code and no reason, as a
        Tornado client's does once the server has echoed its close frame.
        """
        if self._ended:
            return
        self._end(code, None, frame=True)
        protocol = self._protocol
        if protocol is not None:
            protocol.client_closed(code, reason)

    # -- the handler's side ----------------------------------------------------------

    def _attach(self, protocol: _InProcessProtocol) -> None:
        self._protocol = protocol

    def _open_finished(self) -> None:
        if not self._opened.done():
            self._opened.set_result(None)

    def _push(self, frame: str | bytes) -> None:
        if self._forward is not None:
            self._forward(frame)
            return
        reader, self._reader = self._reader, None
        if reader is not None and not reader.done():
            reader.set_result(frame)
        else:
            self._frames.append(frame)

    def _end(
        self, code: int | None = None, reason: str | None = None, *, frame: bool = False
    ) -> None:
        if self._ended:
            return
        self._ended = True
        self.close_code, self.close_reason, self.close_frame_received = code, reason, frame
        self._open_finished()
        reader, self._reader = self._reader, None
        if reader is not None and not reader.done():
            reader.set_result(None)

    @property
    def protocol(self) -> WebSocketProtocol | None:
        """The handler's protocol object (as on Tornado's client connection), once created."""
        return self._protocol

    @property
    def ended(self) -> bool:
        """Whether the socket has ended (either side closed it, or the handler failed)."""
        return self._ended


class _InProcessProtocol(WebSocketProtocol):
    """Tornado's WebSocket protocol interface, carried by an :class:`InProcessKernelSocket`.

    What Tornado's ``WebSocketProtocol13`` does on the wire, done in memory: the
    upgrade's subprotocol choice and its 101 answer (through the handler's own
    ``finish()``, so its log line and hooks run), then ``open``, then frames both
    ways, and the close with its code and reason.
    """

    def __init__(self, handler: WebSocketHandler, peer: InProcessKernelSocket) -> None:
        super().__init__(handler)
        self._peer = peer
        self._subprotocol: str | None = None
        self._closed = asyncio.get_running_loop().create_future()
        peer._attach(self)

    @property
    def selected_subprotocol(self) -> str | None:  # type: ignore[override]
        """The subprotocol the handler chose."""
        return self._subprotocol

    async def accept_connection(self, handler: WebSocketHandler) -> None:
        """Answer the upgrade (101), run ``open``, then serve frames until the socket ends."""
        header = handler.request.headers.get("Sec-WebSocket-Protocol")
        offered = [s.strip() for s in header.split(",")] if header else []
        selected = handler.select_subprotocol(offered)
        if selected:
            assert selected in offered
            handler.set_header("Sec-WebSocket-Protocol", selected)
        self._subprotocol = self._peer.selected_subprotocol = selected
        handler.clear_header("Content-Type")
        handler.set_status(101)
        handler.set_header("Upgrade", "websocket")
        handler.set_header("Connection", "Upgrade")
        handler.finish()
        try:
            opened = handler.open(*handler.open_args, **handler.open_kwargs)
            if opened is not None:
                await opened
        except Exception:
            handler.log_exception(*sys.exc_info())  # type: ignore[arg-type]
            self._abort()
            return
        self._peer._open_finished()
        if self._peer.ended and not self.client_terminated:
            self.client_closed(self._peer.close_code, self._peer.close_reason)
        await asyncio.shield(self._closed)

    def deliver_now(self, message: str | bytes) -> Awaitable[None] | None:
        """A client frame to the handler's ``on_message``, as Tornado's frame loop does.

        Returns what ``on_message`` returned if it is awaitable (the caller awaits it
        before the next frame), else ``None``.
        """
        if self.client_terminated or self.server_terminated:
            return None
        handler = self.handler
        assert isinstance(handler, WebSocketHandler)
        if len(message) > handler.max_message_size:
            self.close(*MESSAGE_TOO_BIG)
            self._abort()
            return None
        try:
            handled = handler.on_message(message)
        except Exception:
            handler.log_exception(*sys.exc_info())  # type: ignore[arg-type]
            self._abort()
            return None
        if handled is None:
            return None
        return self._finish_handling(handled)

    async def _finish_handling(self, handled: Awaitable[None]) -> None:
        try:
            await handled
        except Exception:
            handler = self.handler
            assert isinstance(handler, WebSocketHandler)
            handler.log_exception(*sys.exc_info())  # type: ignore[arg-type]
            self._abort()

    def client_closed(self, code: int | None, reason: str | None) -> None:
        """The client closed: the handler hears it as Tornado tells it of a close frame."""
        self.client_terminated = True
        self._finish(code, reason)

    def write_message(
        self, message: str | bytes | dict[str, Any], binary: bool = False
    ) -> asyncio.Future[None]:
        """Hand one of the handler's frames to the relay (a text frame is ``str``)."""
        if self.is_closing():
            raise WebSocketClosedError()
        if isinstance(message, dict):  # the handler encodes dicts before it calls this
            raise TypeError("dict frames are encoded by WebSocketHandler.write_message")
        if binary:
            frame: str | bytes = message.encode() if isinstance(message, str) else bytes(message)
        else:
            frame = message if isinstance(message, str) else bytes(message).decode()
        self._peer._push(frame)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        """The handler closes the socket: the relay reads a close frame with this code."""
        if self.server_terminated:
            return
        self.server_terminated = True
        self._peer._end(code, reason, frame=True)
        if not self.client_terminated:
            self.client_terminated = True
            asyncio.get_running_loop().call_soon(self._finish, code, reason)

    def _abort(self) -> None:
        """The socket fails: the relay reads an end without a close frame (1014 to its client)."""
        self.client_terminated = self.server_terminated = True
        self._peer._end()
        self._finish(None, None)

    def _finish(self, code: int | None, reason: str | None) -> None:
        if self._closed.done():
            return
        self._closed.set_result(None)
        self._peer._end(code, reason, frame=True)
        handler = self.handler
        assert isinstance(handler, WebSocketHandler)
        handler.on_ws_connection_close(code, reason)

    def is_closing(self) -> bool:
        """Whether either side has closed."""
        return self.client_terminated or self.server_terminated

    def write_ping(self, data: bytes) -> None:
        """jupyter_server's keep-alive ping, answered at once (the client's socket is pinged)."""
        handler = self.handler
        asyncio.get_running_loop().call_soon(handler.on_pong, data)

    def start_pinging(self) -> None:
        """Nothing to ping in memory."""

    async def _receive_frame_loop(self) -> None:
        await asyncio.shield(self._closed)

    def set_nodelay(self, x: bool) -> None:
        """No TCP socket here."""

    def _process_server_headers(self, key: str | bytes, headers: httputil.HTTPHeaders) -> None:
        raise NotImplementedError("an in-process kernel socket has no client side")


class _UpgradeConnection(httputil.HTTPConnection):
    """The ``HTTPConnection`` of the in-process upgrade: it only notes the answer's status."""

    def __init__(self, context: RequestContext) -> None:
        self.context = context
        self.answered: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.close_callback: Callable[[], None] | None = None

    def set_close_callback(self, callback: Callable[[], None] | None) -> None:
        """Remembered; the in-process socket tells the handler of its end itself."""
        self.close_callback = callback

    def write_headers(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
        chunk: bytes | None = None,
    ) -> asyncio.Future[None]:
        """The handler answers: 101 (accepted) or its refusal."""
        assert isinstance(start_line, httputil.ResponseStartLine)
        if not self.answered.done():
            self.answered.set_result(start_line.code)
        return _done()

    def write(self, chunk: bytes) -> asyncio.Future[None]:
        """A refusal's body: nobody reads it (the relay passes on the status)."""
        return _done()

    def finish(self) -> None:
        """Nothing to flush."""


def _done() -> asyncio.Future[None]:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    future.set_result(None)
    return future


def _in_process_handler_class() -> type[WebSocketHandler] | None:
    classes = _kernel_classes()
    if classes is None:
        return None
    kernel_handler, _ = classes

    class InProcessKernelHandler(kernel_handler):  # type: ignore[misc,valid-type]
        """jupyter_server's ``KernelWebsocketHandler``, on an in-process WebSocket protocol."""

        peer: InProcessKernelSocket

        def get_websocket_protocol(self) -> WebSocketProtocol:
            return _InProcessProtocol(self, self.peer)

    return InProcessKernelHandler


_HANDLER_CLASS: Final = _in_process_handler_class()


class KernelRoute:
    """The server's route for one kernel-channels upgrade, when it can be served in-process."""

    def __init__(
        self, application: Application, request: httputil.HTTPServerRequest, delegate: Any
    ) -> None:
        self.application = application
        self.request = request
        self.delegate = delegate


def kernel_route(
    application: Application,
    uri: str,
    headers: httputil.HTTPHeaders,
    subprotocols: Sequence[str],
    context: RequestContext,
) -> KernelRoute | None:
    """The in-process route for an upgrade of ``uri``, or ``None``: relay it as before.

    ``None`` unless the application routes ``uri`` to exactly jupyter_server's
    ``KernelWebsocketHandler`` with exactly ``ZMQChannelsWebsocketConnection`` as the
    server's ``kernel_websocket_connection_class`` (:func:`serves_in_process`).
    """
    if not serves_in_process(application):
        return None
    headers = httputil.HTTPHeaders(headers)
    headers["Upgrade"] = "websocket"
    headers["Connection"] = "Upgrade"
    headers["Sec-WebSocket-Version"] = "13"
    if subprotocols:
        headers["Sec-WebSocket-Protocol"] = ", ".join(subprotocols)
    request = httputil.HTTPServerRequest(
        start_line=httputil.RequestStartLine("GET", uri, "HTTP/1.1"),
        headers=headers,
        connection=_UpgradeConnection(context),
    )
    delegate = application.find_handler(request)
    classes = _kernel_classes()
    if classes is None or getattr(delegate, "handler_class", None) is not classes[0]:
        return None
    return KernelRoute(application, request, delegate)


def serves_in_process(application: Application) -> bool:
    """Whether this server's kernel sockets can be served in-process (else: the relay)."""
    classes = _kernel_classes()
    return (
        INTERNALS_PRESENT
        and _HANDLER_CLASS is not None
        and classes is not None
        and application.settings.get("kernel_websocket_connection_class") is classes[1]
    )


async def open_in_process(route: KernelRoute, *, timeout: float) -> InProcessKernelSocket:
    """Run the kernel handler for ``route``; the socket once it answered 101.

    Raises :class:`InProcessRefusedError` with the handler's status when it refused
    (403, 404, ...), or 504 when it did not answer within ``timeout`` seconds.
    """
    assert _HANDLER_CLASS is not None
    peer = InProcessKernelSocket()
    delegate = route.delegate
    handler: Any = _HANDLER_CLASS(route.application, route.request, **delegate.handler_kwargs)
    handler.peer = peer
    connection = route.request.connection
    assert isinstance(connection, _UpgradeConnection)
    transforms = [t(route.request) for t in route.application.transforms]
    running = asyncio.ensure_future(
        handler._execute(transforms, *delegate.path_args, **delegate.path_kwargs)
    )
    peer.handler_task = running  # the handler runs as long as the socket: keep it referenced
    try:
        await asyncio.wait(
            (connection.answered, running), timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
    except BaseException:
        peer.close()  # the client left during the upgrade: the handler must not outlive it
        raise
    if not connection.answered.done():
        peer.close()
        if running.done():
            with contextlib.suppress(Exception):  # the handler logged it already
                running.result()
            raise InProcessRefusedError(502, "the kernel handler ended without an answer")
        raise InProcessRefusedError(504, "the kernel handler did not answer in time")
    status = connection.answered.result()
    if status != 101:
        code = status if 400 <= status < 599 else 400
        raise InProcessRefusedError(code, "upstream refused the WebSocket")
    return peer


class InProcessRefusedError(Exception):
    """The in-process kernel handler refused the upgrade; ``status`` is its HTTP status."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
