"""One client's tunnel, whatever its transport: in-flight requests, limits, cancellation.

A transport (the WebSocket handler today) feeds every client text frame to
:meth:`TunnelSession.receive` and gives the session a ``send`` coroutine for
reply frames. Each valid request runs in its own task, so one slow or large
response never holds up the others (no head-of-line blocking), and every
request ends with exactly one ``done: true`` frame, whatever happens to it.
"""

from __future__ import annotations

import asyncio
import logging
import time
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

    @property
    def in_flight(self) -> int:
        """How many requests are running."""
        return len(self._in_flight)

    def idle_seconds(self) -> float:
        """Seconds since the last message or reply; 0 while a request is running."""
        if self._in_flight:
            return 0.0
        return time.monotonic() - self._last_activity

    def receive(self, message: str | bytes) -> None:
        """Handle one client frame: start its request, or answer the error it causes."""
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
            self._spawn(self._send_quietly(encode_error(error)))
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
            self._spawn(self._send_quietly(*ending))

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

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

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
        for task in list(self._in_flight) + list(self._background):
            task.cancel()

    async def shutdown(self) -> None:
        """The server is stopping: end every request with a final frame, then cancel it."""
        self._closed = True
        replies = list(self._in_flight.items())
        for task, _ in replies:
            task.cancel()
        for _, reply in replies:
            await self._end_reply(reply, 503, SHUTDOWN_TEXT)
        await asyncio.gather(*(task for task, _ in replies), return_exceptions=True)
