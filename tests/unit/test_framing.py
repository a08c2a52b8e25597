"""The opt-in binary framing's layout and the choice of parser, tested without a server."""

from __future__ import annotations

import json
import struct

import pytest

from jupyter_http_over_ws.wire.framing import (
    BINARY,
    JSON,
    binary_hello,
    encode_binary_reply,
    encode_binary_request,
    parse_binary_message,
    parse_binary_reply,
    parse_hello,
    select_framing,
)
from jupyter_http_over_ws.wire.protocol import JSON_REQUIRED, Cancel, ProtocolError, parse_message


def test_binary_request_roundtrip():
    body = bytes(range(256))
    frame = encode_binary_request("m", "put", "/api/x", body=body, headers={"X-A": "1"})
    (length,) = struct.unpack(">I", frame[:4])
    assert json.loads(frame[4 : 4 + length]) == {
        "message_id": "m",
        "method": "put",
        "path": "/api/x",
        "headers": {"X-A": "1"},
    }
    assert frame[4 + length :] == body
    request = parse_binary_message(frame)
    assert (request.method, request.path, request.body, request.headers) == (
        "PUT",
        "/api/x",
        body,
        (("X-A", "1"),),
    )


def test_binary_reply_roundtrip():
    frame = encode_binary_reply(
        3, status=200, status_text="OK", headers={"A": "b"}, data=b"\x00" * 10, done=False
    )
    reply = parse_binary_reply(frame)
    assert (reply.message_id, reply.status, reply.headers, reply.data, reply.done) == (
        3,
        200,
        {"A": "b"},
        b"\x00" * 10,
        False,
    )
    last = parse_binary_reply(encode_binary_reply(3, done=True))
    assert (last.data, last.done, last.status) == (None, True, None)


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\x00\x00",
        b"\x00\x00\x00\x10{}",
        b"\xff\xff\xff\xff",
        b"\x00\x00\x00\x02no",
        struct.pack(">I", 2) + b"[]",
    ],
)
def test_malformed_binary_frames_are_400(frame):
    with pytest.raises(ProtocolError) as e:
        parse_binary_message(frame)
    assert e.value.status == 400


def test_binary_frame_paths_are_checked_too():
    with pytest.raises(ProtocolError) as e:
        parse_binary_message(encode_binary_request("m", "GET", "//evil.example/"))
    assert (e.value.status, e.value.message_id) == (400, "m")


def test_cancel_message():
    assert parse_message('{"message_id": 4, "cancel": true}') == Cancel(4)
    with pytest.raises(ProtocolError):
        parse_message('{"message_id": null, "cancel": true}')


def test_hello_and_selection():
    assert parse_hello(binary_hello("1.0")) == "binary"
    assert parse_hello('{"message_id": 1, "done": true}') is None
    assert parse_hello("junk") is None
    assert select_framing("binary") is BINARY
    assert select_framing(None) is JSON
    assert select_framing("bogus") is JSON


def test_framing_chooses_the_parser():
    text = '{"message_id": 1, "method": "GET", "path": "/api/status"}'
    binary = encode_binary_request(2, "GET", "/api/status", body=b"\x00\xff")
    # A binary frame on a binary tunnel has the binary layout; text frames stay JSON.
    assert BINARY.parse_message(binary) == parse_binary_message(binary)
    assert BINARY.parse_message(binary).body == b"\x00\xff"
    assert BINARY.parse_message(text) == parse_message(text)
    cancel = b'{"message_id": 5, "cancel": true}'
    assert BINARY.parse_message(struct.pack(">I", len(cancel)) + cancel) == Cancel(5)
    with pytest.raises(ProtocolError):  # bytes on a binary tunnel are never read as JSON
        BINARY.parse_message(cancel)
    # On a JSON tunnel every frame is JSON, binary or not.
    assert JSON.parse_message(text) == parse_message(text)
    assert JSON.parse_message(text.encode()) == parse_message(text)
    with pytest.raises(ProtocolError) as e:
        JSON.parse_message(binary)
    assert (e.value.status, str(e.value)) == (400, JSON_REQUIRED)


def test_a_binary_requests_body_is_a_view_of_its_frame_not_a_copy():
    body = bytes(range(256)) * 5
    frame = encode_binary_request("m", "PUT", "/api/x", body=body)
    request = parse_binary_message(frame)
    assert isinstance(request.body, memoryview)
    assert request.body.obj is frame
    assert request.body == body
