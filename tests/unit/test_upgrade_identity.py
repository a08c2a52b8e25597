"""The identity an upgrade hands to everything inside it, from a real Tornado request."""

from __future__ import annotations

import pytest
from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine

from jupyter_http_over_ws.upgrade import capture_upgrade, query_token


def request(uri: str, **headers: str) -> HTTPServerRequest:
    start = RequestStartLine("GET", uri, "HTTP/1.1")
    return HTTPServerRequest(start_line=start, headers=HTTPHeaders({"Host": "h", **headers}))


@pytest.mark.parametrize(
    ("uri", "token"),
    [
        ("/x", ""),
        ("/x?token=", ""),
        ("/x?token=a&token=b", "b"),  # the last one, as get_argument reads it
        ("/x?token=%20a%09", "a"),
        ("/x?%74oken=a", "a"),
    ],
)
def test_query_token_reads_as_jupyter_server_does(uri, token):
    assert query_token(request(uri)) == token


@pytest.mark.parametrize(
    ("uri", "headers", "authorization"),
    [
        ("/x?token=q", {}, "token q"),
        ("/x", {"Authorization": "token h"}, "token h"),
        # jupyter_server authenticates with the query's token when both are given.
        ("/x?token=q", {"Authorization": "token h"}, "token q"),
        ("/x?token=", {"Authorization": "token h"}, "token h"),
        ("/x", {}, None),
    ],
)
def test_the_upgrade_passes_on_the_token_it_was_authenticated_with(uri, headers, authorization):
    context = capture_upgrade(request(uri, **headers), "/")
    sent = [value for name, value in context.headers if name == "Authorization"]
    assert sent == ([authorization] if authorization else [])
