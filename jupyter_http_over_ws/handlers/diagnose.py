"""``{base_url}http_over_websocket/diagnose``: tells a frontend why a tunnel fails."""

from __future__ import annotations

from typing import Any

from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from tornado.websocket import WebSocketHandler

from .._version import __version__
from ..wire.handshake import Diagnosis, encode_diagnosis, is_outdated
from .base import TunnelSocketMixin

#: The longest text echoed back as ``message_id``.
MAX_DIAGNOSE_MESSAGE = 1024

#: The largest frame ``diagnose`` reads, in bytes; a larger one closes the socket with
#: 1009 (Tornado's ``max_message_size`` check). Probes and answers are tiny, and before
#: authentication nobody should make the server buffer more (the tunnel's own limit,
#: ``HttpOverWebSocketApp.max_message_size``, is 128 MiB by default).
MAX_DIAGNOSE_FRAME = 16 * 1024


class DiagnoseHandler(TunnelSocketMixin, WebSocketMixin, WebSocketHandler, JupyterHandler):  # type: ignore[misc]
    """Answers each text frame with the extension's version and what the upgrade carried.

    It answers before authentication (a frontend uses it to explain a failed
    connection), so it reveals nothing beyond the protocol's four fields. Its origin
    is still checked as jupyter_server checks every WebSocket.
    """

    @allow_unauthenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        """Upgrade without authentication (the origin check still applies)."""
        await super().get(*args, **kwargs)

    @property
    def max_message_size(self) -> int:
        """The largest frame accepted before authentication: :data:`MAX_DIAGNOSE_FRAME`."""
        return MAX_DIAGNOSE_FRAME

    def on_message(self, message: str | bytes) -> None:
        """Answer one probe."""
        if isinstance(message, bytes):
            message = message.decode("utf-8", "replace")
        diagnosis = Diagnosis(
            message_id=message[:MAX_DIAGNOSE_MESSAGE],
            extension_version=__version__,
            has_authentication_cookie=self.get_cookie("_xsrf") is not None,
            is_outdated_extension=is_outdated(self.query_text("min_version"), __version__),
        )
        self.write_message(encode_diagnosis(diagnosis), binary=False)
