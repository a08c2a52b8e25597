"""Versions, credentials and diagnosis decided at connect time, tested without a server."""

from __future__ import annotations

import json

import pytest

from jupyter_http_over_ws import __version__
from jupyter_http_over_ws.wire.handshake import (
    Diagnosis,
    auth_url_token,
    check_min_version,
    encode_diagnosis,
    is_outdated,
    truncate_close_reason,
    without_credentials,
)


def test_version_is_newer_than_the_original():
    assert check_min_version("0.0.8", __version__) is None
    assert check_min_version("0.0.7", __version__) is None
    assert check_min_version("0.0.1a0", __version__) is None


def test_min_version_reasons():
    assert check_min_version(None, "0.1.0") is None
    assert check_min_version("0.1.0", "0.1.0") is None
    assert check_min_version("garbage!", "0.1.0") == 'Invalid "min_version" provided: garbage!'
    reason = check_min_version("9.0.0", "0.1.0")
    assert reason == (
        "Requested version (9.0.0) > Current version (0.1.0). Please upgrade this package."
    )
    assert is_outdated("9.0.0", "0.1.0")
    assert not is_outdated("0.0.7", "0.1.0")
    assert not is_outdated("bad", "0.1.0")


def test_close_reason_fits_a_close_frame():
    reason = check_min_version("x" * 500, "0.1.0")
    assert reason is not None
    assert len(reason.encode()) <= 123
    assert truncate_close_reason("é" * 100).encode().__len__() <= 123


@pytest.mark.parametrize(
    ("url", "base_url", "token"),
    [
        ("http://localhost:8888/?token=abc", "/", "abc"),
        ("http://forwarded-host:9999/?token=abc", "/", "abc"),
        ("https://hub.example/user/alice/?token=t1&x=y", "/user/alice/", "t1"),
        ("https://hub.example/user/alice/tree?token=t1", "/user/alice/", "t1"),
        ("http://localhost:8888/user/alice?token=t2", "/user/alice/", "t2"),
        ("http://localhost:8888/", "/", None),
    ],
)
def test_auth_url_token(url, base_url, token):
    assert auth_url_token(url, base_url) == token


@pytest.mark.parametrize(
    ("url", "base_url"),
    [
        ("ftp://localhost/?token=abc", "/"),
        ("/?token=abc", "/"),
        ("http://localhost:8888/other/?token=abc", "/user/alice/"),
        ("http://localhost:8888/user/alicex/?token=abc", "/user/alice/"),
    ],
)
def test_auth_url_elsewhere_is_refused(url, base_url):
    with pytest.raises(ValueError):
        auth_url_token(url, base_url)


def test_diagnosis_frame_has_exactly_four_fields():
    frame = json.loads(encode_diagnosis(Diagnosis("hi", "0.1.0", False, True)))
    assert frame == {
        "message_id": "hi",
        "extension_version": "0.1.0",
        "has_authentication_cookie": False,
        "is_outdated_extension": True,
    }


@pytest.mark.parametrize(
    ("uri", "cleaned"),
    [
        ("/p", "/p"),
        ("/p?", "/p"),
        ("/p?token=abc", "/p"),
        ("/p?session_id=s&token=abc", "/p?session_id=s"),
        ("/p?token=abc&session_id=s&token=def", "/p?session_id=s"),
        ("/p?jupyter_http_over_ws_auth_url=http%3A%2F%2Fh%2F%3Ftoken%3Dabc&x=1", "/p?x=1"),
        # Names are compared as the server decodes them.
        ("/p?%74oken=abc&a=1", "/p?a=1"),
        ("/p?tok%65n=abc", "/p"),
        ("/p?token&a=1", "/p?a=1"),
        # Other arguments stay exactly as they came, even ones that merely look alike.
        ("/p?a=%20b&&c=token%3Dx", "/p?a=%20b&&c=token%3Dx"),
        ("/p?tokens=1&my_token=2&Token=3", "/p?tokens=1&my_token=2&Token=3"),
        ("/a%3Ftoken%3Dx", "/a%3Ftoken%3Dx"),
    ],
)
def test_without_credentials(uri, cleaned):
    assert without_credentials(uri) == cleaned
