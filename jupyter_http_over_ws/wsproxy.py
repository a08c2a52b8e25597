"""Relaying one client WebSocket to one of this server's own WebSockets: the helpers.

Both transports relay (``proxied_ws`` and the polling transport's channels); they
open the upstream socket with the one dial in :mod:`.upstream`, and share these
helpers for what passes through: the path as the client encoded it, the status an
upstream refusal becomes, the frame type, and the close codes that may be passed
on. Frames keep their type (text or binary) and the close code and reason pass
through in both directions.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tornado import httpclient
from tornado.simple_httpclient import HTTPTimeoutError

from .wire.names import PROXIED_WS_PREFIX, sendable_close_code

__all__ = ["PROXIED_WS_PREFIX", "sendable_close_code"]


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
