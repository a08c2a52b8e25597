"""Close codes and endpoint paths: defined once, used by every layer.

The browser client mirrors this module in ``js/src/names.js``; a test compares the
two, so neither can drift. Application close codes follow one rule: 4000 plus the
HTTP status that says the same thing (4429 is "too many", like 429).
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final


class CloseCode(IntEnum):
    """Every WebSocket (and polling channel) close code the tunnel sends or reports."""

    #: The socket was closed on purpose (a client's own close, a polling session's end).
    NORMAL = 1000
    #: The server is shutting down: every tunnel socket closes with this.
    GOING_AWAY = 1001
    #: Reserved: reported when a close frame carried no code (never sent).
    NO_STATUS = 1005
    #: Reserved: reported when a connection ended without a close frame (never sent).
    ABNORMAL = 1006
    #: A client message was larger than ``max_message_size``.
    MESSAGE_TOO_BIG = 1009
    #: The relay failed (its upstream socket went away under it).
    INTERNAL_ERROR = 1011
    #: A relay's upstream socket ended without a close frame (its handler failed, its
    #: process went away): 1014, "bad gateway" in the RFC 6455 registry.
    UPSTREAM_LOST = 1014
    #: The client's ``min_version`` is newer than this server, or a request was invalid.
    BAD_REQUEST = 4400
    #: The polling session is gone (expired, or closed by the server).
    SESSION_GONE = 4404
    #: Closed for idleness (``idle_timeout``, ``polling_idle_timeout``).
    IDLE = 4408
    #: A polling channel number already in use.
    CHANNEL_IN_USE = 4409
    #: Over ``max_sockets_per_user`` (sockets, polling sessions and channels together).
    TOO_MANY_SOCKETS = 4429
    #: The upstream WebSocket of a relay cannot be reached.
    BAD_GATEWAY = 4502


#: Close codes an endpoint may put in a close frame (RFC 6455 section 7.4: 1005, 1006
#: and 1015 are reserved for reporting), besides the application range 3000-4999.
SENDABLE_CLOSE_CODES: Final = frozenset(
    {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}
)


def status_close_code(status: int) -> int:
    """The close code that carries HTTP ``status`` (4000 + status), e.g. 404 -> 4404."""
    return 4000 + status


def sendable_close_code(code: int | None) -> int | None:
    """``code`` if it may be put in a close frame, else ``None`` (a plain close)."""
    if code is None:
        return None
    if code in SENDABLE_CLOSE_CODES or 3000 <= code <= 4999:
        return code
    return None


#: The endpoints, relative to the server's ``base_url`` (no leading slash).
TUNNEL_PATH: Final = "http_over_websocket"
DIAGNOSE_PATH: Final = TUNNEL_PATH + "/diagnose"
PROXIED_WS_PREFIX: Final = TUNNEL_PATH + "/proxied_ws/"
POLLING_PATH: Final = TUNNEL_PATH + "/polling"
STATIC_PREFIX: Final = TUNNEL_PATH + "/static/"
