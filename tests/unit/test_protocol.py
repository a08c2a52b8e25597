"""The pure protocol core, tested without a server (its purity: test_purity.py)."""

from __future__ import annotations

import base64
import json

import pytest

from jupyter_http_over_ws.wire.protocol import (
    JSON_REQUIRED,
    MAX_PATH_LENGTH,
    ORJSON_DECODE_LIMIT,
    ProtocolError,
    decode_json,
    encode_error,
    encode_reply,
    encode_request,
    normalize_path,
    parse_reply,
    parse_request,
)


def test_parse_minimal_request():
    req = parse_request('{"message_id": 1, "method": "get", "path": "/api/status"}')
    assert (req.message_id, req.method, req.path, req.body, req.headers) == (
        1,
        "GET",
        "/api/status",
        b"",
        (),
    )


def test_body_base64_wins_and_is_binary_safe():
    raw = bytes(range(256))
    msg = {
        "message_id": "a",
        "method": "PUT",
        "path": "/x",
        "body": "ignored",
        "body_base64": base64.b64encode(raw).decode(),
    }
    assert parse_request(json.dumps(msg)).body == raw


def test_text_body_is_utf8():
    msg = {"message_id": "a", "method": "POST", "path": "/x", "body": "héllo ✓"}
    assert parse_request(json.dumps(msg)).body == "héllo ✓".encode()


@pytest.mark.parametrize("message", ["not json", "{", b"\xff\xfe", ""])
def test_not_json(message):
    with pytest.raises(ProtocolError) as e:
        parse_request(message)
    assert (e.value.status, e.value.status_text, e.value.message_id) == (400, JSON_REQUIRED, None)
    frame = json.loads(encode_error(e.value))
    assert frame == {"status": 400, "statusText": JSON_REQUIRED, "done": True}


@pytest.mark.parametrize(
    ("msg", "message_id"),
    [
        ({"method": "GET", "path": "/"}, None),
        ({"message_id": 7, "path": "/"}, 7),
        ({"message_id": "x", "method": "GET"}, "x"),
        ([1, 2], None),
        (3, None),
    ],
)
def test_missing_keys(msg, message_id):
    with pytest.raises(ProtocolError) as e:
        parse_request(json.dumps(msg))
    assert e.value.status == 400
    assert "The body must contain the following keys" in e.value.status_text
    frame = json.loads(encode_error(e.value))
    assert frame["done"] is True
    assert frame.get("message_id") == message_id


@pytest.mark.parametrize(
    "changes",
    [
        {"method": 5},
        {"method": ""},
        {"method": "GET /evil HTTP/1.1\r\nX: y"},
        {"method": "G E T"},
        {"path": None},
        {"path": 12},
        {"message_id": None},
        {"message_id": True},
        {"message_id": {"a": 1}},
        {"body": 5},
        {"body_base64": "***"},
        {"body_base64": "abc"},
        {"body_base64": 5},
        {"headers": "x"},
        {"headers": {"X-A": 5}},
        {"headers": {"Bad Name": "v"}},
        {"headers": {"X-A": "v\r\nInjected: yes"}},
        {"headers": {"X-A": "v\x00"}},
    ],
)
def test_wrong_types_and_values_are_400(changes):
    msg = {"message_id": "m", "method": "GET", "path": "/api/status", **changes}
    with pytest.raises(ProtocolError) as e:
        parse_request(json.dumps(msg))
    assert e.value.status == 400


@pytest.mark.parametrize(
    "path",
    [
        "http://evil.example/x",
        "https://127.0.0.1:1/",
        "HTTP://evil/",
        "javascript:alert(1)",
        "//evil.example/x",
        "/\\evil.example",
        "\\\\evil\\x",
        "/api/../../etc/passwd",
        "/..",
        "/api/%2e%2e/%2E%2e/x",
        "/a/%2e",
        "/api/contents/a%2F..%2F..%2Fx",
        "/api\r\nHost: evil",
        "/api\x00",
        "/api\n",
    ],
)
def test_hostile_paths_are_400(path):
    with pytest.raises(ProtocolError) as e:
        normalize_path(path, "m")
    assert e.value.status == 400
    assert e.value.message_id == "m"


def test_huge_path_is_414():
    with pytest.raises(ProtocolError) as e:
        normalize_path("/" + "a" * MAX_PATH_LENGTH)
    assert e.value.status == 414


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/api/contents", "/api/contents"),
        ("api/contents", "/api/contents"),
        ("/api/contents/a b.txt", "/api/contents/a%20b.txt"),
        ("/api/contents/é", "/api/contents/%C3%A9"),
        ("/api/contents/a%20b", "/api/contents/a%20b"),
        ("/api/contents?content=0&type=file", "/api/contents?content=0&type=file"),
        ("/api/contents#frag", "/api/contents"),
        ("/api/contents/.hidden", "/api/contents/.hidden"),
        ("/api/contents/a..b", "/api/contents/a..b"),
        ("/files/x?a=1?b=2", "/files/x?a=1?b=2"),
    ],
)
def test_paths_are_normalized(path, expected):
    assert normalize_path(path) == expected


def test_forbidden_headers_are_dropped():
    msg = {
        "message_id": 1,
        "method": "POST",
        "path": "/x",
        "headers": {
            "Content-Type": "application/json",
            "Cookie": "a=b",
            "authorization": "token stolen",
            "Host": "evil",
            "Origin": "https://evil",
            "Transfer-Encoding": "chunked",
            "X-Custom": "kept",
        },
    }
    assert parse_request(json.dumps(msg)).headers == (
        ("Content-Type", "application/json"),
        ("X-Custom", "kept"),
    )


def test_too_many_headers_is_431():
    headers = {f"X-H{i}": "v" for i in range(101)}
    msg = {"message_id": 1, "method": "GET", "path": "/", "headers": headers}
    with pytest.raises(ProtocolError) as e:
        parse_request(json.dumps(msg))
    assert e.value.status == 431


def test_reply_frames_roundtrip():
    first = json.loads(
        encode_reply(
            "id",
            status=200,
            status_text="OK",
            headers=[("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("X", "y")],
            data=b"\x00\xff",
            done=False,
        )
    )
    assert first == {
        "message_id": "id",
        "status": 200,
        "statusText": "OK",
        "headers": {"Set-Cookie": "a=1, b=2", "X": "y"},
        "data": base64.b64encode(b"\x00\xff").decode(),
        "done": False,
    }
    empty = json.loads(encode_reply(3, status=204, status_text="No Content", done=True))
    assert "data" not in empty
    assert empty["done"] is True
    parsed = parse_reply(encode_reply(3, data=b"abc", done=True))
    assert (parsed.message_id, parsed.data, parsed.done, parsed.status) == (3, b"abc", True, None)


def test_encode_request_roundtrip():
    frame = encode_request(5, "PUT", "/api/contents/x", body=b"\x00\x01", headers={"X-A": "b"})
    req = parse_request(frame)
    assert (req.message_id, req.method, req.body, req.headers) == (
        5,
        "PUT",
        b"\x00\x01",
        (("X-A", "b"),),
    )


def test_encode_request_picks_the_smaller_body_encoding():
    text = json.loads(encode_request(1, "PUT", "/x", body="é".encode()))
    assert text["body"] == "é"
    assert "body_base64" not in text
    binary = json.loads(encode_request(1, "PUT", "/x", body=b"\xff\x00"))
    assert base64.b64decode(binary["body_base64"]) == b"\xff\x00"
    assert "body" not in binary
    assert parse_request(encode_request(1, "PUT", "/x", body=b"\xff\x00")).body == b"\xff\x00"


@pytest.mark.parametrize("raw_id", ["NaN", "Infinity", "-Infinity", "1e999999"])
def test_non_finite_ids_are_refused_without_echo(raw_id):
    message = f'{{"message_id": {raw_id}, "method": "GET", "path": "/"}}'
    with pytest.raises(ProtocolError) as e:
        parse_request(message)
    assert e.value.status == 400
    assert e.value.message_id is None
    frame = encode_error(e.value).decode()
    assert "NaN" not in frame
    assert "Infinity" not in frame


@pytest.mark.parametrize("padding", [0, ORJSON_DECODE_LIMIT])
def test_small_and_large_texts_decode_alike(padding):
    """Below the limit orjson decodes (when installed), from it the standard library."""
    body = "A" * padding
    message = json.dumps({"message_id": 1, "method": "PUT", "path": "/x", "body": body})
    request = parse_request(message)
    assert (request.message_id, request.method, request.body) == (1, "PUT", body.encode())
    assert decode_json(message.encode())["body"] == body
    for constant in ("NaN", "Infinity", "-Infinity"):
        with pytest.raises(ValueError):
            decode_json(f'{{"a": {constant}, "pad": "{body}"}}')
    with pytest.raises(ValueError):
        decode_json(message[:-1])
