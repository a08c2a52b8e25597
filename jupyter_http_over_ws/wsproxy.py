"""Relaying one client WebSocket to one of this server's own WebSockets: the helpers.

Both transports relay (``proxied_ws`` and the polling transport's channels); they
open the upstream socket with the one dial in :mod:`.upstream`, and share these
helpers for what passes through: the path as the client encoded it, the status an
upstream refusal becomes, the frame type, and the close codes that may be passed
on. Frames keep their type (text or binary) and the close code and reason pass
through in both directions; an upstream that ends without a close frame is reported
as :attr:`~.wire.names.CloseCode.UPSTREAM_LOST` (:func:`upstream_close`).
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import quote

from tornado import httpclient, httputil
from tornado.simple_httpclient import HTTPTimeoutError

from .wire.names import PROXIED_WS_PREFIX, CloseCode, sendable_close_code

__all__ = ["PROXIED_WS_PREFIX", "UPSTREAM_LOST_REASON", "sendable_close_code", "upstream_close"]

#: The reason sent with :attr:`~.wire.names.CloseCode.UPSTREAM_LOST`.
UPSTREAM_LOST_REASON: Final = "upstream connection lost without a close frame"


def raw_route_argument(request_path: str, route_prefix: str, decoded: str) -> str:
    """Return the part of ``request_path`` after ``route_prefix``, as the client encoded it.

    Tornado passes path arguments to handlers percent-decoded; relaying a decoded path
    would decode it again upstream (``%2541`` would arrive as ``A``, ``%3F`` would
    start a query, ``%23`` a fragment). Should the request path not start with the
    prefix literally, ``decoded`` is encoded again so that it decodes to itself.
    """
    if request_path.startswith(route_prefix):
        return request_path[len(route_prefix) :]
    return quote(decoded, safe="/")


def upstream_refusal_status(error: httpclient.HTTPClientError) -> int:
    """Return the status for the client when the upstream refused the upgrade.

    The server's own refusals (403, 404, 500, ...) pass through unchanged, so the
    client learns what a direct connection would have told it. Tornado reports
    "no response" as 599: a timeout becomes 504, anything else 502. Any other answer
    (a redirect, a plain page) means the path names no WebSocket: 400.
    """
    if isinstance(error, HTTPTimeoutError):
        return 504
    if error.code == 599:
        return 502
    if 400 <= error.code < 599:
        return error.code
    return 400


def is_binary(message: Any) -> bool:
    """Whether a relayed message must go out as a binary frame."""
    return isinstance(message, (bytes, bytearray, memoryview))


def upstream_close(
    code: int | None, reason: str | None, *, close_frame_received: bool
) -> tuple[int | None, str | None]:
    """The close code and reason a client is told when its upstream socket ended by itself.

    A close frame passes on as it came: its code and reason, or none (a client
    connected directly sees a close frame without a code as 1005, and so does the
    relay's client). An upstream that ended without a close frame (its handler failed,
    its process or connection went away: a direct client sees 1006, which no close
    frame may carry) is reported as :attr:`~.wire.names.CloseCode.UPSTREAM_LOST` (1014,
    "bad gateway") with :data:`UPSTREAM_LOST_REASON`.
    """
    if code is None and not close_frame_received:
        return int(CloseCode.UPSTREAM_LOST), UPSTREAM_LOST_REASON
    return code, reason


def is_websocket_upgrade(headers: httputil.HTTPHeaders) -> bool:
    """Whether a request asks for a WebSocket upgrade, as Tornado's ``WebSocketHandler`` judges.

    ``Upgrade: websocket`` and ``upgrade`` among the ``Connection`` tokens; Tornado
    answers anything else with 400, and a relay must know that before it dials.
    """
    if headers.get("Upgrade", "").lower() != "websocket":
        return False
    connection = headers.get("Connection", "").split(",")
    return "upgrade" in (token.strip().lower() for token in connection)
