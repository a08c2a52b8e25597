"""``{base_url}http_over_websocket/proxied_ws/<path>``: relays a WebSocket to this server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any

from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from jupyter_server.utils import url_path_join
from tornado import httputil, web
from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from ..frame_writer import FrameWriter
from ..kernel_in_process import InProcessKernelSocket
from ..runtime import Refusal
from ..session import SHUTDOWN_TEXT
from ..upstream import (
    AdmissionRefusedError,
    UpstreamRefusedError,
    UpstreamSocket,
    received_close_frame,
)
from ..wire.names import PROXIED_WS_PREFIX, CloseCode, sendable_close_code
from ..wsproxy import is_binary, is_websocket_upgrade, raw_route_argument, upstream_close
from .base import TunnelSocketMixin


def offered_subprotocols(request: httputil.HTTPServerRequest) -> list[str]:
    """The subprotocols a WebSocket upgrade offers, in the client's order."""
    offered = request.headers.get("Sec-WebSocket-Protocol", "")
    return [p.strip() for p in offered.split(",") if p.strip()]


class ProxiedWebSocketHandler(TunnelSocketMixin, WebSocketMixin, WebSocketHandler, JupyterHandler):  # type: ignore[misc]
    """Opens the same WebSocket on this server, then relays frames both ways.

    The upstream socket is opened before the client's upgrade is accepted, so the
    subprotocol the upstream handler picks (for kernels,
    ``v1.kernel.websocket.jupyter.org`` or the legacy protocol) is the one the
    client is told, and an upstream refusal (404 for an unknown kernel, 403 from
    the server's authorizer) reaches the client as that same HTTP status.
    """

    upstream: UpstreamSocket | None = None
    #: Writes frames to the client (set once the socket is open).
    _writer: FrameWriter | None = None
    _pump: asyncio.Task[None] | None = None
    #: Why the socket closes as soon as it opens (over ``max_sockets_per_user``).
    _refusal: Refusal | None = None

    @ws_authenticated
    async def get(self, path: str) -> None:
        """Authenticate (403 otherwise), check the origin, connect upstream, then upgrade."""
        if not is_websocket_upgrade(self.request.headers):
            # Not a WebSocket upgrade: Tornado answers it (400) as it answers the same
            # request to the server's own socket, and nothing is dialled for it.
            await super().get(path)
            return
        # Tornado checks the origin only inside super().get(); check it before
        # anything is opened upstream on the client's behalf.
        if self._cross_origin_error() is not None:
            raise web.HTTPError(403, "Cross origin websockets not allowed")
        # Relay the path as the client encoded it: Tornado decoded ``path``, and the
        # upstream handler decodes again.
        raw = raw_route_argument(
            self.request.path, url_path_join(self.base_url, PROXIED_WS_PREFIX), path
        )
        try:
            # The socket is counted (max_sockets_per_user) once its path is allowed and
            # before anything is dialled: one over the limit opens nothing upstream.
            self.upstream = await self.registry.dialer(self).dial(
                raw, offered_subprotocols(self.request), query=self.request.query, admit=self._admit
            )
        except AdmissionRefusedError as over_limit:
            # Upgraded, then closed with 4429 at once (open()), as it always was.
            self._refusal = Refusal(over_limit.code, over_limit.reason)
        except UpstreamRefusedError as refusal:
            self.registry.release(self)
            if refusal.status >= 500:
                self.log.warning(
                    "http_over_websocket: cannot reach %s: %s",
                    self.request.path,
                    refusal.cause or refusal.reason,
                )
            raise web.HTTPError(refusal.status, refusal.reason) from None
        except BaseException:  # e.g. cancelled: nothing was opened for the client
            self.registry.release(self)
            raise
        try:
            await super().get(path)
        finally:
            if self.ws_connection is None:
                # The upgrade failed, or the client left during it (then on_close has
                # run already): the upstream socket must not outlive the client's, and
                # it no longer counts.
                self.registry.release(self)
                if self.upstream is not None:
                    self.upstream.close()

    def _admit(self) -> None:
        refusal = self.registry.admit_socket(self)
        if refusal is not None:
            raise AdmissionRefusedError(*refusal)

    def _cross_origin_error(self) -> str | None:
        """Why Tornado's ``get()`` would refuse this upgrade's origin, or ``None``."""
        check = getattr(self, "_check_cross_origin", None)
        if check is not None:  # Tornado >= 6.6, which also weighs Sec-Fetch-Site
            result: str | None = check(self.check_origin)
            return result
        # Older Tornado: the origin alone, exactly as its WebSocketHandler.get() did.
        headers = self.request.headers
        origin = (
            headers.get("Origin") if "Origin" in headers else headers.get("Sec-Websocket-Origin")
        )
        if origin is not None and not self.check_origin(origin):
            return f"Origin {origin!r} not allowed"
        return None

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        """Tell the client the subprotocol the upstream handler chose."""
        return self.upstream.selected_subprotocol if self.upstream is not None else None

    def open(self, *args: Any, **kwargs: Any) -> None:
        """Start relaying upstream messages to the client (or close it: over the limit)."""
        super().open(*args, **kwargs)
        self.set_nodelay(True)
        if self._refusal is not None:
            self.close(*self._refusal)
            return
        self._writer = FrameWriter(self)
        if isinstance(self.upstream, InProcessKernelSocket):
            # The kernel handler runs in this process: its frames come straight here.
            self.upstream.forward_to(self._forward)
        self._pump = asyncio.create_task(self._relay_upstream())

    def _forward(self, message: str | bytes) -> None:
        """Write one of an in-process upstream's frames to the client, as it comes."""
        assert self._writer is not None  # set in open(), before frames are forwarded
        with contextlib.suppress(StreamClosedError):  # the client has gone: on_close follows
            self._writer.write(message, binary=is_binary(message))

    async def shutdown(self) -> None:
        """The server is stopping: close both sides with 1001 (going away)."""
        self.close(CloseCode.GOING_AWAY, SHUTDOWN_TEXT)

    async def _relay_upstream(self) -> None:
        upstream, writer = self.upstream, self._writer
        if upstream is None or writer is None:
            return
        try:
            while True:
                message = await upstream.read_message()
                if message is None:
                    break
                await writer(message, binary=is_binary(message))
        except StreamClosedError:
            return
        # The upstream ended by itself (the client's own close cancels this task first):
        # its close frame as it came, or 1014 if it ended without one.
        code, reason = upstream_close(
            upstream.close_code,
            upstream.close_reason,
            close_frame_received=received_close_frame(upstream),
        )
        sendable = sendable_close_code(code)
        self.close(sendable, reason if sendable is not None else None)

    def on_message(self, message: str | bytes) -> Awaitable[None] | None:
        """Relay a client message upstream; Tornado waits for this before reading the next."""
        if self.upstream is None:
            return None
        try:
            written = self.upstream.write_message(message, binary=is_binary(message))
        except WebSocketClosedError:
            self.close(CloseCode.INTERNAL_ERROR, "upstream closed")
            return None
        if (
            isinstance(written, asyncio.Future)
            and written.done()
            and not written.cancelled()
            and written.exception() is None
        ):
            return None  # handled already (an in-process kernel socket): no task per frame
        return self._await_upstream_write(written)

    async def _await_upstream_write(self, written: Awaitable[None]) -> None:
        try:
            await written
        except WebSocketClosedError:
            self.close(CloseCode.INTERNAL_ERROR, "upstream closed")

    def on_close(self) -> None:
        """Pass the client's close (code and reason) upstream."""
        self.registry.release(self)
        if self.upstream is not None:
            code = sendable_close_code(self.close_code)
            self.upstream.close(code, self.close_reason if code is not None else None)
        if self._pump is not None and not self._pump.done():
            self._pump.cancel()
