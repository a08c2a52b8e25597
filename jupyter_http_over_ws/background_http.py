"""A standard-library HTTP server running in a background thread (``with`` stops it).

The static page servers of ``demo`` and ``lab`` are this, each with its own handler.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from typing import Any, TypeVar

__all__ = ["BackgroundHTTPServer"]

_S = TypeVar("_S", bound="BackgroundHTTPServer")


class BackgroundHTTPServer:
    """``ThreadingHTTPServer`` on ``host:port`` (0: a free port), served by a daemon thread."""

    def __init__(self, host: str, port: int, handler: Callable[..., Any], name: str) -> None:
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        #: The port it listens on (the one chosen when ``port`` was 0).
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(target=self.httpd.serve_forever, name=name, daemon=True)

    def start(self: _S) -> _S:
        """Serve in the background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        if self._thread.is_alive():
            self.httpd.shutdown()
            self._thread.join(5)
        self.httpd.server_close()

    def __enter__(self: _S) -> _S:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
