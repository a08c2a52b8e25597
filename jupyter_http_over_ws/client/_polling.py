"""The client side of the polling transport (see docs/developers/polling.md).

A :class:`PollingTransport` carries the tunnel's messages (channel 0) and proxied
sockets (:class:`PolledWebSocket`, one channel each) over plain HTTP requests: one
``send`` at a time with the envelopes not yet acknowledged, and one long ``recv``
after another. Each ``send`` also says how far the client has read (``since``), so
its answer carries the replies ready by then, sparing the ``recv`` an answer (a
server without that ignores the argument). Lost answers are harmless: a send is
repeated until acknowledged (the server skips what it already has) and a ``recv``
asks again from the last envelope taken (the client skips what it already has), so
every message arrives once and in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import ssl
from collections import deque
from typing import Any, Final

from tornado import httpclient

from ..wire.names import POLLING_PATH, CloseCode, status_close_code
from ..wire.polling import (
    TUNNEL_CHANNEL,
    BinaryEnvelope,
    ClosedEnvelope,
    Envelope,
    OpenEnvelope,
    ReceiveBatch,
    TextEnvelope,
    encode_batch,
    encode_envelope,
    parse_batch,
    parse_send_answer,
)
from ._connect import Endpoint, certificate_error
from ._http import HttpResponse, KeepAliveClient
from ._polled_socket import PolledWebSocket
from ._transport import OnClosed, OnMessage, not_attached

#: The most bytes of envelopes one ``send`` carries (more wait for the next one).
MAX_SEND_BATCH = 8 * 1024 * 1024
#: Seconds between retries of a request that failed on the network.
RETRY_DELAYS = (0.05, 0.2, 0.5, 1.0, 2.0)

__all__ = ["PolledWebSocket", "PollingTransport"]


class PollingTransport:
    """One polling session: channel 0 for the tunnel, more channels for proxied sockets.

    It implements :class:`~._transport.Transport`: it sends and polls once
    :meth:`attach` has given it its listeners.
    """

    name: Final = "polling"
    #: Channel 0 carries JSON text frames only: binary messages on it are UTF-8 text.
    binary_replies: Final = False

    def __init__(self, endpoint: Endpoint, http: KeepAliveClient, session: dict[str, Any]) -> None:
        self.endpoint = endpoint
        self._http = http
        self.session_id = str(session["session_id"])
        version = session.get("extension_version")
        #: The server's extension version, from the session's open answer.
        self.extension_version: str | None = version if isinstance(version, str) else None
        self.poll_timeout = float(session.get("poll_timeout", 25))
        #: After this long without reaching the server, the session is given up: the
        #: server has expired it by then (its ``idle_timeout``).
        self.give_up_after = float(session.get("idle_timeout") or 60) + self.poll_timeout
        self._unreachable_since: float | None = None
        self._on_message: OnMessage = not_attached
        self._on_closed: OnClosed = not_attached
        #: Binary framing is never confirmed over polling: requests go out as JSON.
        self.framing = "json"
        # client -> server: envelopes numbered from 0, kept until acknowledged
        self._out: deque[tuple[bytes, asyncio.Future[None]]] = deque()
        self._out_first = 0
        self._out_ready = asyncio.Event()
        # server -> client: the next number we need
        self._since = 0
        self._channels: dict[int, PolledWebSocket] = {}
        self._channel_numbers = itertools.count(1)
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self._closed = asyncio.Event()
        self._poll_task: asyncio.Future[HttpResponse] | None = None
        self._poller: asyncio.Future[None] | None = None
        self._sender: asyncio.Future[None] | None = None
        #: How many ``recv`` answers were thrown away by :meth:`drop_next_poll` (tests).
        self.dropped_polls = 0
        #: How many ``recv`` answers arrived (empty ones after a poll timeout included).
        self.polls_answered = 0
        self._drop_next = False

    @classmethod
    async def open(
        cls,
        endpoint: Endpoint,
        on_message: OnMessage | None = None,
        on_closed: OnClosed | None = None,
        *,
        min_version: str | None = None,
    ) -> PollingTransport:
        """Open a session; raises ``HTTPClientError`` when the server refuses it.

        With ``on_message`` and ``on_closed`` the session is attached to them at once;
        without, call :meth:`attach` before it runs.
        """
        http = KeepAliveClient(ssl_context=endpoint.ssl_context)
        query = {"min_version": min_version} if min_version else None
        try:
            response = await http.fetch(
                endpoint.http_url(POLLING_PATH, query),
                "POST",
                b"{}",
                endpoint.request_headers(json_body=True),
                timeout=endpoint.connect_timeout,
                connect_timeout=endpoint.connect_timeout,
            )
            if response.code != 200:
                raise httpclient.HTTPClientError(response.code, _message(response), None)
            session = json.loads(response.body)
        except ssl.SSLCertVerificationError as error:
            http.close()
            raise certificate_error(endpoint.url, error) from error
        except BaseException:
            http.close()
            raise
        transport = cls(endpoint, http, session)
        if on_message is not None and on_closed is not None:
            transport.attach(on_message, on_closed)
        return transport

    def attach(self, on_message: OnMessage, on_closed: OnClosed) -> None:
        """Deliver tunnel messages and the end to these listeners; start the session's loops."""
        self._on_message = on_message
        self._on_closed = on_closed
        if self._poller is None and not self.closed:
            self._poller = asyncio.ensure_future(self._poll_loop())
            self._sender = asyncio.ensure_future(self._send_loop())

    # ------------------------------------------------------------ state

    @property
    def closed(self) -> bool:
        """Whether the session has ended."""
        return self._closed.is_set()

    @property
    def busy(self) -> bool:
        """Whether envelopes wait to be acknowledged or proxied sockets are open."""
        return bool(self._out) or bool(self._channels)

    async def wait_closed(self) -> None:
        """Wait until the session has ended."""
        await self._closed.wait()

    # ------------------------------------------------------------ sending

    def send(self, message: str | bytes, binary: bool = False) -> asyncio.Future[None]:
        """Send a tunnel message (channel 0); the future resolves once acknowledged."""
        if binary and isinstance(message, bytes):
            return self.post(BinaryEnvelope(TUNNEL_CHANNEL, message))
        text = message.decode("utf-8") if isinstance(message, bytes) else message
        return self.post(TextEnvelope(TUNNEL_CHANNEL, text))

    def post(self, envelope: Envelope) -> asyncio.Future[None]:
        """Queue an envelope; the future resolves once the server acknowledges it."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.closed:
            done.set_exception(ConnectionError("the polling session is closed"))
            done.add_done_callback(lambda f: f.exception())  # not every caller waits
            return done
        self._out.append((encode_envelope(envelope), done))
        self._out_ready.set()
        return done

    def _acknowledged(self, ack: int) -> None:
        while self._out and self._out_first < ack:
            _, done = self._out.popleft()
            self._out_first += 1
            if not done.done():
                done.set_result(None)

    async def _send_loop(self) -> None:
        failures = 0
        while not self.closed:
            if not self._out:
                self._out_ready.clear()
                await self._out_ready.wait()
                continue
            batch: list[bytes] = []
            size = 0
            for encoded, _ in self._out:
                if batch and size + len(encoded) > MAX_SEND_BATCH:
                    break
                batch.append(encoded)
                size += len(encoded)
            body = encode_batch(self._out_first, batch)
            try:
                response: HttpResponse | None = await self._http.fetch(
                    self._url("send", {"since": str(self._since)}),
                    "POST",
                    body,
                    self.endpoint.request_headers(json_body=True),
                    timeout=max(self.endpoint.connect_timeout, 300.0),
                    connect_timeout=self.endpoint.connect_timeout,
                )
            except Exception:
                response = None
            if response is not None and response.code in (200, 409):
                failures = 0
                self._unreachable_since = None
                ack, carried = parse_send_answer(response.body)
                self._acknowledged(ack)
                if carried is not None and not self.closed:
                    self._take_batch(carried)
                continue
            if response is not None and response.code in (403, 404):
                self._end(CloseCode.SESSION_GONE, "the server closed the polling session")
                return
            if response is not None and 400 <= response.code < 500:
                # The server refuses the batch itself: nothing to retry.
                self._end(
                    status_close_code(response.code), response.body.decode("utf-8", "replace")
                )
                return
            if not await self._retry_later(failures):
                return
            failures += 1

    async def _retry_later(self, failures: int) -> bool:
        """Wait before trying again; ``False`` (session ended) once it is hopeless."""
        loop = asyncio.get_running_loop()
        if self._unreachable_since is None:
            self._unreachable_since = loop.time()
        elif loop.time() - self._unreachable_since > self.give_up_after:
            self._end(CloseCode.ABNORMAL, "the server could not be reached")
            return False
        await asyncio.sleep(RETRY_DELAYS[min(failures, len(RETRY_DELAYS) - 1)])
        return not self.closed

    # ------------------------------------------------------------ receiving

    def drop_next_poll(self) -> None:
        """Throw away the answer of the ``recv`` under way, as if the network lost it (tests)."""
        self._drop_next = True
        if self._poll_task is not None:
            self._poll_task.cancel()

    async def _poll_loop(self) -> None:
        failures = 0
        while not self.closed:
            self._poll_task = poll = asyncio.ensure_future(
                self._http.fetch(
                    self._url("recv", {"since": str(self._since)}),
                    "GET",
                    None,
                    self.endpoint.request_headers(),
                    timeout=self.poll_timeout + self.endpoint.connect_timeout,
                    connect_timeout=self.endpoint.connect_timeout,
                )
            )
            try:
                response = await poll
            except asyncio.CancelledError:
                if self._drop_next:  # a dropped answer: ask again from the same point
                    self._drop_next = False
                    self.dropped_polls += 1
                    continue
                raise
            except Exception:
                response = None
            if response is not None and response.code == 200:
                failures = 0
                self._unreachable_since = None
                self.polls_answered += 1
                self._take(response.body)
                continue
            if response is not None and response.code in (403, 404):
                self._end(CloseCode.SESSION_GONE, "the server closed the polling session")
                return
            if self.closed:
                return
            if not await self._retry_later(failures):
                return
            failures += 1

    def _take(self, body: bytes) -> None:
        self._take_batch(parse_batch(body))

    def _take_batch(self, batch: ReceiveBatch) -> None:
        for number, envelope in enumerate(batch.messages, batch.seq):
            if number < self._since:
                continue  # seen already (an earlier answer got through after all)
            self._since = number + 1
            self._dispatch(envelope)
        if batch.closed is not None and not batch.messages:
            self._end(*batch.closed)

    def _dispatch(self, envelope: Envelope) -> None:
        if envelope.channel == TUNNEL_CHANNEL:
            if isinstance(envelope, TextEnvelope):
                self._on_message(self, envelope.text)
            elif isinstance(envelope, BinaryEnvelope):
                self._on_message(self, envelope.data)
            return
        channel = self._channels.get(envelope.channel)
        if channel is not None:
            channel.receive(envelope)
            if channel.close_code is not None or channel.ended:
                self._channels.pop(envelope.channel, None)

    # ------------------------------------------------------------ proxied sockets

    async def open_socket(self, path: str, subprotocols: list[str] | None) -> PolledWebSocket:
        """Open a proxied socket on a new channel; raises ``HTTPClientError`` if refused."""
        number = next(self._channel_numbers)
        socket = PolledWebSocket(self, number)
        self._channels[number] = socket
        self.post(OpenEnvelope(number, "/" + path.lstrip("/"), tuple(subprotocols or ())))
        try:
            await socket.wait_opened(self.endpoint.connect_timeout + 5)
        except BaseException:
            self._channels.pop(number, None)
            raise
        return socket

    # ------------------------------------------------------------ the end

    def _url(self, action: str, query: dict[str, str] | None = None) -> str:
        return self.endpoint.http_url(f"{POLLING_PATH}/{self.session_id}/{action}", query)

    def _end(self, code: int, reason: str) -> None:
        if self.closed:
            return
        # A plain int, as the codes the server sends are (``str()`` of an IntEnum differs).
        self.close_code, self.close_reason = int(code), reason
        self._closed.set()
        error = ConnectionError(f"polling session closed ({code}, {reason!r})")
        for _, done in self._out:
            if not done.done():
                done.set_exception(error)
                done.exception()  # nobody may be waiting: do not warn about it
        for channel in list(self._channels.values()):
            channel.receive(ClosedEnvelope(channel.number, CloseCode.ABNORMAL, reason))
        self._channels.clear()
        self._on_closed(self)

    async def close(self) -> None:
        """Close the session on the server (releasing what it holds), then stop."""
        if not self.closed:
            with contextlib.suppress(Exception):
                await self._http.fetch(
                    self.endpoint.http_url(f"{POLLING_PATH}/{self.session_id}"),
                    "DELETE",
                    None,
                    self.endpoint.request_headers(),
                    timeout=self.endpoint.connect_timeout,
                    connect_timeout=self.endpoint.connect_timeout,
                )
        self._end(CloseCode.NORMAL, "closed by the client")
        loops = [task for task in (self._poller, self._sender) if task is not None]
        for task in loops:
            task.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        self._http.close()


def _message(response: HttpResponse) -> str:
    """The server's explanation of a refusal (jupyter_server's JSON ``message``)."""
    try:
        return str(json.loads(response.body)["message"])
    except (ValueError, KeyError, TypeError):
        return response.reason
