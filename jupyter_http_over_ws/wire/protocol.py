"""The HTTP-over-WebSocket wire protocol, without any I/O.

This module turns client frames into validated, typed requests and builds the
JSON reply frames, exactly as the original ``jupyter_http_over_ws`` 0.0.8 put
them on the wire (see ``docs/developers/protocol.md``). It imports no Tornado,
asyncio or jupyter_server, so the server handlers, the Python client and every
transport share it, and it is tested without a server.

A malformed message raises :class:`ProtocolError`, which carries the HTTP status
and reason phrase the tunnel answers with for that message alone.
"""

from __future__ import annotations

import binascii
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeGuard, cast
from urllib.parse import quote, unquote, unquote_plus

_b64: Any
try:  # pybase64 (SIMD) encodes 20-50x faster than the standard library; optional.
    import pybase64 as _b64
except ImportError:  # pragma: no cover - exercised when pybase64 is absent
    import base64 as _b64

_orjson: Any
try:  # orjson encodes several times faster, and decodes small texts faster; optional.
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised when orjson is absent
    _orjson = None

#: Texts this long or longer are decoded by the standard library's ``json``. orjson
#: (3.13) decodes a request of a few KiB 3-4x faster, but slows down on a long string:
#: here, a message with a base64 body decoded in 0.6 ms (orjson) against 1.2 ms (json)
#: at 2 MiB, 4.3 against 2.6 ms at 4 MiB, and 0.48 against 0.14 s at 116 MiB (a 64 MiB
#: upload as one legacy message, where it was the largest cost of ours in
#: docs/benchmarks/profile-upload.txt).
ORJSON_DECODE_LIMIT = 2 * 1024 * 1024

__all__ = [
    "AUTH_URL_ARG",
    "CREDENTIAL_ARGUMENTS",
    "JSON_REQUIRED",
    "MISSING_KEYS",
    "REQUIRED_KEYS",
    "UNCAUGHT_ERROR",
    "Cancel",
    "HttpRequest",
    "PathPolicy",
    "ProtocolError",
    "ReplyFrame",
    "decode_json",
    "encode_error",
    "encode_reply",
    "encode_request",
    "normalize_path",
    "parse_message",
    "parse_reply",
    "parse_request",
    "without_credentials",
]

REQUIRED_KEYS: Final = ("message_id", "method", "path")
JSON_REQUIRED: Final = "JSON input is required."
MISSING_KEYS: Final = "The body must contain the following keys: " + ", ".join(REQUIRED_KEYS)
UNCAUGHT_ERROR: Final = "Uncaught server-side exception. Check logs for additional details."

#: The longest ``path`` (path and query) accepted, in characters. Tornado refuses a
#: request line and headers over 64 KiB, so nothing longer could be sent directly.
MAX_PATH_LENGTH: Final = 16 * 1024
#: The most request headers one message may carry, and their total size in characters.
MAX_HEADER_COUNT: Final = 100
MAX_HEADERS_SIZE: Final = 64 * 1024
#: The longest method name accepted.
MAX_METHOD_LENGTH: Final = 32

# RFC 9110 "token": what an HTTP method or header name may be made of.
_TOKEN_RE: Final = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# A URL scheme ("http:", "javascript:", "c:"): a path that starts with one is an absolute URL.
_SCHEME_RE: Final = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
# Control characters (CR, LF, NUL, ...) never belong in a request line or header.
_CONTROL_RE: Final = re.compile(r"[\x00-\x1f\x7f]")
_SEPARATORS_RE: Final = re.compile(r"[/\\]")
# Characters left as they are when percent-encoding a path: everything a URL may hold
# literally, plus "%" so that existing escapes survive. Spaces, non-ASCII and the
# characters RFC 3986 excludes ("<>\"{}|^`) are encoded, as a browser would.
_PATH_SAFE: Final = "!$&'()*+,/:;=?@[]~%"

#: Request headers a client may not set through the tunnel: credentials come from the
#: tunnel's own authenticated upgrade request, and hop-by-hop or framing headers describe
#: a connection that does not exist for a tunnelled request.
FORBIDDEN_REQUEST_HEADERS: Final = frozenset(
    {
        "authorization",
        "connection",
        "content-length",
        "cookie",
        "expect",
        "forwarded",
        "host",
        "keep-alive",
        "origin",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "sec-websocket-extensions",
        "sec-websocket-key",
        "sec-websocket-protocol",
        "sec-websocket-version",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-real-ip",
        "x-scheme",
    }
)
#: Header name prefixes a client may not use either: the Fetch standard keeps ``Sec-``
#: (fetch metadata such as ``Sec-Fetch-Site``, which Tornado's cross-origin protection
#: trusts) and ``Proxy-`` to the browser, so a page cannot set them directly; inside the
#: tunnel only the upgrade's own (an identity header) reaches the handler.
FORBIDDEN_REQUEST_HEADER_PREFIXES: Final = ("sec-", "proxy-")


#: The query argument through which Colab-era clients pass a credentials URL.
AUTH_URL_ARG = "jupyter_http_over_ws_auth_url"

#: Query arguments that carry credentials: jupyter_server's ``token``, and the auth URL
#: (whose own query holds a token). No log line and no relayed URL may contain them.
CREDENTIAL_ARGUMENTS = frozenset({"token", AUTH_URL_ARG})


def without_credentials(uri: str) -> str:
    """``uri`` (a path and an optional query) without its credential query arguments.

    Every other argument stays exactly as it came, so a log line still says what was
    asked for. A name is compared decoded, as the server reads it (``%74oken`` is
    ``token`` to Tornado too). A query left empty is dropped with its ``?``.
    """
    path, separator, query = uri.partition("?")
    if not separator:
        return uri
    kept = "&".join(
        argument
        for argument in query.split("&")
        if unquote_plus(argument.partition("=")[0]) not in CREDENTIAL_ARGUMENTS
    )
    return f"{path}?{kept}" if kept else path


class ProtocolError(Exception):
    """A message the tunnel refuses, with the HTTP status it answers with.

    ``message_id`` is the id to echo, or ``None`` when the message had none.
    """

    def __init__(self, status: int, status_text: str, message_id: Any = None) -> None:
        super().__init__(status_text)
        self.status = status
        self.status_text = status_text
        self.message_id = message_id


@dataclass(frozen=True)
class HttpRequest:
    """One tunnelled HTTP request, validated.

    ``path`` is relative to the server's ``base_url``, starts with ``/``, is
    percent-encoded and holds no fragment; ``method`` is upper case. The ``body`` of a
    binary frame is a view of the frame, not a copy.
    """

    message_id: str | int | float
    method: str
    path: str
    body: bytes | memoryview = b""
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Cancel:
    """A client's request to stop the in-flight request ``message_id`` (our addition).

    Sent as ``{"message_id": ..., "cancel": true}``. The cancelled request still
    ends with exactly one final frame (status 499 if its response had not started).
    """

    message_id: str | int | float


@dataclass(frozen=True)
class ReplyFrame:
    """One reply frame as a client reads it (see :func:`parse_reply`)."""

    message_id: Any
    done: bool
    status: int | None = None
    status_text: str | None = None
    headers: dict[str, str] | None = None
    data: bytes | None = None


# --------------------------------------------------------------------------- JSON


def dumps(obj: Any) -> bytes:
    """Encode ``obj`` as compact UTF-8 JSON."""
    if _orjson is not None:
        return cast(bytes, _orjson.dumps(obj))
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def decode_json(message: str | bytes) -> Any:
    """Decode a JSON text, raising :class:`ValueError` on anything else."""
    if _orjson is not None and len(message) < ORJSON_DECODE_LIMIT:
        try:
            return _orjson.loads(message)
        except _orjson.JSONDecodeError as e:
            raise ValueError(str(e)) from None
    return json.loads(message, parse_constant=_not_json)


def _not_json(name: str) -> Any:
    # ``NaN``, ``Infinity`` and ``-Infinity`` are not JSON; orjson refuses them too.
    raise ValueError(f"{name} is not valid JSON")


@dataclass(frozen=True)
class PathPolicy:
    """Which paths (relative to ``base_url``) the tunnel may reach.

    Each pattern is a regular expression matched from the start of the path, its
    query left out (``/api/contents``, ``/files/``); no patterns means every path.
    """

    patterns: tuple[re.Pattern[str], ...] = ()

    @classmethod
    def compile(cls, patterns: Iterable[str]) -> PathPolicy:
        """Compile ``patterns``; raises :class:`re.error` for an invalid one."""
        return cls(tuple(re.compile(p) for p in patterns))

    def check(self, path: str, message_id: Any = None) -> None:
        """Raise a 403 :class:`ProtocolError` if ``path`` is not allowed."""
        if not self.patterns:
            return
        route = path.partition("?")[0]
        if not any(p.match(route) for p in self.patterns):
            raise ProtocolError(
                403,
                "Path not allowed through the tunnel (see HttpOverWebSocketApp.allowed_paths)",
                message_id,
            )


# ---------------------------------------------------------------- client requests


def parse_request(message: str | bytes) -> HttpRequest:
    """Validate one client frame of the tunnel socket and return the request it asks for.

    Raises :class:`ProtocolError` (400, 414, 431) for a message that is not JSON,
    lacks a required key, or holds a value of the wrong type or a hostile path.
    """
    request = parse_message(message)
    if isinstance(request, Cancel):
        raise ProtocolError(400, MISSING_KEYS, request.message_id)
    return request


def parse_message(message: str | bytes) -> HttpRequest | Cancel:
    """Like :func:`parse_request`, but also accepts a :class:`Cancel` message."""
    return message_from_object(decode_object(message))


def decode_object(message: str | bytes) -> Any:
    """Decode a client message's JSON, raising the protocol's 400 if it is not JSON."""
    try:
        return decode_json(message)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ProtocolError(400, JSON_REQUIRED) from None


def message_from_object(obj: Any, body: bytes | memoryview | None = None) -> HttpRequest | Cancel:
    """Validate a decoded client message; ``body``, if given, replaces its body keys."""
    if not isinstance(obj, dict):
        raise ProtocolError(400, MISSING_KEYS)
    message_id = obj.get("message_id")
    if isinstance(message_id, float) and not math.isfinite(message_id):
        message_id = None  # Infinity and NaN have no JSON form to echo
    if obj.get("cancel") is True and "method" not in obj and _valid_id(message_id):
        return Cancel(message_id)
    missing = [key for key in REQUIRED_KEYS if key not in obj]
    if missing:
        raise ProtocolError(400, f"{MISSING_KEYS} (missing: {', '.join(missing)})", message_id)
    if not _valid_id(message_id):
        raise ProtocolError(400, '"message_id" must be a string or a number', message_id)
    method = _parse_method(obj["method"], message_id)
    # Credentials come from the tunnel's upgrade, never from a message: a ``?token=``
    # in a path would authenticate that request instead, and the handler's log line
    # for a refusal would hold it.
    path = without_credentials(normalize_path(obj["path"], message_id))
    if body is None:
        body = _parse_body(obj, message_id)
    headers = _parse_headers(obj.get("headers"), message_id)
    return HttpRequest(message_id, method, path, body, headers)


def _valid_id(message_id: Any) -> TypeGuard[str | int | float]:
    if isinstance(message_id, float):
        return math.isfinite(message_id)  # Infinity and NaN have no JSON form to echo
    return isinstance(message_id, (str, int)) and not isinstance(message_id, bool)


def _parse_method(method: Any, message_id: Any) -> str:
    if not isinstance(method, str):
        raise ProtocolError(400, '"method" must be a string', message_id)
    if not method or len(method) > MAX_METHOD_LENGTH or not _TOKEN_RE.match(method):
        raise ProtocolError(400, f"Invalid HTTP method: {method[:MAX_METHOD_LENGTH]!r}", message_id)
    return method.upper()


def normalize_path(path: Any, message_id: Any = None) -> str:
    """Check that ``path`` names a resource of this server and percent-encode it.

    The tunnel joins the result to the server's ``base_url``, so it must never be
    able to name another host or leave ``base_url``: absolute URLs (``http://...``),
    network paths (``//host``), backslashes, control characters (CR, LF, NUL) and
    ``.`` or ``..`` segments, plain or percent-encoded, are refused with 400.
    A missing leading ``/`` is added; a ``#fragment`` is dropped, as browsers do.
    """
    if not isinstance(path, str):
        raise ProtocolError(400, '"path" must be a string', message_id)
    if len(path) > MAX_PATH_LENGTH:
        raise ProtocolError(414, f"Path longer than {MAX_PATH_LENGTH} characters", message_id)
    if _CONTROL_RE.search(path):
        raise ProtocolError(400, "Path must not contain control characters", message_id)
    if "\\" in path:
        raise ProtocolError(400, "Path must not contain backslashes", message_id)
    if _SCHEME_RE.match(path):
        raise ProtocolError(400, "Path must be relative to this server, not a URL", message_id)
    path = path.partition("#")[0]
    if path.startswith("//"):
        raise ProtocolError(400, "Path must not start with '//'", message_id)
    if not path.startswith("/"):
        path = "/" + path
    route, _, query = path.partition("?")
    for segment in route.split("/"):
        # A handler unquotes its path arguments: "%2e%2e" and "a%2F..%2Fb" are ".." too.
        decoded = unquote(segment, errors="replace") if "%" in segment else segment
        if any(part in (".", "..") for part in _SEPARATORS_RE.split(decoded)):
            raise ProtocolError(400, "Path must not contain '.' or '..' segments", message_id)
    encoded = quote(route, safe=_PATH_SAFE)
    if query:
        encoded += "?" + quote(query, safe=_PATH_SAFE)
    return encoded


def _parse_body(obj: Mapping[str, Any], message_id: Any) -> bytes:
    body_base64 = obj.get("body_base64")
    if body_base64 is not None:
        if not isinstance(body_base64, str):
            raise ProtocolError(400, '"body_base64" must be a string', message_id)
        try:
            return cast(bytes, _b64.b64decode(body_base64, validate=True))
        except (binascii.Error, ValueError):
            raise ProtocolError(400, '"body_base64" is not valid base64', message_id) from None
    body = obj.get("body")
    if body is None:
        return b""
    if not isinstance(body, str):
        raise ProtocolError(400, '"body" must be a string', message_id)
    try:
        return body.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates from a JSON "\ud800" escape
        raise ProtocolError(400, '"body" is not valid Unicode text', message_id) from None


def _parse_headers(headers: Any, message_id: Any) -> tuple[tuple[str, str], ...]:
    if headers is None:
        return ()
    if not isinstance(headers, dict):
        raise ProtocolError(400, '"headers" must be an object of strings', message_id)
    if len(headers) > MAX_HEADER_COUNT:
        raise ProtocolError(431, f"More than {MAX_HEADER_COUNT} request headers", message_id)
    size = 0
    result = []
    for name, value in headers.items():
        if not isinstance(value, str):
            raise ProtocolError(400, f"Header {name[:64]!r} must be a string", message_id)
        if not _TOKEN_RE.match(name):
            raise ProtocolError(400, f"Invalid header name: {name[:64]!r}", message_id)
        if _CONTROL_RE.search(value.replace("\t", " ")):
            raise ProtocolError(400, f"Invalid value for header {name!r}", message_id)
        size += len(name) + len(value)
        if size > MAX_HEADERS_SIZE:
            raise ProtocolError(431, "Request headers too large", message_id)
        lowered = name.lower()
        if lowered in FORBIDDEN_REQUEST_HEADERS or lowered.startswith(
            FORBIDDEN_REQUEST_HEADER_PREFIXES
        ):
            continue  # credentials, framing and fetch metadata come from the tunnel itself
        result.append((name, value))
    return tuple(result)


def encode_request(
    message_id: str | int,
    method: str,
    path: str,
    *,
    body: bytes | str | None = None,
    headers: Mapping[str, str] | None = None,
) -> bytes:
    """Build one client request frame (used by the Python client).

    A body that is valid UTF-8 travels as ``body`` (about a third smaller than
    base64, and what every server version reads the same way); any other bytes
    travel as ``body_base64``.
    """
    msg: dict[str, Any] = {"message_id": message_id, "method": method, "path": path}
    if isinstance(body, bytes):
        try:
            msg["body"] = body.decode("utf-8")
        except UnicodeDecodeError:
            msg["body_base64"] = _b64.b64encode(body).decode("ascii")
    elif body:
        msg["body"] = body
    if headers:
        msg["headers"] = dict(headers)
    return dumps(msg)


# ------------------------------------------------------------------ server replies


def encode_cancel(message_id: Any) -> bytes:
    """A client's request to stop the in-flight request ``message_id`` (answered 499)."""
    return dumps({"message_id": message_id, "cancel": True})


def encode_reply(
    message_id: Any,
    *,
    done: bool,
    status: int | None = None,
    status_text: str | None = None,
    headers: Iterable[tuple[str, str]] | Mapping[str, str] | None = None,
    data: bytes | memoryview | None = None,
) -> bytes:
    """Build one reply frame as UTF-8 JSON bytes (to be sent as a text frame).

    ``status``, ``status_text`` and ``headers`` belong on the first frame of a reply
    only; ``data`` is added only when there are body bytes. Repeated header names
    are joined with ``", "``, as the original did.
    """
    frame: dict[str, Any] = {"message_id": message_id}
    if status is not None:
        frame["status"] = status
        frame["statusText"] = status_text or ""
        frame["headers"] = _headers_object(headers or ())
    # The body is spliced in as bytes: base64 needs no JSON escaping, and skipping
    # the str round trip saves two copies of every chunk.
    head = dumps(frame)[:-1]
    tail = b',"done":true}' if done else b',"done":false}'
    if data:
        return b"".join((head, b',"data":"', _b64.b64encode(data), b'"', tail))
    return head + tail


def _headers_object(headers: Iterable[tuple[str, str]] | Mapping[str, str]) -> dict[str, str]:
    items = headers.items() if isinstance(headers, Mapping) else headers
    result: dict[str, str] = {}
    for name, value in items:
        result[name] = f"{result[name]}, {value}" if name in result else value
    return result


def encode_error(error: ProtocolError) -> bytes:
    """Build the single final frame that answers a refused message."""
    frame: dict[str, Any] = {}
    if error.message_id is not None:
        frame["message_id"] = error.message_id
    frame.update(status=error.status, statusText=error.status_text, done=True)
    return dumps(frame)


def parse_reply(message: str | bytes) -> ReplyFrame:
    """Decode one reply frame (used by clients). Raises :class:`ValueError` if malformed."""
    obj = decode_json(message)
    if not isinstance(obj, dict) or not isinstance(obj.get("done"), bool):
        raise ValueError("not a reply frame")
    data = obj.get("data")
    return ReplyFrame(
        message_id=obj.get("message_id"),
        done=obj["done"],
        status=obj.get("status"),
        status_text=obj.get("statusText"),
        headers=obj.get("headers"),
        data=_b64.b64decode(data) if data else None,
    )
