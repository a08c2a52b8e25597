"""The extension's registration and options."""

from __future__ import annotations

import pytest
from tornado.httpclient import HTTPClientError
from traitlets import TraitError

import jupyter_http_over_ws
from jupyter_http_over_ws.app import HttpOverWebSocketApp


def test_extension_points():
    (point,) = jupyter_http_over_ws._jupyter_server_extension_points()
    assert point["module"] == "jupyter_http_over_ws"
    assert point["app"] is HttpOverWebSocketApp
    assert callable(jupyter_http_over_ws.load_jupyter_server_extension)


async def test_extension_is_loaded(jp_serverapp, jp_fetch):
    point = jp_serverapp.extension_manager.extension_points["jupyter_http_over_ws"]
    assert isinstance(point.app, HttpOverWebSocketApp)
    # The endpoint exists (a plain GET is told to upgrade, not 404).
    with pytest.raises(HTTPClientError) as e:
        await jp_fetch("http_over_websocket")
    assert e.value.code == 400


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("max_message_size", 10, "max_message_size must be at least 1024, not 10"),
        ("chunk_size", 0, "chunk_size must be at least 1024, not 0"),
        ("max_requests_in_flight", -1, "max_requests_in_flight must be >= 0, not -1"),
        ("allowed_paths", ["/api/(unclosed"], "invalid pattern '/api/(unclosed'"),
    ],
)
def test_bad_settings_name_the_value(name, value, message):
    app = HttpOverWebSocketApp()
    with pytest.raises(TraitError, match=message.replace("(", r"\(")):
        setattr(app, name, value)


def test_every_option_is_documented():
    options = HttpOverWebSocketApp.class_traits(config=True)
    own = {n: t for n, t in options.items() if n in HttpOverWebSocketApp.__dict__}
    assert {
        "max_message_size",
        "chunk_size",
        "max_requests_in_flight",
        "allowed_paths",
        "connect_timeout",
    } <= set(own)
    for name, trait in own.items():
        assert len(trait.help) > 60, name


def test_path_policy_follows_allowed_paths():
    from jupyter_http_over_ws.wire.protocol import ProtocolError

    app = HttpOverWebSocketApp()
    app.allowed_paths = ["/a"]
    assert app.path_policy is app.path_policy  # compiled once per value
    with pytest.raises(ProtocolError):
        app.path_policy.check("/b")
    app.allowed_paths = ["/b"]
    app.path_policy.check("/b")
