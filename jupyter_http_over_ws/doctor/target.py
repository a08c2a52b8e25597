"""What the doctor examines, as given on the command line, and the plain HTTP probe.

URLs are normalised the way a user gives them (a page URL copied from the browser's
address bar, a token in its query); :func:`get_api` is the one plain HTTP request the
checks make (``GET {base_url}api``), which tells a Jupyter server from anything else
and shows the CORS headers its ``allow_origin`` settings produce.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from ..wire.names import TUNNEL_PATH
from ..wire.protocol import AUTH_URL_ARG

#: Path segments of frontend pages: a URL copied from the browser's address bar
#: (``http://localhost:8888/lab?token=...``) names a page under the server's base_url;
#: a tunnel URL (``.../http_over_websocket?jupyter_http_over_ws_auth_url=...``) too.
FRONTEND_PAGES = frozenset(
    {"lab", "tree", "notebooks", "edit", "consoles", "terminals", "doc", TUNNEL_PATH}
)

T = TypeVar("T")


@dataclass(frozen=True)
class Target:
    """What to examine, as given on the command line."""

    url: str
    origin: str | None = None
    token: str | None = None
    min_version: str | None = None
    kernel: bool = True
    timeout: float = 20.0
    kernel_timeout: float = 60.0
    #: A PEM bundle of the CAs to trust for an ``https://`` server (``--ca-file``);
    #: ``None``: the system's (``SSL_CERT_FILE`` names another bundle).
    ca_file: str | None = None

    @functools.cached_property
    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context every request uses: ``ca_file``'s CAs, or ``None`` (the system's)."""
        return ssl.create_default_context(cafile=self.ca_file) if self.ca_file else None

    @property
    def browser_origin(self) -> str | None:
        """``--origin`` as a browser would send it (None if not given or not an origin)."""
        return normalize_origin(self.origin) if self.origin else None


def normalize_url(raw: str) -> tuple[str, str | None]:
    """The server URL with a trailing slash and no query, and a token it carried.

    The token is the URL's ``?token=``, else the one in its
    ``?jupyter_http_over_ws_auth_url=`` (see :func:`url_credential`).
    """
    if "://" not in raw:
        raw = "http://" + raw
    parts = urlsplit(raw)
    query = dict(parse_qsl(parts.query))
    token = query.get("token")
    if token is None and query.get(AUTH_URL_ARG):
        token = dict(parse_qsl(urlsplit(query[AUTH_URL_ARG]).query)).get("token")
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return urlunsplit((parts.scheme.lower(), parts.netloc, path, "", "")), token


def url_credential(raw: str) -> str | None:
    """How ``raw`` carries a token: ``"?token="``, ``"jupyter_http_over_ws_auth_url"``, or None."""
    query = dict(parse_qsl(urlsplit(raw if "://" in raw else "http://" + raw).query))
    if query.get("token"):
        return "?token="
    if query.get(AUTH_URL_ARG) and normalize_url(raw)[1]:
        return AUTH_URL_ARG
    return None


def base_url_candidates(url: str) -> list[str]:
    """``url``, then its prefix before a frontend page (``/user/a/lab`` -> ``/user/a/``)."""
    parts = urlsplit(url)
    segments = parts.path.split("/")
    for i, segment in enumerate(segments):
        if segment in FRONTEND_PAGES:
            prefix = "/".join(segments[:i]) + "/"
            return [url, urlunsplit((parts.scheme, parts.netloc, prefix, "", ""))]
    return [url]


def normalize_origin(raw: str) -> str | None:
    """The origin a browser would send for ``raw`` (scheme://host[:port]), or None."""
    parts = urlsplit(raw.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


async def bounded(awaitable: Awaitable[T], timeout: float) -> T:
    """``awaitable``, or ``asyncio.TimeoutError`` after ``timeout`` seconds."""
    return await asyncio.wait_for(awaitable, timeout)


async def get_api(
    url: str,
    timeout: float,
    origin: str | None = None,
    token: str | None = None,
    *,
    ssl_context: ssl.SSLContext | None = None,
) -> Any:
    """``GET {url}api`` (no redirects), as ``origin`` with ``token``; never raises on status.

    An ``https://`` server's certificate is verified, against ``ssl_context`` if given.
    """
    from tornado.httpclient import AsyncHTTPClient, HTTPRequest

    headers = {"Origin": origin} if origin else {}
    if token:
        headers["Authorization"] = f"token {token}"
    request = HTTPRequest(
        url + "api",
        headers=headers,
        connect_timeout=timeout,
        request_timeout=timeout,
        follow_redirects=False,
        ssl_options=ssl_context,
    )
    return await AsyncHTTPClient().fetch(request, raise_error=False)
