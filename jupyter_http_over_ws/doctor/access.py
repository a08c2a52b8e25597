"""Checks 3 and 4: the page's origin is allowed, and the credentials are accepted.

The origin check opens the ``diagnose`` socket as a page on ``--origin`` would and,
when it is refused, reads the server's ``allow_origin`` from its CORS headers to name
the mistake (a trailing slash, a path, capital letters). The credentials check opens
the tunnel itself, with the token as a header and as the Colab-era auth URL, and
hands the open tunnel to the checks that follow.
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import urlencode, urlsplit

from .findings import NOTE, OK, PROBLEM, READ_LOG, SKIPPED, Report
from .hub import HubInfo, explain_refused_token, origin_fix, preflight_allows
from .target import Target, bounded, get_api, normalize_origin

SAMESITE_NOTE = (
    "Opening the server's URL once in the browser (the original README's advice) does not "
    "help a page on another site: browsers withhold the login cookie (SameSite=Lax, the "
    "default) from a cross-site WebSocket upgrade, so the page must present the token itself."
)
CREDENTIALS_FIX = (
    "pass the server's token (`jupyter server list` prints it): `--token <token>` here; in a "
    "page, the client's token option (connect({url, token})) or "
    "?jupyter_http_over_ws_auth_url=<the server URL with ?token=...> on the tunnel URL"
)


def _flag(value: str) -> str:
    return f"--ServerApp.allow_origin='{value}'"


def _describe_mismatch(allowed: str, origin: str) -> str | None:
    """Why the configured ``allowed`` origin never equals the browser's ``origin``."""
    if allowed.rstrip("/") == origin and allowed != origin:
        return "has a trailing slash"
    parts = urlsplit(allowed)
    if normalize_origin(allowed) == origin and parts.path not in ("", "/"):
        return f"has a path ({parts.path})"
    if allowed.lower() == origin:
        return "has capital letters (browsers send the origin in lower case)"
    return None


async def _cors(
    url: str,
    origin: str,
    timeout: float,
    token: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> tuple[str | None, bool] | None:
    """``Access-Control-Allow-Origin`` and ``-Credentials`` of ``GET api`` from ``origin``.

    None when the server refuses that origin (jupyter_server answers 404 then). With a
    valid token the origin check is skipped and the header shows the configured
    ``allow_origin`` as it is written.
    """
    try:
        response = await get_api(url, timeout, origin, token, ssl_context=ssl_context)
    except Exception:
        return None
    if response.code != 200:
        return None
    headers = response.headers
    credentials = headers.get("Access-Control-Allow-Credentials") == "true"
    return headers.get("Access-Control-Allow-Origin"), credentials


async def _configured_origin(
    url: str,
    origin: str,
    timeout: float,
    token: str | None,
    ssl_context: ssl.SSLContext | None = None,
) -> str | None:
    """The server's ``allow_origin`` when it can be seen, for a refused ``origin``."""
    seen = await _cors(url, origin, timeout, token, ssl_context) if token else None
    if seen is not None and seen[0] and seen[0] != origin:
        return seen[0]  # a token-authenticated request shows allow_origin as configured
    # Without a usable token: the commonest mistake is a trailing slash; ask with one.
    slashed = await _cors(url, origin + "/", timeout, None, ssl_context)
    if slashed is not None and slashed[0] == origin + "/":
        return slashed[0]
    return None


async def check_origin(
    report: Report, target: Target, url: str, token: str | None, hub: HubInfo | None = None
) -> bool | None:
    """Check 3: the server accepts WebSockets from ``--origin``; None when not asked.

    Behind a hub (``hub``), a refusal also says whether the CORS preflight of the
    browser's polling requests is refused, and the fix is the hub's configuration.
    """
    from tornado.httpclient import HTTPClientError

    from ..client import diagnose

    if not target.origin:
        report.add(
            "origin",
            SKIPPED,
            "No --origin given, so the origin check was skipped.",
            "add --origin 'https://your.page.example' to check what a page there meets",
        )
        return None
    origin = normalize_origin(target.origin)
    if origin is None:
        report.add(
            "origin",
            PROBLEM,
            f"--origin {target.origin!r} is not a web origin.",
            "give the scheme and host of the page, e.g. "
            "--origin 'https://colab.research.google.com'",
        )
        return False
    if origin != target.origin:
        report.add(
            "origin",
            NOTE,
            f"--origin {target.origin!r} is not what a browser sends: an origin is "
            f"scheme://host[:port] with no path or trailing slash, so {origin!r} was checked.",
            f"write it as '{origin}' here and in {_flag(origin)}",
        )
    try:
        await bounded(
            diagnose(url, origin=origin, connect_timeout=target.timeout, ssl=target.ssl_context),
            target.timeout,
        )
    except HTTPClientError as error:
        if error.code != 403:
            report.add(
                "origin",
                PROBLEM,
                f"A WebSocket from {origin} was refused with HTTP {error.code}.",
                READ_LOG,
            )
            return False
        allowed = await _configured_origin(url, origin, target.timeout, token, target.ssl_context)
        mistake = _describe_mismatch(allowed, origin) if allowed else None
        if allowed and mistake:
            message = (
                f"The server's allow_origin is {allowed!r}, which {mistake} and so matches no "
                f"browser's Origin ({origin!r})."
            )
        elif allowed:
            message = f"The server allows only the origin {allowed!r}, not {origin!r}."
        else:
            message = (
                f"The server refuses WebSockets from {origin}: neither allow_origin nor "
                "allow_origin_pat admits it."
            )
        fix = (
            f"restart the server with {_flag(origin)} (or --ServerApp.allow_origin_pat="
            "'<regex>' matching every origin you need)"
        )
        if hub is not None:
            fix = origin_fix(hub, origin)
            if await preflight_allows(target, url, origin) is False:
                message += (
                    " The CORS preflight of the browser's polling requests (OPTIONS "
                    f"{url}http_over_websocket/polling from {origin}) got no "
                    "Access-Control-Allow-Origin either, so a browser refuses polling "
                    "from that page too."
                )
        report.add("origin", PROBLEM, message, fix)
        return False
    cors = await _cors(url, origin, target.timeout, None, target.ssl_context)
    allowed, credentials = cors if cors is not None else (None, False)
    if allowed == "*":
        how = "allow_origin='*' admits every site (only safe on a machine nobody else reaches)"
    elif allowed == origin:
        how = "allow_origin or allow_origin_pat admits it"
    else:
        how = "it is the server's own origin"
    report.add("origin", OK, f"The server accepts WebSockets from {origin}: {how}.")
    report.add(
        "origin",
        NOTE,
        "allow_credentials is "
        + ("on" if credentials else "off")
        + ": the tunnel does not need it (WebSockets are not subject to CORS); only a page "
        "that calls the REST API directly with credentials: 'include' needs "
        "--ServerApp.allow_credentials=True.",
    )
    return True


def _refused_credentials(token: str | None, via: str) -> tuple[str, str]:
    """What a 403 on ``via`` means, and the fix, with or without a token."""
    if token is None:
        return (
            f"The server requires credentials and none were given (the {via} answered 403).",
            CREDENTIALS_FIX,
        )
    return (
        f"The server refused the token (the {via} answered 403).",
        "use the token the server printed at start (`jupyter server list` shows it)",
    )


def _cross_site(origin: str | None, url: str) -> bool:
    """Whether a page at ``origin`` is on another site than ``url`` (unknown: assume so).

    Sites ignore ports: a page on localhost:3000 gets the login cookie of localhost:8888.
    """
    if origin is None:
        return True
    page, server = urlsplit(origin), urlsplit(url)
    return (page.scheme, page.hostname) != (server.scheme, server.hostname)


async def open_tunnel(
    target: Target, url: str, transports: tuple[str, ...] = ("websocket",), **credentials: Any
) -> Any:
    """A :class:`~jupyter_http_over_ws.client.TunnelClient` as a page on ``--origin`` opens it."""
    from ..client import TunnelClient

    return await bounded(
        TunnelClient.connect(
            url,
            origin=target.browser_origin,
            min_version=target.min_version,
            connect_timeout=target.timeout,
            transports=transports,
            ssl=target.ssl_context,
            **credentials,
        ),
        target.timeout,
    )


def report_refusal(
    report: Report, target: Target, url: str, token: str | None, error: Exception, via: str
) -> None:
    """Why the tunnel did not open (``via`` names the request that opens it)."""
    from tornado.httpclient import HTTPClientError

    if not isinstance(error, HTTPClientError):
        report.add("credentials", PROBLEM, f"The tunnel could not be opened: {error!r}.", READ_LOG)
    elif error.code != 403:
        report.add(
            "credentials", PROBLEM, f"The {via} was refused with HTTP {error.code}.", READ_LOG
        )
    else:
        report.add("credentials", PROBLEM, *_refused_credentials(token, via))
        if _cross_site(target.browser_origin, url):
            report.add("credentials", NOTE, SAMESITE_NOTE)


#: What a tunnel without credentials means (whatever its transport).
NO_AUTHENTICATION = (
    "The server accepted a tunnel without credentials: its authentication is off, so any "
    "page it admits can run code as you."
)


async def check_credentials(
    report: Report,
    target: Target,
    url: str,
    token: str | None,
    origin_ok: bool | None,
    hub: HubInfo | None = None,
) -> Any:
    """Check 4: a tunnel opens with the token (as a header and as the Colab-era auth URL).

    Behind a hub (``hub``) the token goes only in the header, as the hub accepts it
    everywhere, and a refusal names the hub's reason (see :mod:`.hub`).
    """
    from tornado.httpclient import HTTPClientError

    try:
        tunnel = await open_tunnel(target, url, token=token)
    except Exception as error:
        if hub is not None and isinstance(error, HTTPClientError) and error.code == 403:
            await explain_refused_token(report, target, hub, token, "tunnel upgrade")
        else:
            report_refusal(report, target, url, token, error, "tunnel upgrade")
        return None
    if token is None:
        report.add("credentials", OK, NO_AUTHENTICATION)
        return tunnel
    if hub is not None:
        report.add(
            "credentials",
            OK,
            "The token is accepted in the Authorization header, the way JupyterHub accepts "
            "it on every request.",
        )
        _note_refused_origin(report, origin_ok)
        return tunnel
    # A browser cannot set an Authorization header on a WebSocket: pages present the token
    # in the URL, as Colab-era clients do with jupyter_http_over_ws_auth_url.
    auth_url = url + "?" + urlencode({"token": token})
    try:
        again = await open_tunnel(target, url, auth_url=auth_url)
        await again.close()
    except Exception as error:
        code = getattr(error, "code", None)
        report.add(
            "credentials",
            PROBLEM,
            "The token works as a header but not as jupyter_http_over_ws_auth_url "
            f"({code or error!r}), the way a page on another site presents it.",
            "give the server URL with its base_url, as the server printed it",
        )
        await tunnel.close()
        return None
    report.add(
        "credentials",
        OK,
        "The token is accepted, as a token and as jupyter_http_over_ws_auth_url.",
    )
    _note_refused_origin(report, origin_ok)
    return tunnel


def _note_refused_origin(report: Report, origin_ok: bool | None) -> None:
    if origin_ok is False:
        report.add(
            "credentials",
            NOTE,
            "The tunnel opened from the refused origin anyway, because jupyter_server trusts "
            "a valid token from any origin; diagnose and cookie logins still refuse it.",
        )
