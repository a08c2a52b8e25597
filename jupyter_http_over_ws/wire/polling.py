"""The polling transport's wire format, without any I/O (see docs/developers/polling.md).

A polling session carries numbered *envelopes* in both directions. Each is a JSON
object naming a ``channel``: channel 0 is the tunnel (its text is a tunnel message
exactly as sent over the WebSocket transport), other channels are proxied sockets.
This module parses and builds envelopes and batches and keeps the client-to-server
sequence numbers; it imports no Tornado, asyncio or jupyter_server, so the server,
the Python client and the tests share it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from .protocol import ProtocolError, decode_json, dumps

try:  # the same fast base64 as the protocol module, when present
    import pybase64 as _b64
except ImportError:  # pragma: no cover - exercised when pybase64 is absent
    import base64 as _b64  # type: ignore[no-redef]

__all__ = [
    "TUNNEL_CHANNEL",
    "BinaryEnvelope",
    "CloseEnvelope",
    "ClosedEnvelope",
    "Envelope",
    "OpenEnvelope",
    "OpenedEnvelope",
    "OutOfOrderError",
    "SendBatch",
    "SendSequencer",
    "TextEnvelope",
    "encode_batch",
    "encode_envelope",
    "parse_batch",
    "parse_envelope",
    "parse_send",
]

#: The channel of the tunnel itself; proxied sockets use positive numbers the client picks.
TUNNEL_CHANNEL: Final = 0
#: The largest channel number (fits a JavaScript integer and a signed 32-bit one).
MAX_CHANNEL: Final = 2**31 - 1
#: The most subprotocols an ``open`` envelope may offer.
MAX_PROTOCOLS: Final = 32


@dataclass(frozen=True)
class TextEnvelope:
    """A text message: a tunnel message on channel 0, a text frame on a proxied channel."""

    channel: int
    text: str


@dataclass(frozen=True)
class BinaryEnvelope:
    """A binary frame of a proxied socket (base64 on the wire)."""

    channel: int
    data: bytes


@dataclass(frozen=True)
class OpenEnvelope:
    """Client to server: open a proxied socket to ``path`` (relative to ``base_url``)."""

    channel: int
    path: str
    protocols: tuple[str, ...] = ()


@dataclass(frozen=True)
class CloseEnvelope:
    """Client to server: close a proxied socket."""

    channel: int
    code: int | None = None
    reason: str | None = None


@dataclass(frozen=True)
class OpenedEnvelope:
    """Server to client: the proxied socket is open with subprotocol ``protocol``."""

    channel: int
    protocol: str | None = None


@dataclass(frozen=True)
class ClosedEnvelope:
    """Server to client: the proxied socket closed (or could not be opened: 4000 + status)."""

    channel: int
    code: int | None = None
    reason: str | None = None


Envelope = (
    TextEnvelope | BinaryEnvelope | OpenEnvelope | CloseEnvelope | OpenedEnvelope | ClosedEnvelope
)


@dataclass(frozen=True)
class SendBatch:
    """The body of a ``send``: envelopes numbered ``seq``, ``seq + 1``, ..."""

    seq: int
    messages: tuple[Envelope, ...]


@dataclass(frozen=True)
class ReceiveBatch:
    """The answer to a ``recv``: envelopes numbered ``seq``, ``seq + 1``, ...

    ``closed`` is set (code, reason) when the session has ended: nothing more follows.
    """

    seq: int
    messages: tuple[Envelope, ...]
    closed: tuple[int, str] | None = None


class OutOfOrderError(Exception):
    """A send skipped envelopes the server has not seen: resend from ``ack`` (HTTP 409)."""

    def __init__(self, ack: int) -> None:
        super().__init__(f"expected envelope {ack} first")
        self.ack = ack


def _bad(text: str) -> ProtocolError:
    return ProtocolError(400, text)


def _int(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _bad(f'"{name}" must be an integer from {low} to {high}')
    return value


def _optional_str(value: Any, name: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise _bad(f'"{name}" must be a string')
    return value


def _close_fields(obj: Any, key: str) -> tuple[int | None, str | None]:
    if not isinstance(obj, dict):
        raise _bad(f'"{key}" must be an object')
    code = obj.get("code")
    if code is not None:
        code = _int(code, "code", 1000, 4999)
    return code, _optional_str(obj.get("reason"), "reason")


def parse_envelope(obj: Any) -> Envelope:
    """Validate one envelope (an already-decoded JSON object); 400 if malformed."""
    if not isinstance(obj, dict):
        raise _bad("Every envelope must be an object")
    channel = _int(obj.get("channel"), "channel", 0, MAX_CHANNEL)
    if "text" in obj:
        text = obj["text"]
        if not isinstance(text, str):
            raise _bad('"text" must be a string')
        return TextEnvelope(channel, text)
    if "binary" in obj:
        data = obj["binary"]
        if not isinstance(data, str):
            raise _bad('"binary" must be a base64 string')
        try:
            return BinaryEnvelope(channel, _b64.b64decode(data, validate=True))
        except ValueError:
            raise _bad('"binary" must be a base64 string') from None
    if "open" in obj:
        path = obj["open"]
        if not isinstance(path, str):
            raise _bad('"open" must be a path')
        protocols = obj.get("protocols")
        if protocols is None:
            protocols = []
        if (
            not isinstance(protocols, list)
            or len(protocols) > MAX_PROTOCOLS
            or not all(isinstance(p, str) and p for p in protocols)
        ):
            raise _bad('"protocols" must be a list of strings')
        return OpenEnvelope(channel, path, tuple(protocols))
    if "close" in obj:
        return CloseEnvelope(channel, *_close_fields(obj["close"], "close"))
    if "opened" in obj:
        opened = obj["opened"]
        if not isinstance(opened, dict):
            raise _bad('"opened" must be an object')
        return OpenedEnvelope(channel, _optional_str(opened.get("protocol"), "protocol"))
    if "closed" in obj:
        return ClosedEnvelope(channel, *_close_fields(obj["closed"], "closed"))
    raise _bad("Unknown envelope")


def _parse_numbered(body: str | bytes, what: str) -> tuple[int, list[Any], Any]:
    try:
        obj = decode_json(body)
    except ValueError:
        raise _bad("JSON input is required.") from None
    if not isinstance(obj, dict):
        raise _bad(f"A {what} must be a JSON object")
    seq = _int(obj.get("seq"), "seq", 0, 2**53)
    messages = obj.get("messages")
    if not isinstance(messages, list):
        raise _bad('"messages" must be a list')
    return seq, messages, obj


def parse_send(body: str | bytes) -> SendBatch:
    """Validate the body of a ``send`` request; raises a 400 :class:`ProtocolError`."""
    seq, messages, _ = _parse_numbered(body, "send")
    envelopes = tuple(parse_envelope(m) for m in messages)
    if any(isinstance(e, OpenedEnvelope | ClosedEnvelope) for e in envelopes):
        raise _bad('"opened" and "closed" envelopes only come from the server')
    return SendBatch(seq, envelopes)


def parse_batch(body: str | bytes) -> ReceiveBatch:
    """Read the answer to a ``recv`` (the client side)."""
    return _batch(*_parse_numbered(body, "batch"))


def parse_send_answer(body: str | bytes) -> tuple[int, ReceiveBatch | None]:
    """Read the answer to a ``send`` (the client side): ``ack``, and a batch if it carries one.

    A server answers ``{"ack": M}``, or with ``send?since=N``, ``{"ack": M, "seq": F,
    "messages": [...]}``.
    """
    try:
        obj = decode_json(body)
    except ValueError:
        raise _bad("JSON input is required.") from None
    if not isinstance(obj, dict):
        raise _bad("A send answer must be a JSON object")
    ack = _int(obj.get("ack"), "ack", 0, 2**53)
    if "messages" not in obj:
        return ack, None
    seq = _int(obj.get("seq"), "seq", 0, 2**53)
    if not isinstance(obj["messages"], list):
        raise _bad('"messages" must be a list')
    return ack, _batch(seq, obj["messages"], obj)


def _batch(seq: int, messages: list[Any], obj: dict[str, Any]) -> ReceiveBatch:
    closed = None
    if obj.get("closed") is not None:
        code, reason = _close_fields(obj["closed"], "closed")
        closed = (code or 1000, reason or "")
    return ReceiveBatch(seq, tuple(parse_envelope(m) for m in messages), closed)


def _object(envelope: Envelope) -> dict[str, Any]:
    if isinstance(envelope, TextEnvelope):
        return {"channel": envelope.channel, "text": envelope.text}
    if isinstance(envelope, BinaryEnvelope):
        return {"channel": envelope.channel, "binary": _b64.b64encode(envelope.data).decode()}
    if isinstance(envelope, OpenEnvelope):
        return {
            "channel": envelope.channel,
            "open": envelope.path,
            "protocols": list(envelope.protocols),
        }
    if isinstance(envelope, CloseEnvelope):
        return {"channel": envelope.channel, "close": _close_object(envelope.code, envelope.reason)}
    if isinstance(envelope, OpenedEnvelope):
        return {"channel": envelope.channel, "opened": {"protocol": envelope.protocol}}
    return {"channel": envelope.channel, "closed": _close_object(envelope.code, envelope.reason)}


def _close_object(code: int | None, reason: str | None) -> dict[str, Any]:
    close: dict[str, Any] = {}
    if code is not None:
        close["code"] = code
    if reason is not None:
        close["reason"] = reason
    return close


def encode_envelope(envelope: Envelope) -> bytes:
    """One envelope as compact JSON (UTF-8)."""
    return dumps(_object(envelope))


def encode_batch(
    seq: int,
    messages: Iterable[bytes],
    closed: tuple[int, str] | None = None,
    *,
    ack: int | None = None,
) -> bytes:
    """A ``send`` body, a ``recv`` answer, or (with ``ack``) a ``send?since=N`` answer.

    Envelopes are kept encoded while they wait for acknowledgement, so a batch
    that is sent again costs no re-encoding.
    """
    head = b'{"seq":%d,"messages":[' % seq
    if ack is not None:
        head = b'{"ack":%d,"seq":%d,"messages":[' % (ack, seq)
    tail = b"]}" if closed is None else b'],"closed":' + dumps(_close_object(*closed)) + b"}"
    return head + b",".join(messages) + tail


class SendSequencer:
    """The receiving side's check of a numbered stream: each envelope once, in order.

    ``ack`` is the number of the next envelope expected. A batch may repeat
    envelopes already taken (a resend after a lost answer): those are skipped. A
    batch starting beyond ``ack`` would leave a gap and is refused whole.
    """

    def __init__(self) -> None:
        self.ack = 0

    def accept(self, seq: int, messages: Sequence[Envelope]) -> Sequence[Envelope]:
        """The envelopes of the batch not seen before; raises :class:`OutOfOrderError`."""
        if seq > self.ack:
            raise OutOfOrderError(self.ack)
        fresh = messages[self.ack - seq :]
        self.ack += len(fresh)
        return fresh
