"""``{base_url}http_over_websocket``: the tunnel socket itself."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from tornado.ioloop import PeriodicCallback
from tornado.websocket import WebSocketHandler

from .._version import __version__
from ..frame_writer import FrameWriter
from ..replies import BoundedSend
from ..session import SHUTDOWN_TEXT, TunnelSession
from ..wire.framing import FRAMING_HEADER, JSON, Framing, binary_hello, select_framing
from ..wire.handshake import check_min_version
from ..wire.names import CloseCode
from .base import TunnelSocketMixin

#: How many reply frames' worth of bytes (``chunk_size`` each) may wait in the socket's
#: write buffer at once, across all of a client's requests (see :class:`BoundedSend`).
WRITE_BUFFER_FRAMES = 16


class TunnelHandler(TunnelSocketMixin, WebSocketMixin, WebSocketHandler, JupyterHandler):  # type: ignore[misc]
    """Accepts an authenticated tunnel and feeds its messages to a :class:`TunnelSession`."""

    session: TunnelSession | None = None
    _idle_check: PeriodicCallback | None = None

    framing: Framing = JSON

    @ws_authenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        """Upgrade, once jupyter_server has authenticated the request (403 otherwise)."""
        self.framing = select_framing(self.get_argument("framing", None))
        if self.framing.binary:
            # Only a client that asked sees this (Python clients read it off the upgrade).
            self.set_header(FRAMING_HEADER, self.framing.name)
        await super().get(*args, **kwargs)

    def open(self, *args: Any, **kwargs: Any) -> None:
        """Check the client's ``min_version`` and the user's socket count, then start."""
        super().open(*args, **kwargs)
        self.set_nodelay(True)
        reason = check_min_version(self.query_text("min_version"), __version__)
        if reason is not None:
            # The original used 400, which is not a valid close code; 4400 keeps the
            # number and the reason.
            self.log.warning("http_over_websocket: closing: %s", reason)
            self.close(CloseCode.BAD_REQUEST, reason)
            return
        refusal = self.registry.admit_socket(self)
        if refusal is not None:
            self.close(*refusal)
            return
        send = BoundedSend(FrameWriter(self), WRITE_BUFFER_FRAMES * self.extension.chunk_size)
        self.session = self.registry.tunnel_session(self, send, framing=self.framing)
        self._idle_check = self.registry.watch_idle(self.session, self.close)
        if self.framing.binary:
            self.write_message(binary_hello(__version__), binary=False)

    def on_message(self, message: str | bytes) -> Awaitable[None] | None:
        """Start the request a client frame asks for; never wait for the request here.

        Tornado reads the client's next frame at once, unless this returns an
        awaitable: then once it resolves. It does when the client has left too many
        error replies unread, until they are sent, so a client that does not read is
        not read from either (backpressure).
        """
        if self.session is None:
            return None
        self.session.receive(message)
        if self.session.has_room:
            return None
        return self.session.wait_for_room()

    def on_close(self) -> None:
        """Cancel what is still running for this client."""
        self.registry.release(self)
        if self._idle_check is not None:
            self._idle_check.stop()
        if self.session is not None:
            self.session.close()

    async def shutdown(self) -> None:
        """The server is stopping: final frames for in-flight requests, then close (1001)."""
        if self.session is not None:
            await self.session.shutdown()
        self.close(CloseCode.GOING_AWAY, SHUTDOWN_TEXT)
