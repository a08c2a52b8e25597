"""Property-based fuzzing of the tunnel socket: whatever arrives, each message gets exactly
one final frame, a malformed one a 4xx, and other requests complete byte-exact."""

from __future__ import annotations

import asyncio
import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jupyter_http_over_ws.protocol import UNCAUGHT_ERROR

pytestmark = pytest.mark.timeout(300)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
# Values shaped like the protocol's, often wrong: hostile paths, odd methods, bad base64.
paths = st.sampled_from(
    [
        "/api/status",
        "//evil.example/",
        "http://127.0.0.1:1/",
        "/a/../../b",
        "/%2e%2e/x",
        "/x\r\nHost: y",
        "\\\\host",
        "/files/big.bin",
        "",
        "/" + "a" * 20000,
    ]
) | st.text(max_size=30)
methods = st.sampled_from(["GET", "get", "HEAD", "POST", "FROB", "", "G E T", "GET\r\n"]) | st.text(
    max_size=10
)
fields = st.fixed_dictionaries(
    {},
    optional={
        "method": methods | json_values,
        "path": paths | json_values,
        "body": st.text(max_size=50) | json_values,
        "body_base64": st.sampled_from(["", "AAAA", "@@@", "QUJD", "abc"]) | json_values,
        "headers": st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=3)
        | json_values,
        "cancel": st.booleans(),
    },
)
junk = st.text(max_size=60).filter(lambda t: not _is_json_object(t)) | st.sampled_from(
    ["[" * 5000, '{"message_id": "x"', "null", "123", '"str"']
)


def _is_json_object(text):
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


messages = st.lists(st.one_of(fields, junk), min_size=1, max_size=8)


@pytest.fixture
def jp_server_config():
    # Fuzzed requests that parse may only reach harmless, read-only paths.
    return {
        "ServerApp": {"jpserver_extensions": {"jupyter_http_over_ws": True}},
        "HttpOverWebSocketApp": {"allowed_paths": ["/api/status$", "/files/big.bin$"]},
    }


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=messages)
def test_fuzzed_messages(hows_tunnel, jp_root_dir, jp_asyncio_loop, batch):
    payload_path = jp_root_dir / "big.bin"
    if not payload_path.exists():
        payload_path.write_bytes(os.urandom(2 * 1024 * 1024))
    jp_asyncio_loop.run_until_complete(_check(hows_tunnel, payload_path.read_bytes(), batch))


async def _check(client, payload, batch):
    download = asyncio.ensure_future(client.request("GET", "/files/big.bin"))
    expected_ids, anonymous = set(), 0
    for index, message in enumerate(batch):
        if isinstance(message, dict):
            if message.get("cancel") is True and "method" not in message:
                message = {**message, "method": "GET"}  # a cancel of nothing gets no reply
            message = {**message, "message_id": f"fz-{index}"}
            expected_ids.add(f"fz-{index}")
            client.send_raw(json.dumps(message))
        else:
            anonymous += 1
            client.send_raw(message)
    seen = {}
    while len(seen) < len(expected_ids) or anonymous:
        frame = await asyncio.wait_for(client.unmatched.get(), 20)
        assert frame.status_text != UNCAUGHT_ERROR, frame
        if frame.message_id is None:
            assert frame.done, frame
            assert frame.status == 400, frame
            anonymous -= 1
            continue
        assert frame.message_id in expected_ids, frame
        if frame.done:
            assert frame.message_id not in seen, f"two final frames for {frame.message_id}"
            seen[frame.message_id] = frame
    for frame in seen.values():
        if frame.status is not None and frame.status >= 400:
            assert frame.status < 500 or frame.status == 503, frame
    assert (await download).body == payload
    assert (await client.request("GET", "/api/status")).status == 200
