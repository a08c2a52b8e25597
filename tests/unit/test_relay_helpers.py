"""The relay helpers both transports share: close codes, refusal statuses, raw paths."""

from __future__ import annotations

import inspect

import pytest
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.httputil import HTTPHeaders
from tornado.simple_httpclient import HTTPTimeoutError
from tornado.websocket import WebSocketProtocol13

from jupyter_http_over_ws.upstream import (
    _CloseFrameNotingProtocol,
    received_close_frame,
    upstream_request,
)
from jupyter_http_over_ws.wire.names import CloseCode, sendable_close_code, status_close_code
from jupyter_http_over_ws.wsproxy import (
    UPSTREAM_LOST_REASON,
    is_binary,
    raw_route_argument,
    upstream_close,
    upstream_refusal_status,
)


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1014])
def test_protocol_close_codes_pass_through(code):
    assert sendable_close_code(code) == code


@pytest.mark.parametrize("code", [3000, 4000, 4408, 4429, 4999])
def test_application_close_codes_pass_through(code):
    assert sendable_close_code(code) == code


@pytest.mark.parametrize("code", [None, 0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000])
def test_reserved_and_unknown_close_codes_become_a_plain_close(code):
    assert sendable_close_code(code) is None


def test_status_close_codes_are_4000_plus_the_status():
    assert status_close_code(404) == 4404
    assert status_close_code(502) == CloseCode.BAD_GATEWAY
    assert status_close_code(429) == CloseCode.TOO_MANY_SOCKETS
    assert status_close_code(408) == CloseCode.IDLE
    assert status_close_code(400) == CloseCode.BAD_REQUEST


def test_a_timeout_is_504():
    assert upstream_refusal_status(HTTPTimeoutError("Timeout while connecting")) == 504


def test_no_response_is_502():
    assert upstream_refusal_status(HTTPClientError(599, "Stream closed")) == 502


@pytest.mark.parametrize("code", [200, 204, 301, 302, 304, 307, 399])
def test_an_answer_without_an_upgrade_is_400(code):
    assert upstream_refusal_status(HTTPClientError(code)) == 400


@pytest.mark.parametrize("code", [400, 401, 403, 404, 410, 429, 500, 502, 503, 504, 598])
def test_the_servers_own_refusals_pass_through(code):
    assert upstream_refusal_status(HTTPClientError(code)) == code


PREFIX = "/base/http_over_websocket/proxied_ws/"


def test_the_raw_route_argument_keeps_the_clients_encoding():
    # Tornado decoded "%2541" to "%41"; relaying that would decode again upstream.
    assert raw_route_argument(PREFIX + "a%2541/%3Fb", PREFIX, "a%41/?b") == "a%2541/%3Fb"


def test_a_path_not_under_the_prefix_is_encoded_again():
    assert raw_route_argument("/other/x", PREFIX, "a b/%41?#") == "a%20b/%2541%3F%23"


def test_binary_frames_are_bytes_of_any_kind():
    assert is_binary(b"x")
    assert is_binary(bytearray(b"x"))
    assert is_binary(memoryview(b"x"))
    assert not is_binary("x")


def test_an_upstream_that_ended_without_a_close_frame_is_1014_with_a_reason():
    assert upstream_close(None, None, close_frame_received=False) == (
        1014,
        UPSTREAM_LOST_REASON,
    )
    assert CloseCode.UPSTREAM_LOST == 1014
    assert sendable_close_code(CloseCode.UPSTREAM_LOST) == 1014
    assert len(UPSTREAM_LOST_REASON.encode()) <= 123  # fits a close frame


@pytest.mark.parametrize(
    ("code", "reason"), [(None, None), (1000, None), (1000, "done"), (4002, "bye"), (1005, "x")]
)
def test_a_close_frame_passes_on_as_it_came(code, reason):
    assert upstream_close(code, reason, close_frame_received=True) == (code, reason)


def test_tornado_still_has_the_hook_the_upstream_connection_overrides():
    """UpstreamConnection notes close frames in WebSocketProtocol13._handle_message."""
    hook = WebSocketProtocol13._handle_message
    assert list(inspect.signature(hook).parameters) == ["self", "opcode", "data"]
    assert _CloseFrameNotingProtocol._handle_message is not hook
    assert received_close_frame(object()) is False


def test_the_upstream_request_leaves_no_option_to_tornado_defaults():
    request = upstream_request("ws://127.0.0.1:1/x", HTTPHeaders(), connect_timeout=3.0)
    left = [name for name in HTTPRequest._DEFAULTS if getattr(request, name) is None]
    assert left == []
    assert (request.follow_redirects, request.validate_cert) == (False, False)
