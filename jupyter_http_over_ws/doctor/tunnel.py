"""Check 5: a tunnelled request and a proxied kernel socket work (5b, polling: polling.py).

Both go through the tunnel the credentials check opened: ``GET /api/status``, then a
kernel started with ``POST /api/kernels``, asked for ``kernel_info`` over a socket
proxied through ``proxied_ws``, and shut down again.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from typing import Any
from urllib.parse import quote

from ..wire.names import CloseCode
from .findings import INSTALL, OK, PROBLEM, READ_LOG, SKIPPED, Report
from .kernel_messages import KERNEL_V1, kernel_info
from .target import Target, bounded


def _closed_reason(tunnel: Any) -> tuple[str, str | None]:
    code, reason = tunnel.close_code, tunnel.close_reason
    # The close codes the tunnel uses when it opens and closes at once.
    if code == CloseCode.BAD_REQUEST:
        return (
            f"The server closed the tunnel at once: {reason}",
            f"{INSTALL} and restart the server",
        )
    if code == CloseCode.TOO_MANY_SOCKETS:
        return (
            f"The server closed the tunnel at once: {reason}.",
            "close other tabs or clients, or raise --HttpOverWebSocketApp.max_sockets_per_user",
        )
    return (f"The tunnel closed (code {code}, reason {reason!r}).", None)


async def request_status(
    report: Report, target: Target, tunnel: Any, check: str, through: str
) -> bool:
    """``GET /api/status`` through ``tunnel`` answers 200; if not, a problem of ``check``.

    ``through`` names the tunnel in the finding ("the tunnel", "a polling-only tunnel").
    """
    from ..client import TunnelClosedError

    try:
        reply = await bounded(tunnel.request("GET", "/api/status"), target.timeout)
    except TunnelClosedError:
        report.add(check, PROBLEM, *_closed_reason(tunnel))
        return False
    except Exception as error:
        report.add(
            check, PROBLEM, f"GET /api/status through {through} failed: {error!r}.", READ_LOG
        )
        return False
    if reply.status != 200:
        report.add(
            check,
            PROBLEM,
            f"GET /api/status through {through} answered {reply.status} {reply.reason}.",
            "if HttpOverWebSocketApp.allowed_paths is set, let it include /api/; else read "
            "the server's log",
        )
        return False
    return True


async def check_request(report: Report, target: Target, tunnel: Any) -> bool:
    """Check 5a: ``GET /api/status`` through the tunnel answers 200."""
    if not await request_status(report, target, tunnel, "request", "the tunnel"):
        return False
    report.add(
        "request", OK, f"A tunnelled GET /api/status answered 200 ({tunnel.framing} frames)."
    )
    return True


async def check_kernel(report: Report, target: Target, tunnel: Any) -> bool:
    """Check 5c: start a kernel, talk to it through ``proxied_ws``, shut it down."""
    if not target.kernel:
        report.add("kernel", SKIPPED, "The kernel check was skipped (--no-kernel).")
        return True
    body = json.dumps({})
    try:
        started = await bounded(
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
            READ_LOG,
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
        socket_ = await bounded(
            tunnel.websocket(path, subprotocols=[KERNEL_V1]), target.kernel_timeout
        )
        protocol = socket_.selected_subprotocol or "the legacy protocol"
        try:
            info = await kernel_info(socket_, session, target.kernel_timeout)
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
    polling = " over the polling transport" if tunnel.transport == "polling" else ""
    report.add(
        "kernel",
        OK,
        f"A {language} kernel answered kernel_info through a proxied socket ({protocol})"
        f"{polling} and was shut down.",
    )
    return True


async def _shutdown_kernel(tunnel: Any, kernel_id: str, timeout: float) -> None:
    # Best effort: the finding already says what failed, and a kernel left behind is
    # culled by the server like any idle kernel.
    with contextlib.suppress(Exception):
        await bounded(tunnel.request("DELETE", f"/api/kernels/{quote(kernel_id)}"), timeout)
