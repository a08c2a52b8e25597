"""``jupyter http-over-ws doctor URL``: why a frontend cannot connect, and what fixes it.

The checks run in the order a connection fails: the server answers at all, the
extension is loaded (and new enough), the page's origin is allowed, the credentials
are accepted, and finally a tunnelled request and a proxied kernel socket work. Each
check records :class:`~.findings.Finding` objects (data) in a
:class:`~.findings.Report`; :func:`~.findings.render_text` and
:func:`~.findings.render_json` print them. A check that fails in a way that stops the
later ones from meaning anything ends the run.

After the tunnelled request, a second tunnel over the polling transport (plain HTTP
requests) shows that clients which cannot use a WebSocket still connect. When no
WebSocket upgrade gets through at all (a proxy that drops ``Upgrade``), the later
checks run over polling, and a ``websocket`` finding names the proxy and its fix.

Behind JupyterHub (a URL ``https://hub.example/user/alice/`` that the hub answers), a
``hub`` finding names the hub's version first, a stopped server is named with the hub's
answer (424), a refused token with the hub's reason (scopes, owner), the fixes speak of
the hub's configuration, the token always travels in the ``Authorization`` header, and
a ``browser`` finding says what a browser page's client will use (:mod:`.hub`).

The modules: :mod:`.target` (what to examine, the plain HTTP probe), :mod:`.network`
(checks 1-2: reachable, extension), :mod:`.access` (checks 3-4: origin, credentials),
:mod:`.tunnel` (check 5: request, kernel), :mod:`.polling` (the polling fallback),
:mod:`.kernel_messages` (kernel_info), :mod:`.findings` (the data and printing).
The checks use the package's own client (:mod:`jupyter_http_over_ws.client`) where it
fits.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Sequence

from .access import check_credentials, check_origin
from .findings import SKIPPED, Finding, Report, Status, render_json, render_text
from .hub import (
    HubInfo,
    adapt_websocket_findings,
    check_hub_server,
    detect_hub,
    name_hub_root,
    probe_browser_websocket,
    report_browser_websocket,
    report_hub,
    report_token_in_url,
)
from .network import check_extension, check_reachable
from .polling import check_polling, check_without_websockets, open_without_websockets
from .target import Target, base_url_candidates, normalize_url, url_credential
from .tunnel import check_kernel, check_request

__all__ = [
    "Finding",
    "Report",
    "Status",
    "Target",
    "add_arguments",
    "examine",
    "main",
    "render_json",
    "render_text",
    "run",
]


async def examine(target: Target) -> Report:
    """Run the checks in order and return every finding."""
    url, url_token = normalize_url(target.url)
    token = target.token or url_token
    report = Report(url)
    hub = await detect_hub(target, url)
    if hub is not None:
        server_url = base_url_candidates(url)[-1]
        report_hub(report, hub, server_url)
        if not await check_hub_server(report, target, server_url, hub, token):
            return report
    found = await check_reachable(report, target, url)
    if found is None:
        if hub is None:
            await name_hub_root(report, target, url)
        return report
    url = report.url = found
    extension = await check_extension(report, target, url)
    if extension == "no-websocket":
        await _examine_without_websockets(report, target, url, token, hub)
        if hub is not None:
            adapt_websocket_findings(report, hub)
        return report
    if extension == "problem":
        return report
    origin_ok = await check_origin(report, target, url, token, hub)
    tunnel = await check_credentials(report, target, url, token, origin_ok, hub)
    browser_refused = None
    if hub is not None and token and tunnel is not None:
        browser_refused = await probe_browser_websocket(target, url, token)
    _say_token_moved(report, target, hub, browser_refused)
    if tunnel is None:
        return report
    try:
        if await check_request(report, target, tunnel):
            polling_works = await check_polling(report, target, url, token)
            if hub is not None:
                report_browser_websocket(report, hub, browser_refused, polling_works)
            await check_kernel(report, target, tunnel)
    finally:
        await tunnel.close()
    return report


def _say_token_moved(
    report: Report, target: Target, hub: HubInfo | None, browser_refused: bool | None
) -> None:
    """Behind a hub, a token that came in the URL (sent in a header all the same): a note."""
    source = None if target.token else url_credential(target.url)
    if hub is not None and source is not None:
        report_token_in_url(report, hub, source, browser_refused)


async def _examine_without_websockets(
    report: Report, target: Target, url: str, token: str | None, hub: HubInfo | None
) -> None:
    """The rest of the checks when upgrades do not get through, over the polling transport."""
    if target.origin:
        report.add(
            "origin",
            SKIPPED,
            "The origin check needs a WebSocket (the diagnose socket), so it was skipped.",
        )
    else:
        await check_origin(report, target, url, token, hub)  # says how to ask for it
    tunnel = await open_without_websockets(report, target, url, token, hub)
    _say_token_moved(report, target, hub, None)
    if tunnel is None:
        return
    try:
        if await check_without_websockets(report, target, url, tunnel):
            await check_kernel(report, target, tunnel)
    finally:
        await tunnel.close()


# ------------------------------------------------------------------ command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``doctor`` subcommand's arguments."""
    parser.add_argument("url", help="the Jupyter server URL as it printed it (token optional)")
    parser.add_argument("--origin", help="the origin of the page that connects")
    parser.add_argument(
        "--token",
        help="the server's token, or a hub API token (default: ?token= of the URL); always "
        "sent in the Authorization header",
    )
    parser.add_argument("--min-version", help="the min_version the frontend asks for")
    parser.add_argument(
        "--no-kernel", dest="kernel", action="store_false", help="do not start a kernel"
    )
    parser.add_argument(
        "--timeout", type=float, default=20.0, help="seconds per network step (default 20)"
    )
    parser.add_argument(
        "--ca-file",
        help="a PEM file of the CAs to trust for an https:// server (default: the system's, "
        "or SSL_CERT_FILE)",
    )
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, out: Callable[[str], None] = print) -> int:
    """Examine the server the arguments name; print the findings; 0 if everything works."""
    target = Target(
        url=args.url,
        origin=args.origin,
        token=args.token,
        min_version=args.min_version,
        kernel=args.kernel,
        timeout=args.timeout,
        ca_file=args.ca_file,
    )
    report = asyncio.run(examine(target))
    out(render_json(report) if args.json else render_text(report))
    return 0 if report.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``doctor`` alone (``python -m jupyter_http_over_ws.doctor URL ...``)."""
    parser = argparse.ArgumentParser(prog="jupyter http-over-ws doctor")
    add_arguments(parser)
    return run(parser.parse_args(argv))
