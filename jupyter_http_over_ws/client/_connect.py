"""Opening the client's WebSockets: URLs, credentials and TLS trust for each endpoint."""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit, urlunsplit

from tornado import httpclient
from tornado.websocket import WebSocketClientConnection, websocket_connect

#: Tornado's client default (10 MiB) is too small for large tunnelled bodies.
DEFAULT_MAX_MESSAGE_SIZE = 1024 * 1024 * 1024


@dataclass(frozen=True)
class Endpoint:
    """Where a tunnel server is and how to present ourselves to it.

    ``url`` is the Jupyter server's URL including its ``base_url``
    (``http://localhost:8888/`` or ``https://hub.example/user/alice/``).
    """

    url: str
    token: str | None = None
    cookies: Mapping[str, str] = field(default_factory=dict)
    origin: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    connect_timeout: float = 20.0
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    #: How ``https://``/``wss://`` servers are verified; ``None``: the system's CAs.
    ssl_context: ssl.SSLContext | None = None

    def ws_url(self, path: str, query: Mapping[str, str] | None = None) -> str:
        """The ``ws(s)://`` URL of ``path`` under the server's ``base_url``."""
        parts = urlsplit(self.url)
        scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
        base = parts.path if parts.path.endswith("/") else parts.path + "/"
        path_part, _, own_query = path.lstrip("/").partition("?")
        queries = [q for q in (own_query, urlencode(query or {})) if q]
        return urlunsplit((scheme, parts.netloc, base + path_part, "&".join(queries), ""))

    def http_url(self, path: str, query: Mapping[str, str] | None = None) -> str:
        """The ``http(s)://`` URL of ``path`` under the server's ``base_url``."""
        parts = urlsplit(self.ws_url(path, query))
        scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
        return urlunsplit((scheme, *parts[1:]))

    def request_headers(self, *, json_body: bool = False) -> dict[str, str]:
        """The credentials and identity headers every upgrade (or polling request) carries."""
        headers = dict(self.headers)
        if json_body:
            headers["Content-Type"] = "application/json"
        if "_xsrf" in self.cookies:
            # Cookie-authenticated writes (the polling transport's POSTs) need the token.
            headers["X-XSRFToken"] = self.cookies["_xsrf"]
        if self.token:
            headers["Authorization"] = f"token {self.token}"
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if self.origin:
            headers["Origin"] = self.origin
        return headers

    async def open(
        self,
        path: str,
        query: Mapping[str, str] | None = None,
        subprotocols: list[str] | None = None,
    ) -> WebSocketClientConnection:
        """Open a WebSocket to ``path``; raises ``HTTPClientError`` if the upgrade is refused."""
        request = httpclient.HTTPRequest(
            self.ws_url(path, query),
            headers=self.request_headers(),
            connect_timeout=self.connect_timeout,
            request_timeout=self.connect_timeout,
            ssl_options=self.ssl_context,
        )
        try:
            connection = await websocket_connect(
                request, subprotocols=subprotocols, max_message_size=self.max_message_size
            )
        except ssl.SSLCertVerificationError as error:
            raise certificate_error(self.url, error) from error
        if connection.protocol is not None:
            connection.protocol.set_nodelay(True)
        return connection


def client_ssl_context(
    context: ssl.SSLContext | None = None, ca_file: str | os.PathLike[str] | None = None
) -> ssl.SSLContext | None:
    """The TLS context a client uses: ``context`` as given, or one trusting ``ca_file``.

    ``ca_file`` is a PEM bundle of the CAs to trust (the system's are not added, as
    with ``ssl.create_default_context(cafile=...)``); host names are checked. Neither
    given: ``None``, meaning the system's CAs (which honour ``SSL_CERT_FILE``).
    """
    if context is not None and ca_file is not None:
        raise ValueError("give ssl= or ca_file=, not both")
    if ca_file is not None:
        return ssl.create_default_context(cafile=os.fspath(ca_file))
    return context


#: ``verify_code`` values of a name that is not in the certificate (OpenSSL's
#: X509_V_ERR_HOSTNAME_MISMATCH and X509_V_ERR_IP_ADDRESS_MISMATCH).
NAME_MISMATCH_CODES = frozenset({62, 64})


def certificate_error(
    url: str, error: ssl.SSLCertVerificationError
) -> ssl.SSLCertVerificationError:
    """``error`` again, its message naming the server, the certificate problem and the fix."""
    problem = error.verify_message or str(error)
    if error.verify_code in NAME_MISMATCH_CODES:
        fix = "connect with a name the certificate lists, or give the server a certificate for it"
    else:
        fix = (
            "pass the CA that signed it (ca_file='ca.pem' or ssl=an ssl.SSLContext), "
            "or point SSL_CERT_FILE at it"
        )
    wrapped = ssl.SSLCertVerificationError(
        error.errno, f"the TLS certificate of {url} is not accepted: {problem}; {fix}"
    )
    wrapped.verify_code = error.verify_code
    wrapped.verify_message = error.verify_message
    wrapped.reason = error.reason
    wrapped.library = error.library
    return wrapped
