"""Starting the servers under test on loopback, and reading their memory.

* ``ours``: ``jupyter server`` from the environment running the benchmark, with this
  package (so the tunnel is served by the same jupyter_server as the direct requests).
* ``original``: ``jupyter notebook`` (notebook 6.5) from ``.work/original-venv``, with
  ``jupyter_http_over_ws`` 0.0.8 enabled as a server extension.
* ``ceiling``: ``ceiling_server.py``, a bare Tornado WebSocket server (no Jupyter, no
  tunnel) that only streams bytes: what a WebSocket can carry here at all.

Both listen on 127.0.0.1 only, get a random token, share one kernelspec (the
benchmarking interpreter's ipykernel, so kernel figures compare relays, not kernels)
and run with a private ``JUPYTER_CONFIG_DIR`` and runtime directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bench_env import WORK_DIR, original_python

#: The kernelspec both servers start kernels from.
KERNEL_NAME = "bench-python"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_kernelspec(jupyter_path: Path) -> None:
    """A kernelspec running ipykernel in the benchmarking interpreter, for both servers."""
    spec_dir = jupyter_path / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "benchmark python",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))


@dataclass
class Memory:
    """Resident set size of a process, in bytes (``VmRSS``, and the peak ``VmHWM``)."""

    rss: int
    hwm: int


@dataclass
class Server:
    """One server process under test."""

    name: str
    root_dir: Path
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    extra_args: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def _argv(self) -> list[str]:
        raise NotImplementedError

    def _env(self) -> dict[str, str]:
        work = WORK_DIR / "servers" / f"{self.name}-{self.port}"
        (work / "config").mkdir(parents=True, exist_ok=True)
        (work / "runtime").mkdir(parents=True, exist_ok=True)
        jupyter_path = WORK_DIR / "jupyter-path"
        write_kernelspec(jupyter_path)
        env = dict(os.environ)
        env.update(
            JUPYTER_CONFIG_DIR=str(work / "config"),
            JUPYTER_RUNTIME_DIR=str(work / "runtime"),
            JUPYTER_PATH=str(jupyter_path),
            JUPYTER_PLATFORM_DIRS="1",
            PYTHONUNBUFFERED="1",
        )
        self.log_path = work / "server.log"
        return env

    def spawn(self) -> None:
        """Start the process on a free port (its own session, so its kernels can be ended)."""
        self.port = free_port()
        env = self._env()
        assert self.log_path is not None
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                self._argv(),
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root_dir,
                start_new_session=True,
            )

    async def start(self, timeout: float = 90.0) -> None:
        """Start the process and wait until ``/api/status`` answers."""
        self.spawn()
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} server exited; see {self.log_path}")
            if await asyncio.to_thread(self._ready):
                return
            await asyncio.sleep(0.2)
        self.stop()
        raise TimeoutError(f"{self.name} server did not start in {timeout}s; see {self.log_path}")

    def _ready(self) -> bool:
        request = urllib.request.Request(self.url + "/api/status", headers=self.auth_headers)
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def stop(self) -> None:
        """Stop the server (SIGTERM, which shuts its kernels down), then its process group."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        # Kernels run in the server's session: end any the server left behind.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def memory(self) -> Memory:
        """``VmRSS`` and ``VmHWM`` of the server process (not its kernels)."""
        values = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value, _unit = line.split()
                values[key[:-1]] = int(value) * 1024
        return Memory(rss=values["VmRSS"], hwm=values["VmHWM"])

    def cpu_times(self) -> tuple[dict[int, int], float]:
        """CPU time of the server process: per live thread in ns, and in total in seconds.

        Per-thread times come from ``/proc/<pid>/task/*/schedstat`` (nanoseconds); the
        total from ``/proc/<pid>/stat`` (10 ms ticks, but it keeps the time of threads
        that have ended). See :class:`harness.CpuWatch`.
        """
        threads = {}
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            try:
                threads[int(task.name)] = int((task / "schedstat").read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue  # a thread that just ended
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        # After the command name: state is field 3, utime 14 and stime 15 (1-based).
        ticks = int(fields[11]) + int(fields[12])
        return threads, ticks / os.sysconf("SC_CLK_TCK")

    def reset_peak(self) -> bool:
        """Reset ``VmHWM`` to the current RSS (Linux ``clear_refs`` value 5)."""
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        except OSError:
            return False
        return True


@dataclass
class OurServer(Server):
    """jupyter_server 2 with this package, from the benchmarking environment."""

    #: A folder holding another ``jupyter_http_over_ws`` (e.g. a patched checkout) to put
    #: first on the server's ``PYTHONPATH`` (``run.py --ours-source``).
    source: str | None = None
    #: Extra environment variables for our server only (``run.py --ours-env``).
    extra_env: tuple[tuple[str, str], ...] = ()

    def _env(self) -> dict[str, str]:
        env = super()._env()
        env.update(self.extra_env)
        if self.source:
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (self.source, env.get("PYTHONPATH")) if p
            )
        return env

    def _argv(self) -> list[str]:
        jupyter = Path(sys.executable).parent / "jupyter"
        launcher = (
            [str(jupyter), "server"]
            if jupyter.exists()
            else [sys.executable, "-m", "jupyter_server"]
        )
        return [
            *launcher,
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root_dir}",
            "--ServerApp.jpserver_extensions=jupyter_http_over_ws=True",
            "--ServerApp.log_level=WARN",
            *(["--allow-root"] if os.geteuid() == 0 else []),
            *self.extra_args,
        ]


@dataclass
class OriginalServer(Server):
    """notebook 6.5 with ``jupyter_http_over_ws`` 0.0.8, from ``.work/original-venv``."""

    def _argv(self) -> list[str]:
        jupyter = original_python().parent / "jupyter"
        return [
            str(jupyter),
            "notebook",
            "--no-browser",
            "--NotebookApp.ip=127.0.0.1",
            f"--NotebookApp.port={self.port}",
            "--NotebookApp.port_retries=0",
            f"--NotebookApp.token={self.token}",
            f"--NotebookApp.notebook_dir={self.root_dir}",
            "--NotebookApp.allow_origin=http://127.0.0.1",
            "--NotebookApp.log_level=WARN",
            *(["--allow-root"] if os.geteuid() == 0 else []),
            *self.extra_args,
        ]


@dataclass
class CeilingServer(Server):
    """``ceiling_server.py``: a bare Tornado WebSocket server, the physical ceiling.

    Run with the benchmark's interpreter, i.e. the Python and Tornado of our server.
    """

    def _argv(self) -> list[str]:
        return [sys.executable, str(Path(__file__).with_name("ceiling_server.py")), str(self.port)]
