"""A small HTTP/1.1 client that keeps connections alive, for the polling transport.

Tornado's own client opens a new connection for every request. A polling client
makes two requests per round trip, so a fresh TCP (and TLS) handshake each time
would cost more than the request itself, especially through a remote proxy. This
client keeps one idle connection per direction of traffic (a ``send`` and a
``recv`` may run at once) and reuses it; it speaks only what the polling transport
needs: a body given whole, an answer read whole (``Content-Length``, chunked, or up
to the close). Cancelling a request closes its connection, which is what the server
sees when a client drops a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

#: The longest status line or header line accepted, and the most header lines.
MAX_LINE = 64 * 1024
MAX_HEADERS = 200


@dataclass
class HttpResponse:
    """A complete answer."""

    code: int
    reason: str
    headers: dict[str, str] = field(default_factory=dict)  # names in lower case
    body: bytes = b""


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def close(self) -> None:
        self.writer.close()


class KeepAliveClient:
    """Requests to one server over reused HTTP/1.1 connections."""

    def __init__(self, max_idle: int = 4, ssl_context: ssl.SSLContext | None = None) -> None:
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._max_idle = max_idle
        self._ssl = ssl_context
        self._busy: set[_Connection] = set()
        self._closed = False

    async def fetch(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        timeout: float = 60.0,
        connect_timeout: float = 20.0,
    ) -> HttpResponse:
        """Send one request and read its whole answer (any status).

        Raises ``OSError`` (or ``asyncio.TimeoutError``) when the exchange fails.
        A request sent on a reused connection that the server had closed meanwhile
        is sent once more on a new one (the polling transport's requests may repeat).
        """
        parts = urlsplit(url)
        secure = parts.scheme in ("https", "wss")
        host = parts.hostname or "localhost"
        port = parts.port or (443 if secure else 80)
        key = (parts.scheme, host, port)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        request = self._encode(method, target, parts.netloc, body, headers)
        while True:
            connection, reused = self._take_idle(key), True
            if connection is None:
                reused = False
                connection = await self._connect(host, port, secure, connect_timeout)
            self._busy.add(connection)
            keep = False
            try:
                response, keep = await asyncio.wait_for(
                    self._exchange(connection, request, method), timeout
                )
            except (OSError, asyncio.IncompleteReadError, EOFError) as error:
                if reused and not isinstance(error, TimeoutError):
                    continue  # a stale pooled connection: once more on a fresh one
                raise OSError(f"HTTP request failed: {error!r}") from error
            finally:
                self._busy.discard(connection)
                if keep and not self._closed:
                    self._give_back(key, connection)
                else:
                    connection.close()
            return response

    @staticmethod
    def _encode(
        method: str,
        target: str,
        host: str,
        body: bytes | None,
        headers: Mapping[str, str] | None,
    ) -> bytes:
        lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
        for name, value in (headers or {}).items():
            if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
                raise ValueError(f"header {name!r} contains a line break")
            lines.append(f"{name}: {value}")
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body or b'')}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head + (body or b"")

    def _take_idle(self, key: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(key)
        while idle:
            connection = idle.pop()
            if not connection.reader.at_eof() and not connection.writer.is_closing():
                return connection
            connection.close()
        return None

    def _give_back(self, key: tuple[str, str, int], connection: _Connection) -> None:
        idle = self._idle.setdefault(key, [])
        if len(idle) < self._max_idle:
            idle.append(connection)
        else:
            connection.close()

    async def _connect(self, host: str, port: int, secure: bool, timeout: float) -> _Connection:
        context = None
        if secure:
            context = self._ssl or ssl.create_default_context()
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=context, limit=MAX_LINE), timeout
        )
        with contextlib.suppress(OSError, AttributeError):
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _Connection(reader, writer)

    async def _exchange(
        self, connection: _Connection, request: bytes, method: str
    ) -> tuple[HttpResponse, bool]:
        connection.writer.write(request)
        await connection.writer.drain()
        reader = connection.reader
        status_line = (await reader.readuntil(b"\r\n")).decode("latin-1").rstrip("\r\n")
        if not status_line:
            raise EOFError("the server closed the connection")
        version, _, rest = status_line.partition(" ")
        code_text, _, reason = rest.partition(" ")
        code = int(code_text)
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADERS):
            line = (await reader.readuntil(b"\r\n")).decode("latin-1").rstrip("\r\n")
            if not line:
                break
            name, _, value = line.partition(":")
            name = name.strip().lower()
            value = value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        else:
            raise OSError("too many header lines")
        connection_tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
        keep = version == "HTTP/1.1" and "close" not in connection_tokens
        if method == "HEAD" or code in (204, 304) or 100 <= code < 200:
            body = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body = await self._read_chunked(reader)
        elif "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        else:
            body = await reader.read()  # up to the close
            keep = False
        return HttpResponse(code, reason, headers, body), keep

    @staticmethod
    async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
        chunks: list[bytes] = []
        while True:
            size_line = (await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip()
            size = int(size_line, 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                    pass
                return b"".join(chunks)
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)

    def close(self) -> None:
        """Close every connection, idle or busy."""
        self._closed = True
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()
        for connection in list(self._busy):
            connection.close()
