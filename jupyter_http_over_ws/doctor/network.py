"""Checks 1 and 2: the server answers at the URL, and it loads the extension.

Reaching the server tells the usual mistakes apart (nothing listening, a host name
that does not resolve, the wrong scheme, an untrusted certificate, a URL without the
``base_url``); when one scheme fails, the other is tried so the finding can name the
right URL. The extension is found through its ``diagnose`` socket.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from typing import Literal
from urllib.parse import urlsplit

from ..client._tls_errors import other_scheme, wrong_scheme_words
from .findings import INSTALL, NOTE, OK, PROBLEM, READ_LOG, Report
from .target import Target, base_url_candidates, bounded, get_api

#: What Tornado answers a WebSocket request whose ``Upgrade`` header did not arrive.
UPGRADE_NOT_RECEIVED = 400
#: What :func:`check_extension` found: the extension, a problem, or no WebSocket upgrade
#: getting through (then the extension is known to be there, but not its version).
Extension = Literal["loaded", "problem", "no-websocket"]


#: ``verify_code`` values of a host name or address the certificate does not list
#: (OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH and X509_V_ERR_IP_ADDRESS_MISMATCH).
NAME_MISMATCH_CODES = frozenset({62, 64})
#: ``verify_code`` values of a chain that ends at no trusted CA: self-signed
#: (18, 19: the CA sent along) or its issuer unknown (20, 21).
UNKNOWN_ISSUER_CODES = frozenset({18, 19, 20, 21})


def _untrusted(
    host: str, port: int, error: ssl.SSLCertVerificationError, ca_file: str | None
) -> tuple[str, str]:
    """A certificate that does not verify: the name is not in it, or its CA is unknown."""
    problem = error.verify_message or str(error)
    if error.verify_code in NAME_MISMATCH_CODES:
        return (
            f"The server's TLS certificate is not valid for the name {host!r} ({problem}).",
            "use a URL with a name the certificate lists (`openssl s_client -connect "
            f"{host}:{port} </dev/null | openssl x509 -noout -ext subjectAltName` shows "
            f"them), or give the server a certificate for {host} (--ServerApp.certfile "
            "and --ServerApp.keyfile)",
        )
    if ca_file:
        fix = (
            f"the CAs in --ca-file {ca_file} did not sign it: give the bundle of the CA "
            "that did (or the server's full chain, --ServerApp.certfile with the "
            "intermediate certificates)"
        )
    else:
        fix = (
            "if a private CA signed it, trust that CA: `--ca-file ca.pem` here, "
            "`ca_file=` in the Python client, or SSL_CERT_FILE=ca.pem for both; a browser "
            "needs the CA in its trust store. Else use a certificate this machine trusts"
        )
    message = f"The server's TLS certificate is not trusted ({problem})"
    if error.verify_code in UNKNOWN_ISSUER_CODES:
        message += ": no CA this machine trusts signed it"
    return (message + ".", fix)


def _unreachable(url: str, error: BaseException, ca_file: str | None = None) -> tuple[str, str]:
    """Why ``url`` cannot be reached at all, in one sentence, and the fix."""
    from tornado.simple_httpclient import HTTPStreamClosedError, HTTPTimeoutError

    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    if isinstance(error, ConnectionRefusedError):
        return (
            f"Nothing listens on {host} port {port} (connection refused).",
            f"start the server (`jupyter server --port={port}`) or give the URL it printed "
            "(`jupyter server list` shows it)",
        )
    if isinstance(error, socket.gaierror):
        return (
            f"The host name {host!r} does not resolve ({error.strerror}).",
            "check the host in the URL (for a server on this machine, use localhost)",
        )
    if isinstance(error, ssl.SSLCertVerificationError):
        return _untrusted(host, port, error, ca_file)
    if isinstance(error, ssl.SSLError):
        return (
            f"The TLS handshake with {host}:{port} failed ({error.reason or error}): the "
            "server probably speaks plain HTTP.",
            "use an http:// URL, or start the server with --ServerApp.certfile and "
            "--ServerApp.keyfile",
        )
    if isinstance(error, HTTPStreamClosedError | ConnectionResetError):
        return (
            f"{host}:{port} closed the connection without answering: it probably speaks HTTPS "
            "or is not a web server.",
            "use an https:// URL if the server was started with --ServerApp.certfile",
        )
    if isinstance(error, HTTPTimeoutError | asyncio.TimeoutError | TimeoutError):
        plain = " (an https:// URL to a plain-HTTP server also hangs like this)"
        return (
            f"{host}:{port} did not answer in time"
            + (plain if parts.scheme == "https" else "")
            + ".",
            "check the URL's scheme and port, that the server is running, and that no "
            "firewall drops the connection",
        )
    return (f"{url} cannot be reached: {error}.", "check the URL and that the server is running")


async def check_reachable(report: Report, target: Target, url: str) -> str | None:
    """Check 1: a Jupyter server answers ``GET {base_url}api``; returns its URL."""
    first_status: int | None = None
    for candidate in base_url_candidates(url):
        try:
            response = await get_api(candidate, target.timeout, ssl_context=target.ssl_context)
        except Exception as error:
            other = await other_scheme(candidate, error, target.timeout, target.ssl_context)
            if other is None:
                report.add("reachable", PROBLEM, *_unreachable(candidate, error, target.ca_file))
            else:
                message, fix = wrong_scheme_words(candidate, other)
                page_scheme = "wss" if other.startswith("https:") else "ws"
                fix = f"{fix} (and {page_scheme}:// in the page)"
                report.add("reachable", PROBLEM, message, fix)
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


async def check_extension(report: Report, target: Target, url: str) -> Extension:
    """Check 2: the diagnose endpoint answers, with a version that meets ``--min-version``.

    An upgrade answered with 400, not 404, reached the extension's handler without its
    ``Upgrade`` header: the extension is there, and something in between drops upgrades.
    """
    from tornado.httpclient import HTTPClientError

    from ..client import diagnose

    try:
        answer = await bounded(
            diagnose(
                url,
                min_version=target.min_version,
                connect_timeout=target.timeout,
                ssl=target.ssl_context,
            ),
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
        elif error.code == UPGRADE_NOT_RECEIVED:
            report.add(
                "extension",
                OK,
                "The jupyter_http_over_ws extension is loaded (its diagnose URL answers), but "
                "its version cannot be read without a WebSocket.",
            )
            return "no-websocket"
        else:
            report.add(
                "extension",
                PROBLEM,
                f"The extension's diagnose socket was refused with HTTP {error.code}.",
                READ_LOG,
            )
        return "problem"
    except Exception as error:
        report.add(
            "extension",
            PROBLEM,
            f"The extension's diagnose socket failed: {error!r}.",
            READ_LOG,
        )
        return "problem"
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
        return "problem"
    if _is_original(version):
        report.add(
            "extension",
            PROBLEM,
            f"The server runs the original extension (it reports {version}), which breaks on "
            "current Tornado and jupyter_server.",
            f"{INSTALL} and restart the server",
        )
        return "problem"
    report.add("extension", OK, f"The jupyter_http_over_ws extension {version} is loaded.")
    return "loaded"


def _is_original(version: str) -> bool:
    from packaging.version import InvalidVersion, Version

    try:
        return Version(version) < Version("0.1")
    except InvalidVersion:
        return False
