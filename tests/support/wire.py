"""A raw WebSocket client over asyncio streams, for tests that must send what no
well-behaved client library would: arbitrary bytes in the request target, huge or
malformed upgrade headers, and frames of any type.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from dataclasses import dataclass

TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA


@dataclass
class RawUpgrade:
    """The server's answer to a hand-written upgrade request."""

    status: int | None  # None: the server closed the connection without a status line
    head: bytes
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def close(self) -> None:
        """Drop the connection."""
        self.writer.close()

    async def send(self, payload: bytes, opcode: int = TEXT) -> None:
        """Send one masked frame, as a client must."""
        self.writer.write(encode_frame(payload, opcode))
        await self.writer.drain()

    async def recv(self, timeout: float = 10.0) -> tuple[int, bytes]:
        """The next frame from the server: ``(opcode, payload)``; pings are skipped."""
        while True:
            opcode, payload = await asyncio.wait_for(read_frame(self.reader), timeout)
            if opcode != PING:
                return opcode, payload

    async def recv_close(self, timeout: float = 10.0) -> int | None:
        """Read until the server's close frame; returns its code (``None`` if none given)."""
        while True:
            try:
                opcode, payload = await self.recv(timeout)
            except asyncio.IncompleteReadError:
                return None
            if opcode == CLOSE:
                return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None


def encode_frame(payload: bytes, opcode: int = TEXT) -> bytes:
    """One final, masked WebSocket frame."""
    mask = os.urandom(4)
    head = bytes([0x80 | opcode])
    length = len(payload)
    if length < 126:
        head += bytes([0x80 | length])
    elif length < 1 << 16:
        head += bytes([0x80 | 126]) + struct.pack("!H", length)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", length)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One unmasked frame from the server (fragmented messages are not expected)."""
    first, second = await reader.readexactly(2)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", await reader.readexactly(8))
    return first & 0x0F, await reader.readexactly(length)


async def raw_upgrade(
    port: int,
    target: bytes,
    headers: list[tuple[bytes, bytes]] = (),  # type: ignore[assignment]
    *,
    timeout: float = 10.0,
) -> RawUpgrade:
    """Send an upgrade request for ``target`` (sent as is) and read the response head."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    key = base64.b64encode(os.urandom(16))
    lines = [
        b"GET " + target + b" HTTP/1.1",
        b"Host: localhost:" + str(port).encode(),
        b"Upgrade: websocket",
        b"Connection: Upgrade",
        b"Sec-WebSocket-Key: " + key,
        b"Sec-WebSocket-Version: 13",
        *(name + b": " + value for name, value in headers),
    ]
    try:
        writer.write(b"\r\n".join(lines) + b"\r\n\r\n")
        await asyncio.wait_for(writer.drain(), timeout)
    except (ConnectionError, asyncio.TimeoutError):
        pass  # the server may hang up before it has read everything: read its answer
    head = b""
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    except asyncio.IncompleteReadError as e:
        head = e.partial
    except ConnectionError:
        pass
    except asyncio.TimeoutError:
        writer.close()
        raise
    status = None
    if head.startswith(b"HTTP/1.1 "):
        status = int(head[9:12])
    return RawUpgrade(status, head, reader, writer)
