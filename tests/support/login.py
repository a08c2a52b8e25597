"""A browser's login, for cookie-authenticated tests: its cookies, and direct requests."""

from __future__ import annotations

from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest, HTTPResponse

__all__ = ["cookie_header", "direct", "login_cookies"]


async def direct(url: str, method: str = "GET", body: Any = None, **headers: str) -> HTTPResponse:
    """The request made directly (not through the tunnel), its answer whatever the status."""
    request = HTTPRequest(
        url,
        method=method,
        body=body,
        headers=headers,
        follow_redirects=False,
        allow_nonstandard_methods=True,
    )
    try:
        return await AsyncHTTPClient().fetch(request)
    except HTTPClientError as e:
        return e.response  # type: ignore[return-value]  # an answer: never None here


async def login_cookies(server_url: str, token: str) -> dict[str, str]:
    """A login cookie and an ``_xsrf`` cookie, obtained as a browser would obtain them."""
    response = await direct(server_url + "api/status", Authorization=f"token {token}")
    cookies = {}
    for header in response.headers.get_list("Set-Cookie"):
        name, _, rest = header.partition("=")
        cookies[name] = rest.split(";")[0].strip('"')
    page = await direct(server_url + "login")
    for header in page.headers.get_list("Set-Cookie"):
        name, _, rest = header.partition("=")
        cookies[name] = rest.split(";")[0]
    assert any(n.startswith("username-") for n in cookies), cookies
    assert "_xsrf" in cookies
    return cookies


def cookie_header(cookies: dict[str, str]) -> str:
    """The ``Cookie`` header a browser sends with ``cookies``."""
    return "; ".join(f"{name}={value}" for name, value in cookies.items())
