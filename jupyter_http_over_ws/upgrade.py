"""The identity a tunnel inherits from its upgrade request, in one place.

Every tunnelled request and every relayed socket carries the credentials and
identity headers of the request that opened the tunnel (the WebSocket upgrade, or
the polling transport's ``POST …/polling``), so the server's own checks see the
same facts as for a direct request. This module names those headers and captures
them once from a Tornado request as an :class:`UpgradeContext`.
"""

from __future__ import annotations

from dataclasses import dataclass

from tornado.httputil import HTTPServerRequest

#: Upgrade-request headers that every tunnelled request and socket inherits: who the
#: client is (credentials), where it comes from (origin, referer) and which name it
#: used for this server (host), so the server's own checks see the same facts.
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


def capture_upgrade(request: HTTPServerRequest, base_url: str) -> UpgradeContext:
    """The identity every tunnelled request or socket opened by ``request`` inherits."""
    headers = [
        (name, request.headers[name]) for name in IDENTITY_HEADERS if name in request.headers
    ]
    token = request.query_arguments.get("token")
    if token and "Authorization" not in request.headers:
        # Credentials given as ?token= on the upgrade URL travel as a header inside,
        # so they never appear in a tunnelled request's URL (or its log line).
        headers.append(("Authorization", "token " + token[-1].decode("utf-8", "replace")))
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
