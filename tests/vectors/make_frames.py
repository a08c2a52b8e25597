"""Write frames.json: the golden frames both codecs must read and write exactly.

Run it from anywhere (``python tests/vectors/make_frames.py``); it rewrites
``frames.json`` beside it from the cases below, encoded once by the Python codec
(``jupyter_http_over_ws.wire``). The output is deterministic: running it again on an
unchanged codec gives the same file, so ``git diff`` shows what a codec change did
to the wire. Read README.md before changing a case.
"""

from __future__ import annotations

import base64
import json
import struct
import sys
from pathlib import Path
from typing import Any

from jupyter_http_over_ws.wire import framing, polling, protocol

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "frames.json"

#: Bytes that are not UTF-8, with the values JSON and base64 get wrong when careless.
RAW = bytes([0x00, 0xFF, 0x80, 0x7F, 0x0A, 0x0D, 0x22, 0x5C, 0xC3, 0x28, 0xFE, 0x01, 0x10])
#: Text a JSON encoder must escape (quote, backslash, newline, tab) or keep (non-ASCII).
TEXT = 'line 1\nline 2\t"quoted" \\ héllo ✓ </script>'

JSON_REQUESTS: list[dict[str, Any]] = [
    {
        "name": "GET without body or headers",
        "request": {"message_id": 1, "method": "GET", "path": "/api/contents"},
    },
    {
        "name": "GET with a query, a string id and headers",
        "request": {
            "message_id": "req-7",
            "method": "GET",
            "path": "/api/contents/dir?content=1&type=directory",
            "headers": {"Accept": "application/json", "If-None-Match": '"abc"'},
        },
    },
    {
        "name": "POST with a text body",
        "request": {"message_id": 2, "method": "POST", "path": "/api/sessions", "body": TEXT},
    },
    {
        "name": "PUT with a binary body and headers",
        "request": {
            "message_id": 3,
            "method": "PUT",
            "path": "/files/my%20notes.bin",
            "headers": {"Content-Type": "application/octet-stream"},
            "body_base64": base64.b64encode(RAW).decode(),
        },
    },
]

CANCELS: list[dict[str, Any]] = [
    {"name": "cancel a numbered request", "message_id": 7},
    {"name": "cancel a named request", "message_id": "req-7"},
]

JSON_REPLIES: list[dict[str, Any]] = [
    {
        "name": "a whole small reply in one frame: head, data, done",
        "reply": {
            "message_id": 1,
            "status": 200,
            "statusText": "OK",
            "headers": {"Content-Type": "application/json", "Etag": '"v1"'},
            "data_base64": base64.b64encode(b'{"name": "a.ipynb"}').decode(),
            "done": True,
        },
    },
    {
        "name": "first frame of a long reply: head and data, not done",
        "reply": {
            "message_id": "req-7",
            "status": 206,
            "statusText": "Partial Content",
            "headers": {"Content-Type": "application/octet-stream"},
            "data_base64": base64.b64encode(RAW).decode(),
            "done": False,
        },
    },
    {
        "name": "continuation: data only",
        "reply": {
            "message_id": "req-7",
            "data_base64": base64.b64encode(RAW[::-1]).decode(),
            "done": False,
        },
    },
    {
        "name": "the bare last frame",
        "reply": {"message_id": "req-7", "done": True},
    },
    {
        "name": "an empty body (204): head and done, no data",
        "reply": {
            "message_id": 4,
            "status": 204,
            "statusText": "No Content",
            "headers": {},
            "done": True,
        },
    },
    {
        "name": "repeated header names are joined with a comma",
        "header_pairs": [["Set-Cookie", "a=1"], ["Set-Cookie", "b=2"], ["Vary", "Origin"]],
        "reply": {
            "message_id": 5,
            "status": 302,
            "statusText": "Found",
            "headers": {"Set-Cookie": "a=1, b=2", "Vary": "Origin"},
            "done": True,
        },
    },
]

ERROR_REPLIES: list[dict[str, Any]] = [
    {
        "name": "a message that is not JSON: no message_id",
        "error": {"status": 400, "statusText": protocol.JSON_REQUIRED},
    },
    {
        "name": "a refused request echoes its message_id",
        "error": {
            "message_id": 9,
            "status": 403,
            "statusText": "Path not allowed through the tunnel "
            "(see HttpOverWebSocketApp.allowed_paths)",
        },
    },
    {
        "name": "a cancelled request",
        "error": {
            "message_id": "req-7",
            "status": 499,
            "statusText": "Request cancelled by the client.",
        },
    },
]

BINARY_REQUESTS: list[dict[str, Any]] = [
    {
        "name": "GET without body",
        "request": {"message_id": 1, "method": "GET", "path": "/api/contents"},
    },
    {
        "name": "PUT with a raw body and headers",
        "request": {
            "message_id": "up-1",
            "method": "PUT",
            "path": "/files/my%20notes.bin",
            "headers": {"Content-Type": "application/octet-stream"},
            "body_base64": base64.b64encode(RAW).decode(),
        },
    },
    {
        "name": "POST with a text body (sent as its UTF-8 bytes)",
        "request": {
            "message_id": 2,
            "method": "POST",
            "path": "/api/sessions",
            "body_base64": base64.b64encode(TEXT.encode()).decode(),
        },
    },
]

BINARY_REPLIES: list[dict[str, Any]] = [
    {
        "name": "a whole reply in one frame: head, raw data, done",
        "reply": {
            "message_id": 1,
            "status": 200,
            "statusText": "OK",
            "headers": {"Content-Type": "application/octet-stream"},
            "data_base64": base64.b64encode(RAW).decode(),
            "done": True,
        },
    },
    {
        "name": "first frame: head without data",
        "reply": {
            "message_id": "dl-1",
            "status": 200,
            "statusText": "OK",
            "headers": {"Content-Length": "24"},
            "done": False,
        },
    },
    {
        "name": "continuation: raw data only",
        "reply": {
            "message_id": "dl-1",
            "data_base64": base64.b64encode(RAW).decode(),
            "done": False,
        },
    },
    {
        "name": "the bare last frame",
        "reply": {"message_id": "dl-1", "done": True},
    },
]

HELLOS: list[dict[str, Any]] = [
    {"name": "a release", "version": "1.2.3"},
    {"name": "a development version", "version": "0.1.0.dev0"},
]

#: Text frames that are not a hello: a client must take them for replies.
NOT_HELLOS = [
    '{"message_id":1,"framing":"binary"}',
    '{"message_id":1,"done":true}',
    "not json",
]

KERNEL_PATH = "/api/kernels/k-1/channels?session_id=s-1"
ENVELOPES: list[dict[str, Any]] = [
    {
        "name": "a tunnel message on channel 0",
        "envelope": {
            "kind": "text",
            "channel": 0,
            "text": '{"message_id":1,"method":"GET","path":"/api"}',
        },
    },
    {
        "name": "a text frame of a proxied socket",
        "envelope": {"kind": "text", "channel": 3, "text": TEXT},
    },
    {
        "name": "a binary frame of a proxied socket",
        "envelope": {"kind": "binary", "channel": 3, "data_base64": base64.b64encode(RAW).decode()},
    },
    {
        "name": "open a proxied socket with a subprotocol",
        "envelope": {
            "kind": "open",
            "channel": 1,
            "path": KERNEL_PATH,
            "protocols": ["v1.kernel.websocket.jupyter.org"],
        },
    },
    {
        "name": "open a proxied socket without subprotocols",
        "envelope": {
            "kind": "open",
            "channel": 2,
            "path": "/terminals/websocket/1",
            "protocols": [],
        },
    },
    {
        "name": "close with a code and a reason",
        "envelope": {"kind": "close", "channel": 1, "code": 1000, "reason": "bye"},
    },
    {"name": "close without code or reason", "envelope": {"kind": "close", "channel": 2}},
    {
        "name": "opened with the subprotocol picked",
        "envelope": {"kind": "opened", "channel": 1, "protocol": "v1.kernel.websocket.jupyter.org"},
    },
    {
        "name": "opened without a subprotocol",
        "envelope": {"kind": "opened", "channel": 2, "protocol": None},
    },
    {
        "name": "closed by the upstream",
        "envelope": {"kind": "closed", "channel": 1, "code": 1000, "reason": ""},
    },
    {
        "name": "refused before opening: 4000 + status",
        "envelope": {
            "kind": "closed",
            "channel": 4,
            "code": 4404,
            "reason": "Kernel does not exist: k-9",
        },
    },
    {"name": "closed without a close frame", "envelope": {"kind": "closed", "channel": 2}},
]

SEND_BATCHES: list[dict[str, Any]] = [
    {"name": "an empty send", "seq": 0, "envelopes": []},
    {
        "name": "a request, opening a kernel socket and a frame on it",
        "seq": 5,
        "envelopes": [
            {
                "kind": "text",
                "channel": 0,
                "text": '{"message_id":6,"method":"GET","path":"/api/kernels"}',
            },
            {
                "kind": "open",
                "channel": 1,
                "path": KERNEL_PATH,
                "protocols": ["v1.kernel.websocket.jupyter.org"],
            },
            {"kind": "binary", "channel": 1, "data_base64": base64.b64encode(RAW).decode()},
            {"kind": "close", "channel": 1, "code": 1000},
        ],
    },
]

RECV_ANSWERS: list[dict[str, Any]] = [
    {"name": "an empty long poll", "seq": 3, "envelopes": []},
    {
        "name": "a reply on the tunnel and a kernel socket's life",
        "seq": 0,
        "envelopes": [
            {
                "kind": "text",
                "channel": 0,
                "text": '{"message_id":6,"status":200,"statusText":"OK","headers":{},'
                '"data":"W10=","done":true}',
            },
            {"kind": "opened", "channel": 1, "protocol": "v1.kernel.websocket.jupyter.org"},
            {"kind": "binary", "channel": 1, "data_base64": base64.b64encode(RAW).decode()},
            {"kind": "closed", "channel": 1, "code": 1000, "reason": ""},
        ],
    },
    {
        "name": "the session ended (idle)",
        "seq": 9,
        "envelopes": [],
        "closed": {"code": 4408, "reason": "Idle for 60 s"},
    },
]


# ------------------------------------------------------------------- encoding


def _body(request: dict[str, Any]) -> bytes | str | None:
    if "body_base64" in request:
        return base64.b64decode(request["body_base64"])
    return request.get("body")


def _js_request_text(request: dict[str, Any]) -> str:
    """The same request as js/src/codec.js encodeRequest lays it out: headers before the body.

    JSON key order carries no meaning (the server reads both); it is recorded so that
    each codec's exact output is pinned.
    """
    obj: dict[str, Any] = {k: request[k] for k in ("message_id", "method", "path")}
    if request.get("headers"):
        obj["headers"] = request["headers"]
    for key in ("body", "body_base64"):
        if key in request:
            obj[key] = request[key]
    return protocol.dumps(obj).decode()


def _layout(frame: bytes) -> dict[str, Any]:
    """A binary frame taken apart, for readers checking it against protocol.md."""
    (length,) = struct.unpack_from(">I", frame)
    return {
        "header_length": length,
        "header": frame[4 : 4 + length].decode(),
        "body_hex": frame[4 + length :].hex(),
    }


def _reply_args(reply: dict[str, Any]) -> dict[str, Any]:
    return {
        "done": reply["done"],
        "status": reply.get("status"),
        "status_text": reply.get("statusText"),
        "headers": reply.get("headers"),
        "data": base64.b64decode(reply["data_base64"]) if "data_base64" in reply else None,
    }


def envelope_value(neutral: dict[str, Any]) -> polling.Envelope:
    """The wire/polling.py dataclass a neutral envelope description stands for."""
    kind, channel = neutral["kind"], neutral["channel"]
    if kind == "text":
        return polling.TextEnvelope(channel, neutral["text"])
    if kind == "binary":
        return polling.BinaryEnvelope(channel, base64.b64decode(neutral["data_base64"]))
    if kind == "open":
        return polling.OpenEnvelope(channel, neutral["path"], tuple(neutral["protocols"]))
    if kind == "close":
        return polling.CloseEnvelope(channel, neutral.get("code"), neutral.get("reason"))
    if kind == "opened":
        return polling.OpenedEnvelope(channel, neutral["protocol"])
    if kind == "closed":
        return polling.ClosedEnvelope(channel, neutral.get("code"), neutral.get("reason"))
    raise ValueError(kind)


def build() -> dict[str, Any]:
    """Every case with its wire form, encoded by the Python codec."""
    json_requests = []
    for case in JSON_REQUESTS:
        r = case["request"]
        text = protocol.encode_request(
            r["message_id"], r["method"], r["path"], body=_body(r), headers=r.get("headers")
        ).decode()
        entry = {**case, "text": text}
        js_text = _js_request_text(r)
        if js_text != text:
            entry["js_text"] = js_text
        json_requests.append(entry)

    cancels = [{**c, "text": protocol.encode_cancel(c["message_id"]).decode()} for c in CANCELS]

    json_replies = []
    for case in JSON_REPLIES:
        args = _reply_args(case["reply"])
        if "header_pairs" in case:
            args["headers"] = [tuple(pair) for pair in case["header_pairs"]]
        text = protocol.encode_reply(case["reply"]["message_id"], **args).decode()
        json_replies.append({**case, "text": text})

    error_replies = []
    for case in ERROR_REPLIES:
        e = case["error"]
        error = protocol.ProtocolError(e["status"], e["statusText"], e.get("message_id"))
        error_replies.append({**case, "text": protocol.encode_error(error).decode()})

    binary_requests = []
    for case in BINARY_REQUESTS:
        r = case["request"]
        body = base64.b64decode(r["body_base64"]) if "body_base64" in r else None
        frame = framing.encode_binary_request(
            r["message_id"], r["method"], r["path"], body=body, headers=r.get("headers")
        )
        binary_requests.append({**case, "hex": frame.hex(), "layout": _layout(frame)})

    binary_replies = []
    for case in BINARY_REPLIES:
        frame = framing.encode_binary_reply(
            case["reply"]["message_id"], **_reply_args(case["reply"])
        )
        binary_replies.append({**case, "hex": frame.hex(), "layout": _layout(frame)})

    hellos = [
        {**h, "framing": "binary", "text": framing.binary_hello(h["version"]).decode()}
        for h in HELLOS
    ]

    envelopes = [
        {**c, "json": polling.encode_envelope(envelope_value(c["envelope"])).decode()}
        for c in ENVELOPES
    ]

    send_batches = []
    for case in SEND_BATCHES:
        encoded = [polling.encode_envelope(envelope_value(e)) for e in case["envelopes"]]
        send_batches.append({**case, "json": polling.encode_batch(case["seq"], encoded).decode()})

    recv_answers = []
    for case in RECV_ANSWERS:
        encoded = [polling.encode_envelope(envelope_value(e)) for e in case["envelopes"]]
        closed = case.get("closed")
        body = polling.encode_batch(
            case["seq"], encoded, (closed["code"], closed["reason"]) if closed else None
        )
        recv_answers.append({**case, "json": body.decode()})

    return {
        "about": "Golden frames of the tunnel and polling protocols: see README.md beside it.",
        "json_requests": json_requests,
        "cancels": cancels,
        "json_replies": json_replies,
        "error_replies": error_replies,
        "binary_requests": binary_requests,
        "binary_replies": binary_replies,
        "hellos": hellos,
        "not_hellos": NOT_HELLOS,
        "envelopes": envelopes,
        "send_batches": send_batches,
        "recv_answers": recv_answers,
    }


def _check_json_fallback(vectors: dict[str, Any]) -> None:
    """Every JSON text must be what the standard library writes too (orjson may be absent)."""
    for section in ("json_requests", "cancels", "json_replies", "error_replies", "hellos"):
        for case in vectors[section]:
            text = case["text"]
            again = json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)
            assert again == text, (section, case["name"])


def main() -> int:
    """Rewrite frames.json; exit status 0."""
    vectors = build()
    _check_json_fallback(vectors)
    text = json.dumps(vectors, indent=2, ensure_ascii=False) + "\n"
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT} ({len(text)} characters)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
