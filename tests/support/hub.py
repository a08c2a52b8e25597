"""A real JupyterHub on loopback, with configurable-http-proxy and two users' servers.

:class:`Hub` writes a ``jupyterhub_config.py`` into the test's directory and runs
``python -m jupyterhub`` with it: the DummyAuthenticator (with a password), the
SimpleLocalProcessSpawner (no system users; each user's home is a directory under the
test's), users ``alice`` and ``bob``, and a service ``test-admin`` whose token (role
``test-admin``) starts servers and makes tokens through the hub's REST API. The
single-user servers are ``jupyterhub-singleuser`` of this environment, so the extension
loads there the way it loads anywhere it is installed (its ``jupyter-config`` file in
``sys.prefix/etc/jupyter``), with no extra step; the allowed page origin is set as an
operator sets it, through ``c.Spawner.args``.

The hub's, the proxy's and the single-user servers' logs all go to ``hub.log`` in the
hub's directory (the hub's children share its output). Every process the hub
starts (proxy, servers, their kernels) carries :attr:`Hub.marker` in its environment,
so :meth:`Hub.leftovers` finds any that outlive the hub.

With ``culler=(timeout, cull_every)`` the hub also runs ``jupyterhub-idle-culler`` as a
hub-managed service (its own role, with the scopes its README names), logging to the
same ``hub.log``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from support import provision
from support.ports import free_port
from support.processes import carrying

#: The users a hub allows unless told others (``Hub(users=...)``).
USERS = ("alice", "bob")

#: What the ``test-admin`` service may do: manage users and servers, make users' tokens
#: (``tokens``: the hub checks a new token's scopes against its owner's, not against the
#: requester's), reach servers itself (``access:servers``), and share a user's server
#: with another user (``shares``).
ADMIN_SCOPES = [
    "admin:users",
    "admin:servers",
    "tokens",
    "access:servers",
    "read:users",
    "shares",
]

CONFIG = """\
import sys

c = get_config()  # noqa: F821
c.JupyterHub.bind_url = {public_url!r}
c.JupyterHub.hub_bind_url = {hub_url!r}
c.JupyterHub.db_url = {db_url!r}
c.JupyterHub.cookie_secret_file = {cookie_secret!r}
c.JupyterHub.pid_file = {pid_file!r}
c.ConfigurableHTTPProxy.command = [{proxy!r}]
c.ConfigurableHTTPProxy.api_url = {proxy_api_url!r}
c.ConfigurableHTTPProxy.auth_token = {proxy_token!r}

c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = {password!r}
c.Authenticator.allowed_users = {users!r}

c.JupyterHub.services = [{{"name": "test-admin", "api_token": {admin_token!r}}}]
c.JupyterHub.load_roles = [
    {{"name": "test-admin", "scopes": {admin_scopes!r}, "services": ["test-admin"]}},
]

c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = {home_template!r}
c.Spawner.cmd = [sys.executable, "-m", "jupyterhub.singleuser"]
c.Spawner.ip = "127.0.0.1"
c.Spawner.start_timeout = 90
c.Spawner.http_timeout = 90
# The operator's way to let a page on another origin use the tunnel.
c.Spawner.args = {spawner_args!r}
c.Spawner.environment = {spawner_environment!r}
# Activity: single-user servers report every second, and the hub keeps every report.
c.JupyterHub.activity_resolution = 1
"""

#: What jupyterhub-idle-culler needs to stop idle servers (not users: no ``admin:users``).
CULLER_SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers"]

CULLER_CONFIG = """
# jupyterhub-idle-culler, as a hub-managed service with its own role.
c.JupyterHub.services.append(
    {{
        "name": "idle-culler",
        "command": [
            sys.executable,
            "-m",
            "jupyterhub_idle_culler",
            "--timeout={timeout}",
            "--cull-every={cull_every}",
        ],
        "environment": {{"HOWS_HUB_TEST": {marker!r}, "PYTHONUNBUFFERED": "1"}},
    }}
)
c.JupyterHub.load_roles.append(
    {{"name": "idle-culler", "scopes": {scopes!r}, "services": ["idle-culler"]}}
)
"""


class HubError(RuntimeError):
    """The hub did not start, or a REST call did not answer as expected."""


class Hub:
    """JupyterHub with configurable-http-proxy on free loopback ports, under ``work``."""

    def __init__(
        self,
        work: Path,
        *,
        page_origin: str,
        environment: dict[str, str] | None = None,
        extra_config: str = "",
        culler: tuple[int, int] | None = None,
        users: Sequence[str] = USERS,
    ) -> None:
        self.work = work
        #: Python appended to ``jupyterhub_config.py`` (after everything above, so it wins).
        self.extra_config = extra_config
        #: ``(timeout, cull_every)`` in seconds: run jupyterhub-idle-culler with them.
        self.culler = culler
        #: The users the hub allows (``c.Authenticator.allowed_users``), each with a home.
        self.users = tuple(users)
        #: More environment for the single-user servers (``c.Spawner.environment``).
        self.environment = dict(environment or {})
        self.work.mkdir(parents=True, exist_ok=True)
        self.page_origin = page_origin
        self.port = free_port()
        self.hub_port = free_port()
        self.proxy_api_port = free_port()
        self.password = secrets.token_hex(8)
        self.admin_token = secrets.token_hex(16)
        self.marker = f"hows-hub-{secrets.token_hex(6)}"
        self.log_path = work / "hub.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The hub's public URL (the proxy's), which routes ``/hub/`` and ``/user/<name>/``."""
        return f"http://127.0.0.1:{self.port}/"

    def user_url(self, user: str) -> str:
        """The public URL of ``user``'s server, as the hub prints it."""
        return f"{self.url}user/{user}/"

    def home(self, user: str) -> Path:
        """``user``'s home directory: the root directory of their server."""
        return self.work / "home" / user

    def config_text(self) -> str:
        """The ``jupyterhub_config.py`` this hub runs with."""
        proxy = provision.proxy_binary()
        if not proxy.is_file():
            raise HubError(f"configurable-http-proxy is not installed at {proxy}")
        text = CONFIG.format(
            public_url=self.url,
            hub_url=f"http://127.0.0.1:{self.hub_port}",
            db_url=f"sqlite:///{self.work / 'jupyterhub.sqlite'}",
            cookie_secret=str(self.work / "jupyterhub_cookie_secret"),
            pid_file=str(self.work / "jupyterhub.pid"),
            proxy=str(proxy),
            proxy_api_url=f"http://127.0.0.1:{self.proxy_api_port}",
            proxy_token=secrets.token_hex(16),
            password=self.password,
            users=set(self.users),
            admin_token=self.admin_token,
            admin_scopes=ADMIN_SCOPES,
            home_template=str(self.work / "home" / "{username}"),
            spawner_args=self.spawner_args(),
            spawner_environment={
                "JUPYTERHUB_ACTIVITY_INTERVAL": "1",
                "JUPYTER_PLATFORM_DIRS": "1",
                "HOWS_HUB_TEST": self.marker,
                **self.environment,
            },
        )
        if self.culler is not None:
            timeout, cull_every = self.culler
            text += CULLER_CONFIG.format(
                timeout=timeout, cull_every=cull_every, marker=self.marker, scopes=CULLER_SCOPES
            )
        if self.extra_config:
            text += f"\n# Extra configuration\n{self.extra_config}\n"
        return text

    def spawner_args(self) -> list[str]:
        """The single-user servers' command-line options: the page origin they allow.

        As root (CI's containers), ``allow_root`` too: the spawner runs the servers as
        the hub's own user.
        """
        args = [f"--ServerApp.allow_origin={self.page_origin}"]
        if os.geteuid() == 0:
            args.append("--ServerApp.allow_root=True")
        return args

    def start(self, timeout: float = 60.0) -> None:
        """Start the hub (it starts the proxy) and wait until its API answers."""
        for user in self.users:
            self.home(user).mkdir(parents=True, exist_ok=True)
        config = self.work / "jupyterhub_config.py"
        config.write_text(self.config_text())
        env = dict(os.environ, HOWS_HUB_TEST=self.marker, PYTHONUNBUFFERED="1")
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "jupyterhub", "-f", str(config)],
                cwd=self.work,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                raise HubError(f"the hub exited ({self.proc.returncode}):\n{self.log()[-5000:]}")
            try:
                status, _ = self.api("GET", "", token=None)
            except OSError:
                status = 0
            if status == 200:
                return
            time.sleep(0.2)
        self.stop()
        raise HubError(f"the hub did not answer in {timeout:g} s:\n{self.log()[-5000:]}")

    def log(self) -> str:
        """Everything the hub and its proxy logged so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def api(
        self, method: str, path: str, body: Any = None, *, token: str | None = "admin"
    ) -> tuple[int, Any]:
        """``method /hub/api/<path>`` through the proxy; returns (status, parsed JSON or None).

        ``token="admin"`` uses the admin service's token; ``None`` sends none.
        """
        headers = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"token {self.admin_token if token == 'admin' else token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(
            f"{self.url}hub/api/{path}", data=data, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        try:
            return status, json.loads(raw)
        except ValueError:  # the proxy's own error pages, before the hub's route exists
            return status, raw.decode("utf-8", "replace") or None

    def user(self, user: str) -> dict[str, Any]:
        """The hub's model of ``user`` (``GET /hub/api/users/<user>``)."""
        status, model = self.api("GET", f"users/{user}")
        if status != 200:
            raise HubError(f"GET users/{user}: {status} {model}")
        return dict(model)

    def start_server(self, user: str, timeout: float = 90.0) -> None:
        """Start ``user``'s server through the REST API and wait until the hub calls it ready."""
        status, body = self.api("POST", f"users/{user}/server")
        if status not in (201, 202, 400):  # 400: it is already running
            raise HubError(f"POST users/{user}/server: {status} {body}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            server = self.user(user).get("servers", {}).get("")
            if server and server.get("ready"):
                return
            time.sleep(0.3)
        raise HubError(f"{user}'s server was not ready in {timeout:g} s:\n{self.log()[-5000:]}")

    def new_token(self, user: str, scopes: list[str], note: str = "test") -> str:
        """A new API token of ``user`` limited to ``scopes``, made by the admin service."""
        body = {"scopes": scopes, "note": note, "expires_in": 3600}
        status, reply = self.api("POST", f"users/{user}/tokens", body)
        if status != 201:
            raise HubError(f"POST users/{user}/tokens {scopes}: {status} {reply}")
        return str(reply["token"])

    def leftovers(self) -> list[int]:
        """The processes still carrying :attr:`marker`: anything the hub started, still alive."""
        return carrying("HOWS_HUB_TEST", self.marker)

    def stop(self, timeout: float = 30.0) -> list[int]:
        """Stop the hub as an operator does (SIGTERM: it stops the servers and the proxy).

        Returns the processes that were still alive 10 s after it exited (then kills them),
        so the caller can assert that there were none.
        """
        if self.proc is None:
            return []
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while (left := self.leftovers()) and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return left
