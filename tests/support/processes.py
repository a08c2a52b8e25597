"""Processes a test started, found again by a marker in their environment."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["carrying", "kill_group"]


def carrying(variable: str, value: str) -> list[int]:
    """The pids of live processes whose environment sets ``variable`` to ``value``.

    Children inherit the environment, so a marker set on the first process finds
    everything it started (servers, proxies, kernels) that is still alive.
    """
    found = []
    needle = f"{variable}={value}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def kill_group(proc: subprocess.Popen[Any] | None) -> None:
    """Kill ``proc`` (started with ``start_new_session``) and anything left in its group."""
    if proc is None:
        return
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
