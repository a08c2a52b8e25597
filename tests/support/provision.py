"""What the selected tests need from the machine, and getting it before any test runs.

``python -m pytest`` sets itself up: after collection, ``tests/conftest.py`` calls
:func:`provision` with the selected items. Browser tests (marker ``browser``) need
Debian's Chromium, and the page's ``@jupyterlab/services`` bundle (``e2e/dist``), built
with node and npm when it is missing or older than ``e2e/package-lock.json``; reverse-proxy
tests (marker ``nginx``) need nginx. Missing Debian packages are installed with
``apt-get`` when pytest runs as root (as CI does); otherwise the session stops before
the first test with one message that says what to install. Each step prints one line.
Hub tests (marker ``hub``) need configurable-http-proxy, installed from npm into a cache
directory (:data:`PROXY_DIR`, no global install) when it is missing.

This runs in a session hook, outside any test, so pytest-timeout never interrupts it.
The decisions (:func:`needs_of`, :func:`plan_for`, :func:`refusal`) are pure functions of
their arguments, so tests/unit/test_provision.py checks them without touching the
machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest

REPO = Path(__file__).resolve().parents[2]
E2E = REPO / "e2e"

#: Markers (registered in pyproject.toml) saying what a test needs from the machine.
BROWSER = "browser"
NGINX = "nginx"
HUB = "hub"

#: configurable-http-proxy (JupyterHub's proxy), installed by npm here when hub tests run;
#: ``$CHP_BIN`` overrides it.
PROXY_VERSION = "5.3.0"
PROXY_DIR = (
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    / "jupyter-http-over-ws"
    / f"configurable-http-proxy-{PROXY_VERSION}"
)

#: Run ``apt-get`` without questions, as CI does.
APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}

#: How a session refuses to start when it cannot provision (pytest's "usage error").
EXIT_STATUS = pytest.ExitCode.USAGE_ERROR


@dataclass(frozen=True)
class Tool:
    """A program some tests run, where to look for it, and the Debian packages that bring it."""

    #: What the messages call it.
    name: str
    #: An environment variable that names the binary and overrides every other place.
    env_var: str | None
    #: Commands looked up on ``PATH``; all of them must be found.
    commands: tuple[str, ...]
    #: Where Debian puts it when ``PATH`` lacks it (``/usr/sbin`` for a non-root user).
    candidates: tuple[str, ...]
    #: The Debian packages to install when it is missing.
    packages: tuple[str, ...]


#: Debian's Chromium, driven by Playwright (no browser download); DejaVu so pages render.
CHROMIUM = Tool(
    name="chromium",
    env_var="CHROMIUM_BIN",
    commands=("chromium",),
    candidates=("/usr/bin/chromium",),
    packages=("chromium", "fonts-dejavu-core"),
)
#: Debian's nginx, started by the tests on loopback.
NGINX_TOOL = Tool(
    name="nginx",
    env_var="NGINX_BIN",
    commands=("nginx",),
    candidates=("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"),
    packages=("nginx-light",),
)
#: node and npm, to build the browser tests' bundle in e2e/.
NODE = Tool(
    name="node and npm",
    env_var=None,
    commands=("node", "npm"),
    candidates=(),
    packages=("nodejs", "npm"),
)


def locate(
    tool: Tool,
    env: Mapping[str, str] = os.environ,
    which: Callable[[str], str | None] = shutil.which,
    is_file: Callable[[str], bool] = os.path.isfile,
) -> str | None:
    """The path of ``tool``'s (first) binary, or ``None`` when this machine lacks it.

    ``$<env_var>`` wins when set (and must name a file), then ``PATH``, then the
    places Debian installs to.
    """
    if tool.env_var and env.get(tool.env_var):
        named = env[tool.env_var]
        return named if is_file(named) else None
    found = [which(command) for command in tool.commands]
    if all(found):
        return found[0]
    if len(tool.commands) == 1:
        return next((c for c in tool.candidates if is_file(c)), None)
    return None


class _Item(Protocol):
    """What :func:`needs_of` reads from a collected test (a ``pytest.Item``)."""

    def get_closest_marker(self, name: str) -> Any: ...


def needs_of(items: Iterable[_Item]) -> frozenset[str]:
    """The needs (``BROWSER``, ``NGINX``) of the selected tests, from their markers."""
    return frozenset(
        need for item in items for need in (BROWSER, NGINX, HUB) if item.get_closest_marker(need)
    )


def marker_by_file_name(file_name: str) -> tuple[str, ...]:
    """The markers a test module gets from its name: ``test_browser*``, ``*nginx*``, ``*_hub*``.

    The names already say it (the browser tests are ``test_browser*.py``), so a new
    module in either family is provisioned for without anyone remembering a marker;
    a test elsewhere can still carry ``@pytest.mark.browser`` or ``@pytest.mark.nginx``.
    """
    markers = []
    if file_name.startswith("test_browser"):
        markers.append(BROWSER)
    if "nginx" in file_name:
        markers.append(NGINX)
    if "_hub" in file_name:  # test_hub*.py, and test_browser_hub.py (browser and hub)
        markers.append(HUB)
    return tuple(markers)


def bundle_steps(e2e: Path = E2E) -> list[tuple[str, ...]]:
    """The npm commands that bring ``e2e/dist/services.js`` up to date (none if it is).

    The bundle is up to date when it is newer than ``package-lock.json``,
    ``package.json`` and every file under ``src/``. ``npm ci`` runs when
    ``node_modules`` is missing or older than the lock file (npm writes
    ``node_modules/.package-lock.json`` on every install).
    """
    lock = e2e / "package-lock.json"
    bundle = e2e / "dist" / "services.js"
    sources = [lock, e2e / "package.json", *(p for p in (e2e / "src").rglob("*") if p.is_file())]
    newest_source = max(p.stat().st_mtime for p in sources)
    if bundle.is_file() and bundle.stat().st_mtime >= newest_source:
        return []
    installed = e2e / "node_modules" / ".package-lock.json"
    steps: list[tuple[str, ...]] = []
    if not installed.is_file() or installed.stat().st_mtime < lock.stat().st_mtime:
        steps.append(("npm", "ci", "--no-audit", "--no-fund"))
    steps.append(("npm", "run", "build"))
    return steps


def proxy_binary(env: Mapping[str, str] = os.environ, proxy_dir: Path = PROXY_DIR) -> Path:
    """Where the hub tests' configurable-http-proxy is (``$CHP_BIN``, else the npm cache)."""
    if env.get("CHP_BIN"):
        return Path(env["CHP_BIN"])
    return proxy_dir / "node_modules" / ".bin" / "configurable-http-proxy"


def proxy_steps(proxy_dir: Path = PROXY_DIR) -> list[tuple[str, ...]]:
    """The npm command that installs configurable-http-proxy (none when it is there)."""
    if proxy_binary(proxy_dir=proxy_dir).is_file():
        return []
    return [
        (
            "npm",
            "install",
            "--no-audit",
            "--no-fund",
            "--prefix",
            str(proxy_dir),
            f"configurable-http-proxy@{PROXY_VERSION}",
        )
    ]


@dataclass(frozen=True)
class Plan:
    """What to do before the first test: install ``missing`` tools, then run ``npm_steps``."""

    missing: tuple[Tool, ...]
    npm_steps: tuple[tuple[str, ...], ...]

    @property
    def packages(self) -> tuple[str, ...]:
        """The Debian packages that bring the missing tools, in order, once each."""
        return tuple(dict.fromkeys(p for tool in self.missing for p in tool.packages))

    def __bool__(self) -> bool:
        return bool(self.missing or self.npm_steps)


def plan_for(
    needs: frozenset[str],
    steps: Callable[[], list[tuple[str, ...]]] = bundle_steps,
    find: Callable[[Tool], str | None] = locate,
    hub_steps: Callable[[], list[tuple[str, ...]]] = proxy_steps,
) -> Plan:
    """What the machine lacks for ``needs``: tools to install and npm steps to run.

    node and npm are needed only when the bundle must be (re)built or
    configurable-http-proxy installed; the hub tests run the proxy with node.
    """
    wanted: list[Tool] = []
    npm_steps: list[tuple[str, ...]] = []
    if BROWSER in needs:
        wanted.append(CHROMIUM)
        npm_steps = steps()
    if HUB in needs:
        npm_steps = [*npm_steps, *hub_steps()]
    if npm_steps or HUB in needs:
        wanted.append(NODE)
    if NGINX in needs:
        wanted.append(NGINX_TOOL)
    return Plan(tuple(t for t in wanted if find(t) is None), tuple(npm_steps))


def can_install() -> bool:
    """Whether missing packages can be installed here: root, on a system with apt-get."""
    return os.geteuid() == 0 and shutil.which("apt-get") is not None


def refusal(plan: Plan) -> str:
    """The message that stops a session which lacks tools and may not install them."""
    names = ", ".join(tool.name for tool in plan.missing)
    overrides = [t.env_var for t in plan.missing if t.env_var]
    lines = [
        f"the selected tests need {names}, which this machine lacks, and pytest can",
        "install them only as root on Debian (apt-get). Install them with",
        f"    sudo apt-get install --no-install-recommends {' '.join(plan.packages)}",
    ]
    if overrides:
        lines.append(f"or point {' / '.join(overrides)} at the binaries; then run pytest again.")
    else:
        lines.append("then run pytest again.")
    lines.append("Without them, run the fast tests only: python -m pytest -m 'not slow'")
    return "\n".join(lines)


class _Say(Protocol):
    """Writes progress to the terminal (``write`` without, ``line`` with a newline)."""

    def __call__(self, text: str, *, end: str = "\n") -> None: ...


def run_step(
    command: Sequence[str],
    say: _Say,
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    runner: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
) -> None:
    """Run one provisioning command on one line of output; stop the session if it fails."""
    shown = " ".join(command) + (f" (in {cwd.relative_to(REPO)}/)" if cwd else "")
    say(f"provision: {shown} ... ", end="")
    started = time.monotonic()
    result = runner(
        list(command),
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        say(f"failed (exit {result.returncode})")
        output = (result.stdout + result.stderr).strip().splitlines()
        pytest.exit(
            f"provision: `{shown}` failed (exit {result.returncode}); its last lines:\n"
            + "\n".join(output[-20:]),
            returncode=EXIT_STATUS,
        )
    say(f"done in {time.monotonic() - started:.0f} s")


def carry_out(
    plan: Plan,
    say: _Say,
    *,
    installable: bool,
    env: Mapping[str, str] = os.environ,
    runner: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
    find: Callable[[Tool], str | None] = locate,
) -> None:
    """Install the plan's packages (one ``apt-get update`` first), then run its npm steps."""
    misnamed = [t.env_var for t in plan.missing if t.env_var and env.get(t.env_var)]
    if misnamed:
        # Installing would not help: the tests would still look where the variable says.
        pytest.exit(
            "provision: "
            + "; ".join(f"{var}={env[var]} is not a file" for var in misnamed)
            + ": correct it, or unset it to use Debian's package",
            returncode=EXIT_STATUS,
        )
    if plan.missing:
        if not installable:
            pytest.exit(refusal(plan), returncode=EXIT_STATUS)
        run_step(("apt-get", "update", "-qq"), say, env=APT_ENV, runner=runner)
        run_step(
            ("apt-get", "install", "-y", "-qq", "--no-install-recommends", *plan.packages),
            say,
            env=APT_ENV,
            runner=runner,
        )
        still = [tool.name for tool in plan.missing if find(tool) is None]
        if still:
            pytest.exit(
                f"provision: apt-get installed {' '.join(plan.packages)}, "
                f"but {', '.join(still)} still cannot be found",
                returncode=EXIT_STATUS,
            )
    for step in plan.npm_steps:
        # A step that names its own ``--prefix`` (the proxy's) runs anywhere; the rest in e2e/.
        run_step(step, say, cwd=None if "--prefix" in step else E2E, runner=runner)


def provision(session: pytest.Session) -> None:
    """Before the first test: get what the selected tests need, or stop with a message."""
    if session.config.option.collectonly or not session.items:
        return
    plan = plan_for(needs_of(session.items))
    if not plan:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")

    def say(text: str, *, end: str = "\n") -> None:
        if reporter is None:
            print(text, end=end, flush=True)
        elif end:
            reporter.write_line(text)
        else:
            reporter.write(text, flush=True)

    if reporter is not None:
        reporter.ensure_newline()
    carry_out(plan, say, installable=can_install())
