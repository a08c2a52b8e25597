"""The one way tests pick a port: :func:`free_port`, a TCP port free on loopback right now.

It is the demo's own helper (``jupyter_http_over_ws.demo.free_port``), which binds port 0
on the host and reads back the port the kernel chose; the tests use it as the demo does.
"""

from __future__ import annotations

from jupyter_http_over_ws.demo import free_port

__all__ = ["free_port"]
