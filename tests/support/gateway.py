"""A real Jupyter Kernel Gateway on loopback, and a jupyter_server that uses it.

:class:`KernelGateway` runs ``python -m kernel_gateway`` (PyPI ``jupyter-kernel-gateway``)
on a free loopback port with an auth token, in its own process group, with its own
Jupyter paths: its only kernelspec is :data:`GATEWAY_KERNEL` ("Python on the gateway"),
which the Jupyter server's own environment does not have, so a kernelspec listed by the
server proves it came from the gateway.

:func:`gateway_server` is a :class:`~support.server_process.ServerProcess` (the extension
loaded, as anywhere) whose ``GatewayClient`` points at the gateway. It is configured
through the ``JUPYTER_GATEWAY_URL`` and ``JUPYTER_GATEWAY_AUTH_TOKEN`` variables, which
``GatewayClient`` reads exactly as it reads ``--GatewayClient.url`` and
``--GatewayClient.auth_token``.

Given a :class:`~support.tls.LocalCA`, the gateway serves HTTPS only, with a certificate
from that CA (``--KernelGatewayApp.certfile``/``keyfile``), and :func:`gateway_server`
gives the server the CA to verify it with (``GatewayClient.validate_cert`` stays at its
default, on): by ``SSL_CERT_FILE`` unless told otherwise, because jupyter_server 2
applies ``GatewayClient.ca_certs`` only together with ``client_cert``.

Every process either starts (the gateway, the server, the gateway's kernels) carries
:attr:`KernelGateway.marker` in its environment, so :func:`leftovers` finds any that
outlive them.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from support.ports import free_port
from support.processes import carrying, kill_group
from support.server_process import ServerProcess
from support.tls import LocalCA, ServerCertificate

#: The one kernelspec the gateway offers.
GATEWAY_KERNEL = "gateway-python"

MARKER_VARIABLE = "HOWS_GATEWAY_TEST"


class KernelGateway:
    """``python -m kernel_gateway`` on a free loopback port (HTTPS only, given ``ca``)."""

    def __init__(self, work: Path, ca: LocalCA | None = None) -> None:
        self.work = work
        #: The CA whose certificate the gateway serves, or ``None`` for plain HTTP.
        self.ca = ca
        self.certificate: ServerCertificate | None = ca.issue(stem="gateway") if ca else None
        self.work.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.marker = secrets.token_hex(8)
        self.log_path = work / "gateway.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The gateway's URL (no trailing slash, as ``GatewayClient.url`` takes it)."""
        scheme = "https" if self.certificate else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def _write_kernelspec(self) -> Path:
        data = self.work / "data"
        spec_dir = data / "kernels" / GATEWAY_KERNEL
        spec_dir.mkdir(parents=True, exist_ok=True)
        spec = {
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python on the gateway",
            "language": "python",
        }
        (spec_dir / "kernel.json").write_text(json.dumps(spec))
        return data

    def start(self, timeout: float = 60.0) -> None:
        """Start the gateway and wait until it lists its kernelspecs."""
        data = self._write_kernelspec()
        env = dict(
            os.environ,
            JUPYTER_PATH=str(data),
            JUPYTER_DATA_DIR=str(data),
            JUPYTER_CONFIG_DIR=str(self.work / "config"),
            JUPYTER_RUNTIME_DIR=str(self.work / "runtime"),
            JUPYTER_PLATFORM_DIRS="1",
            PYTHONUNBUFFERED="1",
        )
        env[MARKER_VARIABLE] = self.marker
        command = [
            sys.executable,
            "-m",
            "kernel_gateway",
            "--KernelGatewayApp.ip=127.0.0.1",
            f"--KernelGatewayApp.port={self.port}",
            "--KernelGatewayApp.port_retries=0",
            f"--KernelGatewayApp.auth_token={self.token}",
            # Only the spec written above, not the ones of this environment.
            f"--KernelSpecManager.allowed_kernelspecs={GATEWAY_KERNEL}",
            f"--KernelGatewayApp.default_kernel_name={GATEWAY_KERNEL}",
            # jupyter_server lists the gateway's kernels (for /api/status, /api/kernels):
            # the gateway answers 403 unless listing is allowed.
            "--JupyterWebsocketPersonality.list_kernels=True",
        ]
        if self.certificate is not None:
            command += [
                f"--KernelGatewayApp.certfile={self.certificate.certfile}",
                f"--KernelGatewayApp.keyfile={self.certificate.keyfile}",
            ]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                command,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.work,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited:\n{self.log()}")
            with contextlib.suppress(OSError, urllib.error.URLError):
                if self.get("/api/kernelspecs"):
                    return
            time.sleep(0.2)
        self.kill()
        raise TimeoutError(f"gateway did not start:\n{self.log()}")

    def get(self, path: str) -> Any:
        """``GET path`` of the gateway's own REST API, with its token; the JSON answer."""
        request = urllib.request.Request(
            self.url + path, headers={"Authorization": f"token {self.token}"}
        )
        context = ssl.create_default_context(cafile=str(self.ca.ca_file)) if self.ca else None
        with urllib.request.urlopen(request, timeout=5, context=context) as response:
            return json.loads(response.read())

    def kernel_ids(self) -> set[str]:
        """The ids of the kernels running on the gateway, from its own API."""
        return {kernel["id"] for kernel in self.get("/api/kernels")}

    def log(self) -> str:
        """Everything the gateway has logged so far."""
        return self.log_path.read_text(errors="replace")

    def error_lines(self) -> list[str]:
        """The gateway's log lines at ERROR level, and its tracebacks' last lines."""
        return [
            line
            for line in self.log().splitlines()
            if line.startswith("[E ") or (line.startswith("    ") and "Error" in line)
        ]

    def stop(self, timeout: float = 30.0) -> int:
        """Stop the gateway as an operator does (SIGTERM: it shuts its kernels down)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        """End the gateway and anything left in its process group."""
        kill_group(self.proc)


#: The environment variables that can name the gateway's CA to the server, for
#: :func:`gateway_server`'s ``ca_variable``.
CA_VARIABLES = ("SSL_CERT_FILE", "JUPYTER_GATEWAY_CA_CERTS")


def ca_bundle(ca: LocalCA, path: Path) -> Path:
    """A PEM bundle at ``path``: this system's CAs, then ``ca`` (what an operator installs)."""
    system = ssl.get_default_verify_paths().cafile
    pems = [Path(system).read_bytes()] if system and Path(system).is_file() else []
    path.write_bytes(b"\n".join([*pems, ca.ca_file.read_bytes()]))
    return path


class UnreadyGatewayServer(ServerProcess):
    """A :class:`ServerProcess` that is ready once ``/api`` answers.

    Its ``/api/status`` needs the gateway (it lists the gateway's kernels), which this
    server may not reach.
    """

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "api", timeout=2) as response:
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False


def gateway_server(
    work: Path,
    gateway: KernelGateway,
    *,
    ca_variable: str | None = "SSL_CERT_FILE",
    reaches_gateway: bool = True,
    server_app: dict[str, Any] | None = None,
) -> ServerProcess:
    """A jupyter_server with the extension whose kernels live on ``gateway`` (not started).

    For a gateway on HTTPS, ``ca_variable`` names its CA to the server: ``SSL_CERT_FILE``
    (OpenSSL's default CAs: a bundle of this system's and the gateway's CA), or
    ``JUPYTER_GATEWAY_CA_CERTS`` (``GatewayClient.ca_certs``: the CA alone), or ``None``
    (only the system's CAs). ``reaches_gateway=False``: a server that cannot reach the
    gateway, ready once it answers at all. ``server_app`` adds ``ServerApp`` settings
    (``allow_origin``...), in a config directory of their own on ``JUPYTER_CONFIG_PATH``.
    """
    env = {
        "JUPYTER_GATEWAY_URL": gateway.url,
        "JUPYTER_GATEWAY_AUTH_TOKEN": gateway.token,
        MARKER_VARIABLE: gateway.marker,
    }
    if gateway.ca is not None and ca_variable == "SSL_CERT_FILE":
        work.mkdir(parents=True, exist_ok=True)
        env["SSL_CERT_FILE"] = str(ca_bundle(gateway.ca, work / "ca-bundle.pem"))
    elif gateway.ca is not None and ca_variable is not None:
        assert ca_variable in CA_VARIABLES, ca_variable
        env[ca_variable] = str(gateway.ca.ca_file)
    if server_app:
        extra_config = work / "gateway-server-config"
        extra_config.mkdir(parents=True, exist_ok=True)
        settings = {"ServerApp": server_app}
        (extra_config / "jupyter_server_config.json").write_text(json.dumps(settings))
        env["JUPYTER_CONFIG_PATH"] = str(extra_config)
    if not reaches_gateway:
        return UnreadyGatewayServer(work, env=env)
    return ServerProcess(work, env=env)


def leftovers(marker: str) -> list[int]:
    """The processes still carrying ``marker``: anything the gateway or server started."""
    return carrying(MARKER_VARIABLE, marker)
