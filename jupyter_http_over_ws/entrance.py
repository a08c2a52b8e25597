"""A private entrance to this server's own application, for the upstream half of relays.

A proxied WebSocket (``proxied_ws``) is relayed to the server's own handler, for
example the kernel channels. Rather than dialling the server's public TCP port,
the relay connects to a Unix socket in a directory only this user can enter,
served by the same Tornado application. That gives three things:

- **Speed**: no Nagle's algorithm on the inner hop. Over loopback TCP the kernel
  handler's small writes wait for delayed ACKs (about 40 ms per kernel round trip).
- **Fidelity**: the entrance trusts ``X-Real-Ip`` and ``X-Scheme`` (only this
  process writes to it), so the upstream handler sees the client's real address and
  scheme, as on a direct connection.
- **Reach**: it works whatever the server listens on (TCP, a Unix socket, behind a
  proxy), and cannot be pointed anywhere else.

Where Unix sockets do not exist, :func:`relay_target` falls back to the local
address of the client's own connection.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.iostream import IOStream, SSLIOStream
from tornado.netutil import Resolver, bind_unix_socket
from tornado.web import Application


class _EntranceResolver(Resolver):
    """Resolves every host name to the entrance's Unix socket."""

    def initialize(self, path: str) -> None:
        self._path = path

    async def resolve(
        self, host: str, port: int, family: socket.AddressFamily = socket.AF_UNSPEC
    ) -> list[tuple[int, Any]]:
        return [(socket.AF_UNIX, self._path)]


#: The largest request head the entrance reads. A relayed upgrade carries the client's
#: identity headers plus the relay's own (``X-Real-Ip``, ``X-Scheme``, a fresh
#: ``Sec-WebSocket-Key``), so at Tornado's default (64 KiB) a client upgrade just under
#: the public limit could be refused on the inner hop (a 502). Only this process
#: writes to the entrance, so a larger allowance costs nothing.
ENTRANCE_MAX_HEADER_SIZE = 256 * 1024


class PrivateEntrance:
    """A Unix socket, in a directory private to this user, serving ``application``."""

    def __init__(self, application: Application, **server_options: Any) -> None:
        self._application = application
        server_options.setdefault("max_header_size", ENTRANCE_MAX_HEADER_SIZE)
        self._server_options = server_options
        self._directory: str | None = None
        self._server: HTTPServer | None = None
        self.resolver: Resolver | None = None

    @staticmethod
    def available() -> bool:
        """Whether this platform has Unix sockets."""
        return hasattr(socket, "AF_UNIX")

    def start(self) -> None:
        """Bind the socket (once)."""
        if self._server is not None:
            return
        directory = tempfile.mkdtemp(prefix="jupyter-http-over-ws-")
        os.chmod(directory, 0o700)  # mkdtemp does this already; say it where it matters
        path = os.path.join(directory, "relay.sock")
        listener = bind_unix_socket(path, mode=0o600)
        server = HTTPServer(self._application, xheaders=True, **self._server_options)
        server.add_socket(listener)
        self._directory, self._server = directory, server
        self.resolver = _EntranceResolver(path=path)

    async def stop(self) -> None:
        """Close the socket and every connection through it, and remove the directory."""
        server, self._server = self._server, None
        if server is not None:
            server.stop()
            with contextlib.suppress(Exception):
                await server.close_all_connections()
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None
        self.resolver = None


def relay_target(entrance: PrivateEntrance | None, stream: IOStream) -> tuple[str, Resolver | None]:
    """The ``ws://host:port`` to dial for a relay, and the resolver that gets it there.

    With the private entrance, the host is a placeholder (the resolver ignores it);
    without one, it is the local address of the client's own connection.
    """
    if entrance is not None and entrance.resolver is not None:
        return "ws://relay.invalid", entrance.resolver
    scheme = "wss" if isinstance(stream, SSLIOStream) else "ws"
    address = stream.socket.getsockname() if stream.socket is not None else None
    if not isinstance(address, tuple):
        raise OSError("the server is not listening on a TCP socket; cannot relay WebSockets")
    host, port = address[0], address[1]
    if stream.socket is not None and stream.socket.family == socket.AF_INET6:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}", None
