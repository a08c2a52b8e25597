"""The tunnel client: many requests in flight on one socket, replies routed by ``message_id``."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from tornado.websocket import WebSocketClientConnection

from ..framing import FRAMING_HEADER, encode_binary_request, parse_binary_reply, parse_hello
from ..protocol import ReplyFrame, dumps, encode_request, parse_reply
from ._connect import DEFAULT_MAX_MESSAGE_SIZE, Endpoint


class TunnelClosedError(ConnectionError):
    """The tunnel socket closed before a reply was complete."""


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


class TunnelClient:
    """One tunnel socket to a Jupyter server running the extension."""

    def __init__(self, endpoint: Endpoint, connection: WebSocketClientConnection) -> None:
        self.endpoint = endpoint
        self._connection = connection
        #: The framing requests go out in: ``"json"`` (every server) or ``"binary"``
        #: once the server has confirmed it (see :mod:`jupyter_http_over_ws.framing`).
        self.framing = "json"
        if connection.headers is not None and connection.headers.get(FRAMING_HEADER) == "binary":
            self.framing = "binary"
        self._ids = itertools.count(1)
        self._pending: dict[Any, asyncio.Queue[ReplyFrame | BaseException]] = {}
        #: Reply frames that named no pending request (e.g. ``JSON input is required.``).
        self.unmatched: asyncio.Queue[ReplyFrame] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read_loop())

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        token: str | None = None,
        cookies: Mapping[str, str] | None = None,
        origin: str | None = None,
        min_version: str | None = None,
        auth_url: str | None = None,
        headers: Mapping[str, str] | None = None,
        connect_timeout: float = 20.0,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        framing: str = "json",
    ) -> TunnelClient:
        """Open the tunnel to the Jupyter server at ``url`` (including its ``base_url``).

        Credentials: ``token`` (sent as ``Authorization: token ...``), login ``cookies``,
        or ``auth_url``, a URL of this server carrying ``?token=`` as Colab-era clients
        send it. ``origin`` is the web origin to present, as a browser page would.
        ``framing="binary"`` asks for raw binary bodies (faster; servers that do not
        know it, like the original, keep using JSON frames and the client follows).
        Raises ``tornado.httpclient.HTTPClientError`` (403) when the server refuses.
        """
        endpoint = Endpoint(
            url,
            token=token,
            cookies=dict(cookies or {}),
            origin=origin,
            headers=dict(headers or {}),
            connect_timeout=connect_timeout,
            max_message_size=max_message_size,
        )
        query: dict[str, str] = {}
        if min_version:
            query["min_version"] = min_version
        if auth_url:
            query["jupyter_http_over_ws_auth_url"] = auth_url
        if framing != "json":
            query["framing"] = framing
        connection = await endpoint.open("http_over_websocket", query)
        return cls(endpoint, connection)

    @property
    def close_code(self) -> int | None:
        """The close code, once the server has closed the socket."""
        return self._connection.close_code

    @property
    def close_reason(self) -> str | None:
        """The close reason, once the server has closed the socket."""
        return self._connection.close_reason

    async def __aenter__(self) -> TunnelClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the socket; pending requests fail with :class:`TunnelClosedError`."""
        self._connection.close()
        await asyncio.wait([self._reader], timeout=5)

    async def wait_closed(self) -> None:
        """Wait until the server closes the socket."""
        await asyncio.shield(self._reader)

    async def _read_loop(self) -> None:
        try:
            while True:
                message = await self._connection.read_message()
                if message is None:
                    break
                if isinstance(message, bytes):
                    frame = parse_binary_reply(message)
                else:
                    hello = parse_hello(message)
                    if hello is not None:
                        self.framing = hello
                        continue
                    frame = parse_reply(message)
                queue = self._pending.get(frame.message_id)
                if queue is None:
                    self.unmatched.put_nowait(frame)
                    continue
                if frame.done:
                    del self._pending[frame.message_id]
                queue.put_nowait(frame)
        finally:
            error = TunnelClosedError(
                f"tunnel closed (code {self.close_code}, reason {self.close_reason!r})"
            )
            for queue in self._pending.values():
                queue.put_nowait(error)
            self._pending.clear()

    def send_raw(self, message: str | bytes, *, binary: bool = False) -> None:
        """Send a frame as it is (tests of the server's input checks use this)."""
        self._connection.write_message(message, binary=binary)

    def _start(
        self,
        method: str,
        path: str,
        body: bytes | str | None,
        headers: Mapping[str, str] | None,
        message_id: Any = None,
    ) -> asyncio.Queue[ReplyFrame | BaseException]:
        if self._reader.done():
            raise TunnelClosedError("the tunnel is closed")
        if message_id is None:
            message_id = next(self._ids)
        queue: asyncio.Queue[ReplyFrame | BaseException] = asyncio.Queue()
        self._pending[message_id] = queue
        if self.framing == "binary":
            raw = body.encode("utf-8") if isinstance(body, str) else body
            frame = encode_binary_request(message_id, method, path, body=raw, headers=headers)
            self._connection.write_message(frame, binary=True)
        else:
            frame = encode_request(message_id, method, path, body=body, headers=headers)
            self._connection.write_message(frame)
        return queue

    def cancel(self, message_id: Any) -> None:
        """Ask the server to stop request ``message_id`` (its final frame still arrives)."""
        if message_id in self._pending and not self._reader.done():
            self._connection.write_message(dumps({"message_id": message_id, "cancel": True}))

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        message_id: Any = None,
    ) -> Response:
        """Send one request and return the whole response.

        ``path`` is relative to the server's ``base_url`` (``/api/contents``). The body
        arrives byte-exact: text and UTF-8 bytes travel as ``body``, other bytes as
        ``body_base64``.
        """
        stream = await self._stream(method, path, body, headers, message_id)
        body_bytes = await stream.read()
        return Response(stream.status, stream.reason, stream.headers, body_bytes)

    def stream(
        self,
        method: str,
        path: str,
        *,
        body: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> _StreamContext:
        """Send one request and read its body as it arrives.

        Example::


        async with tunnel.stream("GET", "/files/big.bin") as response:
            async for chunk in response: ...
        """
        return _StreamContext(self, method, path, body, headers)

    async def _stream(
        self,
        method: str,
        path: str,
        body: bytes | str | None,
        headers: Mapping[str, str] | None,
        message_id: Any = None,
    ) -> StreamingResponse:
        queue = self._start(method, path, body, headers, message_id)
        first = await queue.get()
        if isinstance(first, BaseException):
            raise first
        if first.status is None:
            raise ValueError(f"reply without a status: {first!r}")
        return StreamingResponse(
            message_id=first.message_id,
            status=first.status,
            reason=first.status_text or "",
            headers=dict(first.headers or {}),
            _frames=queue,
            _first_data=first.data,
            _done=first.done,
        )

    async def websocket(
        self, path: str, *, subprotocols: list[str] | None = None
    ) -> WebSocketClientConnection:
        """Open a WebSocket to ``path`` of this server through ``proxied_ws``.

        ``path`` is relative to ``base_url`` and may carry a query
        (``/api/kernels/<id>/channels?session_id=...``). Returns Tornado's
        ``WebSocketClientConnection``; ``selected_subprotocol`` tells what was negotiated.
        """
        return await self.endpoint.open(
            "http_over_websocket/proxied_ws/" + path.lstrip("/"), subprotocols=subprotocols
        )


class _StreamContext:
    def __init__(
        self,
        client: TunnelClient,
        method: str,
        path: str,
        body: bytes | str | None,
        headers: Mapping[str, str] | None,
    ) -> None:
        self._args = (method, path, body, headers)
        self._client = client
        self._response: StreamingResponse | None = None

    async def __aenter__(self) -> StreamingResponse:
        self._response = await self._client._stream(*self._args)
        return self._response

    async def __aexit__(self, *exc: object) -> None:
        # Leaving early (an error, or a reader that has seen enough) cancels the request
        # on the server, so it stops producing data nobody reads.
        response = self._response
        if response is not None and not response.done:
            self._client.cancel(response.message_id)
            with contextlib.suppress(Exception):
                await response.read()
