"""How frames are laid out: the legacy JSON text frames and the opt-in binary frames.

Old clients speak JSON text frames only, with bodies in base64 (see
:mod:`.protocol`). A new client may ask for binary framing by adding
``framing=binary`` to the tunnel's upgrade URL; the server then answers with a
``{"framing": "binary", ...}`` text frame first (and a
``Jupyter-Http-Over-Ws-Framing: binary`` header on the upgrade response), after
which both sides may send binary frames laid out as::

    +----------------------+----------------------------+--------------------+
    | header length N      | header: N bytes of JSON    | body: the rest     |
    | 4 bytes, big-endian  | (the legacy keys, no body) | (raw bytes)        |
    +----------------------+----------------------------+--------------------+

A binary request's header holds ``message_id``, ``method``, ``path`` and
``headers``; the body bytes follow. A binary reply's header holds ``message_id``,
``done`` and, on the first frame, ``status``, ``statusText`` and ``headers``; the
body chunk follows. No base64 and no JSON escaping: a download costs a memory
copy, not an encoding pass. Text frames stay valid in both directions.

Pure: no Tornado, asyncio or jupyter_server.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from .protocol import (
    Cancel,
    HttpRequest,
    ProtocolError,
    ReplyFrame,
    decode_object,
    dumps,
    encode_reply,
    message_from_object,
    parse_reply,
)
from .protocol import parse_message as parse_json_message

__all__ = [
    "BINARY",
    "FRAMING_HEADER",
    "JSON",
    "Framing",
    "binary_hello",
    "encode_binary_reply",
    "encode_binary_request",
    "parse_binary_message",
    "parse_binary_reply",
    "parse_hello",
    "select_framing",
]

#: The upgrade-response header that confirms binary framing to clients that can read it.
FRAMING_HEADER: Final = "Jupyter-Http-Over-Ws-Framing"
_LENGTH = struct.Struct(">I")
#: The largest JSON header a binary frame may carry.
MAX_BINARY_HEADER: Final = 1024 * 1024

EncodeReply = Callable[..., bytes]


@dataclass(frozen=True)
class Framing:
    """One way of laying out frames: its name, its reply frame type and encoder, its parser."""

    name: str
    binary: bool
    encode_reply: EncodeReply

    def parse_message(self, message: str | bytes) -> HttpRequest | Cancel:
        """Validate one client frame (a request or a cancel) on a tunnel with this framing.

        A binary frame on a binary-framed tunnel is read with the binary layout; every
        other frame (text frames, and binary frames on a JSON tunnel) is legacy JSON.
        Raises :class:`~.protocol.ProtocolError` with the status to answer.
        """
        if isinstance(message, bytes) and self.binary:
            return parse_binary_message(message)
        return parse_json_message(message)


JSON: Final = Framing("json", False, encode_reply)


def _split(frame: bytes | memoryview) -> tuple[Any, memoryview]:
    view = memoryview(frame)
    if len(view) < _LENGTH.size:
        raise ProtocolError(400, "Binary frame shorter than its 4-byte header length")
    (length,) = _LENGTH.unpack_from(view)
    if length > MAX_BINARY_HEADER or _LENGTH.size + length > len(view):
        raise ProtocolError(400, "Binary frame header length is out of range")
    header = decode_object(bytes(view[_LENGTH.size : _LENGTH.size + length]))
    return header, view[_LENGTH.size + length :]


def _join(header: Mapping[str, Any], body: bytes | memoryview | None) -> bytes:
    encoded = dumps(header)
    return b"".join((_LENGTH.pack(len(encoded)), encoded, body or b""))


def parse_binary_message(frame: bytes | memoryview) -> HttpRequest | Cancel:
    """Validate a binary client frame: a JSON header, then the raw request body.

    The body stays a view of ``frame``: copying a large body whole costs more than
    handing it on (see :meth:`.dispatch.InProcessDispatcher.dispatch`).
    """
    header, body = _split(frame)
    return message_from_object(header, body if body else None)


def encode_binary_request(
    message_id: str | int,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> bytes:
    """Build a binary request frame (used by clients)."""
    header: dict[str, Any] = {"message_id": message_id, "method": method, "path": path}
    if headers:
        header["headers"] = dict(headers)
    return _join(header, body)


def encode_binary_reply(
    message_id: Any,
    *,
    done: bool,
    status: int | None = None,
    status_text: str | None = None,
    headers: Iterable[tuple[str, str]] | Mapping[str, str] | None = None,
    data: bytes | memoryview | None = None,
) -> bytes:
    """Build a binary reply frame: the legacy frame's keys, then the raw body chunk."""
    legacy = encode_reply(
        message_id, done=done, status=status, status_text=status_text, headers=headers
    )
    return b"".join((_LENGTH.pack(len(legacy)), legacy, data or b""))


def parse_binary_reply(frame: bytes | memoryview) -> ReplyFrame:
    """Decode a binary reply frame (used by clients)."""
    header, body = _split(frame)
    legacy = parse_reply(dumps(header))
    return ReplyFrame(
        message_id=legacy.message_id,
        done=legacy.done,
        status=legacy.status,
        status_text=legacy.status_text,
        headers=legacy.headers,
        data=bytes(body) if body else None,
    )


BINARY: Final = Framing("binary", True, encode_binary_reply)


def select_framing(requested: str | None) -> Framing:
    """The framing to answer with, given the ``framing`` query argument (unknown: JSON)."""
    return BINARY if requested == BINARY.name else JSON


def binary_hello(version: str) -> bytes:
    """The text frame that tells a client binary framing is on."""
    return dumps({"framing": BINARY.name, "extension_version": version})


def parse_hello(message: str | bytes) -> str | None:
    """The framing a hello frame announces, or ``None`` if ``message`` is not one."""
    try:
        obj = decode_object(message)
    except ProtocolError:
        return None
    if isinstance(obj, dict) and "framing" in obj and "message_id" not in obj:
        framing = obj["framing"]
        return framing if isinstance(framing, str) else None
    return None
