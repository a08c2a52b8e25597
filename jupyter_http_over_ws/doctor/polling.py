"""The polling fallback: whether a client that cannot use a WebSocket still connects.

After a tunnelled request works over a WebSocket, :func:`check_polling` opens a second,
polling-only tunnel (plain HTTP requests, docs/developers/polling.md) and sends the same
request through it. When WebSocket upgrades do not get through at all (a proxy that
drops ``Upgrade``), :func:`open_without_websockets` opens the tunnel over polling
instead, and :func:`check_without_websockets` says which of the two is broken.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .access import NO_AUTHENTICATION, open_tunnel, report_refusal
from .findings import NOTE, OK, PROBLEM, READ_LOG, Finding, Report
from .hub import HubInfo, explain_refused_token
from .network import UPGRADE_NOT_RECEIVED
from .target import Target
from .tunnel import request_status

#: The tunnel opened over plain HTTP requests only.
POLLING_ONLY = ("polling",)
# The words below are also the browser client's (js/src/diagnose.js, whose test compares
# them with these): a page behind such a proxy reads what this command prints.
#: What a WebSocket upgrade that reaches the server without its ``Upgrade`` header means.
UPGRADES_DROPPED = (
    "a proxy in between drops WebSocket upgrades (it does not forward the Upgrade header)"
)
#: What still works then.
POLLING_STILL_CONNECTS = (
    "Clients with the polling transport still connect (they fall back to plain HTTP "
    "requests); clients that only speak WebSocket cannot."
)
PROXY_FIX = (
    "let the proxy pass WebSocket upgrades: forward the Upgrade and Connection headers over "
    "HTTP/1.1 (for nginx, in the location block: proxy_http_version 1.1; "
    'proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection "upgrade";)'
)
POLLING_OFF_FIX = "start the server with --HttpOverWebSocketApp.allow_polling=True (the default)"


def _polling_off(url: str) -> str:
    return f"the polling fallback is off ({url}http_over_websocket/polling answers 404)"


def _dropped(url: str, outcome: str) -> str:
    return (
        f"WebSocket upgrades do not reach the server: {url}http_over_websocket/diagnose "
        f"answered HTTP {UPGRADE_NOT_RECEIVED} instead of switching protocols, so "
        f"{UPGRADES_DROPPED}. {outcome}"
    )


async def check_polling(report: Report, target: Target, url: str, token: str | None) -> bool:
    """Check 5b: a polling-only tunnel opens and ``GET /api/status`` through it answers 200."""
    from tornado.httpclient import HTTPClientError

    try:
        tunnel = await open_tunnel(target, url, POLLING_ONLY, token=token)
    except HTTPClientError as error:
        if error.code == 404:
            # A setting, not a fault: only clients that cannot use a WebSocket notice it.
            report.add(
                "polling",
                NOTE,
                f"WebSockets work, but {_polling_off(url)}: a client behind a proxy that "
                "drops WebSocket upgrades could not fall back to it.",
                f"{POLLING_OFF_FIX} if such clients need it",
            )
            return False
        report.add(
            "polling", PROBLEM, f"A polling session was refused with HTTP {error.code}.", READ_LOG
        )
        return False
    except Exception as error:
        report.add(
            "polling", PROBLEM, f"A polling session could not be opened: {error!r}.", READ_LOG
        )
        return False
    try:
        return await _request_over_polling(report, target, tunnel, " too")
    finally:
        await tunnel.close()


async def _request_over_polling(report: Report, target: Target, tunnel: Any, too: str) -> bool:
    """``GET /api/status`` through a polling-only ``tunnel``: the ``polling`` finding."""
    works = await request_status(report, target, tunnel, "polling", "a polling-only tunnel")
    if works:
        report.add(
            "polling",
            OK,
            f"The polling fallback works{too}: GET /api/status through a polling-only tunnel "
            "(plain HTTP requests, for networks that drop WebSocket upgrades) answered 200.",
        )
    return works


async def open_without_websockets(
    report: Report, target: Target, url: str, token: str | None, hub: HubInfo | None = None
) -> Any:
    """Check 4 when upgrades do not get through: a polling-only tunnel opens with the token.

    Behind a hub (``hub``), a refused token is explained by the hub's reason.
    """
    from tornado.httpclient import HTTPClientError

    try:
        tunnel = await open_tunnel(target, url, POLLING_ONLY, token=token)
    except Exception as error:
        if isinstance(error, HTTPClientError) and error.code == 404:
            report.add(
                "websocket",
                PROBLEM,
                _dropped(url, f"And {_polling_off(url)}, so no client can connect."),
                f"{PROXY_FIX}; or {POLLING_OFF_FIX}",
            )
        else:
            if hub is not None and isinstance(error, HTTPClientError) and error.code == 403:
                await explain_refused_token(report, target, hub, token, "polling session request")
            else:
                report_refusal(report, target, url, token, error, "polling session request")
            # The upgrade's failure is known already; say it, whatever the credentials.
            if isinstance(error, HTTPClientError) and error.code == 403:
                outcome = (
                    "The polling fallback answers (it refused only the credentials), so "
                    "clients with the polling transport connect once their token is accepted; "
                    "clients that only speak WebSocket cannot."
                )
            else:
                outcome = "The polling fallback failed too (above): no client can connect."
            report.add("websocket", PROBLEM, _dropped(url, outcome), PROXY_FIX)
        return None
    _name_the_version(report, tunnel.extension_version)
    if token is None:
        report.add("credentials", OK, NO_AUTHENTICATION)
    elif hub is not None:
        report.add(
            "credentials",
            OK,
            "The token is accepted (by the polling transport) in the Authorization header, "
            "the way JupyterHub accepts it on every request.",
        )
    else:
        report.add("credentials", OK, "The token is accepted (by the polling transport).")
    return tunnel


def _name_the_version(report: Report, version: str | None) -> None:
    """Complete the ``extension`` finding with the version the polling session told."""
    for i, finding in enumerate(report.findings):
        if version and finding.check == "extension" and finding.status == OK:
            report.findings[i] = dataclasses.replace(
                finding,
                message=f"The jupyter_http_over_ws extension {version} is loaded (its diagnose "
                "URL answers; the version comes from the polling transport, as WebSocket "
                "upgrades do not get through).",
            )


async def check_without_websockets(report: Report, target: Target, url: str, tunnel: Any) -> bool:
    """Check 5 when upgrades do not get through: say so, and whether polling carries requests."""
    before = len(report.findings)
    works = await _request_over_polling(report, target, tunnel, "")
    if works:
        outcome = POLLING_STILL_CONNECTS
    else:
        outcome = "The polling fallback failed too (below): no client can connect."
    # The WebSocket finding comes first, though it is worded after the polling result.
    websocket = Finding("websocket", PROBLEM, _dropped(url, outcome), PROXY_FIX)
    report.findings.insert(before, websocket)
    return works
