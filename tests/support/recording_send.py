"""A fake of a tunnel's ``send``: it records every frame, and can hold frames back.

The unit tests of the reply stream and the tunnel session give this to the code under
test in place of a WebSocket's ``write_message``; frames are decoded with the wire
parsers, so a test asserts what a client would read.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

from jupyter_http_over_ws.wire.framing import parse_binary_reply
from jupyter_http_over_ws.wire.protocol import ReplyFrame, parse_reply


def decode_frame(frame: bytes, binary: bool) -> ReplyFrame:
    """The reply frame a client reads from ``frame`` (a binary or a text frame)."""
    return parse_binary_reply(frame) if binary else parse_reply(frame)


class RecordingSend:
    """An async ``send(frame, binary)`` that records what was sent.

    With ``gated=True`` each call waits for one :meth:`release` before it returns,
    as a send waits for a slow client's socket; :attr:`entered` counts the calls
    made so far, :attr:`sent` holds the frames whose send has returned.
    """

    def __init__(self, *, gated: bool = False, fail: BaseException | None = None) -> None:
        self.sent: list[tuple[bytes, bool]] = []
        self.entered = 0
        self._permits: asyncio.Semaphore | None = asyncio.Semaphore(0) if gated else None
        self._fail = fail

    async def __call__(self, frame: bytes, binary: bool) -> None:
        self.entered += 1
        if self._fail is not None:
            raise self._fail
        if self._permits is not None:
            await self._permits.acquire()
        self.sent.append((bytes(frame), binary))

    def release(self, count: int = 1) -> None:
        """Let ``count`` more sends return."""
        assert self._permits is not None, "only a gated send waits"
        for _ in range(count):
            self._permits.release()

    @property
    def frames(self) -> list[ReplyFrame]:
        """The sent frames, decoded."""
        return [decode_frame(frame, binary) for frame, binary in self.sent]

    def of(self, message_id: Any) -> list[ReplyFrame]:
        """The decoded frames of one request."""
        return [frame for frame in self.frames if frame.message_id == message_id]

    def final_counts(self) -> Counter[Any]:
        """How many final (``done: true``) frames each ``message_id`` received."""
        return Counter(frame.message_id for frame in self.frames if frame.done)


async def until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    """Let the event loop run until ``condition()`` holds (fails after ``timeout`` s)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.001)


async def settle(turns: int = 10) -> None:
    """Let every ready callback run a few times over (no real time passes)."""
    for _ in range(turns):
        await asyncio.sleep(0)
