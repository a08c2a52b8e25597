"""Executing one tunnelled HTTP request against this server, streaming the reply.

The request never touches the network: it is handed to the server's own Tornado
application, exactly as its HTTP server would hand over a request it had read
from a socket, so every handler (REST API, ``/files``, extensions) runs with
its usual authentication, authorization, origin, XSRF and host checks. The
credentials and identity headers are those of the tunnel's upgrade request
(see :class:`UpgradeContext`), so a tunnelled request passes exactly the checks
that the same request made directly with the same credentials would pass.

The response is relayed frame by frame as the handler flushes it. A handler's
``flush()`` resolves only when its bytes have been written to the client
socket, so a slow client slows the handler down instead of piling data up in
memory (backpressure), and a client that goes away makes the handler's next
write fail, as a closed HTTP connection would.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from tornado import httputil
from tornado.iostream import StreamClosedError
from tornado.web import Application

from .upgrade import UpgradeContext
from .wire.framing import JSON, Framing
from .wire.protocol import HttpRequest

#: Sends one frame to the client (text if the flag is false, binary if true);
#: resolves once it is written to the socket.
SendFrame = Callable[[bytes, bool], Awaitable[None]]

#: Methods whose cookie-authenticated requests pass the server's XSRF check only
#: with the ``_xsrf`` token; the tunnel supplies it from the upgrade's cookie, as
#: the original did (see docs/operators/security.md).
XSRF_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class _RequestContext:
    """The connection facts Tornado's ``HTTPServerRequest`` reads (``remote_ip``, ``protocol``)."""

    def __init__(self, remote_ip: str | None, protocol: str) -> None:
        self.remote_ip = remote_ip
        self.protocol = protocol
        self.address = (remote_ip, 0)
        self.trusted_downstream: set[str] = set()

    def __str__(self) -> str:
        return self.remote_ip or "tunnel"


class ReplyStream:
    """Turns one handler's response into reply frames, with backpressure.

    Tornado calls :meth:`start`, :meth:`write` and :meth:`finish` (through
    :class:`_TunnelledConnection`); :meth:`run` sends the frames. Writes made in
    the same event-loop turn are coalesced, so a small response (headers, body and
    end written by one ``finish()``) is a single frame, as in the original.
    """

    def __init__(
        self, message_id: Any, send: SendFrame, chunk_size: int, framing: Framing = JSON
    ) -> None:
        self.message_id = message_id
        self._send = send
        self._chunk_size = chunk_size
        self._framing = framing
        self._head: tuple[int, str, list[tuple[str, str]]] | None = None
        self._head_sent = False
        self._chunks: deque[tuple[bytes | memoryview, asyncio.Future[None] | None]] = deque()
        self._buffered = 0  # body bytes queued but not yet sent
        self._finished = False
        self._done_sent = False
        self._closed: BaseException | None = None
        self._wakeup = asyncio.Event()

    @property
    def head_sent(self) -> bool:
        """Whether the status line and headers have reached the client."""
        return self._head_sent

    @property
    def done_sent(self) -> bool:
        """Whether the final (``done: true``) frame has been sent (or taken over)."""
        return self._done_sent

    @property
    def binary(self) -> bool:
        """Whether this reply's frames are binary."""
        return self._framing.binary

    def abandon(self) -> None:
        """Send nothing more: the caller sends the final frame (cancel, error, shutdown)."""
        self._done_sent = True
        self.close(StreamClosedError())

    def final_frame(self) -> bytes:
        """A frame that ends this reply without more data."""
        return self._framing.encode_reply(self.message_id, done=True)

    def start(
        self, status: int, reason: str, headers: httputil.HTTPHeaders, chunk: bytes | None
    ) -> asyncio.Future[None]:
        """Record the status line and headers, and the first body chunk if any."""
        self._head = (status, reason, list(headers.get_all()))
        return self.write(chunk or b"")

    def write(self, chunk: bytes) -> asyncio.Future[None]:
        """Queue body bytes; the future resolves when the handler may write more.

        Up to one frame's worth (``chunk_size``) of unsent bytes is accepted at
        once, so a handler that flushes small chunks (``StaticFileHandler`` flushes
        every 64 KiB) fills whole frames; past that, the future resolves only once
        the client socket has taken the bytes. Memory per request stays below
        ``chunk_size`` plus one handler chunk, however large the body.
        """
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._closed is not None:
            _fail(future, self._closed)
            return future
        self._buffered += len(chunk)
        if self._buffered <= self._chunk_size:
            future.set_result(None)
            self._chunks.append((chunk, None))
        else:
            self._chunks.append((chunk, future))
        self._wakeup.set()
        return future

    def finish(self) -> None:
        """Mark the response complete: the next frame sent is the last."""
        self._finished = True
        self._wakeup.set()

    def close(self, error: BaseException) -> None:
        """Fail every pending and later write (the client is gone)."""
        self._closed = error
        while self._chunks:
            _, future = self._chunks.popleft()
            if future is not None and not future.done():
                _fail(future, error)
        self._wakeup.set()

    async def run(self) -> None:
        """Send frames until the final one has gone out."""
        while not self._done_sent:
            await self._wakeup.wait()
            self._wakeup.clear()
            if self._closed is not None:
                return
            if self._finished and self._head is None:
                raise RuntimeError("the handler finished without writing a response")
            while self._head is not None and (self._chunks or self._finished):
                await self._send_one_frame()
                if self._done_sent or self._closed is not None:
                    return

    async def _send_one_frame(self) -> None:
        data, resolved = self._take(self._chunk_size)
        done = self._finished and not self._chunks
        if not data and not done and self._head_sent:
            for future in resolved:  # empty flushes: nothing to send, nothing to wait for
                if not future.done():
                    future.set_result(None)
            return
        encode = self._framing.encode_reply
        if self._head_sent:
            frame = encode(self.message_id, data=data, done=done)
        else:
            assert self._head is not None
            status, reason, headers = self._head
            frame = encode(
                self.message_id,
                status=status,
                status_text=reason,
                headers=headers,
                data=data,
                done=done,
            )
            self._head_sent = True
        if done:
            self._done_sent = True
        await self._send(frame, self._framing.binary)
        for future in resolved:
            if not future.done():
                future.set_result(None)

    def _take(self, limit: int) -> tuple[bytes, list[asyncio.Future[None]]]:
        """Take up to ``limit`` bytes off the queue, with the futures now fully sent."""
        parts: list[bytes | memoryview] = []
        resolved: list[asyncio.Future[None]] = []
        size = 0
        while self._chunks and size < limit:
            chunk, future = self._chunks[0]
            room = limit - size
            if len(chunk) > room:
                view = memoryview(chunk)
                parts.append(view[:room])
                self._chunks[0] = (view[room:], future)
                size = limit
                break
            self._chunks.popleft()
            parts.append(chunk)
            size += len(chunk)
            if future is not None:
                resolved.append(future)
        self._buffered -= size
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        return bytes(data) if parts else b"", resolved


def _fail(future: asyncio.Future[None], error: BaseException) -> None:
    """Fail a write future as a closed stream, marked as seen.

    Handlers often drop the future of their last write (``finish()`` does); Tornado's
    own HTTP connection retrieves such failures, so a client that leaves is not
    logged as "Future exception was never retrieved". Awaiting it still raises.
    """
    future.set_exception(StreamClosedError(real_error=error))
    future.exception()


class _TunnelledConnection(httputil.HTTPConnection):
    """The ``HTTPConnection`` a tunnelled request's handler writes its response to."""

    def __init__(self, context: _RequestContext, reply: ReplyStream) -> None:
        self.context = context
        self._reply = reply
        self._close_callback: Callable[[], None] | None = None

    def set_close_callback(self, callback: Callable[[], None] | None) -> None:
        """Remember what to call when the client goes away (``on_connection_close``)."""
        self._close_callback = callback

    def write_headers(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
        chunk: bytes | None = None,
    ) -> asyncio.Future[None]:
        """Start the reply with the response's status line and headers."""
        assert isinstance(start_line, httputil.ResponseStartLine)
        return self._reply.start(start_line.code, start_line.reason, headers, chunk)

    def write(self, chunk: bytes) -> asyncio.Future[None]:
        """Relay a body chunk."""
        return self._reply.write(chunk)

    def finish(self) -> None:
        """End the reply."""
        self._reply.finish()

    def detach(self) -> Any:
        """A tunnelled request has no stream to take over (no nested WebSocket upgrades)."""
        raise NotImplementedError("a tunnelled request cannot be detached")

    def abort(self, error: BaseException) -> None:
        """The client went away: fail the handler's writes and tell it, once."""
        self._reply.close(error)
        callback, self._close_callback = self._close_callback, None
        if callback is not None:
            callback()


def build_request_headers(request: HttpRequest, upgrade: UpgradeContext) -> httputil.HTTPHeaders:
    """The headers of a tunnelled request: the client's own, then the tunnel's identity."""
    headers = httputil.HTTPHeaders()
    for name, value in request.headers:  # already stripped of credentials and framing
        headers.add(name, value)
    for name, value in upgrade.headers:
        headers[name] = value
    if (
        upgrade.xsrf_token
        and request.method in XSRF_METHODS
        and "X-Xsrftoken" not in headers
        and "X-Csrftoken" not in headers
    ):
        headers["X-XSRFToken"] = upgrade.xsrf_token
    if request.body or request.method in ("POST", "PUT", "PATCH"):
        headers["Content-Length"] = str(len(request.body))
    return headers


def request_uri(base_url: str, path: str) -> str:
    """Join a validated tunnel ``path`` (starting with ``/``) to the server's ``base_url``."""
    return base_url.rstrip("/") + path


class InProcessDispatcher:
    """Runs tunnelled requests through the server's own Tornado application."""

    def __init__(
        self,
        application: Application,
        server_connection: object,
        upgrade: UpgradeContext,
        chunk_size: int,
        framing: Framing = JSON,
    ) -> None:
        self._application = application
        self._server_connection = server_connection
        self._upgrade = upgrade
        self._chunk_size = chunk_size
        self.framing = framing

    def reply_stream(self, request: HttpRequest, send: SendFrame) -> ReplyStream:
        """A new reply stream for ``request``, with this tunnel's framing and chunk size."""
        return ReplyStream(request.message_id, send, self._chunk_size, self.framing)

    async def dispatch(self, request: HttpRequest, reply: ReplyStream) -> None:
        """Execute ``request`` and send its reply frames; returns after the final one.

        If the task running this is cancelled (the client went away, the server
        is stopping), the handler is told the connection closed.
        """
        context = _RequestContext(self._upgrade.remote_ip, self._upgrade.protocol)
        connection = _TunnelledConnection(context, reply)
        start_line = httputil.RequestStartLine(
            request.method, request_uri(self._upgrade.base_url, request.path), "HTTP/1.1"
        )
        headers = build_request_headers(request, self._upgrade)
        delegate = self._application.start_request(self._server_connection, connection)
        try:
            ready = delegate.headers_received(start_line, headers)
            if ready is not None:
                await ready
            if request.body:
                ready = delegate.data_received(request.body)
                if ready is not None:
                    await ready
            delegate.finish()
            await reply.run()
        except BaseException as error:
            connection.abort(error)
            raise
