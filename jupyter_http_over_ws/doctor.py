"""``jupyter http-over-ws doctor URL``: why a frontend cannot connect, and what fixes it.

The checks run in the order a connection fails: the server answers at all, the
extension is loaded (and new enough), the page's origin is allowed, the credentials
are accepted, and finally a tunnelled request and a proxied kernel socket work. Each
check produces :class:`Finding` objects (data); :func:`render_text` and
:func:`render_json` print them. A check that fails in a way that stops the later ones
from meaning anything ends the run.

The checks use the package's own client (:mod:`jupyter_http_over_ws.client`) where it
fits; the one plain HTTP request (``GET {base_url}api``) tells a Jupyter server
from anything else and shows the CORS headers its ``allow_origin`` settings produce.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import ssl
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

#: A finding's status: it works, it is broken (with a fix), worth knowing, or not checked.
Status = Literal["ok", "problem", "note", "skipped"]
OK: Status = "ok"
PROBLEM: Status = "problem"
NOTE: Status = "note"
SKIPPED: Status = "skipped"

#: The kernel WebSocket subprotocol JupyterLab offers (jupyter_server 2 speaks it).
KERNEL_V1 = "v1.kernel.websocket.jupyter.org"
#: Close codes the tunnel uses when it opens and closes at once (see handlers/tunnel.py).
VERSION_CLOSE_CODE = 4400
TOO_MANY_SOCKETS_CODE = 4429
#: Path segments of frontend pages: a URL copied from the browser's address bar
#: (``http://localhost:8888/lab?token=...``) names a page under the server's base_url.
FRONTEND_PAGES = frozenset({"lab", "tree", "notebooks", "edit", "consoles", "terminals", "doc"})
#: How to install this package where the server runs (PyPI's 0.0.8 is the original).
INSTALL = (
    "install this package into the server's Python environment "
    "(`pip install -U jupyter-http-over-ws`, or `pip install .` in a checkout)"
)
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

T = TypeVar("T")


@dataclass(frozen=True)
class Finding:
    """One result: which check, whether it passed, one sentence, and the fix."""

    check: str
    status: Status
    message: str
    fix: str | None = None


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


@dataclass
class Report:
    """Every finding of one run, in order."""

    url: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no check found a problem and every essential check ran."""
        passed = {f.check for f in self.findings if f.status == OK}
        essential = {"reachable", "extension", "credentials", "request"}
        return essential <= passed and not any(f.status == PROBLEM for f in self.findings)

    def add(self, check: str, status: Status, message: str, fix: str | None = None) -> Finding:
        """Record one finding and return it."""
        finding = Finding(check, status, message, fix)
        self.findings.append(finding)
        return finding


# ------------------------------------------------------------------ the arguments


def normalize_url(raw: str) -> tuple[str, str | None]:
    """The server URL with a trailing slash and no query, and a ``?token=`` it carried."""
    if "://" not in raw:
        raw = "http://" + raw
    parts = urlsplit(raw)
    token = dict(parse_qsl(parts.query)).get("token")
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return urlunsplit((parts.scheme.lower(), parts.netloc, path, "", "")), token


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


def _flag(value: str) -> str:
    return f"--ServerApp.allow_origin='{value}'"


# ------------------------------------------------------------------ the checks


async def _bounded(awaitable: Awaitable[T], timeout: float) -> T:
    return await asyncio.wait_for(awaitable, timeout)


async def _get_api(
    url: str, timeout: float, origin: str | None = None, token: str | None = None
) -> Any:
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
    )
    return await AsyncHTTPClient().fetch(request, raise_error=False)


def _unreachable(report: Report, url: str, error: BaseException) -> None:
    """Say in one sentence why ``url`` cannot be reached at all."""
    from tornado.simple_httpclient import HTTPStreamClosedError, HTTPTimeoutError

    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    if isinstance(error, ConnectionRefusedError):
        report.add(
            "reachable",
            PROBLEM,
            f"Nothing listens on {host} port {port} (connection refused).",
            f"start the server (`jupyter server --port={port}`) or give the URL it printed "
            "(`jupyter server list` shows it)",
        )
    elif isinstance(error, socket.gaierror):
        report.add(
            "reachable",
            PROBLEM,
            f"The host name {host!r} does not resolve ({error.strerror}).",
            "check the host in the URL (for a server on this machine, use localhost)",
        )
    elif isinstance(error, ssl.SSLCertVerificationError):
        report.add(
            "reachable",
            PROBLEM,
            f"The server's TLS certificate is not trusted ({error.verify_message}).",
            "use a certificate this machine trusts, or point SSL_CERT_FILE at the CA that "
            "signed it",
        )
    elif isinstance(error, ssl.SSLError):
        report.add(
            "reachable",
            PROBLEM,
            f"The TLS handshake with {host}:{port} failed ({error.reason or error}): the "
            "server probably speaks plain HTTP.",
            "use an http:// URL, or start the server with --ServerApp.certfile and "
            "--ServerApp.keyfile",
        )
    elif isinstance(error, HTTPStreamClosedError | ConnectionResetError):
        report.add(
            "reachable",
            PROBLEM,
            f"{host}:{port} closed the connection without answering: it probably speaks HTTPS "
            "or is not a web server.",
            "use an https:// URL if the server was started with --ServerApp.certfile",
        )
    elif isinstance(error, HTTPTimeoutError | asyncio.TimeoutError | TimeoutError):
        plain = " (an https:// URL to a plain-HTTP server also hangs like this)"
        report.add(
            "reachable",
            PROBLEM,
            f"{host}:{port} did not answer in time"
            + (plain if parts.scheme == "https" else "")
            + ".",
            "check the URL's scheme and port, that the server is running, and that no "
            "firewall drops the connection",
        )
    else:
        report.add(
            "reachable",
            PROBLEM,
            f"{url} cannot be reached: {error}.",
            "check the URL and that the server is running",
        )


async def _other_scheme(url: str, error: BaseException, timeout: float) -> str | None:
    """``url`` with the other scheme, if the failure came from using the wrong one."""
    from tornado.simple_httpclient import HTTPStreamClosedError, HTTPTimeoutError

    parts = urlsplit(url)
    if parts.scheme == "https" and (
        isinstance(error, HTTPTimeoutError | asyncio.TimeoutError | TimeoutError)
        or (isinstance(error, ssl.SSLError) and not isinstance(error, ssl.CertificateError))
    ):
        other = urlunsplit(("http", *parts[1:]))
    elif parts.scheme == "http" and isinstance(error, HTTPStreamClosedError | ConnectionResetError):
        other = urlunsplit(("https", *parts[1:]))
    else:
        return None
    try:
        await _get_api(other, min(timeout, 5.0))
    except ssl.SSLCertVerificationError:
        return other  # it speaks TLS, with a certificate this machine does not trust
    except Exception:
        return None
    return other


async def check_reachable(report: Report, target: Target, url: str) -> str | None:
    """Check 1: a Jupyter server answers ``GET {base_url}api``; returns its URL."""
    first_status: int | None = None
    for candidate in base_url_candidates(url):
        try:
            response = await _get_api(candidate, target.timeout)
        except Exception as error:
            other = await _other_scheme(candidate, error, target.timeout)
            if other is None:
                _unreachable(report, candidate, error)
            else:
                speaks = "HTTPS" if other.startswith("https:") else "plain HTTP"
                report.add(
                    "reachable",
                    PROBLEM,
                    f"The server at {urlsplit(candidate).netloc} speaks {speaks}, so "
                    f"{candidate} cannot reach it.",
                    f"use {other} (and {'wss' if speaks == 'HTTPS' else 'ws'}:// in the page)",
                )
            return None
        version = None
        if response.code == 200:
            try:
                version = json.loads(response.body).get("version")
            except (ValueError, AttributeError):
                version = None
        if version:
            if candidate != url:
                report.add(
                    "reachable",
                    NOTE,
                    f"{url} is a page of the server, so its base URL {candidate} was used.",
                    f"give {candidate} as the server URL",
                )
            report.add("reachable", OK, f"Jupyter Server {version} answers at {candidate}.")
            return candidate
        if first_status is None:
            first_status = response.code
    if first_status == 403:
        report.add(
            "reachable",
            PROBLEM,
            f"The server at {url} refused the request (403), as jupyter_server does for a host "
            "name it does not consider local.",
            "reach it as localhost, or start it with --ServerApp.allow_remote_access=True",
        )
    else:
        report.add(
            "reachable",
            PROBLEM,
            f"{url} answers HTTP, but GET {url}api gave {first_status} instead of a Jupyter "
            "server's version: it is not a Jupyter server, or the URL lacks the base_url.",
            "give the URL the server printed (`jupyter server list`), base_url included, "
            "e.g. http://localhost:8888/ or https://hub.example/user/alice/",
        )
    return None


async def check_extension(report: Report, target: Target, url: str) -> bool:
    """Check 2: the diagnose endpoint answers, with a version that meets ``--min-version``."""
    from tornado.httpclient import HTTPClientError

    from .client import diagnose

    try:
        answer = await _bounded(
            diagnose(url, min_version=target.min_version, connect_timeout=target.timeout),
            target.timeout,
        )
    except HTTPClientError as error:
        if error.code == 404:
            report.add(
                "extension",
                PROBLEM,
                "The server does not load the jupyter_http_over_ws extension "
                f"({url}http_over_websocket/diagnose is 404).",
                f"{INSTALL}, check that "
                "`jupyter server extension list` shows it enabled "
                "(else `jupyter server extension enable jupyter_http_over_ws`), and restart "
                "the server",
            )
        else:
            report.add(
                "extension",
                PROBLEM,
                f"The extension's diagnose socket was refused with HTTP {error.code}.",
                "read the server's log for the reason",
            )
        return False
    except Exception as error:
        report.add(
            "extension",
            PROBLEM,
            f"The extension's diagnose socket failed: {error!r}.",
            "read the server's log for the reason",
        )
        return False
    version = answer.extension_version
    if answer.is_outdated_extension:
        report.add(
            "extension",
            PROBLEM,
            f"The server runs jupyter_http_over_ws {version}, older than the "
            f"{target.min_version} the frontend asks for (--min-version): the tunnel would "
            "close at once with code 4400.",
            f"{INSTALL} and restart the server",
        )
        return False
    if _is_original(version):
        report.add(
            "extension",
            PROBLEM,
            f"The server runs the original extension (it reports {version}), which breaks on "
            "current Tornado and jupyter_server.",
            f"{INSTALL} and restart the server",
        )
        return False
    report.add("extension", OK, f"The jupyter_http_over_ws extension {version} is loaded.")
    return True


def _is_original(version: str) -> bool:
    from packaging.version import InvalidVersion, Version

    try:
        return Version(version) < Version("0.1")
    except InvalidVersion:
        return False


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
    url: str, origin: str, timeout: float, token: str | None = None
) -> tuple[str | None, bool] | None:
    """``Access-Control-Allow-Origin`` and ``-Credentials`` of ``GET api`` from ``origin``.

    None when the server refuses that origin (jupyter_server answers 404 then). With a
    valid token the origin check is skipped and the header shows the configured
    ``allow_origin`` as it is written.
    """
    try:
        response = await _get_api(url, timeout, origin, token)
    except Exception:
        return None
    if response.code != 200:
        return None
    headers = response.headers
    credentials = headers.get("Access-Control-Allow-Credentials") == "true"
    return headers.get("Access-Control-Allow-Origin"), credentials


async def _configured_origin(
    url: str, origin: str, timeout: float, token: str | None
) -> str | None:
    """The server's ``allow_origin`` when it can be seen, for a refused ``origin``."""
    seen = await _cors(url, origin, timeout, token) if token else None
    if seen is not None and seen[0] and seen[0] != origin:
        return seen[0]  # a token-authenticated request shows allow_origin as configured
    # Without a usable token: the commonest mistake is a trailing slash; ask with one.
    slashed = await _cors(url, origin + "/", timeout)
    if slashed is not None and slashed[0] == origin + "/":
        return slashed[0]
    return None


async def check_origin(report: Report, target: Target, url: str, token: str | None) -> bool | None:
    """Check 3: the server accepts WebSockets from ``--origin``; None when not asked."""
    from tornado.httpclient import HTTPClientError

    from .client import diagnose

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
        await _bounded(diagnose(url, origin=origin, connect_timeout=target.timeout), target.timeout)
    except HTTPClientError as error:
        if error.code != 403:
            report.add(
                "origin",
                PROBLEM,
                f"A WebSocket from {origin} was refused with HTTP {error.code}.",
                "read the server's log for the reason",
            )
            return False
        allowed = await _configured_origin(url, origin, target.timeout, token)
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
        report.add(
            "origin",
            PROBLEM,
            message,
            f"restart the server with {_flag(origin)} (or --ServerApp.allow_origin_pat="
            "'<regex>' matching every origin you need)",
        )
        return False
    cors = await _cors(url, origin, target.timeout)
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


def _cross_site(origin: str | None, url: str) -> bool:
    """Whether a page at ``origin`` is on another site than ``url`` (unknown: assume so).

    Sites ignore ports: a page on localhost:3000 gets the login cookie of localhost:8888.
    """
    if origin is None:
        return True
    page, server = urlsplit(origin), urlsplit(url)
    return (page.scheme, page.hostname) != (server.scheme, server.hostname)


async def check_credentials(
    report: Report, target: Target, url: str, token: str | None, origin_ok: bool | None
) -> Any:
    """Check 4: a tunnel opens with the token (as a header and as the Colab-era auth URL)."""
    from tornado.httpclient import HTTPClientError

    from .client import TunnelClient

    origin = normalize_origin(target.origin) if target.origin else None

    async def connect(**credentials: Any) -> Any:
        return await _bounded(
            TunnelClient.connect(
                url,
                origin=origin,
                min_version=target.min_version,
                connect_timeout=target.timeout,
                **credentials,
            ),
            target.timeout,
        )

    try:
        tunnel = await connect(token=token)
    except HTTPClientError as error:
        if error.code != 403:
            report.add(
                "credentials",
                PROBLEM,
                f"The tunnel upgrade was refused with HTTP {error.code}.",
                "read the server's log for the reason",
            )
        elif token is None:
            report.add(
                "credentials",
                PROBLEM,
                "The server requires credentials and none were given (the tunnel upgrade "
                "answered 403).",
                CREDENTIALS_FIX,
            )
            if _cross_site(origin, url):
                report.add("credentials", NOTE, SAMESITE_NOTE)
        else:
            report.add(
                "credentials",
                PROBLEM,
                "The server refused the token (the tunnel upgrade answered 403).",
                "use the token the server printed at start (`jupyter server list` shows it)",
            )
            if _cross_site(origin, url):
                report.add("credentials", NOTE, SAMESITE_NOTE)
        return None
    except Exception as error:
        report.add(
            "credentials",
            PROBLEM,
            f"The tunnel could not be opened: {error!r}.",
            "read the server's log for the reason",
        )
        return None
    if token is None:
        report.add(
            "credentials",
            OK,
            "The server accepted a tunnel without credentials: its authentication is off, so "
            "any page it admits can run code as you.",
        )
        return tunnel
    # A browser cannot set an Authorization header on a WebSocket: pages present the token
    # in the URL, as Colab-era clients do with jupyter_http_over_ws_auth_url.
    auth_url = url + "?" + urlencode({"token": token})
    try:
        again = await connect(auth_url=auth_url)
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
    if origin_ok is False:
        report.add(
            "credentials",
            NOTE,
            "The tunnel opened from the refused origin anyway, because jupyter_server trusts "
            "a valid token from any origin; diagnose and cookie logins still refuse it.",
        )
    return tunnel


def _closed_reason(tunnel: Any) -> tuple[str, str | None]:
    code, reason = tunnel.close_code, tunnel.close_reason
    if code == VERSION_CLOSE_CODE:
        return (
            f"The server closed the tunnel at once: {reason}",
            f"{INSTALL} and restart the server",
        )
    if code == TOO_MANY_SOCKETS_CODE:
        return (
            f"The server closed the tunnel at once: {reason}.",
            "close other tabs or clients, or raise --HttpOverWebSocketApp.max_sockets_per_user",
        )
    return (f"The tunnel closed (code {code}, reason {reason!r}).", None)


async def check_request(report: Report, target: Target, tunnel: Any) -> bool:
    """Check 5a: ``GET /api/status`` through the tunnel answers 200."""
    from .client import TunnelClosedError

    try:
        reply = await _bounded(tunnel.request("GET", "/api/status"), target.timeout)
    except TunnelClosedError:
        message, fix = _closed_reason(tunnel)
        report.add("request", PROBLEM, message, fix)
        return False
    except Exception as error:
        report.add(
            "request",
            PROBLEM,
            f"GET /api/status through the tunnel failed: {error!r}.",
            "read the server's log for the reason",
        )
        return False
    if reply.status != 200:
        report.add(
            "request",
            PROBLEM,
            f"GET /api/status through the tunnel answered {reply.status} {reply.reason}.",
            "if HttpOverWebSocketApp.allowed_paths is set, let it include /api/; else read "
            "the server's log",
        )
        return False
    report.add(
        "request", OK, f"A tunnelled GET /api/status answered 200 ({tunnel.framing} frames)."
    )
    return True


def _kernel_message(session: str, protocol: str | None) -> tuple[str, str | bytes]:
    from jupyter_server.services.kernels.connection.base import serialize_msg_to_ws_v1

    msg_id = uuid.uuid4().hex
    header = {
        "msg_id": msg_id,
        "msg_type": "kernel_info_request",
        "username": "doctor",
        "session": session,
        "date": datetime.now(timezone.utc).isoformat(),
        "version": "5.3",
    }
    if protocol == KERNEL_V1:
        parts = [json.dumps(p).encode("utf-8") for p in (header, {}, {}, {})]
        return msg_id, bytes(serialize_msg_to_ws_v1(parts, "shell"))  # type: ignore[no-untyped-call]
    msg = {"header": header, "parent_header": {}, "metadata": {}, "content": {}}
    return msg_id, json.dumps({**msg, "channel": "shell"})


def _kernel_reply(frame: str | bytes, protocol: str | None) -> tuple[str, dict[str, Any]]:
    """The channel and the message (``header``, ``parent_header``, ``content``) of a frame."""
    from jupyter_server.services.kernels.connection.base import (
        deserialize_binary_message,
        deserialize_msg_from_ws_v1,
    )

    if protocol == KERNEL_V1 and isinstance(frame, bytes):
        channel, parts = deserialize_msg_from_ws_v1(frame)  # type: ignore[no-untyped-call]
        header, parent, _metadata, content = (json.loads(p) for p in parts[:4])
        return str(channel), {"header": header, "parent_header": parent, "content": content}
    if isinstance(frame, bytes):  # a legacy message with buffers
        binary: dict[str, Any] = deserialize_binary_message(frame)  # type: ignore[no-untyped-call]
        return str(binary.get("channel")), binary
    text: dict[str, Any] = json.loads(frame)
    return str(text.get("channel")), text


async def _kernel_info(socket_: Any, session: str, timeout: float) -> dict[str, Any]:
    """Ask for ``kernel_info`` until the shell reply comes (a fresh kernel may miss one)."""
    protocol = socket_.selected_subprotocol
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        msg_id, frame = _kernel_message(session, protocol)
        await socket_.write_message(frame, binary=isinstance(frame, bytes))
        resend = min(loop.time() + 5.0, deadline)
        while loop.time() < resend:
            try:
                received = await asyncio.wait_for(socket_.read_message(), resend - loop.time())
            except asyncio.TimeoutError:
                break
            if received is None:
                raise ConnectionError(
                    f"the kernel socket closed (code {socket_.close_code}, "
                    f"reason {socket_.close_reason!r})"
                )
            channel, msg = _kernel_reply(received, protocol)
            if (
                channel == "shell"
                and msg["header"].get("msg_type") == "kernel_info_reply"
                and msg["parent_header"].get("msg_id") == msg_id
            ):
                return dict(msg["content"])
    raise asyncio.TimeoutError(f"no kernel_info_reply in {timeout:g} s")


async def check_kernel(report: Report, target: Target, tunnel: Any) -> bool:
    """Check 5b: start a kernel, talk to it through ``proxied_ws``, shut it down."""
    if not target.kernel:
        report.add("kernel", SKIPPED, "The kernel check was skipped (--no-kernel).")
        return True
    body = json.dumps({})
    try:
        started = await _bounded(
            tunnel.request(
                "POST", "/api/kernels", body=body, headers={"Content-Type": "application/json"}
            ),
            target.kernel_timeout,
        )
    except Exception as error:
        report.add(
            "kernel",
            PROBLEM,
            f"Starting a kernel through the tunnel failed: {error!r}.",
            "read the server's log for the reason",
        )
        return False
    if started.status != 201:
        report.add(
            "kernel",
            PROBLEM,
            f"Starting a kernel through the tunnel answered {started.status} {started.reason}.",
            "install a kernel in the server's environment (`pip install ipykernel`; "
            "`jupyter kernelspec list` shows them) and read the server's log",
        )
        return False
    kernel_id = started.json()["id"]
    session = uuid.uuid4().hex
    path = f"/api/kernels/{quote(kernel_id)}/channels?session_id={session}"
    try:
        socket_ = await _bounded(
            tunnel.websocket(path, subprotocols=[KERNEL_V1]), target.kernel_timeout
        )
        protocol = socket_.selected_subprotocol or "the legacy protocol"
        try:
            info = await _kernel_info(socket_, session, target.kernel_timeout)
        finally:
            socket_.close()
    except Exception as error:
        code = getattr(error, "code", None)
        report.add(
            "kernel",
            PROBLEM,
            "The kernel started, but its socket through proxied_ws failed "
            f"({f'HTTP {code}' if code else repr(error)}).",
            "if HttpOverWebSocketApp.allowed_paths is set, let it include /api/kernels; else "
            "read the server's log",
        )
        return False
    finally:
        await _shutdown_kernel(tunnel, kernel_id, target.timeout)
    language = info.get("language_info", {}).get("name", "?")
    report.add(
        "kernel",
        OK,
        f"A {language} kernel answered kernel_info through a proxied socket ({protocol}) and "
        "was shut down.",
    )
    return True


async def _shutdown_kernel(tunnel: Any, kernel_id: str, timeout: float) -> None:
    # Best effort: the finding already says what failed, and a kernel left behind is
    # culled by the server like any idle kernel.
    with contextlib.suppress(Exception):
        await _bounded(tunnel.request("DELETE", f"/api/kernels/{quote(kernel_id)}"), timeout)


async def examine(target: Target) -> Report:
    """Run the checks in order and return every finding."""
    url, url_token = normalize_url(target.url)
    token = target.token or url_token
    report = Report(url)
    found = await check_reachable(report, target, url)
    if found is None:
        return report
    url = report.url = found
    if not await check_extension(report, target, url):
        return report
    origin_ok = await check_origin(report, target, url, token)
    tunnel = await check_credentials(report, target, url, token, origin_ok)
    if tunnel is None:
        return report
    try:
        if await check_request(report, target, tunnel):
            await check_kernel(report, target, tunnel)
    finally:
        await tunnel.close()
    return report


# ------------------------------------------------------------------ printing

LABELS = {OK: "ok", PROBLEM: "PROBLEM", NOTE: "note", SKIPPED: "skipped"}


def render_text(report: Report) -> str:
    """One line per finding, its fix on the next, and a verdict."""
    lines = [f"Checking {report.url}"]
    for finding in report.findings:
        lines.append(f"{LABELS[finding.status]:<8} {finding.message}")
        if finding.fix and finding.status != OK:
            lines.append(f"{'':<8}   fix: {finding.fix}")
    problems = sum(f.status == PROBLEM for f in report.findings)
    if report.ok:
        lines.append("Everything works.")
    else:
        lines.append(f"{problems} problem{'s' if problems != 1 else ''} found.")
    return "\n".join(lines)


def render_json(report: Report) -> str:
    """The findings as JSON: ``{"url", "ok", "findings": [{check, status, message, fix}]}``."""
    data = {"url": report.url, "ok": report.ok, "findings": [asdict(f) for f in report.findings]}
    return json.dumps(data, indent=2)


# ------------------------------------------------------------------ command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``doctor`` subcommand's arguments."""
    parser.add_argument("url", help="the Jupyter server URL as it printed it (token optional)")
    parser.add_argument("--origin", help="the origin of the page that connects")
    parser.add_argument("--token", help="the server's token (default: ?token= of the URL)")
    parser.add_argument("--min-version", help="the min_version the frontend asks for")
    parser.add_argument(
        "--no-kernel", dest="kernel", action="store_false", help="do not start a kernel"
    )
    parser.add_argument(
        "--timeout", type=float, default=20.0, help="seconds per network step (default 20)"
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
    )
    report = asyncio.run(examine(target))
    out(render_json(report) if args.json else render_text(report))
    return 0 if report.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``doctor`` alone (``python -m jupyter_http_over_ws.doctor URL ...``)."""
    parser = argparse.ArgumentParser(prog="jupyter http-over-ws doctor")
    add_arguments(parser)
    return run(parser.parse_args(argv))
