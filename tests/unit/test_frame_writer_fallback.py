"""FrameWriter's fallback (Tornado's ``write_message``): an unawaited failed write is quiet.

The proxied socket forwards the upstream's frames without awaiting each write; where
the writer falls back to ``write_message`` (a protocol object it was not written for),
a write that fails because the socket went away must not be reported as "Future
exception was never retrieved": the socket's close is handled by ``on_close``. A
stand-in handler gives ``write_message``'s future (asyncio core only; the real fallback
path is covered in tests/test_frame_writer.py).
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest
from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError

from jupyter_http_over_ws.frame_writer import FrameWriter


class Connection:
    """A WebSocket protocol object FrameWriter does not write to itself."""

    def is_closing(self) -> bool:
        return False


class Handler:
    """What FrameWriter uses of a WebSocketHandler, on its fallback path."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.ws_connection = Connection()
        self.written: list[tuple[Any, bool]] = []
        self.futures: list[asyncio.Future[None]] = []
        self.loop = loop

    def write_message(self, payload: Any, binary: bool = False) -> asyncio.Future[None]:
        self.written.append((payload, binary))
        future: asyncio.Future[None] = self.loop.create_future()
        self.futures.append(future)
        return future


async def test_an_unawaited_failed_write_is_not_reported_as_never_retrieved():
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        handler = Handler(loop)
        writer = FrameWriter(handler)  # type: ignore[arg-type]
        assert not writer.direct
        writer.write(b"\x00\x01", binary=True)
        handler.futures.pop().set_exception(WebSocketClosedError())
        await asyncio.sleep(0)  # the done callbacks run
        gc.collect()
        assert handler.written == [(b"\x00\x01", True)]
        assert reported == []

        # The control: the same future without the writer is reported.
        unwatched: asyncio.Future[None] = loop.create_future()
        unwatched.set_exception(WebSocketClosedError())
        del unwatched
        gc.collect()
        assert [c["message"] for c in reported] == ["Future exception was never retrieved"]
    finally:
        loop.set_exception_handler(previous)


async def test_an_awaited_failed_write_still_fails_for_its_awaiter():
    handler = Handler(asyncio.get_running_loop())
    writer = FrameWriter(handler)  # type: ignore[arg-type]
    sending = asyncio.ensure_future(writer("text", binary=False))
    await asyncio.sleep(0)
    handler.futures.pop().set_exception(WebSocketClosedError())
    with pytest.raises((StreamClosedError, WebSocketClosedError)):
        await sending
