"""The polling session's outgoing side: numbered envelopes, kept until acknowledged.

Everything a polling session sends its client goes through an :class:`OutgoingBuffer`:
numbered from 0, kept until the client acknowledges it (a lost answer is simply
sent again), and bounded in bytes, so a full buffer makes the sender wait: the same
backpressure a slow WebSocket reader exerts.
"""

from __future__ import annotations

import asyncio
from collections import deque


class BufferClosedError(ConnectionError):
    """The session ended: nothing more is sent."""


class OutgoingBuffer:
    """Server-to-client envelopes, numbered from 0, kept until acknowledged.

    ``limit`` bounds the bytes held: :meth:`put` waits while the buffer is full
    (one envelope larger than the limit is still accepted when the buffer is
    empty, so nothing can wait forever).
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._items: deque[bytes] = deque()
        self._first = 0  # the number of _items[0]
        self._bytes = 0
        self._closed = False
        self._space = asyncio.Event()
        self._data = asyncio.Event()

    @property
    def next_seq(self) -> int:
        """The number the next envelope will get."""
        return self._first + len(self._items)

    @property
    def buffered_bytes(self) -> int:
        """Bytes held, waiting for the client's acknowledgement."""
        return self._bytes

    @property
    def closed(self) -> bool:
        """Whether the buffer accepts no more envelopes."""
        return self._closed

    async def put(self, envelope: bytes) -> None:
        """Append one encoded envelope, waiting while the buffer is full."""
        while self._items and self._bytes + len(envelope) > self._limit and not self._closed:
            self._space.clear()
            await self._space.wait()
        self._append(envelope)

    def put_nowait(self, envelope: bytes) -> None:
        """Append a small control envelope at once, over the limit if need be.

        Only for the one ``closed`` envelope a channel sends as it ends, which must
        not wait (its task may be ending); at most one per channel.
        """
        self._append(envelope)

    def _append(self, envelope: bytes) -> None:
        if self._closed:
            raise BufferClosedError("the polling session is closed")
        self._items.append(envelope)
        self._bytes += len(envelope)
        self._data.set()

    def ack(self, since: int) -> None:
        """The client has every envelope numbered below ``since``: forget them."""
        freed = False
        while self._items and self._first < since:
            self._bytes -= len(self._items.popleft())
            self._first += 1
            freed = True
        if freed:
            self._space.set()

    def pending(self, since: int) -> tuple[int, list[bytes]]:
        """The envelopes from ``since`` on (or the oldest kept) and the first one's number."""
        start = max(since, self._first)
        return start, list(self._items)[start - self._first :]

    async def wait_beyond(self, since: int) -> None:
        """Wait until an envelope numbered ``since`` or more exists, or the buffer closes."""
        while self.next_seq <= since and not self._closed:
            self._data.clear()
            await self._data.wait()

    def close(self) -> None:
        """Accept nothing more; wake every waiter."""
        self._closed = True
        self._space.set()
        self._data.set()
