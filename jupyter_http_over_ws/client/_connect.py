"""Opening the client's WebSockets: URLs and credentials for each endpoint."""

from __future__ import annotations

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
        )
        connection = await websocket_connect(
            request, subprotocols=subprotocols, max_message_size=self.max_message_size
        )
        if connection.protocol is not None:
            connection.protocol.set_nodelay(True)
        return connection
