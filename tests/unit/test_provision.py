"""tests/support/provision.py: what the selected tests need, and what it does about it.

Nothing here touches the machine: the tools are looked for on a fake PATH, the e2e
directory is a temporary copy of its shape, and commands go to a recording runner.
apt-get and npm run for real only when ``python -m pytest`` provisions a fresh machine.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from support import provision
from support.provision import BROWSER, CHROMIUM, NGINX, NGINX_TOOL, NODE, Plan


@dataclass
class FakeItem:
    """A collected test with some markers."""

    markers: set[str] = field(default_factory=set)

    def get_closest_marker(self, name: str) -> Any:
        return name if name in self.markers else None


def nowhere(_command: str) -> str | None:
    """A PATH without any of the binaries."""
    return None


def find_none(tool: provision.Tool) -> str | None:
    return provision.locate(tool, env={}, which=nowhere, is_file=lambda _path: False)


def find_all(tool: provision.Tool) -> str | None:
    return f"/usr/bin/{tool.commands[0]}"


NPM_BOTH = [("npm", "ci", "--no-audit", "--no-fund"), ("npm", "run", "build")]


# ----------------------------------------------------------------- which tests need what


def test_markers_come_from_the_module_names():
    assert provision.marker_by_file_name("test_browser_fetch.py") == (BROWSER,)
    assert provision.marker_by_file_name("test_browser_nginx.py") == (BROWSER, NGINX)
    assert provision.marker_by_file_name("test_polling_nginx.py") == (NGINX,)
    assert provision.marker_by_file_name("test_proxied_ws.py") == ()


def test_the_needs_are_those_of_the_selected_items():
    assert provision.needs_of([]) == frozenset()
    assert provision.needs_of([FakeItem(), FakeItem({"slow"})]) == frozenset()
    assert provision.needs_of([FakeItem({BROWSER}), FakeItem()]) == {BROWSER}
    assert provision.needs_of([FakeItem({BROWSER}), FakeItem({NGINX})]) == {BROWSER, NGINX}


@pytest.mark.parametrize(
    ("needs", "packages"),
    [
        (frozenset(), ()),
        (frozenset({NGINX}), ("nginx-light",)),
        (frozenset({BROWSER}), ("chromium", "fonts-dejavu-core", "nodejs", "npm")),
        (
            frozenset({BROWSER, NGINX}),
            ("chromium", "fonts-dejavu-core", "nodejs", "npm", "nginx-light"),
        ),
    ],
)
def test_a_bare_machine_is_asked_for_the_packages_of_the_selection(needs, packages):
    plan = provision.plan_for(needs, steps=lambda: list(NPM_BOTH), find=find_none)
    assert plan.packages == packages
    assert plan.npm_steps == (tuple(NPM_BOTH) if BROWSER in needs else ())
    assert bool(plan) == bool(needs)


def test_node_is_needed_only_to_build_the_bundle():
    plan = provision.plan_for(frozenset({BROWSER}), steps=list, find=find_none)
    assert plan.missing == (CHROMIUM,)
    assert plan.npm_steps == ()


def test_a_provisioned_machine_needs_nothing():
    plan = provision.plan_for(
        frozenset({BROWSER, NGINX}), steps=lambda: list(NPM_BOTH), find=find_all
    )
    assert plan.missing == ()
    assert plan.npm_steps == tuple(NPM_BOTH)  # the bundle is still built


# ------------------------------------------------------------------------ finding tools


def test_locate_prefers_the_environment_then_path_then_debians_place():
    files = {"/opt/chromium", "/usr/sbin/nginx"}

    def is_file(path: str) -> bool:
        return path in files

    def which(command: str) -> str | None:
        return {"chromium": "/usr/bin/chromium"}.get(command)

    env = {"CHROMIUM_BIN": "/opt/chromium"}
    assert provision.locate(CHROMIUM, env, which, is_file) == "/opt/chromium"
    assert provision.locate(CHROMIUM, {}, which, is_file) == "/usr/bin/chromium"
    assert provision.locate(CHROMIUM, {"CHROMIUM_BIN": "/gone"}, which, is_file) is None
    # A non-root PATH lacks /usr/sbin: Debian's place still finds nginx.
    assert provision.locate(NGINX_TOOL, {}, which, is_file) == "/usr/sbin/nginx"
    assert provision.locate(NGINX_TOOL, {}, which, lambda _p: False) is None


def test_node_needs_both_node_and_npm_on_the_path():
    def only_node(command: str) -> str | None:
        return "/usr/bin/node" if command == "node" else None

    assert provision.locate(NODE, {}, only_node) is None
    assert provision.locate(NODE, {}, lambda c: f"/usr/bin/{c}") == "/usr/bin/node"


# ------------------------------------------------------------------------ the e2e bundle


def e2e_tree(root: Path) -> Path:
    (root / "src").mkdir(parents=True)
    for name in ("package.json", "package-lock.json", "src/services.js"):
        (root / name).write_text("{}")
        os.utime(root / name, (1000, 1000))
    return root


def touch(path: Path, mtime: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x")
    os.utime(path, (mtime, mtime))


def test_a_fresh_clone_installs_and_builds(tmp_path):
    assert provision.bundle_steps(e2e_tree(tmp_path)) == NPM_BOTH


def test_an_up_to_date_bundle_needs_nothing_not_even_node_modules(tmp_path):
    e2e = e2e_tree(tmp_path)
    touch(e2e / "dist" / "services.js", 2000)
    assert provision.bundle_steps(e2e) == []


def test_a_changed_source_rebuilds_without_reinstalling(tmp_path):
    e2e = e2e_tree(tmp_path)
    touch(e2e / "node_modules" / ".package-lock.json", 2000)
    touch(e2e / "dist" / "services.js", 2000)
    touch(e2e / "src" / "services.js", 3000)
    assert provision.bundle_steps(e2e) == [("npm", "run", "build")]


def test_a_changed_lock_file_reinstalls_and_rebuilds(tmp_path):
    e2e = e2e_tree(tmp_path)
    touch(e2e / "node_modules" / ".package-lock.json", 2000)
    touch(e2e / "dist" / "services.js", 2000)
    touch(e2e / "package-lock.json", 3000)
    assert provision.bundle_steps(e2e) == NPM_BOTH


# --------------------------------------------------------------------- doing it, or not


class Recorder:
    """Stands for subprocess.run: records each command and answers with ``returncode``."""

    def __init__(self, returncode: int = 0) -> None:
        self.calls: list[tuple[list[str], dict[str, Any]]] = []
        self.returncode = returncode

    def __call__(self, command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append((command, kwargs))
        stderr = "E: no such package\n"
        return subprocess.CompletedProcess(command, self.returncode, "out\n", stderr)


def said() -> tuple[list[str], provision._Say]:
    lines: list[str] = []

    def say(text: str, *, end: str = "\n") -> None:
        lines.append(text + end)

    return lines, say


BARE = Plan(missing=(CHROMIUM, NODE, NGINX_TOOL), npm_steps=tuple(NPM_BOTH))


def test_not_root_stops_the_session_with_what_to_install():
    runner = Recorder()
    _, say = said()
    with pytest.raises(pytest.exit.Exception) as stopped:
        provision.carry_out(BARE, say, installable=False, env={}, runner=runner)
    assert stopped.value.returncode == pytest.ExitCode.USAGE_ERROR
    message = str(stopped.value.msg)
    assert "chromium, node and npm, nginx" in message
    assert (
        "sudo apt-get install --no-install-recommends "
        "chromium fonts-dejavu-core nodejs npm nginx-light"
    ) in message
    assert "CHROMIUM_BIN / NGINX_BIN" in message
    assert "python -m pytest -m 'not slow'" in message
    assert runner.calls == []  # nothing ran, not even npm


def test_root_runs_one_apt_get_update_then_one_install_then_npm():
    runner = Recorder()
    lines, say = said()
    provision.carry_out(BARE, say, installable=True, env={}, runner=runner, find=find_all)
    commands = [command for command, _ in runner.calls]
    assert commands == [
        ["apt-get", "update", "-qq"],
        [
            "apt-get",
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "chromium",
            "fonts-dejavu-core",
            "nodejs",
            "npm",
            "nginx-light",
        ],
        *[list(step) for step in NPM_BOTH],
    ]
    for command, kwargs in runner.calls:
        assert kwargs["stdin"] == subprocess.DEVNULL
        assert kwargs["capture_output"] is True
        if command[0] == "apt-get":
            assert kwargs["env"]["DEBIAN_FRONTEND"] == "noninteractive"
        else:
            assert kwargs["cwd"] == provision.E2E
    # One line per step, each ending with how long it took.
    text = "".join(lines)
    assert text.count("provision: ") == 4
    assert text.count(" s\n") == 4


def test_an_up_to_date_machine_only_builds():
    runner = Recorder()
    _, say = said()
    only_build = Plan((), (("npm", "run", "build"),))
    provision.carry_out(only_build, say, installable=False, env={}, runner=runner)
    assert [command for command, _ in runner.calls] == [["npm", "run", "build"]]


def test_a_failed_step_stops_the_session_with_its_output():
    runner = Recorder(returncode=100)
    lines, say = said()
    with pytest.raises(pytest.exit.Exception) as stopped:
        provision.carry_out(BARE, say, installable=True, env={}, runner=runner)
    assert "`apt-get update -qq` failed (exit 100)" in str(stopped.value.msg)
    assert "E: no such package" in str(stopped.value.msg)
    assert len(runner.calls) == 1  # nothing after the failed step
    assert lines[-1] == "failed (exit 100)\n"


def test_a_variable_naming_no_file_is_reported_not_installed_around():
    runner = Recorder()
    _, say = said()
    with pytest.raises(pytest.exit.Exception) as stopped:
        provision.carry_out(
            BARE, say, installable=True, env={"NGINX_BIN": "/opt/nginx"}, runner=runner
        )
    assert "NGINX_BIN=/opt/nginx is not a file" in str(stopped.value.msg)
    assert runner.calls == []


def test_a_tool_still_missing_after_the_install_stops_the_session():
    runner = Recorder()
    _, say = said()
    with pytest.raises(pytest.exit.Exception) as stopped:
        provision.carry_out(BARE, say, installable=True, env={}, runner=runner, find=find_none)
    assert "but chromium, node and npm, nginx still cannot be found" in str(stopped.value.msg)
    assert len(runner.calls) == 2  # update and install; no npm without node
