"""A real nginx (Debian's package) on loopback in front of the test's jupyter server.

Two configurations: an *old* reverse proxy that talks HTTP/1.0 upstream and does not
forward ``Upgrade``/``Connection`` (so WebSocket upgrades fail, as behind many
corporate and legacy proxies), and one that passes upgrades as nginx's documentation
recommends. Each instance has its own prefix, configuration, pid file and logs under
the test's ``tmp_path``, runs in the foreground (``daemon off``) as a child of the
test, and can be switched between the two configurations with a reload (SIGHUP).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

from support import provision
from support.ports import free_port

_UPGRADE_HEADERS = """
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
"""


def nginx_binary() -> str:
    """The nginx binary: ``$NGINX_BIN``, then ``PATH``, then Debian's location."""
    found = provision.locate(provision.NGINX_TOOL)
    if found is None:
        raise RuntimeError(
            "nginx is not installed: `apt-get install nginx-light` (or set NGINX_BIN)"
        )
    return found


def render_config(
    prefix: Path, port: int, upstream_port: int, upgrades: bool, read_timeout: float = 120
) -> str:
    """nginx.conf for one instance."""
    user = "user root;" if os.geteuid() == 0 else ""
    return f"""
{user}
daemon off;
master_process on;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 512; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    client_max_body_size 0;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://127.0.0.1:{upstream_port};
            proxy_set_header Host $http_host;
            proxy_read_timeout {read_timeout:g}s;
            proxy_send_timeout 120s;
{_UPGRADE_HEADERS if upgrades else "            # an old proxy: HTTP/1.0 upstream, Upgrade dropped"}
        }}
    }}
}}
"""


class Nginx:
    """One nginx instance proxying ``127.0.0.1:<port>`` to the jupyter server."""

    def __init__(
        self, prefix: Path, upstream_port: int, *, upgrades: bool, read_timeout: float = 120
    ) -> None:
        self.prefix = prefix
        self.prefix.mkdir(parents=True, exist_ok=True)
        self.upstream_port = upstream_port
        self.port = free_port()
        self.conf = prefix / "nginx.conf"
        self.upgrades = upgrades
        self.read_timeout = read_timeout
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, base_url: str) -> str:
        """The server's URL through this proxy (``base_url`` included)."""
        return f"http://127.0.0.1:{self.port}{base_url}"

    def _write_config(self) -> None:
        self.conf.write_text(
            render_config(
                self.prefix, self.port, self.upstream_port, self.upgrades, self.read_timeout
            )
        )

    def start(self) -> None:
        """Start nginx in the foreground and wait until it accepts connections."""
        self._write_config()
        binary = nginx_binary()
        check = subprocess.run(
            [binary, "-t", "-p", str(self.prefix), "-c", str(self.conf), "-e", "stderr"],
            capture_output=True,
            check=False,
        )
        if check.returncode != 0:
            raise RuntimeError(f"nginx -t failed: {check.stderr.decode(errors='replace')}")
        self.process = subprocess.Popen(
            [
                binary,
                "-p",
                str(self.prefix),
                "-c",
                str(self.conf),
                "-e",
                str(self.prefix / "error.log"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited: {self.error_log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"nginx did not start: {self.error_log()}") from None
                time.sleep(0.05)

    def reconfigure(self, *, upgrades: bool) -> None:
        """Switch configuration with a reload (SIGHUP): new connections get the new one."""
        self.upgrades = upgrades
        self._write_config()
        assert self.process is not None
        self.process.send_signal(signal.SIGHUP)
        time.sleep(0.5)  # the master re-reads the file and starts a new worker

    def error_log(self) -> str:
        """What nginx logged (for failure messages)."""
        path = self.prefix / "error.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def access_log(self) -> str:
        """The requests nginx passed on."""
        path = self.prefix / "access.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def access_log_with(self, pattern: str, timeout: float = 15.0) -> str:
        """The access log once a line matches ``pattern`` (a regular expression).

        nginx writes a request's line when it finalizes the request: for an upgraded
        connection that is after both sides closed, which can come after the client
        saw its own close complete. Fails with the log if no line matches in time.
        """
        deadline = time.monotonic() + timeout
        while not re.search(pattern, log := self.access_log()):
            assert time.monotonic() < deadline, f"no line matching {pattern!r}:\n{log}"
            time.sleep(0.05)
        return log

    def stop(self) -> None:
        """Stop this nginx (graceful, then forced)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGQUIT)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
