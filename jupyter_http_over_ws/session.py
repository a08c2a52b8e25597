"""One client's tunnel, whatever its transport: in-flight requests, limits, cancellation.

A transport (the WebSocket handler today) feeds every client text frame to
:meth:`TunnelSession.receive` and gives the session a ``send`` coroutine for
reply frames. Each valid request runs in its own task, so one slow or large
response never holds up the others (no head-of-line blocking), and every
request ends with exactly one ``done: true`` frame, whatever happens to it.

Memory stays bounded for a client that sends without reading its replies. A
request's reply holds at most one frame's worth at a time (the reply stream's
backpressure), and requests are bounded by ``max_in_flight``. The replies that are
not a request's own (a refused message's error, a cancel's 499) wait in one queue,
sent in order by one task, bounded by :data:`MAX_PENDING_REPLY_BYTES`: while it is
over that, :meth:`TunnelSession.wait_for_room` waits, and the transport takes no
next message from the client until it returns (the WebSocket handler stops reading
its socket; a polling send is acknowledged only as far as it was taken).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from tornado.iostream import StreamClosedError

from .replies import ReplyStream, SendFrame
from .wire.framing import Framing
from .wire.protocol import (
    UNCAUGHT_ERROR,
    Cancel,
    HttpRequest,
    PathPolicy,
    ProtocolError,
    encode_error,
)

#: The reason phrase of the final frame of requests cut short by a server shutdown.
SHUTDOWN_TEXT = "Server shutting down."
#: The status and reason of a request the client cancelled before its response began
#: (nginx's "client closed request").
CANCELLED_STATUS = 499
CANCELLED_TEXT = "Request cancelled by the client."
#: Seconds a stopping server gives a session's final frames (see :meth:`TunnelSession.shutdown`).
SHUTDOWN_GRACE = 5.0
#: The most bytes of error and cancel replies one session holds unsent before it takes
#: no next message (at least one reply is always held, whatever its size).
MAX_PENDING_REPLY_BYTES = 256 * 1024


@dataclass(frozen=True)
class SessionLimits:
    """The limits every tunnel session enforces (from the extension's traitlets).

    ``max_in_flight`` and ``max_body_size`` of 0 mean no limit.
    """

    max_in_flight: int = 0
    max_body_size: int = 0
    path_policy: PathPolicy = field(default_factory=PathPolicy)


class RequestDispatcher(Protocol):
    """What a session needs from the part that executes its requests.

    :class:`~.dispatch.InProcessDispatcher` is the implementation; unit tests use fakes.
    """

    #: How the tunnel's frames are laid out: parses client frames, encodes replies.
    framing: Framing
    #: The most body bytes one reply frame carries.
    chunk_size: int

    async def dispatch(self, request: HttpRequest, reply: ReplyStream) -> None:
        """Execute ``request``, writing its response to ``reply``; return after its end."""


class TunnelSession:
    """The requests of one tunnel client and the rules they run under."""

    def __init__(
        self,
        dispatcher: RequestDispatcher,
        send: SendFrame,
        *,
        limits: SessionLimits,
        log: logging.Logger,
    ) -> None:
        self._dispatcher = dispatcher
        self._send = send
        self._limits = limits
        self._log = log
        self._last_activity = time.monotonic()
        self._in_flight: dict[asyncio.Task[None], ReplyStream] = {}
        self._by_id: dict[Any, asyncio.Task[None]] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._closed = False
        # Error and cancel replies, sent in order by one task; their bytes, once queued
        # and until sent, count against MAX_PENDING_REPLY_BYTES.
        self._pending: deque[tuple[bytes, bool]] = deque()
        self._pending_bytes = 0
        self._sender: asyncio.Task[None] | None = None
        self._room = asyncio.Event()
        self._room.set()

    @property
    def in_flight(self) -> int:
        """How many requests are running."""
        return len(self._in_flight)

    def idle_seconds(self) -> float:
        """Seconds since the last message or reply; 0 while a request is running."""
        if self._in_flight:
            return 0.0
        return time.monotonic() - self._last_activity

    @property
    def has_room(self) -> bool:
        """Whether the session takes a next message (its unsent error replies are under bound)."""
        return self._room.is_set()

    async def wait_for_room(self) -> None:
        """Wait until the session may take a next message, or has closed.

        A transport awaits this between two client messages: a client that does not
        read its replies is then no longer read from either (backpressure), instead of
        piling up error replies in the server's memory.
        """
        await self._room.wait()

    def receive(self, message: str | bytes) -> None:
        """Handle one client frame: start its request, or answer the error it causes.

        It always takes the message; call :meth:`wait_for_room` before the next one.
        """
        if self._closed:
            return
        self._last_activity = time.monotonic()
        try:
            request = self._dispatcher.framing.parse_message(message)
            if isinstance(request, Cancel):
                self._cancel(request.message_id)
                return
            self._check_limits(request)
        except ProtocolError as error:
            self._log.info("http_over_websocket: refused message: %s %s", error.status, error)
            self._queue_reply(encode_error(error), False)
            return
        reply = self._reply_stream(request)
        task = asyncio.create_task(self._run(request, reply))
        self._in_flight[task] = reply
        self._by_id[request.message_id] = task
        task.add_done_callback(self._forget)

    def _reply_stream(self, request: HttpRequest) -> ReplyStream:
        """A new reply stream for ``request``, with this tunnel's framing and chunk size."""
        chunk_size, framing = self._dispatcher.chunk_size, self._dispatcher.framing
        return ReplyStream(request.message_id, self._send, chunk_size, framing)

    def _check_limits(self, request: HttpRequest) -> None:
        limits = self._limits
        limits.path_policy.check(request.path, request.message_id)
        if limits.max_body_size and len(request.body) > limits.max_body_size:
            raise ProtocolError(
                413,
                f"Request body larger than {limits.max_body_size} bytes",
                request.message_id,
            )
        if limits.max_in_flight and len(self._in_flight) >= limits.max_in_flight:
            raise ProtocolError(
                429,
                f"Too many requests in flight on this socket (limit {limits.max_in_flight})",
                request.message_id,
            )

    def _cancel(self, message_id: Any) -> None:
        """Stop an in-flight request; it still gets its final frame (499 if not started)."""
        task = self._by_id.get(message_id)
        if task is None or task.done():
            return  # already complete: its final frame is on its way
        reply = self._in_flight[task]
        task.cancel()
        # Claimed now, sent in the background: a shutdown right after cannot replace it.
        ending = reply.claim_end(CANCELLED_STATUS, CANCELLED_TEXT)
        if ending is not None:
            self._queue_reply(*ending)

    def _queue_reply(self, frame: bytes, binary: bool) -> None:
        """Queue a reply that is no request's own; one task sends the queue in order."""
        self._pending.append((frame, binary))
        self._pending_bytes += len(frame)
        if self._pending_bytes > MAX_PENDING_REPLY_BYTES:
            self._room.clear()
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_pending())
            self._background.add(self._sender)

    async def _send_pending(self) -> None:
        try:
            while self._pending:
                frame, binary = self._pending[0]
                await self._send_quietly(frame, binary)
                if self._closed and not self._pending:
                    return  # close() dropped the queue meanwhile
                self._pending.popleft()
                self._pending_bytes -= len(frame)
                if self._pending_bytes <= MAX_PENDING_REPLY_BYTES:
                    self._room.set()
        finally:
            if self._sender is asyncio.current_task():
                self._background.discard(self._sender)
                self._sender = None

    async def _run(self, request: HttpRequest, reply: ReplyStream) -> None:
        try:
            await self._dispatcher.dispatch(request, reply)
        except asyncio.CancelledError:
            raise
        except StreamClosedError:
            # The client went away mid-reply (its socket closed under the reply): nothing
            # failed inside the tunnel, and nobody is left to tell.
            self._log.debug("http_over_websocket: %s reply cut short: client gone", request.method)
        except Exception:
            self._log.exception(
                "http_over_websocket: %s request failed inside the tunnel", request.method
            )
            await self._end_reply(reply, 500, UNCAUGHT_ERROR)

    async def _end_reply(self, reply: ReplyStream, status: int, text: str) -> None:
        """End a request that could not complete normally; the reply picks its final frame."""
        try:
            await reply.end_early(status, text)
        except Exception:  # the socket closed under us: nobody left to tell
            self._log.debug("http_over_websocket: reply dropped, the socket is closed")

    async def _send_quietly(self, frame: bytes, binary: bool = False) -> None:
        try:
            await self._send(frame, binary)
        except Exception:  # the socket closed under us: nobody left to tell
            self._log.debug("http_over_websocket: reply dropped, the socket is closed")

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._last_activity = time.monotonic()
        reply = self._in_flight.pop(task, None)
        if reply is not None and self._by_id.get(reply.message_id) is task:
            del self._by_id[reply.message_id]
        if not task.cancelled() and task.exception() is not None:
            self._log.error("http_over_websocket: request task failed: %r", task.exception())

    def close(self) -> None:
        """The client is gone: cancel every request (their handlers see a closed connection)."""
        self._closed = True
        self._pending.clear()
        self._pending_bytes = 0
        self._room.set()  # a transport waiting for room goes on, and finds the session closed
        for task in list(self._in_flight) + list(self._background):
            task.cancel()

    async def shutdown(self, grace: float = SHUTDOWN_GRACE) -> None:
        """The server is stopping: end every request with a final frame, then cancel it.

        The final frames get ``grace`` seconds in all: a client that does not read
        them cannot hold the server's shutdown up (what is left unsent is dropped).
        """
        self._closed = True
        self._room.set()
        replies = list(self._in_flight.items())
        for task, _ in replies:
            task.cancel()
        endings = asyncio.gather(
            *(self._end_reply(reply, 503, SHUTDOWN_TEXT) for _, reply in replies)
        )
        try:
            await asyncio.wait_for(endings, grace)
        except asyncio.TimeoutError:
            self._log.info(
                "http_over_websocket: final frames not taken by the client in %s s; dropped",
                grace,
            )
        await asyncio.gather(*(task for task, _ in replies), return_exceptions=True)
