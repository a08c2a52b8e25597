"""Executing one tunnelled HTTP request against this server: the Tornado adapter.

The request never touches the network: it is handed to the server's own Tornado
application, exactly as its HTTP server would hand over a request it had read
from a socket, so every handler (REST API, ``/files``, extensions) runs with
its usual authentication, authorization, origin, XSRF and host checks. The
credentials and identity headers are those of the tunnel's upgrade request
(see :class:`UpgradeContext`), so a tunnelled request passes exactly the checks
that the same request made directly with the same credentials would pass.

The response is relayed frame by frame as the handler flushes it, through the
:class:`~.replies.ReplyStream` the session gives :meth:`InProcessDispatcher.dispatch`
(which also holds the backpressure and final-frame rules). A handler's
``flush()`` resolves only when its bytes have been written to the client
socket, so a slow client slows the handler down instead of piling data up in
memory (backpressure), and a client that goes away makes the handler's next
write fail, as a closed HTTP connection would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

from tornado import httputil
from tornado.web import Application

from .replies import ReplyStream
from .upgrade import UpgradeContext
from .wire.framing import JSON, Framing
from .wire.protocol import HttpRequest

#: Methods whose cookie-authenticated requests pass the server's XSRF check only
#: with the ``_xsrf`` token; the tunnel supplies it from the upgrade's cookie, as
#: the original did (see docs/operators/security.md).
XSRF_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: The most body bytes handed to a tunnelled request's handler at once: the ``chunk_size``
#: in which Tornado's HTTP server hands over a body it reads. Copied piece by piece, a
#: large body is never copied whole a second time (a full-size copy costs its page
#: faults: about 0.04 s for the 85 MiB of a 64 MiB base64 upload on the benchmark
#: machine). Tornado 6.6 gathers the pieces into one ``bytearray``, as it gathers a body
#: it reads; a Tornado that joins them at the end (6.4 did) pays one whole copy more.
BODY_PIECE = 64 * 1024


def body_pieces(body: bytes | memoryview) -> Iterator[bytes]:
    """``body`` as handed to a handler: pieces of at most :data:`BODY_PIECE` bytes."""
    with memoryview(body) as view:
        for start in range(0, len(view), BODY_PIECE):
            yield view[start : start + BODY_PIECE].tobytes()


class RequestContext:
    """The connection facts Tornado's ``HTTPServerRequest`` reads (``remote_ip``, ``protocol``)."""

    def __init__(self, remote_ip: str | None, protocol: str) -> None:
        self.remote_ip = remote_ip
        self.protocol = protocol
        self.address = (remote_ip, 0)
        self.trusted_downstream: set[str] = set()

    def __str__(self) -> str:
        return self.remote_ip or "tunnel"


class _TunnelledConnection(httputil.HTTPConnection):
    """The ``HTTPConnection`` a tunnelled request's handler writes its response to."""

    def __init__(self, context: RequestContext, reply: ReplyStream) -> None:
        self.context = context
        self._reply = reply
        self._close_callback: Callable[[], None] | None = None

    def set_close_callback(self, callback: Callable[[], None] | None) -> None:
        """Remember what to call when the client goes away (``on_connection_close``)."""
        self._close_callback = callback

    def write_headers(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
        chunk: bytes | None = None,
    ) -> asyncio.Future[None]:
        """Start the reply with the response's status line and headers."""
        assert isinstance(start_line, httputil.ResponseStartLine)
        return self._reply.start(start_line.code, start_line.reason, headers, chunk)

    def write(self, chunk: bytes) -> asyncio.Future[None]:
        """Relay a body chunk."""
        return self._reply.write(chunk)

    def finish(self) -> None:
        """End the reply."""
        self._reply.finish()

    def detach(self) -> Any:
        """A tunnelled request has no stream to take over (no nested WebSocket upgrades)."""
        raise NotImplementedError("a tunnelled request cannot be detached")

    def abort(self, error: BaseException) -> None:
        """The client went away: fail the handler's writes and tell it, once."""
        self._reply.close(error)
        callback, self._close_callback = self._close_callback, None
        if callback is not None:
            callback()


def build_request_headers(request: HttpRequest, upgrade: UpgradeContext) -> httputil.HTTPHeaders:
    """The headers of a tunnelled request: the client's own, then the tunnel's identity.

    The identity includes the ``Referer`` a request of the page that opened the tunnel
    carries (:meth:`UpgradeContext.page_referer`), as its browser's upgrade has none.
    """
    headers = httputil.HTTPHeaders()
    for name, value in request.headers:  # already stripped of credentials and framing
        headers.add(name, value)
    for name, value in upgrade.headers:
        headers[name] = value
    # What the page that opened the tunnel would send directly (its upgrade had none).
    referer = upgrade.page_referer(headers.get_list("Referer"))
    if referer is not None:
        headers["Referer"] = referer
    if (
        upgrade.xsrf_token
        and request.method in XSRF_METHODS
        and "X-Xsrftoken" not in headers
        and "X-Csrftoken" not in headers
    ):
        headers["X-XSRFToken"] = upgrade.xsrf_token
    if request.body or request.method in ("POST", "PUT", "PATCH"):
        headers["Content-Length"] = str(len(request.body))
    return headers


def request_uri(base_url: str, path: str) -> str:
    """Join a validated tunnel ``path`` (starting with ``/``) to the server's ``base_url``."""
    return base_url.rstrip("/") + path


class InProcessDispatcher:
    """Runs tunnelled requests through the server's own Tornado application."""

    def __init__(
        self,
        application: Application,
        server_connection: object,
        upgrade: UpgradeContext,
        chunk_size: int,
        framing: Framing = JSON,
    ) -> None:
        self._application = application
        self._server_connection = server_connection
        self._upgrade = upgrade
        #: The most body bytes one reply frame carries.
        self.chunk_size = chunk_size
        #: How this tunnel's frames are laid out (JSON or binary).
        self.framing = framing

    async def dispatch(self, request: HttpRequest, reply: ReplyStream) -> None:
        """Execute ``request`` and send its reply frames; returns after the final one.

        If the task running this is cancelled (the client went away, the server
        is stopping), the handler is told the connection closed.
        """
        context = RequestContext(self._upgrade.remote_ip, self._upgrade.protocol)
        connection = _TunnelledConnection(context, reply)
        start_line = httputil.RequestStartLine(
            request.method, request_uri(self._upgrade.base_url, request.path), "HTTP/1.1"
        )
        headers = build_request_headers(request, self._upgrade)
        delegate = self._application.start_request(self._server_connection, connection)
        try:
            ready = delegate.headers_received(start_line, headers)
            if ready is not None:
                await ready
            for piece in body_pieces(request.body):
                ready = delegate.data_received(piece)
                if ready is not None:
                    await ready
            delegate.finish()
            await reply.run()
        except BaseException as error:
            connection.abort(error)
            raise
