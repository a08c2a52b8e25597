"""The Referer of a tunnelled request: what the page that opened the tunnel would send."""

from __future__ import annotations

import pytest

from jupyter_http_over_ws.dispatch import build_request_headers
from jupyter_http_over_ws.upgrade import UpgradeContext, page_origin
from jupyter_http_over_ws.wire.protocol import HttpRequest

PAGE = "https://page.example:8443"


def upgrade(**identity: str) -> UpgradeContext:
    headers = (("Host", "127.0.0.1:8888"), *identity.items())
    return UpgradeContext(base_url="/", headers=headers, remote_ip=None, protocol="http")


def referers(context: UpgradeContext, *requested: str) -> list[str]:
    request = HttpRequest(1, "GET", "/files/x", headers=tuple(("Referer", r) for r in requested))
    return build_request_headers(request, context).get_list("Referer")


@pytest.mark.parametrize(
    ("requested", "sent"),
    [
        ((), [PAGE + "/"]),  # a browser's default for a cross-origin request
        ((PAGE + "/lab?x=1",), [PAGE + "/lab?x=1"]),  # a URL on the page's own origin
        (("HTTPS://PAGE.example:8443/",), ["HTTPS://PAGE.example:8443/"]),
        (("https://evil.example/",), [PAGE + "/"]),  # a page cannot send another origin's
        (("https://page.example/",), [PAGE + "/"]),  # another port: another origin
        ((PAGE + "/a", PAGE + "/b"), [PAGE + "/"]),  # a browser sends one
        (("null",), [PAGE + "/"]),
    ],
)
def test_a_page_upgrade_without_referer_gives_what_the_page_would_send(requested, sent):
    assert referers(upgrade(Origin=PAGE), *requested) == sent


@pytest.mark.parametrize("requested", [(), ("https://evil.example/",)])
def test_the_upgrades_own_referer_is_the_identity(requested):
    context = upgrade(Origin=PAGE, Referer=PAGE + "/lab")
    assert referers(context, *requested) == [PAGE + "/lab"]


@pytest.mark.parametrize("origin", [None, "null", "file://", "not a url"])
@pytest.mark.parametrize("requested", [(), ("https://any.example/",)])
def test_without_a_page_origin_nothing_is_invented(origin, requested):
    context = upgrade(Origin=origin) if origin is not None else upgrade()
    assert referers(context, *requested) == list(requested)


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://a.example", "https://a.example"),
        ("HTTP://A.example:80/p?q#f", "http://a.example:80"),
        ("null", None),
        ("", None),
        ("/relative", None),
        ("http://[::1", None),  # unparsable
    ],
)
def test_page_origin(url, origin):
    assert page_origin(url) == origin
