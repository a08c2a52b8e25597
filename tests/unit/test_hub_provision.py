"""tests/support/provision.py for the hub tests: configurable-http-proxy from npm, in a cache."""

from __future__ import annotations

import subprocess
from pathlib import Path

from support import provision
from support.provision import BROWSER, HUB, NODE, Plan


def find_none(tool: provision.Tool) -> str | None:
    return None


def test_hub_modules_are_marked_by_name():
    assert provision.marker_by_file_name("test_hub.py") == (HUB,)
    assert provision.marker_by_file_name("test_hub_activity.py") == (HUB,)
    assert provision.marker_by_file_name("test_github.py") == ()
    assert provision.marker_by_file_name("test_browser_hub.py") == (BROWSER, HUB)


def test_the_proxy_is_installed_into_the_cache_when_missing(tmp_path: Path):
    steps = provision.proxy_steps(tmp_path)
    assert steps == [
        (
            "npm",
            "install",
            "--no-audit",
            "--no-fund",
            "--prefix",
            str(tmp_path),
            f"configurable-http-proxy@{provision.PROXY_VERSION}",
        )
    ]
    binary = provision.proxy_binary(env={}, proxy_dir=tmp_path)
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/usr/bin/env node\n")
    assert provision.proxy_steps(tmp_path) == []


def test_chp_bin_overrides_the_cache(tmp_path: Path):
    named = tmp_path / "chp"
    assert provision.proxy_binary(env={"CHP_BIN": str(named)}) == named


def test_hub_tests_need_node_and_the_proxy_steps():
    install = [("npm", "install", "configurable-http-proxy")]
    plan = provision.plan_for(frozenset({HUB}), find=find_none, hub_steps=lambda: install)
    assert plan.missing == (NODE,)
    assert plan.npm_steps == tuple(install)
    # node runs the proxy, so it is needed even when nothing is to be installed.
    plan = provision.plan_for(frozenset({HUB}), find=find_none, hub_steps=list)
    assert plan.missing == (NODE,)
    assert plan.npm_steps == ()


def test_hub_and_browser_steps_add_up():
    bundle = [("npm", "run", "build")]
    install = [("npm", "install", "configurable-http-proxy")]
    plan = provision.plan_for(
        frozenset({HUB, BROWSER}),
        steps=lambda: list(bundle),
        find=find_none,
        hub_steps=lambda: list(install),
    )
    assert plan.npm_steps == (*bundle, *install)
    assert plan.missing.count(NODE) == 1


def test_the_proxy_install_runs_outside_e2e(tmp_path: Path):
    calls = []

    def runner(command, **kwargs):
        calls.append((command, kwargs["cwd"]))
        return subprocess.CompletedProcess(command, 0, "", "")

    lines: list[str] = []

    def say(text: str, *, end: str = "\n") -> None:
        lines.append(text + end)

    steps = (("npm", "run", "build"), *map(tuple, provision.proxy_steps(tmp_path)))
    provision.carry_out(Plan((), steps), say, installable=False, env={}, runner=runner)
    assert [cwd for _, cwd in calls] == [provision.E2E, None]
    assert "(in e2e/)" in lines[0]
    assert "(in e2e/)" not in lines[2]
