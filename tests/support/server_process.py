"""A real jupyter_server with the extension, in its own process, for load and fault tests.

In its own process, its memory (RSS) is its own, its log is a file the test reads
whole, and it can be stopped by a real signal.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from support.ports import free_port
from support.processes import kill_group

TRIM_ON_SIGUSR2 = """
import ctypes, ctypes.util, gc, signal

def _trim(signum, frame):
    gc.collect()
    libc = ctypes.util.find_library("c")
    if libc:
        ctypes.CDLL(libc).malloc_trim(0)

signal.signal(signal.SIGUSR2, _trim)

def _dump(signum, frame):  # what a server that does not stop is waiting for
    import asyncio, faulthandler, sys
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    loop = asyncio._get_running_loop()
    if loop is not None:
        for task in asyncio.all_tasks(loop):
            task.print_stack(file=sys.stderr)

signal.signal(signal.SIGTTIN, _dump)
"""

# Upstream behaviour, not the tunnel's (reproduced with a plain jupyter_server and plain
# HTTP PUTs, no extension): on SIGTERM, ServerApp stops its loop without waiting for the
# handlers still running, e.g. a file save awaiting anyio.to_thread.run_sync. anyio's
# worker threads are not daemons and are stopped only when the task that started them
# ends (agronholm/anyio#321, jupyterlab/jupyterlab#10442); that task never ends once the
# loop has stopped, so the interpreter waits for them forever at exit. At interpreter
# exit, before it joins its threads (where concurrent.futures stops its own workers),
# this queues anyio's stop command behind any job a worker is still running: a save in
# progress completes, then the worker ends and the server exits.
STOP_ANYIO_WORKERS_AT_EXIT = """
import sys, threading

def _stop_anyio_workers():
    backend = sys.modules.get("anyio._backends._asyncio")
    if backend is None:
        return
    for thread in threading.enumerate():
        if isinstance(thread, backend.WorkerThread):
            thread.queue.put(None)  # what WorkerThread.stop queues

threading._register_atexit(_stop_anyio_workers)
"""


class ServerProcess:
    """``python -m jupyter_server`` on a free loopback port, with a private config."""

    def __init__(
        self,
        work: Path,
        options: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        config: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        """``options`` configure the extension; ``config`` adds other sections (by class)."""
        self.work = work
        self.root_dir = work / "root"
        self.root_dir.mkdir(parents=True, exist_ok=True)
        self.token = secrets.token_hex(16)
        self.port = free_port()
        self.log_path = work / "server.log"
        self.options = options or {}
        self.env = env or {}
        self.config = config or {}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The server's URL (``base_url`` is ``/``)."""
        return f"http://127.0.0.1:{self.port}/"

    def start(self, timeout: float = 60.0) -> None:
        """Start the server and wait until ``/api/status`` answers."""
        config_dir = self.work / "config"
        config_dir.mkdir(exist_ok=True)
        config = {
            "ServerApp": {
                "jpserver_extensions": {"jupyter_http_over_ws": True},
                "port": self.port,
                "port_retries": 0,
                "ip": "127.0.0.1",
                "open_browser": False,
                "allow_root": True,
                "root_dir": str(self.root_dir),
            },
            "IdentityProvider": {"token": self.token},
            "HttpOverWebSocketApp": self.options,
        }
        for section, values in self.config.items():
            config.setdefault(section, {}).update(values)
        (config_dir / "jupyter_server_config.json").write_text(json.dumps(config))
        # Config files run inside the server: SIGUSR2 makes it collect garbage and hand
        # freed heap pages back to the system, so RSS shows what it still holds.
        (config_dir / "jupyter_server_config.py").write_text(
            TRIM_ON_SIGUSR2 + STOP_ANYIO_WORKERS_AT_EXIT
        )
        env = dict(
            os.environ,
            JUPYTER_CONFIG_DIR=str(config_dir),
            JUPYTER_RUNTIME_DIR=str(self.work / "runtime"),
            JUPYTER_PLATFORM_DIRS="1",
            PYTHONUNBUFFERED="1",
        )
        env.update(self.env)
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "jupyter_server"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root_dir,
                start_new_session=True,  # its kernels share its process group
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log()}")
            if self._ready():
                return
            time.sleep(0.2)
        self.kill()
        raise TimeoutError(f"server did not start:\n{self.log()}")

    def _ready(self) -> bool:
        request = urllib.request.Request(
            self.url + "api/status", headers={"Authorization": f"token {self.token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def log(self) -> str:
        """Everything the server has logged so far."""
        return self.log_path.read_text(errors="replace")

    def error_lines(self) -> list[str]:
        """Log lines at ERROR or CRITICAL level, and tracebacks."""
        return [
            line
            for line in self.log().splitlines()
            if line.startswith(("[E ", "[C ")) or "Traceback" in line
        ]

    def rss(self) -> int:
        """The server process's resident memory, in bytes (its kernels not included)."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    async def held_memory(self) -> int:
        """RSS after the server collected garbage and trimmed its heap (SIGUSR2)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGUSR2)
        await asyncio.sleep(1.0)
        return self.rss()

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal the server and wait for it to exit; returns its exit code."""
        assert self.proc is not None
        self.proc.send_signal(sig)
        return await self.wait_exit(timeout)

    async def wait_exit(self, timeout: float = 30.0) -> int:
        """Wait for a server already told to stop to exit; returns its exit code.

        Signal a stopping server only once: jupyter_server's SIGTERM handler runs only
        while the interpreter still runs Python handlers. Late in its exit the default
        action is back, and a second SIGTERM kills it (exit code -15).
        """
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTTIN)  # the config above: dump asyncio tasks
            await asyncio.sleep(1.0)
            self.kill()
            raise TimeoutError(f"server did not stop:\n{self.log()[-20000:]}")
        return int(self.proc.returncode)

    def kill(self) -> None:
        """End the server and anything left in its process group."""
        kill_group(self.proc)
