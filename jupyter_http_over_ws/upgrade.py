"""The identity a tunnel inherits from its upgrade request, in one place.

Every tunnelled request and every relayed socket carries the credentials and
identity headers of the request that opened the tunnel (the WebSocket upgrade, or
the polling transport's ``POST …/polling``), so the server's own checks see the
same facts as for a direct request. This module names those headers and captures
them once from a Tornado request as an :class:`UpgradeContext`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from tornado.httputil import HTTPServerRequest

#: Upgrade-request headers that every tunnelled request and socket inherits: who the
#: client is (credentials), where it comes from (origin, referer) and which name it
#: used for this server (host), so the server's own checks see the same facts. A
#: tunnelled request from a page's upgrade without a ``Referer`` gets the one the
#: page would send (:meth:`UpgradeContext.page_referer`).
#: ``Sec-Fetch-Site`` is part of Tornado's cross-origin check (6.6 and later).
IDENTITY_HEADERS = (
    "Host",
    "Origin",
    "Cookie",
    "Authorization",
    "Referer",
    "User-Agent",
    "Sec-Fetch-Site",
)


#: What Tornado's ``get_argument`` blanks in an argument (``RequestHandler``'s own pattern).
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0e-\x1f]")


@dataclass(frozen=True)
class UpgradeContext:
    """What every request on one tunnel inherits from the tunnel's upgrade request.

    ``headers`` are the upgrade's identity headers (``Host``, ``Origin``, ``Cookie``,
    ``Authorization``, ``Referer``, ``User-Agent``, ``Sec-Fetch-Site``); ``xsrf_token`` is
    the value of its ``_xsrf`` cookie, if any.
    """

    base_url: str
    headers: tuple[tuple[str, str], ...]
    remote_ip: str | None
    protocol: str
    xsrf_token: str | None = None

    def header(self, name: str) -> str | None:
        """The value of identity header ``name`` (as captured), or ``None``."""
        for captured, value in self.headers:
            if captured.lower() == name.lower():
                return value
        return None

    def page_referer(self, requested: Sequence[str]) -> str | None:
        """The ``Referer`` a tunnelled request must carry when the upgrade came from a page.

        ``requested`` are the ``Referer`` values the client put in the request. A browser's
        WebSocket upgrade carries an ``Origin`` but no ``Referer``, while every request
        the page makes directly carries one (jupyter_server's ``check_referer`` wants it
        for a cookie-authenticated ``GET`` of ``/files/``): a URL on the page's origin,
        the only kind a page can make its browser send, by default the origin and ``/``
        for a cross-origin request. So: the client's own ``Referer`` if it is one on the
        upgrade's origin, else that origin and ``/``.

        ``None`` (nothing to change) when the upgrade had a ``Referer`` (it is the
        identity, and overrides the client's) or no ``Origin`` of a page (``null``, or a
        script that sent none: it sends any ``Referer`` it likes directly too).
        """
        if self.header("Referer") is not None:
            return None
        origin = self.header("Origin")
        if origin is None or page_origin(origin) is None:
            return None
        if len(requested) == 1 and page_origin(requested[0]) == page_origin(origin):
            return requested[0]
        return origin + "/"


def page_origin(url: str) -> str | None:
    """``scheme://host[:port]`` of ``url``, lower-cased, or ``None`` if it has no host.

    A web origin (``Origin: https://a.example``) is its own page origin; ``null`` and
    anything without a host have none.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def query_token(request: HTTPServerRequest) -> str:
    """The ``token`` query argument as jupyter_server reads it (``get_argument``), or ``""``.

    The last value, control characters blanked and whitespace stripped, as Tornado does.
    """
    values = request.query_arguments.get("token")
    if not values:
        return ""
    return _CONTROL_CHARACTERS.sub(" ", values[-1].decode("utf-8", "replace")).strip()


def capture_upgrade(request: HTTPServerRequest, base_url: str) -> UpgradeContext:
    """The identity every tunnelled request or socket opened by ``request`` inherits."""
    headers = [
        (name, request.headers[name]) for name in IDENTITY_HEADERS if name in request.headers
    ]
    token = query_token(request)
    if token:
        # jupyter_server authenticated the upgrade with ?token= (it reads the query
        # before the header): everything inside carries that token, as a header, so it
        # never appears in a tunnelled request's or relayed socket's URL (or log line).
        headers = [(name, value) for name, value in headers if name != "Authorization"]
        headers.append(("Authorization", "token " + token))
    if "Origin" not in request.headers and "Sec-Websocket-Origin" in request.headers:
        headers.append(("Origin", request.headers["Sec-Websocket-Origin"]))
    xsrf = request.cookies.get("_xsrf")
    return UpgradeContext(
        base_url=base_url,
        headers=tuple(headers),
        remote_ip=request.remote_ip,
        protocol=request.protocol,
        xsrf_token=xsrf.value if xsrf is not None else None,
    )
