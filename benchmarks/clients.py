"""The benchmark's clients, all on aiohttp so that every path pays the same client costs.

* :class:`DirectClient`: plain HTTP/1.1 with keep-alive, ``connections`` sockets.
* :class:`RawTunnel`: a minimal client of the HTTP-over-WebSocket protocol (legacy
  framing: JSON text frames, body chunks in base64), speaking to our extension and to
  the original alike. Many requests in flight on one socket.
* :class:`KernelSocket`: a kernel channels WebSocket (legacy JSON messages, no
  subprotocol, which both notebook 6.5 and jupyter_server 2 accept), opened directly or
  through ``http_over_websocket/proxied_ws/``.
* :class:`CeilingSocket`: a download from ``ceiling_server.py`` (a bare Tornado
  WebSocket), read and decoded as :class:`RawTunnel` reads its frames.

Rate-limited reading (``rate`` in bytes per second) reads no faster than that, and lets
TCP flow control push back on the server, as a slow network would.
"""

from __future__ import annotations

import asyncio
import binascii
import itertools
import os
import socket
import struct
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

try:
    import orjson

    def dumps(obj: Any) -> bytes:
        return orjson.dumps(obj)

    loads = orjson.loads
except ImportError:  # pragma: no cover
    import json

    def dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()

    loads = json.loads

try:  # SIMD base64 (about 50x binascii's speed), so the client is not what limits.
    from pybase64 import b64decode as _b64decode

    def b64decode(data: bytes) -> bytes:
        return _b64decode(data, validate=True)

except ImportError:  # pragma: no cover
    b64decode = binascii.a2b_base64

try:  # aiohttp's C masking, to mask a large frame in the client's own copy (_write_masked)
    from aiohttp._websocket.helpers import websocket_mask as _mask_in_place
except ImportError:  # pragma: no cover
    _mask_in_place = None

READ_CHUNK = 64 * 1024
#: Tunnel messages at least this large are masked and written by :func:`_write_masked`.
LARGE_MESSAGE = 1024 * 1024
#: Whether WebSocket clients acknowledge every segment at once (``TCP_QUICKACK``), so that
#: a server writing small frames without ``TCP_NODELAY`` is not held up by Nagle's
#: algorithm waiting for our delayed ACK (40 ms on Linux). ``--no-quickack`` turns it off.
QUICK_ACK = True
_TCP_QUICKACK = getattr(socket, "TCP_QUICKACK", None)
TUNNEL_PATH = "/http_over_websocket"
_LENGTH = struct.Struct(">I")
PROXIED_WS_PATH = "/http_over_websocket/proxied_ws"


@dataclass
class Reply:
    """A response: status, headers, and the body (or only its length when not kept)."""

    status: int
    headers: dict[str, str]
    body: bytes = b""
    length: int = 0
    status_text: str = ""


class _Pacer:
    """Sleeps so that ``total`` bytes take at least ``total / rate`` seconds."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self.start = time.perf_counter()
        self.total = 0

    async def consumed(self, n: int) -> None:
        self.total += n
        if self.rate:
            delay = self.start + self.total / self.rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)


def _write_masked(ws: aiohttp.ClientWebSocketResponse, opcode: int, payload: bytearray) -> bool:
    """Write ``payload`` (at least 64 KiB) as one masked frame, masking it in place.

    aiohttp's ``send_frame`` masks a copy of the message and then joins that to the frame
    header: two full-size copies, about 0.04 s each for the 85 MiB of a 64 MiB upload on
    this machine (page faults, mostly), before the server sees its first byte. A browser
    masks once, into its own send buffer; so does this, into ``payload``, the client's
    copy of the message. The direct client pays neither. False (send it with
    ``send_frame``) when aiohttp's writer is not as expected.
    """
    writer = getattr(ws, "_writer", None)
    transport = getattr(writer, "transport", None)
    if _mask_in_place is None or transport is None or transport.is_closing():
        return False
    if getattr(writer, "compress", 0):  # compressed frames are written from an executor
        return False
    mask = os.urandom(4)
    _mask_in_place(mask, payload)
    transport.write(struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, len(payload)) + mask)
    transport.write(payload)
    return True


class _QuickAck:
    """Re-arms ``TCP_QUICKACK`` (Linux clears it after a while) after each message read."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, enabled: bool | None = None) -> None:
        wanted = QUICK_ACK if enabled is None else enabled
        self.sock = ws.get_extra_info("socket") if wanted and _TCP_QUICKACK else None

    def __call__(self) -> None:
        if self.sock is not None:
            try:
                self.sock.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)
            except OSError:
                self.sock = None


def _session(connections: int) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=connections, limit_per_host=connections)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=30),
        # A small read buffer, so that a paced reader pushes back on the server promptly.
        read_bufsize=READ_CHUNK,
    )


class DirectClient:
    """HTTP/1.1 with keep-alive to one server, at most ``connections`` sockets."""

    kind = "direct"

    def __init__(self, base_url: str, headers: dict[str, str], connections: int = 1) -> None:
        self.base_url = base_url
        self.headers = headers
        self.session = _session(connections)

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        keep_body: bool = True,
        rate: float | None = None,
        started: asyncio.Event | None = None,
    ) -> Reply:
        all_headers = dict(self.headers)
        all_headers.update(headers or {})
        async with self.session.request(
            method, self.base_url + path, data=body, headers=all_headers, allow_redirects=False
        ) as response:
            if started is not None:
                started.set()
            if keep_body and rate is None:
                data = await response.read()
                return Reply(
                    response.status, dict(response.headers), data, len(data), response.reason or ""
                )
            pacer = _Pacer(rate)
            async for chunk in response.content.iter_chunked(READ_CHUNK):
                await pacer.consumed(len(chunk))
            return Reply(
                response.status, dict(response.headers), b"", pacer.total, response.reason or ""
            )

    async def close(self) -> None:
        await self.session.close()


@dataclass
class _Pending:
    keep_body: bool
    pacer: _Pacer
    done: asyncio.Future[Reply]
    started: asyncio.Event | None
    status: int = 0
    status_text: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    parts: list[bytes] = field(default_factory=list)
    length: int = 0


class TunnelClosedError(ConnectionError):
    """The tunnel closed with requests pending."""


class RawTunnel:
    """One HTTP-over-WebSocket tunnel; replies routed by ``message_id``."""

    kind = "tunnel"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        ws: aiohttp.ClientWebSocketResponse,
        *,
        binary: bool = False,
    ) -> None:
        self.session = session
        self.ws = ws
        #: Binary framing (``framing=binary``, our extension only): raw bodies, no base64.
        self.binary = binary
        self._ids = itertools.count(1)
        self._pending: dict[Any, _Pending] = {}
        self._reader = asyncio.create_task(self._read_loop())

    @classmethod
    async def connect(
        cls,
        ws_base: str,
        headers: dict[str, str],
        params: dict[str, str] | None = None,
        *,
        binary: bool = False,
    ) -> RawTunnel:
        session = _session(1)
        params = dict(params or {})
        if binary:
            params["framing"] = "binary"
        try:
            ws = await session.ws_connect(
                ws_base + TUNNEL_PATH,
                headers=headers,
                params=params,
                max_msg_size=0,
                compress=0,
                autoping=True,
                decode_text=False,
            )
        except BaseException:
            await session.close()
            raise
        return cls(session, ws, binary=binary)

    async def _read_loop(self) -> None:
        error: BaseException = TunnelClosedError("tunnel closed")
        quick_ack = _QuickAck(self.ws)
        try:
            while True:
                message = await self.ws.receive()
                quick_ack()
                if message.type == aiohttp.WSMsgType.TEXT:
                    frame = loads(message.data)
                    data = frame.get("data")
                    chunk = b64decode(data) if data else b""
                elif message.type == aiohttp.WSMsgType.BINARY:
                    view = memoryview(message.data)
                    (length,) = _LENGTH.unpack_from(view)
                    frame = loads(view[4 : 4 + length])
                    chunk = view[4 + length :]
                else:
                    error = TunnelClosedError(f"tunnel closed: {message.type!r} {message.extra!r}")
                    break
                pending = self._pending.get(frame.get("message_id"))
                if pending is None:
                    continue  # e.g. the binary framing's hello frame
                if "status" in frame and not pending.status:
                    pending.status = frame["status"]
                    pending.status_text = frame.get("statusText", "")
                    pending.headers = frame.get("headers") or {}
                    if pending.started is not None:
                        pending.started.set()
                if chunk:
                    pending.length += len(chunk)
                    if pending.keep_body:
                        pending.parts.append(bytes(chunk))
                    await pending.pacer.consumed(len(chunk))
                if frame.get("done"):
                    del self._pending[frame["message_id"]]
                    if not pending.done.done():
                        pending.done.set_result(
                            Reply(
                                pending.status,
                                pending.headers,
                                b"".join(pending.parts),
                                pending.length,
                                pending.status_text,
                            )
                        )
        except Exception as e:
            error = e
        for pending in self._pending.values():
            if not pending.done.done():
                pending.done.set_exception(error)
        self._pending.clear()

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        keep_body: bool = True,
        rate: float | None = None,
        started: asyncio.Event | None = None,
    ) -> Reply:
        if self._reader.done():
            raise TunnelClosedError("tunnel closed")
        message_id = next(self._ids)
        message: dict[str, Any] = {"message_id": message_id, "method": method, "path": path}
        if headers:
            message["headers"] = headers
        done: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[message_id] = _Pending(keep_body, _Pacer(rate), done, started)
        if self.binary:
            header = dumps(message)
            raw = body.encode() if isinstance(body, str) else (body or b"")
            await self._send((_LENGTH.pack(len(header)), header, raw), aiohttp.WSMsgType.BINARY)
        else:
            if isinstance(body, str):
                message["body"] = body
            elif body:
                message["body_base64"] = binascii.b2a_base64(body, newline=False).decode()
            await self._send((dumps(message),), aiohttp.WSMsgType.TEXT)
        return await done

    async def _send(self, parts: tuple[bytes, ...], opcode: aiohttp.WSMsgType) -> None:
        """Send ``parts`` joined as one message; a large one with a single copy to mask."""
        if sum(map(len, parts)) >= LARGE_MESSAGE:
            payload = bytearray().join(parts)
            if _write_masked(self.ws, opcode, payload):
                return
            await self.ws.send_frame(bytes(payload), opcode)
            return
        await self.ws.send_frame(b"".join(parts), opcode)

    async def close(self) -> None:
        await self.ws.close()
        await asyncio.wait([self._reader], timeout=5)
        await self.session.close()


class CeilingSocket:
    """A WebSocket to ``ceiling_server.py`` (a bare Tornado WebSocket, no tunnel).

    The connection options, ``receive()``, the quick ACKs and the decoding of every frame
    (``loads`` and ``b64decode`` of a text frame, a ``memoryview`` of a binary one) are
    those of :meth:`RawTunnel._read_loop`, so the ceiling pays the same client costs.
    """

    def __init__(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.session = session
        self.ws = ws
        self._quick_ack = _QuickAck(ws)

    @classmethod
    async def connect(cls, ws_base: str, *, json_frames: bool) -> CeilingSocket:
        session = _session(1)
        try:
            ws = await session.ws_connect(
                ws_base + ("/ws/json" if json_frames else "/ws/binary"),
                max_msg_size=0,
                compress=0,
                autoping=True,
                decode_text=False,
            )
        except BaseException:
            await session.close()
            raise
        return cls(session, ws)

    async def download(self, size: int) -> int:
        """Ask for ``size`` bytes and read them up to the final frame; the bytes read."""
        pacer = _Pacer(None)
        length = 0
        await self.ws.send_frame(str(size).encode(), aiohttp.WSMsgType.TEXT)
        while True:
            message = await self.ws.receive()
            self._quick_ack()
            if message.type == aiohttp.WSMsgType.TEXT:
                frame = loads(message.data)
                data = frame.get("data")
                chunk = b64decode(data) if data else b""
            elif message.type == aiohttp.WSMsgType.BINARY:
                frame = {}
                chunk = memoryview(message.data)
            else:
                raise TunnelClosedError(f"closed: {message.type!r} {message.extra!r}")
            if chunk:
                length += len(chunk)
                await pacer.consumed(len(chunk))
            if frame.get("done"):
                return length

    async def close(self) -> None:
        await self.ws.close()
        await self.session.close()


# --------------------------------------------------------------------------- kernels


def kernel_message(msg_type: str, content: dict[str, Any], session: str) -> dict[str, Any]:
    """A kernel protocol message in the legacy JSON WebSocket format."""
    return {
        "header": {
            "msg_id": uuid.uuid4().hex,
            "msg_type": msg_type,
            "username": "bench",
            "session": session,
            "date": "",
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "content": content,
        "channel": "shell",
        "buffers": [],
    }


class KernelSocket:
    """A kernel's channels WebSocket; ``on_message`` sees every decoded message.

    ``quick_ack``: whether this socket ACKs every segment at once (``TCP_QUICKACK``) or
    delays its ACKs as clients usually do; ``None`` follows :data:`QUICK_ACK`.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        ws: aiohttp.ClientWebSocketResponse,
        session_id: str,
        quick_ack: bool | None = None,
    ) -> None:
        self.session = session
        self.ws = ws
        self.session_id = session_id
        self.quick_ack = quick_ack
        self.on_message: Callable[[dict[str, Any]], None] | None = None
        #: Bytes per second this socket reads at most (``None``: as fast as they come);
        #: a slower reader leaves the rest in the server's buffers, as a slow client does.
        self.read_rate: float | None = None
        self._reader = asyncio.create_task(self._read_loop())

    @classmethod
    async def connect(
        cls,
        ws_base: str,
        kernel_id: str,
        headers: dict[str, str],
        *,
        proxied: bool,
        quick_ack: bool | None = None,
    ) -> KernelSocket:
        session_id = uuid.uuid4().hex
        path = f"/api/kernels/{kernel_id}/channels"
        url = ws_base + (PROXIED_WS_PATH + path if proxied else path)
        session = _session(1)
        try:
            ws = await session.ws_connect(
                url,
                headers=headers,
                params={"session_id": session_id},
                max_msg_size=0,
                compress=0,
                decode_text=False,
            )
        except BaseException:
            await session.close()
            raise
        return cls(session, ws, session_id, quick_ack)

    async def _read_loop(self) -> None:
        quick_ack = _QuickAck(self.ws, self.quick_ack)
        loop = asyncio.get_running_loop()
        paced_since: float | None = None
        paced_bytes = 0
        while True:
            message = await self.ws.receive()
            quick_ack()
            if message.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                return
            if self.read_rate is not None:
                now = loop.time()
                if paced_since is None:
                    paced_since = now
                paced_bytes += len(message.data)
                await asyncio.sleep(max(0.0, paced_since + paced_bytes / self.read_rate - now))
            if message.type == aiohttp.WSMsgType.BINARY:
                continue  # legacy binary messages carry buffers; none are sent here
            if self.on_message is not None:
                self.on_message(loads(message.data))

    def message(self, msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
        """A new message of this socket's session (its id is ``["header"]["msg_id"]``)."""
        return kernel_message(msg_type, content, self.session_id)

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send_frame(dumps(message), aiohttp.WSMsgType.TEXT)

    async def close(self) -> None:
        await self.ws.close()
        await asyncio.wait([self._reader], timeout=5)
        await self.session.close()
