"""Streaming one tunnelled request's response back as reply frames.

A :class:`ReplyStream` turns what a handler writes (status line and headers, body
chunks, end) into reply frames of at most ``chunk_size`` body bytes, encoded by the
tunnel's :class:`~.wire.framing.Framing`. It applies backpressure: a write's future
resolves only once the bytes have been sent, past one frame's worth of buffering.

It also owns the rule "exactly one final (``done: true``) frame per request": either
:meth:`ReplyStream.run` sends it with the end of the response, or
:meth:`ReplyStream.end_early` sends it when the request is cut short (cancel,
shutdown, failure), and never both.

A :class:`BoundedSend` holds a socket's write buffer to a byte budget across all the
requests (and error replies) that write to it at once.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from tornado import httputil
from tornado.iostream import StreamClosedError

from .wire.framing import JSON, Framing
from .wire.protocol import ProtocolError, encode_error

__all__ = ["BoundedSend", "ReplyStream", "SendFrame"]

#: Sends one frame to the client (text if the flag is false, binary if true);
#: resolves once it is written to the socket.
SendFrame = Callable[[bytes, bool], Awaitable[None]]


class BoundedSend:
    """A :data:`SendFrame` that keeps at most ``budget`` bytes written but not yet flushed.

    Tornado's ``write_message`` appends a frame to the socket's write buffer at once and
    resolves when it has been flushed to the socket. Each reply waits for its frame's
    flush before it sends the next, but many replies at once (``max_requests_in_flight``
    of them) to a client that does not read would still fill the buffer without bound.
    Past the budget, a frame waits its turn (first come, first served) before it is
    written; one frame is always let through, however large.
    """

    def __init__(self, write: SendFrame, budget: int) -> None:
        self._write = write
        self._budget = budget
        self._unflushed = 0  # bytes written (or let through) and not yet flushed
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    @property
    def unflushed(self) -> int:
        """Bytes written to the socket and not yet flushed."""
        return self._unflushed

    async def __call__(self, frame: bytes, binary: bool) -> None:
        """Write ``frame`` once it fits the budget; resolve once it is flushed."""
        size = len(frame)
        if self._waiting or not self._fits(size):
            turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiting.append((size, turn))
            try:
                await turn
            except asyncio.CancelledError:
                if turn.done() and not turn.cancelled():  # its turn came: pass it on
                    self._unflushed -= size
                    self._let_through()
                raise
        else:
            self._unflushed += size
        try:
            await self._write(frame, binary)
        finally:
            self._unflushed -= size
            self._let_through()

    def _fits(self, size: int) -> bool:
        return self._unflushed == 0 or self._unflushed + size <= self._budget

    def _let_through(self) -> None:
        """Give the turn to waiting frames, in order, as far as the budget allows."""
        while self._waiting:
            size, turn = self._waiting[0]
            if turn.done():  # its sender was cancelled while it waited
                self._waiting.popleft()
                continue
            if not self._fits(size):
                return
            self._waiting.popleft()
            self._unflushed += size
            turn.set_result(None)


class ReplyStream:
    """Turns one handler's response into reply frames, with backpressure.

    Tornado calls :meth:`start`, :meth:`write` and :meth:`finish` (through the
    dispatcher's connection); :meth:`run` sends the frames. Writes made in the same
    event-loop turn are coalesced, so a small response (headers, body and end
    written by one ``finish()``) is a single frame, as in the original.
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
        self._done_sent = False  # the final frame went out, or end_early took over
        self._closed: BaseException | None = None
        self._wakeup = asyncio.Event()

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

    def claim_end(self, status: int, text: str) -> tuple[bytes, bool] | None:
        """Take over the final frame of a reply cut short (cancel, shutdown, failure).

        Returns the frame to send and whether it is binary, or ``None`` if the final
        frame has already gone out or been claimed: the first claim wins, at once, so
        a cancel followed by a shutdown ends the reply with the cancel's status
        whichever send runs first. The stream stops (pending and later writes fail
        with ``StreamClosedError``). The frame is a bare ``done: true`` frame if the
        status line is already on the wire, else an error frame with ``status`` and
        ``text`` (a JSON text frame, whatever the framing).
        """
        if self._done_sent:
            return None
        self._done_sent = True
        self.close(StreamClosedError())
        if self._head_sent:
            # The status is already on the wire; all that is left to say is "no more data".
            return self._framing.encode_reply(self.message_id, done=True), self._framing.binary
        return encode_error(ProtocolError(status, text, self.message_id)), False

    async def end_early(self, status: int, text: str) -> None:
        """Claim the final frame (:meth:`claim_end`) and send it, if it was still to send.

        Errors of ``send`` propagate: the caller decides what a closed socket means.
        """
        ending = self.claim_end(status, text)
        if ending is not None:
            await self._send(*ending)

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
