"""Writing the tunnel's outgoing WebSocket frames straight to its socket's stream.

A tunnel's downloads are bound by the server's CPU, and most of it goes on writing
frames (docs/developers/performance.md, "Why about 0.55x is the floor"). Tornado's
``WebSocketHandler.write_message`` copies every message into a new frame (header plus
payload), then wraps the stream's write in a new task, once per 64 KiB frame. A
:class:`FrameWriter` writes the same bytes to the same stream without either: the
RFC 6455 header, then the payload as it is (Tornado's stream keeps a large write as a
view, not a copy), and resolves when the stream has flushed them, as
``write_message`` does.

This goes around Tornado's WebSocket protocol object, so it is used only where that
object is one this module knows to be equivalent: a server-side
``WebSocketProtocol13`` (no masking) without permessage-deflate. Anything else, and
every control frame (pings, close), stays with Tornado. The checks are in
:func:`writes_directly`; tests/test_frame_writer.py pins them on the Tornado versions
we support.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Awaitable

from tornado.iostream import IOStream, StreamClosedError
from tornado.websocket import WebSocketClosedError, WebSocketHandler, WebSocketProtocol13

__all__ = ["FrameWriter", "frame_header", "writes_directly"]

_FIN = 0x80
TEXT = 0x1
BINARY = 0x2

#: Below this many payload bytes, header and payload go to the stream as one write
#: (copying a small payload is cheaper than a second write, and a header alone would
#: leave in a TCP segment of its own on a socket with TCP_NODELAY).
JOIN_BELOW = 16 * 1024


def frame_header(opcode: int, length: int) -> bytes:
    """The header of an unmasked, final (FIN) data frame of ``length`` payload bytes.

    RFC 6455 section 5.2: a 7-bit length, or 126 and a 16-bit length, or 127 and a
    64-bit length, in network byte order. A server's frames are never masked.
    """
    if length < 0:
        raise ValueError(f"negative payload length: {length}")
    if length < 126:
        return struct.pack("!BB", _FIN | opcode, length)
    if length <= 0xFFFF:
        return struct.pack("!BBH", _FIN | opcode, 126, length)
    return struct.pack("!BBQ", _FIN | opcode, 127, length)


def writes_directly(handler: WebSocketHandler) -> bool:
    """Whether ``handler``'s open socket is one :class:`FrameWriter` writes to itself."""
    connection = handler.ws_connection
    return (
        type(connection) is WebSocketProtocol13
        and not connection.mask_outgoing
        and getattr(connection, "_compressor", None) is None
        and isinstance(getattr(connection, "stream", None), IOStream)
    )


def _retrieve(written: asyncio.Future[None]) -> None:
    """Mark a finished write's exception retrieved: the socket's close reports it."""
    if not written.cancelled():
        written.exception()


class FrameWriter:
    """Sends data frames on an open WebSocket; each resolves once it is flushed.

    :meth:`write` appends a frame to the stream at once; :meth:`__call__` (a
    :data:`~.replies.SendFrame`) also waits for its flush. Both raise
    :class:`~tornado.iostream.StreamClosedError` once the socket is closing or closed
    (``write_message`` raises ``WebSocketClosedError`` there; a closed stream is what
    the rest of the tunnel expects, as from an HTTP connection).
    """

    def __init__(self, handler: WebSocketHandler) -> None:
        self._handler = handler
        self.direct = writes_directly(handler)

    def write(self, payload: str | bytes, binary: bool) -> Awaitable[None]:
        """Append ``payload`` as one text or binary frame; the result resolves once flushed.

        Nothing needs to await the result: a failed flush is never logged as an
        unretrieved exception (Tornado's stream marks its write futures retrieved; the
        fallback's ``write_message`` task is marked here), and the socket's close is
        handled by its handler's ``on_close``. Text given as bytes is sent unchanged.
        """
        connection = self._handler.ws_connection
        if connection is None or connection.is_closing():
            raise StreamClosedError()
        if not self.direct:
            try:
                written = self._handler.write_message(payload, binary=binary)
            except WebSocketClosedError as e:
                raise StreamClosedError(real_error=e) from None
            written.add_done_callback(_retrieve)
            return written
        stream = connection.stream
        if stream is None:  # typed optional by Tornado; set for as long as the socket is open
            raise StreamClosedError()
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        header = frame_header(BINARY if binary else TEXT, len(payload))
        # Both writes happen before anything else can write to the stream: frames from
        # concurrent replies (and Tornado's pings) never interleave.
        if len(payload) < JOIN_BELOW:
            return stream.write(header + payload)
        stream.write(header)  # resolves with the payload's write, or fails with it
        return stream.write(payload)

    async def __call__(self, payload: str | bytes, binary: bool) -> None:
        """Send ``payload`` as one frame and wait until it is flushed."""
        try:
            await self.write(payload, binary)
        except WebSocketClosedError as e:  # from write_message's future (the fallback)
            raise StreamClosedError(real_error=e) from None
