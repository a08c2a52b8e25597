"""The original README's commands, run in a subprocess exactly as a user types them.

The original extension told users to start ``jupyter notebook
--NotebookApp.allow_origin=... --port=... --no-browser`` and to enable it with
``jupyter serverextension enable``. On Notebook 7 / jupyter_server 2 the first
still works (``notebook_shim`` passes ``NotebookApp.allow_origin`` on to
``ServerApp``) and the extension is enabled by the ``jupyter-config`` file that
``pip install`` puts under ``sys.prefix/etc/jupyter``; the enable step is now
``jupyter server extension enable``. These tests check all of that against a
real server process, so they use no pytest-jupyter fixture.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.ports import free_port
from tornado.httpclient import HTTPClientError

from jupyter_http_over_ws import __version__
from jupyter_http_over_ws.client import TunnelClient, diagnose

pytestmark = pytest.mark.slow

ALLOWED_ORIGIN = "https://www.example.com"
OTHER_ORIGIN = "https://evil.example"
#: Seconds to wait for ``jupyter notebook`` to listen (it loads every installed extension).
STARTUP_TIMEOUT = 60.0
#: Seconds to wait for a ``jupyter ... extension`` command.
COMMAND_TIMEOUT = 60.0
#: Seconds to wait for the server to stop after SIGTERM before killing it.
STOP_TIMEOUT = 15.0
#: Seconds any one client exchange with the server may take.
CLIENT_TIMEOUT = 30.0

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
INSTALLED_CONFIG = (
    Path(sys.prefix) / "etc" / "jupyter" / "jupyter_server_config.d" / "jupyter_http_over_ws.json"
)


def jupyter(*args: str) -> list[str]:
    """The command line of ``jupyter <args>`` from the Python running the tests."""
    return [sys.executable, "-m", "jupyter", *args]


def isolated_env(home: Path, token: str | None = None) -> dict[str, str]:
    """An environment that sees the installed package but no user or outer Jupyter config.

    Only ``sys.prefix/etc/jupyter`` (where pip installed our ``jupyter-config``) and the
    system paths remain, so the tests show what an installation alone does.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER")}
    dirs = {
        "HOME": home,
        "JUPYTER_CONFIG_DIR": home / ".jupyter",
        "JUPYTER_DATA_DIR": home / "data",
        "JUPYTER_RUNTIME_DIR": home / "runtime",
        "IPYTHONDIR": home / ".ipython",
    }
    for name, path in dirs.items():
        path.mkdir(parents=True, exist_ok=True)
        env[name] = str(path)
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    # `python -m jupyter notebook` finds `jupyter-notebook` next to this interpreter.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    if token is not None:
        env["JUPYTER_TOKEN"] = token
    return env


def run(coro_fn, *args, **kwargs):
    """Run one client coroutine to completion on a fresh event loop, with a time limit."""

    async def bounded():
        return await asyncio.wait_for(coro_fn(*args, **kwargs), CLIENT_TIMEOUT)

    return asyncio.run(bounded())


@dataclass
class NotebookServer:
    """A ``jupyter notebook`` started as the README says."""

    url: str
    token: str
    root_dir: Path
    log_path: Path


def wait_for_server(process: subprocess.Popen[bytes], runtime_dir: Path, log_path: Path) -> dict:
    """Wait for the server's info file (written once it listens) and return it."""
    info_file = runtime_dir / f"jpserver-{process.pid}.json"
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"jupyter notebook exited with {process.returncode}:\n{log_path.read_text()}"
            )
        if info_file.exists():
            try:
                return json.loads(info_file.read_text())
            except json.JSONDecodeError:
                pass  # caught it half-written
        time.sleep(0.2)
    pytest.fail(f"jupyter notebook did not start in {STARTUP_TIMEOUT}s:\n{log_path.read_text()}")


@pytest.fixture(scope="module")
def notebook_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NotebookServer]:
    """Run the original README's command in a clean home, with a known token."""
    home = tmp_path_factory.mktemp("home")
    root_dir = tmp_path_factory.mktemp("notebooks")
    (root_dir / "hello.txt").write_text("hello\n")
    token = secrets.token_hex(16)
    env = isolated_env(home, token)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # CI runs as root; jupyter refuses that without allow_root. Set it in the
        # user config so the command line stays exactly the README's.
        config = Path(env["JUPYTER_CONFIG_DIR"]) / "jupyter_server_config.json"
        config.write_text(json.dumps({"ServerApp": {"allow_root": True}}))
    port = free_port()
    command = jupyter(
        "notebook",
        f"--NotebookApp.allow_origin={ALLOWED_ORIGIN}",
        f"--port={port}",
        "--no-browser",
    )
    log_path = home / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=root_dir, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
    try:
        info = wait_for_server(process, Path(env["JUPYTER_RUNTIME_DIR"]), log_path)
        assert info["token"] == token
        yield NotebookServer(info["url"], token, root_dir, log_path)
    finally:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT)


def test_installed_config_enables_the_extension():
    """``pip install`` put our jupyter-config under sys.prefix: no enable step needed."""
    assert INSTALLED_CONFIG.is_file(), f"{INSTALLED_CONFIG} is missing; reinstall the package"
    config = json.loads(INSTALLED_CONFIG.read_text())
    assert config["ServerApp"]["jpserver_extensions"]["jupyter_http_over_ws"] is True


def test_readme_notebook_command_serves_the_tunnel(notebook_server: NotebookServer):
    async def fetch_contents():
        async with await TunnelClient.connect(
            notebook_server.url, token=notebook_server.token, origin=ALLOWED_ORIGIN
        ) as tunnel:
            return await tunnel.request("GET", "/api/contents")

    reply = run(fetch_contents)
    assert reply.status == 200, (reply, notebook_server.log_path.read_text())
    names = {item["name"] for item in reply.json()["content"]}
    assert "hello.txt" in names


def test_readme_notebook_command_accepts_the_colab_era_auth_url(notebook_server: NotebookServer):
    """Old clients send only ``jupyter_http_over_ws_auth_url=<url with ?token=>``."""

    async def fetch_status():
        async with await TunnelClient.connect(
            notebook_server.url,
            origin=ALLOWED_ORIGIN,
            min_version="0.0.7",
            auth_url=f"{notebook_server.url}?token={notebook_server.token}",
        ) as tunnel:
            return await tunnel.request("GET", "/api/status")

    reply = run(fetch_status)
    assert reply.status == 200, reply


def test_tunnel_without_credentials_is_refused(notebook_server: NotebookServer):
    with pytest.raises(HTTPClientError) as refused:
        run(TunnelClient.connect, notebook_server.url, origin=ALLOWED_ORIGIN)
    assert refused.value.code == 403


def test_allow_origin_admits_the_allowed_origin(notebook_server: NotebookServer):
    diagnosis = run(diagnose, notebook_server.url, origin=ALLOWED_ORIGIN)
    assert diagnosis.extension_version == __version__
    assert diagnosis.message_id == "diagnose"
    assert diagnosis.is_outdated_extension is False


def test_allow_origin_refuses_other_origins(notebook_server: NotebookServer):
    # diagnose needs no credentials, so the origin check alone decides here (a
    # token-authenticated upgrade skips jupyter_server's origin check by design).
    with pytest.raises(HTTPClientError) as refused:
        run(diagnose, notebook_server.url, origin=OTHER_ORIGIN)
    assert refused.value.code == 403


def test_server_extension_list_shows_the_extension_enabled_and_ok(tmp_path: Path):
    result = subprocess.run(
        jupyter("server", "extension", "list"),
        env=isolated_env(tmp_path),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    output = ANSI_ESCAPE.sub("", result.stdout.decode() + result.stderr.decode())
    assert result.returncode == 0, output
    assert re.search(r"^\s*jupyter_http_over_ws\s+enabled\s*$", output, re.M), output
    assert re.search(
        rf"^\s*jupyter_http_over_ws {re.escape(__version__)}\s+OK\s*$", output, re.M
    ), output


def test_server_extension_enable_succeeds(tmp_path: Path):
    # Writes the same file pip installed (sys.prefix is the default target): harmless.
    result = subprocess.run(
        jupyter("server", "extension", "enable", "--py", "jupyter_http_over_ws"),
        env=isolated_env(tmp_path),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    output = ANSI_ESCAPE.sub("", result.stdout.decode() + result.stderr.decode())
    assert result.returncode == 0, output
    assert "jupyter_http_over_ws" in output
    assert "successfully enabled" in output, output
    config = json.loads(INSTALLED_CONFIG.read_text())
    assert config["ServerApp"]["jpserver_extensions"]["jupyter_http_over_ws"] is True
