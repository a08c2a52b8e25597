"""A cookie-authenticated tunnel GETs ``/files/...`` exactly as the page that opened it would.

jupyter_server guards ``/files/`` (and other GETs) against cross-site inclusion with
``check_referer``: a cookie-authenticated GET without an XSRF token needs a ``Referer``
on the server's host or on an allowed origin. A browser's WebSocket upgrade carries no
``Referer``, while the same GET made directly by the page carries one (its origin and
``/``, the default for a cross-origin request). Each tunnelled outcome is compared with
the same request made directly, as that page (or script) would make it.
"""

from __future__ import annotations

import pytest
from support.login import cookie_header, direct, login_cookies
from tornado.httpclient import HTTPClientError

from jupyter_http_over_ws.client import TunnelClient

pytestmark = pytest.mark.timeout(60)

ALLOWED = "https://allowed.example"
FOREIGN = "https://evil.example"
CONTENT = bytes(range(256)) * 257  # every byte value, not a multiple of any chunk size
TRANSPORTS = ["websocket", "polling"]


@pytest.fixture
def jp_server_config():
    return {
        "ServerApp": {
            "jpserver_extensions": {"jupyter_http_over_ws": True},
            "allow_origin": ALLOWED,
        }
    }


@pytest.fixture
def a_file(jp_root_dir):
    (jp_root_dir / "x.bin").write_bytes(CONTENT)
    return "files/x.bin"


async def tunnelled_get(server_url, cookies, origin, transport, path, headers=None):
    """GET ``path`` through a cookie-authenticated tunnel opened from ``origin``."""
    async with await TunnelClient.connect(
        server_url, cookies=cookies, origin=origin, transports=(transport,)
    ) as tunnel:
        return await tunnel.request("GET", "/" + path, headers=headers)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_the_allowed_page_gets_a_file_through_the_tunnel_as_directly(
    hows_server_url, hows_token, a_file, transport
):
    cookies = await login_cookies(hows_server_url, hows_token)
    straight = await direct(
        hows_server_url + a_file,
        Cookie=cookie_header(cookies),
        Origin=ALLOWED,
        Referer=ALLOWED + "/",  # what a browser sends with a cross-origin fetch
    )
    assert straight.code == 200
    assert straight.body == CONTENT
    reply = await tunnelled_get(hows_server_url, cookies, ALLOWED, transport, a_file)
    assert reply.status == 200, reply.body[:200]
    assert reply.body == CONTENT


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_referer_the_page_could_not_send_does_not_decide(
    hows_server_url, hows_token, a_file, transport
):
    """Inside the allowed page's tunnel, a foreign Referer is replaced by the page's own.

    A browser sends only a Referer on the page's own origin; the tunnel cannot let its
    client claim another (the identity comes from the upgrade, not from the client).
    """
    cookies = await login_cookies(hows_server_url, hows_token)
    reply = await tunnelled_get(
        hows_server_url, cookies, ALLOWED, transport, a_file, headers={"Referer": FOREIGN + "/"}
    )
    assert (reply.status, reply.body) == (200, CONTENT)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_refused_origin_is_refused_through_the_tunnel_as_directly(
    hows_server_url, hows_token, a_file, transport
):
    cookies = await login_cookies(hows_server_url, hows_token)
    straight = await direct(
        hows_server_url + a_file,
        Cookie=cookie_header(cookies),
        Origin=FOREIGN,
        Referer=FOREIGN + "/",
    )
    assert straight.code == 403
    assert b"Blocking Cross Origin request from https://evil.example/" in straight.body
    # The tunnel from that page is not even opened: the upgrade gets 403, as any socket
    # from a refused origin does; the polling transport's POST gets 404, as any
    # cookie-authenticated write from a refused origin does in jupyter_server.
    with pytest.raises(HTTPClientError) as refused:
        await tunnelled_get(hows_server_url, cookies, FOREIGN, transport, a_file)
    assert refused.value.code == {"websocket": 403, "polling": 404}[transport]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_script_without_origin_or_referer_is_refused_as_directly(
    hows_server_url, hows_token, a_file, transport
):
    """No page, no Origin: nothing is invented, the GET fails as it does directly."""
    cookies = await login_cookies(hows_server_url, hows_token)
    straight = await direct(hows_server_url + a_file, Cookie=cookie_header(cookies))
    assert straight.code == 403
    assert b"Blocking request from unknown origin" in straight.body
    reply = await tunnelled_get(hows_server_url, cookies, None, transport, a_file)
    assert reply.status == 403
    assert b"Blocking request from unknown origin" in reply.body


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_script_sends_its_own_referer_as_directly(
    hows_server_url, hows_token, a_file, transport
):
    """Without an Origin (a script, not a page), the client's Referer stands, as directly."""
    cookies = await login_cookies(hows_server_url, hows_token)
    for referer, status in [(hows_server_url, 200), (FOREIGN + "/", 403)]:
        straight = await direct(
            hows_server_url + a_file, Cookie=cookie_header(cookies), Referer=referer
        )
        reply = await tunnelled_get(
            hows_server_url, cookies, None, transport, a_file, headers={"Referer": referer}
        )
        assert straight.code == reply.status == status, referer
