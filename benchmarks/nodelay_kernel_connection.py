"""What an operator can do today about jupyter_server's kernel socket and Nagle's algorithm.

jupyter_server's ``KernelWebsocketHandler`` never calls ``set_nodelay(True)``, so a kernel
reply written right after another small frame waits in the kernel's TCP stack for the
client's delayed ACK (up to 40 ms on Linux). This connection class turns Nagle's algorithm
off on the kernel socket as it opens, and is otherwise jupyter_server's own::

    c.ServerApp.kernel_websocket_connection_class = (
        "nodelay_kernel_connection.NoDelayKernelConnection"
    )

with this file importable by the server (on its ``PYTHONPATH``). The benchmark measures
it with ``run.py --only kernel_rtt --ours-env PYTHONPATH=benchmarks --ours-arg=...``
(see ``docs/developers/performance.md``, "Nagle's algorithm and delayed ACKs").
"""

from __future__ import annotations

from typing import Any

from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection


class NoDelayKernelConnection(ZMQChannelsWebsocketConnection):
    """jupyter_server's kernel WebSocket connection, with ``TCP_NODELAY`` on its socket."""

    def connect(self) -> Any:
        """Called from the handler's ``open()``, once the socket is upgraded."""
        # Tornado applies it to TCP sockets only (not to a Unix socket).
        self.websocket_handler.set_nodelay(True)
        return super().connect()
