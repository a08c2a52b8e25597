"""The Python codec against the golden frames in tests/vectors/frames.json.

Each frame must be written byte for byte by the encoder and read back to exactly the
values it stands for, by ``wire/protocol.py``, ``wire/framing.py`` and
``wire/polling.py``. ``js/test/golden-frames.test.js`` holds the browser client's codec
to the same file, so the two cannot drift apart.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import struct
from pathlib import Path
from typing import Any

import pytest

from jupyter_http_over_ws.wire import framing, polling, protocol

VECTORS_DIR = Path(__file__).resolve().parents[1] / "vectors"
VECTORS: dict[str, Any] = json.loads((VECTORS_DIR / "frames.json").read_text(encoding="utf-8"))


def cases(section: str) -> Any:
    """The cases of one section, each named by its ``name`` in pytest's output."""
    return pytest.mark.parametrize(
        "case", VECTORS[section], ids=[case["name"] for case in VECTORS[section]]
    )


def b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def http_request(request: dict[str, Any]) -> protocol.HttpRequest:
    body = b64(request["body_base64"]) if "body_base64" in request else b""
    if "body" in request:
        body = request["body"].encode()
    return protocol.HttpRequest(
        request["message_id"],
        request["method"],
        request["path"],
        body,
        tuple(request.get("headers", {}).items()),
    )


def reply_frame(reply: dict[str, Any]) -> protocol.ReplyFrame:
    return protocol.ReplyFrame(
        message_id=reply.get("message_id"),
        done=reply["done"],
        status=reply.get("status"),
        status_text=reply.get("statusText"),
        headers=reply.get("headers"),
        data=b64(reply["data_base64"]) if "data_base64" in reply else None,
    )


def reply_args(reply: dict[str, Any]) -> dict[str, Any]:
    frame = reply_frame(reply)
    return {
        "done": frame.done,
        "status": frame.status,
        "status_text": frame.status_text,
        "headers": frame.headers,
        "data": frame.data,
    }


def envelope(neutral: dict[str, Any]) -> polling.Envelope:
    kind, channel = neutral["kind"], neutral["channel"]
    if kind == "text":
        return polling.TextEnvelope(channel, neutral["text"])
    if kind == "binary":
        return polling.BinaryEnvelope(channel, b64(neutral["data_base64"]))
    if kind == "open":
        return polling.OpenEnvelope(channel, neutral["path"], tuple(neutral["protocols"]))
    if kind == "close":
        return polling.CloseEnvelope(channel, neutral.get("code"), neutral.get("reason"))
    if kind == "opened":
        return polling.OpenedEnvelope(channel, neutral["protocol"])
    assert kind == "closed", kind
    return polling.ClosedEnvelope(channel, neutral.get("code"), neutral.get("reason"))


def check_layout(frame: bytes, layout: dict[str, Any]) -> None:
    """The readable layout beside each binary frame says what the bytes say."""
    header = layout["header"].encode()
    assert struct.unpack_from(">I", frame) == (layout["header_length"],)
    assert len(header) == layout["header_length"]
    assert frame == struct.pack(">I", len(header)) + header + bytes.fromhex(layout["body_hex"])


# ----------------------------------------------------------------- tunnel frames


@cases("json_requests")
def test_json_request_is_encoded_exactly(case: dict[str, Any]) -> None:
    request = case["request"]
    body: bytes | str | None = request.get("body")
    if "body_base64" in request:
        body = b64(request["body_base64"])
    encoded = protocol.encode_request(
        request["message_id"],
        request["method"],
        request["path"],
        body=body,
        headers=request.get("headers"),
    )
    assert encoded == case["text"].encode()


@cases("json_requests")
def test_json_request_is_decoded_exactly(case: dict[str, Any]) -> None:
    expected = http_request(case["request"])
    assert protocol.parse_message(case["text"]) == expected
    assert protocol.parse_message(case["text"].encode()) == expected
    # The browser client's layout (another key order) means the same request.
    assert protocol.parse_message(case.get("js_text", case["text"])) == expected


@cases("cancels")
def test_cancel_is_encoded_and_decoded_exactly(case: dict[str, Any]) -> None:
    # As the Python client writes it (client/_tunnel.py).
    assert protocol.encode_cancel(case["message_id"]) == (case["text"].encode())
    assert protocol.parse_message(case["text"]) == protocol.Cancel(case["message_id"])


@cases("json_replies")
def test_json_reply_is_encoded_exactly(case: dict[str, Any]) -> None:
    args = reply_args(case["reply"])
    if "header_pairs" in case:
        args["headers"] = [tuple(pair) for pair in case["header_pairs"]]
    assert protocol.encode_reply(case["reply"]["message_id"], **args) == case["text"].encode()


@cases("json_replies")
def test_json_reply_is_decoded_exactly(case: dict[str, Any]) -> None:
    assert protocol.parse_reply(case["text"]) == reply_frame(case["reply"])


@cases("error_replies")
def test_error_reply_is_encoded_and_decoded_exactly(case: dict[str, Any]) -> None:
    error = case["error"]
    refused = protocol.ProtocolError(error["status"], error["statusText"], error.get("message_id"))
    assert protocol.encode_error(refused) == case["text"].encode()
    assert protocol.parse_reply(case["text"]) == protocol.ReplyFrame(
        message_id=error.get("message_id"),
        done=True,
        status=error["status"],
        status_text=error["statusText"],
    )


@cases("binary_requests")
def test_binary_request_is_encoded_and_decoded_exactly(case: dict[str, Any]) -> None:
    request = case["request"]
    frame = bytes.fromhex(case["hex"])
    check_layout(frame, case["layout"])
    encoded = framing.encode_binary_request(
        request["message_id"],
        request["method"],
        request["path"],
        body=b64(request["body_base64"]) if "body_base64" in request else None,
        headers=request.get("headers"),
    )
    assert encoded == frame
    assert framing.parse_binary_message(frame) == http_request(request)


@cases("binary_replies")
def test_binary_reply_is_encoded_and_decoded_exactly(case: dict[str, Any]) -> None:
    reply = case["reply"]
    frame = bytes.fromhex(case["hex"])
    check_layout(frame, case["layout"])
    assert framing.encode_binary_reply(reply["message_id"], **reply_args(reply)) == frame
    assert framing.parse_binary_reply(frame) == reply_frame(reply)


@cases("hellos")
def test_hello_is_encoded_and_decoded_exactly(case: dict[str, Any]) -> None:
    assert framing.binary_hello(case["version"]) == case["text"].encode()
    assert framing.parse_hello(case["text"]) == case["framing"]


def test_other_text_frames_are_not_hellos() -> None:
    for text in VECTORS["not_hellos"]:
        assert framing.parse_hello(text) is None, text


# ---------------------------------------------------------------------- polling


@cases("envelopes")
def test_envelope_is_encoded_and_decoded_exactly(case: dict[str, Any]) -> None:
    value = envelope(case["envelope"])
    assert polling.encode_envelope(value) == case["json"].encode()
    assert polling.parse_envelope(json.loads(case["json"])) == value


@cases("send_batches")
def test_send_batch_is_encoded_and_decoded_exactly(case: dict[str, Any]) -> None:
    values = tuple(envelope(e) for e in case["envelopes"])
    encoded = polling.encode_batch(case["seq"], [polling.encode_envelope(v) for v in values])
    assert encoded == case["json"].encode()
    assert polling.parse_send(case["json"]) == polling.SendBatch(case["seq"], values)


@cases("recv_answers")
def test_recv_answer_is_encoded_and_decoded_exactly(case: dict[str, Any]) -> None:
    values = tuple(envelope(e) for e in case["envelopes"])
    closed = (case["closed"]["code"], case["closed"]["reason"]) if "closed" in case else None
    encoded = polling.encode_batch(
        case["seq"], [polling.encode_envelope(v) for v in values], closed
    )
    assert encoded == case["json"].encode()
    assert polling.parse_batch(case["json"]) == polling.ReceiveBatch(case["seq"], values, closed)


# ------------------------------------------------------------------- the file


def test_frames_json_is_what_make_frames_writes() -> None:
    """A case edited in make_frames.py without running it (or the reverse) fails here."""
    spec = importlib.util.spec_from_file_location("make_frames", VECTORS_DIR / "make_frames.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.build() == VECTORS


def test_every_section_has_cases() -> None:
    for section, value in VECTORS.items():
        if section != "about":
            assert value, section
