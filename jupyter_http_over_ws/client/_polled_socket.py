"""A proxied socket over the polling transport: :class:`PolledWebSocket`, one channel."""

from __future__ import annotations

import asyncio
from typing import Protocol

from tornado import httpclient

from ..wire.names import CloseCode
from ..wire.polling import (
    BinaryEnvelope,
    ClosedEnvelope,
    CloseEnvelope,
    Envelope,
    OpenedEnvelope,
    TextEnvelope,
)


class ChannelSender(Protocol):
    """What a polled socket needs from its polling session: a way to send envelopes."""

    def post(self, envelope: Envelope) -> asyncio.Future[None]:
        """Queue an envelope; the future resolves once the server acknowledges it."""
        ...


class PolledWebSocket:
    """A proxied socket over the polling transport.

    It offers the part of Tornado's ``WebSocketClientConnection`` a caller uses:
    ``read_message``, ``write_message``, ``close``, ``close_code``,
    ``close_reason`` and ``selected_subprotocol``. The polling session feeds it
    through :meth:`receive`.
    """

    def __init__(self, transport: ChannelSender, number: int) -> None:
        self._transport = transport
        self.number = number
        self.selected_subprotocol: str | None = None
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self._messages: asyncio.Queue[str | bytes | None] = asyncio.Queue()
        self._opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._closing = False
        self._ended = False

    @property
    def ended(self) -> bool:
        """Whether the server has closed (or refused) this channel."""
        return self._ended

    async def wait_opened(self, timeout: float) -> None:
        """Wait for the server's answer to the open; ``HTTPClientError`` if it refused."""
        await asyncio.wait_for(self._opened, timeout)

    def receive(self, envelope: Envelope) -> None:
        """Take an envelope the polling session received on this socket's channel."""
        if isinstance(envelope, OpenedEnvelope):
            self.selected_subprotocol = envelope.protocol
            if not self._opened.done():
                self._opened.set_result(None)
        elif isinstance(envelope, TextEnvelope):
            self._messages.put_nowait(envelope.text)
        elif isinstance(envelope, BinaryEnvelope):
            self._messages.put_nowait(envelope.data)
        elif isinstance(envelope, ClosedEnvelope) and not self._ended:
            self._ended = True
            code = envelope.code
            if not self._opened.done():
                # Refused before opening: report it as the upgrade's HTTP status would be
                # (the channel's close code is 4000 + that status).
                status = code - 4000 if code is not None and 4100 <= code < 4600 else 502
                self._opened.set_exception(
                    httpclient.HTTPClientError(status, envelope.reason or None)
                )
                return
            # A plain int, as the codes the server sends are (``str()`` of an IntEnum differs).
            self.close_code = int(code if code is not None else CloseCode.NO_STATUS)
            self.close_reason = envelope.reason
            self._messages.put_nowait(None)

    async def read_message(self) -> str | bytes | None:
        """The next message, or ``None`` once the socket has closed."""
        if self._ended and self._messages.empty():
            return None
        return await self._messages.get()

    def write_message(self, message: str | bytes, binary: bool = False) -> asyncio.Future[None]:
        """Send a message (text for ``str``, binary for ``bytes``); resolves once acknowledged."""
        if self._closing or self._ended:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_exception(ConnectionError("the socket is closed"))
            return done
        if isinstance(message, str) and not binary:
            return self._transport.post(TextEnvelope(self.number, message))
        data = message.encode("utf-8") if isinstance(message, str) else bytes(message)
        return self._transport.post(BinaryEnvelope(self.number, data))

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Close the socket (the server passes ``code`` and ``reason`` on)."""
        if self._closing or self._ended:
            return
        self._closing = True
        future = self._transport.post(CloseEnvelope(self.number, code, reason))
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
