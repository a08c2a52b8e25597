"""What the attack tests share: raw requests, a request mirror, cookies, a DEBUG log capture.

The attack tests (``tests/test_attack_*.py``) compare each tunnelled outcome with the
same request made directly; a difference in either direction is a finding. A direct
request goes out through a raw socket (:func:`raw_request`), so it carries exactly the
bytes the test wrote (duplicate headers, odd ``Host`` values, a NUL in the target).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from dataclasses import dataclass
from typing import Any

from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.httputil import HTTPHeaders
from tornado.routing import URLSpec

from .logs import debug_logs

__all__ = [
    "MIRROR_PATH",
    "OUTSIDE_PATH",
    "RawResponse",
    "debug_logs",
    "login_cookies",
    "raw_request",
    "register_mirror",
]

#: Where :class:`RequestMirror` answers, relative to ``base_url``.
MIRROR_PATH = "hows-attack-mirror"
#: A handler outside ``base_url`` (at the server's root): nothing may reach it from inside.
OUTSIDE_PATH = "/hows-attack-outside"


@dataclass
class RawResponse:
    """A response read from a raw socket: ``status`` ``None`` when there was none."""

    status: int | None
    headers: HTTPHeaders
    body: bytes


async def raw_request(
    port: int,
    method: str,
    target: bytes,
    headers: list[tuple[str, str]] | list[tuple[bytes, bytes]],
    body: bytes = b"",
    *,
    upgrade: bool = False,
    timeout: float = 10.0,
) -> RawResponse:
    """Send one request exactly as given (no header added but framing) and read the answer.

    No ``Host`` is added: pass it in ``headers``. ``upgrade`` adds a WebSocket handshake
    and reads only the response head (a 101 is closed at once).
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    lines = [method.encode() + b" " + target + b" HTTP/1.1"]
    for name, value in headers:
        lines.append(_bytes(name) + b": " + _bytes(value))
    if upgrade:
        key = base64.b64encode(os.urandom(16))
        lines += [
            b"Upgrade: websocket",
            b"Connection: Upgrade",
            b"Sec-WebSocket-Key: " + key,
            b"Sec-WebSocket-Version: 13",
        ]
    else:
        lines.append(b"Connection: close")
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(b"Content-Length: " + str(len(body)).encode())
    try:
        writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        await asyncio.wait_for(writer.drain(), timeout)
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        except asyncio.IncompleteReadError as e:
            head = e.partial
        rest = b""
        if not upgrade and head:
            rest = await asyncio.wait_for(reader.read(), timeout)
    except ConnectionError:
        head, rest = b"", b""
    finally:
        writer.close()
    status_line, _, header_text = head.partition(b"\r\n")
    status = int(status_line[9:12]) if status_line.startswith(b"HTTP/1.") else None
    parsed = HTTPHeaders.parse(header_text.decode("latin-1")) if header_text else HTTPHeaders()
    if parsed.get("Transfer-Encoding") == "chunked":
        rest = _unchunk(rest)
    return RawResponse(status, parsed, rest)


def _bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


def _unchunk(data: bytes) -> bytes:
    body = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        body, data = body + data[:size], data[size + 2 :]
    return body


class RequestMirror(JupyterHandler):
    """Answers with what the server saw of the request: headers, address, user, body.

    Authenticated as any jupyter_server page (403 for an API-style refusal is not
    needed: the tests compare statuses, whatever they are).
    """

    def check_xsrf_cookie(self) -> None:
        """Checked as jupyter_server checks any handler's writes."""
        super().check_xsrf_cookie()

    def _mirror(self) -> None:
        user = self.current_user
        self.set_header("Content-Type", "application/json")
        self.finish(
            json.dumps(
                {
                    "method": self.request.method,
                    "uri": self.request.uri,
                    "host": self.request.host,
                    "remote_ip": self.request.remote_ip,
                    "protocol": self.request.protocol,
                    "user": getattr(user, "username", None),
                    "headers": sorted(
                        [name.lower(), value] for name, value in self.request.headers.get_all()
                    ),
                    "body": self.request.body.decode("latin-1"),
                }
            )
        )

    @web.authenticated
    def get(self, *args: Any) -> None:
        """Mirror a read."""
        self._mirror()

    @web.authenticated
    def post(self, *args: Any) -> None:
        """Mirror a write."""
        self._mirror()

    put = post


class Outside(web.RequestHandler):
    """A page outside ``base_url``: the tests check nothing inside the tunnel reaches it."""

    hits: list[str] = []

    def get(self, *args: Any) -> None:
        Outside.hits.append(self.request.uri or "")
        self.finish("outside")


def register_mirror(serverapp: Any, base_url: str) -> None:
    """Register :class:`RequestMirror` under ``base_url`` and :class:`Outside` at the root."""
    Outside.hits = []
    router = serverapp.web_app.wildcard_router
    router.rules.insert(0, URLSpec(url_path_join(base_url, rf"{MIRROR_PATH}(/.*)?"), RequestMirror))
    router.rules.insert(0, URLSpec(rf"{OUTSIDE_PATH}(/.*)?", Outside))


async def login_cookies(port: int, base_url: str, token: str) -> dict[str, str]:
    """A login cookie and an ``_xsrf`` cookie, as a browser gets them (token URL, login page)."""
    host = ("Host", f"localhost:{port}")
    cookies: dict[str, str] = {}
    for target, headers in [
        (f"{base_url}api/status", [host, ("Authorization", f"token {token}")]),
        (f"{base_url}login", [host]),
    ]:
        response = await raw_request(port, "GET", target.encode(), headers)
        for header in response.headers.get_list("Set-Cookie"):
            name, _, rest = header.partition("=")
            cookies[name] = rest.split(";")[0].strip('"')
    assert any(n.startswith("username-") for n in cookies), cookies
    assert "_xsrf" in cookies, cookies
    return cookies


def cookie_header(cookies: dict[str, str]) -> str:
    """``cookies`` as one ``Cookie`` header value."""
    return "; ".join(f"{k}={v}" for k, v in cookies.items())


def secrets_in(lines: list[str], secrets: list[str]) -> list[str]:
    """The log lines that hold any of ``secrets`` (empty secrets ignored)."""
    wanted = [s for s in secrets if s]
    return [line for line in lines if any(s in line for s in wanted)]
