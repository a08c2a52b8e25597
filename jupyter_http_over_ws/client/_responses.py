"""What a tunnelled request returns: a whole :class:`Response`, or a :class:`StreamingResponse`."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..wire.protocol import ReplyFrame


@dataclass
class Response:
    """A complete tunnelled HTTP response."""

    status: int
    reason: str
    headers: dict[str, str]
    body: bytes = b""

    @property
    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.body.decode("utf-8")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


@dataclass
class StreamingResponse:
    """A tunnelled response whose body is read chunk by chunk (``async for chunk in it``)."""

    message_id: Any
    status: int
    reason: str
    headers: dict[str, str]
    _frames: asyncio.Queue[ReplyFrame | BaseException] = field(repr=False)
    _first_data: bytes | None = field(default=None, repr=False)
    _done: bool = field(default=False, repr=False)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        if self._first_data:
            data, self._first_data = self._first_data, None
            yield data
        while not self._done:
            frame = await self._frames.get()
            if isinstance(frame, BaseException):
                raise frame
            self._done = frame.done
            if frame.data:
                yield frame.data

    @property
    def done(self) -> bool:
        """Whether the final frame has been read."""
        return self._done

    async def read(self) -> bytes:
        """The rest of the body."""
        return b"".join([chunk async for chunk in self])


class _StreamContext:
    """``async with tunnel.stream(...) as response``: starts the request, cancels it if left early.

    ``start`` sends the request and returns its response once the first frame is in;
    ``cancel(message_id)`` asks the server to stop it.
    """

    def __init__(
        self,
        start: Callable[[], Awaitable[StreamingResponse]],
        cancel: Callable[[Any], None],
    ) -> None:
        self._start = start
        self._cancel = cancel
        self._response: StreamingResponse | None = None

    async def __aenter__(self) -> StreamingResponse:
        self._response = await self._start()
        return self._response

    async def __aexit__(self, *exc: object) -> None:
        # Leaving early (an error, or a reader that has seen enough) cancels the request
        # on the server, so it stops producing data nobody reads.
        response = self._response
        if response is not None and not response.done:
            self._cancel(response.message_id)
            with contextlib.suppress(Exception):
                await response.read()
