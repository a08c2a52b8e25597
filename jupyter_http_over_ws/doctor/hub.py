"""A server behind JupyterHub: finding the hub, and what its rules mean for a frontend.

A user's server under JupyterHub lives at ``https://hub.example/user/<name>/``, behind
the hub's proxy. :func:`detect_hub` recognises the hub from what it answers (the
``X-JupyterHub-Version`` header on every response, ``GET /hub/api/`` with its
``version``) for a URL of a user's server, never from the path's shape alone, so a
standalone server started with ``--ServerApp.base_url=/user/alice/`` is not taken for
one. The checks here then name what only a hub does:

- :func:`check_hub_server`: the user's server is not running (the proxy sends its URL
  to the hub, which answers 424 with a token, or redirects to its login page);
- :func:`explain_refused_token`: why the single-user server refused a token (403): the
  hub does not know it, it is another user's, or its scopes lack ``access:servers``;
- :func:`probe_browser_websocket` and :func:`report_browser_websocket`: whether a
  browser's WebSocket, which can carry the token only as ``?token=``, is accepted
  (JupyterHub 5 and later refuse that unless the browser sends ``Sec-Fetch-Mode:
  websocket``, which Chromium does not), and what browser clients will use instead;
- the fixes of the origin and dropped-upgrade findings, in the hub's configuration
  (:func:`origin_fix`, :func:`adapt_websocket_findings`) and the CORS preflight a
  browser's polling requests need (:func:`preflight_allows`).

The doctor presents the token as the hub accepts it everywhere, in the ``Authorization``
header; one probe (the browser's WebSocket) carries it in the URL because that is the
only way a browser can, and the single-user server's log shows it as ``[secret]``.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

from ..wire.names import POLLING_PATH, TUNNEL_PATH
from .findings import NOTE, OK, PROBLEM, Finding, Report
from .target import Target, bounded

#: The header JupyterHub (and its single-user servers) put on every response.
VERSION_HEADER = "X-JupyterHub-Version"
#: What the hub answers a request for a user's server that is not running (with a token).
SERVER_NOT_RUNNING = 424
#: The environment variable of the single-user servers that lets them take ``?token=``.
ALLOW_TOKEN_IN_URL = "JUPYTERHUB_ALLOW_TOKEN_IN_URL"  # noqa: S105 (a name, not a secret)
#: The request headers the browser client's polling requests carry (its CORS preflight).
POLLING_REQUEST_HEADERS = "authorization,content-type"


@dataclass(frozen=True)
class HubInfo:
    """The hub in front of the server, as far as the doctor learned it."""

    #: The hub's public URL (its base_url included): ``https://hub.example/``.
    root: str
    #: JupyterHub's version, from ``GET /hub/api/`` or its header.
    version: str
    #: The user whose server the URL names (``/user/<name>/``).
    user: str

    @property
    def who(self) -> str:
        """``alice's server``."""
        return f"{self.user}'s server"

    def page(self, path: str) -> str:
        """A page of the hub, e.g. ``page("hub/token")``."""
        return self.root + path


def user_server_path(url: str) -> tuple[str, str] | None:
    """The hub's root URL and the user's name, for a URL of the form ``…/user/<name>/…``.

    The first ``user`` segment followed by a name counts: ``https://h/jhub/user/alice/lab/``
    gives ``("https://h/jhub/", "alice")``; a URL without one gives None.
    """
    parts = urlsplit(url)
    segments = parts.path.split("/")
    for i, segment in enumerate(segments[:-2]):
        if segment == "user" and segments[i + 1]:
            root = "/".join(segments[:i]) + "/"
            return urlunsplit((parts.scheme, parts.netloc, root, "", "")), segments[i + 1]
    return None


async def _get(
    url: str,
    target: Target,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    method: str = "GET",
) -> Any:
    """One request (no redirects followed), the token in its header; never raises on status."""
    from tornado.httpclient import AsyncHTTPClient, HTTPRequest

    sent = dict(headers or {})
    if token:
        sent["Authorization"] = f"token {token}"
    request = HTTPRequest(
        url,
        method=method,
        headers=sent,
        connect_timeout=target.timeout,
        request_timeout=target.timeout,
        follow_redirects=False,
        ssl_options=target.ssl_context,
        allow_nonstandard_methods=True,
    )
    return await AsyncHTTPClient().fetch(request, raise_error=False)


def _json(response: Any) -> Any:
    try:
        return json.loads(response.body)
    except (ValueError, TypeError):
        return None


async def detect_hub(target: Target, url: str) -> HubInfo | None:
    """The hub in front of ``url``, or None (not a hub, or nothing answers there).

    Only a URL of a user's server (``…/user/<name>/…``) is asked about, and only the
    hub's own answers make it one: ``GET /hub/api/`` with a ``version``, else the
    ``X-JupyterHub-Version`` header of ``GET {url}api`` (a proxy may expose only
    ``/user/``). A URL that does not answer is left to the reachability check.
    """
    located = user_server_path(url)
    if located is None:
        return None
    root, user = located
    try:
        answer = await _get(root + "hub/api/", target)
    except Exception:
        return None
    body = _json(answer) if answer.code == 200 else None
    version = body.get("version") if isinstance(body, dict) else None
    if not version:
        try:
            response = await _get(url + "api", target)
        except Exception:
            return None
        version = response.headers.get(VERSION_HEADER)
    if not version:
        return None
    return HubInfo(root=root, version=str(version), user=user)


async def name_hub_root(report: Report, target: Target, url: str) -> None:
    """After a failed reachability check: if ``url`` is the hub itself, say so instead.

    The hub's own pages (``https://hub.example/``, ``…/hub/home``) are not a Jupyter
    server; the tunnel runs in each user's server, under ``/user/<name>/``.
    """
    problems = [f for f in report.findings if f.check == "reachable" and f.status == PROBLEM]
    if not problems or " answers HTTP, but GET " not in problems[-1].message:
        return  # nothing answered there (asking again would only wait again)
    parts = urlsplit(url)
    segments = parts.path.split("/")
    root = "/".join(segments[: segments.index("hub")]) + "/" if "hub" in segments else parts.path
    root_url = urlunsplit((parts.scheme, parts.netloc, root, "", ""))
    try:
        answer = await _get(root_url + "hub/api/", target)
    except Exception:
        return
    body = _json(answer) if answer.code == 200 else None
    version = body.get("version") if isinstance(body, dict) else None
    if not version:
        return
    for i in reversed(range(len(report.findings))):
        if report.findings[i].check == "reachable" and report.findings[i].status == PROBLEM:
            report.findings[i] = Finding(
                "reachable",
                PROBLEM,
                f"{url} is JupyterHub {version} itself, not a user's server: the tunnel runs "
                f"in each user's single-user server, under {root_url}user/<name>/.",
                f"give the URL of the user's server, e.g. {root_url}user/alice/ (the hub's "
                f"home page, {root_url}hub/home, starts yours)",
            )
            return


def report_hub(report: Report, hub: HubInfo, url: str) -> None:
    """The ``hub`` finding: which JupyterHub, and whose server the URL is."""
    report.add(
        "hub",
        OK,
        f"JupyterHub {hub.version} serves {url} ({hub.who}; the hub answers at {hub.root}).",
    )


def spawn_fix(hub: HubInfo) -> str:
    """How to start the user's server again."""
    user = hub.user
    return (
        f"start {hub.who}: 'Start My Server' on {hub.page('hub/home')} (or open "
        f"{hub.page(f'hub/spawn/{user}')}), or POST {hub.page(f'hub/api/users/{user}/server')} "
        f"with a token that has the scope servers!user={user}; a server the idle culler "
        "stopped must be started again the same way before a frontend can connect"
    )


async def check_hub_server(
    report: Report, target: Target, url: str, hub: HubInfo, token: str | None
) -> bool:
    """Whether the user's server runs; if not, a ``reachable`` problem naming the hub's answer.

    The proxy routes ``/user/<name>/`` to the server only while it runs; otherwise the
    request reaches the hub, which redirects it to ``/hub/user/<name>/…`` and answers
    that with 424 (a token given) or with its login page (none).
    """
    try:
        response = await _get(url + "api", target, token)
    except Exception:
        return True  # the reachability check says why
    location = response.headers.get("Location", "")
    if response.code not in (301, 302, 303, 307) or "/hub/user/" not in location:
        return True
    redirected = urljoin(url, location)
    said = ""
    try:
        answer = await _get(redirected, target, token)
    except Exception:
        answer = None
    if answer is not None and answer.code == SERVER_NOT_RUNNING:
        body = _json(answer)
        message = body.get("message") if isinstance(body, dict) else None
        said = f", which answered {SERVER_NOT_RUNNING}" + (f" ({message})" if message else "")
    elif answer is not None and "/hub/login" in answer.headers.get("Location", ""):
        said = (
            ", which sends a request without a token to the login page (with a token it "
            f"answers {SERVER_NOT_RUNNING})"
        )
    report.add(
        "reachable",
        PROBLEM,
        f"The server is not running ({hub.who}): GET {url}api reached the hub, not the "
        f"server (the hub's proxy routes /user/{hub.user}/ to the server only while it "
        f"runs), and the hub redirected it to {urlsplit(redirected).path}{said}.",
        spawn_fix(hub),
    )
    return False


def scopes_grant_access(scopes: list[str], user: str) -> bool | None:
    """Whether a token's ``scopes`` reach ``user``'s default server.

    ``access:servers`` unfiltered, or filtered to the user or to their default server
    (``!server=alice/``), does; None when only a group filter could (the doctor cannot
    see the groups).
    """
    unknown = False
    for scope in scopes:
        name, _, scope_filter = scope.partition("!")
        if name != "access:servers":
            continue
        if not scope_filter or scope_filter in (f"user={user}", f"server={user}/"):
            return True
        if scope_filter.startswith("group="):
            unknown = True
    return None if unknown else False


def token_fix(hub: HubInfo) -> str:
    """How to get a token the user's server accepts."""
    user = hub.user
    return (
        f"use a token of {user}'s with the scope access:servers!user={user} (or "
        f"access:servers!server={user}/): make one on {hub.page('hub/token')}, or POST "
        f'{hub.page(f"hub/api/users/{user}/tokens")} with {{"scopes": '
        f'["access:servers!user={user}"]}}'
    )


async def explain_refused_token(
    report: Report, target: Target, hub: HubInfo, token: str | None, via: str
) -> None:
    """A ``credentials`` problem for a 403 from the user's server, naming the hub's reason."""
    if token is None:
        report.add(
            "credentials",
            PROBLEM,
            f"The hub's single-user server ({hub.who}) requires a hub API token, and none "
            f"was given (the {via} answered 403).",
            f"pass one with --token here (in a page: the client's token option); {token_fix(hub)}",
        )
        return
    try:
        answer = await _get(hub.page("hub/api/user"), target, token)
    except Exception:
        answer = None
    owner = _json(answer) if answer is not None and answer.code == 200 else None
    if not isinstance(owner, dict):
        code = answer.code if answer is not None else "no answer"
        report.add(
            "credentials",
            PROBLEM,
            f"The hub does not accept this token (the {via} answered 403, and "
            f"GET {hub.page('hub/api/user')} with it answered {code}): it is wrong, expired "
            "or revoked.",
            token_fix(hub),
        )
        return
    name = str(owner.get("name", "?"))
    scopes = [str(s) for s in owner.get("scopes") or []]
    listed = ", ".join(scopes) or "none"
    user = hub.user
    access = scopes_grant_access(scopes, user)
    if name != user and access is False:
        message = (
            f"The token is {name}'s, and its scopes ({listed}) give no access to {user}'s "
            f"server (the {via} answered 403)."
        )
        fix = token_fix(hub) + (
            f"; or give {name} that scope through a role in the hub's configuration "
            "(c.JupyterHub.load_roles)"
        )
    elif access is False:
        message = (
            f"The token is {name}'s, but it lacks the scope access:servers for {hub.who}: its "
            f"scopes are {listed} (the {via} answered 403)."
        )
        fix = token_fix(hub)
    else:
        message = (
            f"The hub's single-user server ({hub.who}) refused the token of {name} (the "
            f"{via} answered 403; its scopes: {listed})."
        )
        fix = token_fix(hub)
    report.add("credentials", PROBLEM, message, fix)


def report_token_in_url(
    report: Report, hub: HubInfo, source: str, browser_refused: bool | None
) -> None:
    """The token came in the URL (``source``): the doctor sends it in a header; say so."""
    if browser_refused:
        rule = (
            f"JupyterHub {hub.version} refuses a token there (it answered 403 to a WebSocket "
            "upgrade carrying ?token=), as JupyterHub 5 and later do on every HTTP request"
        )
    elif browser_refused is False:
        rule = (
            f"this hub accepts it in a URL too ({ALLOW_TOKEN_IN_URL} is on, or the hub is older "
            "than 5), but a token in a URL ends up in logs, history and Referer headers"
        )
    else:
        rule = "JupyterHub 5 and later refuse a token there on HTTP requests"
    report.add(
        "credentials",
        NOTE,
        f"The token came in the URL ({source}); the doctor sent it in the Authorization "
        f"header instead, the way the hub accepts it on every request: {rule}.",
        "have your client send `Authorization: token <token>` (the Python client's token=, "
        "the browser client's token option); a client that sends the token only as ?token= "
        "is refused with 403",
    )


async def probe_browser_websocket(target: Target, url: str, token: str) -> bool | None:
    """Whether the hub refuses the token in a WebSocket's URL, as a browser must send it.

    The upgrade carries ``?token=`` and no ``Sec-Fetch-Mode``, as Chromium sends it.
    True: refused (403); False: accepted; None: no answer that tells (e.g. no upgrade).
    """
    from tornado.httpclient import HTTPClientError

    from ..client._connect import Endpoint

    endpoint = Endpoint(url, connect_timeout=target.timeout, ssl_context=target.ssl_context)
    try:
        socket_ = await bounded(endpoint.open(TUNNEL_PATH, {"token": token}), target.timeout)
    except HTTPClientError as error:
        return True if error.code == 403 else None
    except Exception:
        return None
    socket_.close()
    return False


def report_browser_websocket(
    report: Report, hub: HubInfo, refused: bool | None, polling_works: bool
) -> None:
    """The ``browser`` finding: what a browser page's client will use under this hub."""
    if refused is None:
        return
    if not refused:
        report.add(
            "browser",
            OK,
            f"This hub accepts a token in a WebSocket's URL (?token=), the only way a browser "
            f"can send it: browser clients can use the WebSocket ({ALLOW_TOKEN_IN_URL} is on, "
            "or the hub is older than 5).",
        )
        return
    fallback = (
        "browser clients will use the polling transport, which sends the token in the "
        "Authorization header"
        if polling_works
        else "and the polling fallback does not work either (above), so browser clients "
        "cannot connect with a token"
    )
    report.add(
        "browser",
        NOTE if polling_works else PROBLEM,
        "A browser's WebSocket can carry the token only in its URL (?token=), and "
        f"JupyterHub {hub.version} refused that (403): it accepts ?token= on a WebSocket "
        "only with Sec-Fetch-Mode: websocket, which Chromium does not send. So " + fallback + ".",
        "to let browsers use the WebSocket, set c.Spawner.environment = "
        f'{{"{ALLOW_TOKEN_IN_URL}": "1"}} in jupyterhub_config.py (it lets the single-user '
        "servers take ?token= on every request) and restart the servers, or serve the page "
        f"from the hub's own site ({hub.root}) so its WebSocket carries the hub's login "
        "cookie; otherwise nothing to do, polling works",
    )


def origin_fix(hub: HubInfo, origin: str) -> str:
    """The fix of a refused page origin, in the hub's configuration."""
    pattern = "^" + re.escape(origin) + "$"
    return (
        "allow the page's origin in every single-user server, in jupyterhub_config.py: "
        f'c.Spawner.args = [r"--ServerApp.allow_origin_pat={pattern}"] (or '
        f'"--ServerApp.allow_origin={origin}"; or c.ServerApp.allow_origin_pat in the '
        "single-user environment's jupyter_server_config.py), restart the hub, then stop "
        f"and start {hub.who} (a running server keeps the arguments it was started with)"
    )


async def preflight_allows(target: Target, url: str, origin: str) -> bool | None:
    """Whether the CORS preflight of a browser's polling request from ``origin`` is allowed.

    The browser client's polling requests carry ``Authorization`` and a JSON body, so
    the browser first sends ``OPTIONS …/http_over_websocket/polling``; without
    ``Access-Control-Allow-Origin`` in the answer it refuses the request. None: no answer.
    """
    headers = {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": POLLING_REQUEST_HEADERS,
    }
    try:
        response = await _get(url + POLLING_PATH, target, headers=headers, method="OPTIONS")
    except Exception:
        return None
    allowed = response.headers.get("Access-Control-Allow-Origin")
    return allowed in (origin, "*")


def adapt_websocket_findings(report: Report, hub: HubInfo) -> None:
    """Say, in a dropped-upgrade finding's fix, which proxy is at fault under a hub."""
    for i, finding in enumerate(report.findings):
        if finding.check == "websocket" and finding.status == PROBLEM and finding.fix:
            report.findings[i] = dataclasses.replace(
                finding,
                fix=(
                    "JupyterHub's own proxy (configurable-http-proxy) passes upgrades, so a "
                    f"proxy in front of the hub ({hub.root}) drops them: "
                    + finding.fix
                    + " (on Kubernetes: an ingress controller that passes WebSockets)"
                ),
            )
