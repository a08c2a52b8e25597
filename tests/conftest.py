"""Fixtures: a real jupyter_server with the extension, and tunnel clients for it."""

from __future__ import annotations

from collections.abc import Generator

import pytest
from support import provision
from support.browser import new_test_for_server_logs, server_log_tails

from jupyter_http_over_ws import upstream as upstream_module

pytest_plugins = ["jupyter_http_over_ws.pytest_plugin"]


@pytest.fixture
def jp_server_config():
    """Enable the extension (pytest-jupyter does not read installed config files)."""
    return {"ServerApp": {"jpserver_extensions": {"jupyter_http_over_ws": True}}}


@pytest.fixture
def upstream_urls(monkeypatch):
    """Every upstream socket the one dial opens, for proxied_ws and polling channels alike.

    The spy still dials it.
    """
    urls = []
    real = upstream_module.connect_upstream

    async def spy(url, *args, **kwargs):
        urls.append(url)
        return await real(url, *args, **kwargs)

    monkeypatch.setattr(upstream_module, "connect_upstream", spy)
    return urls


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark browser and nginx tests by their module's name (before ``-m`` selects)."""
    for item in items:
        for marker in provision.marker_by_file_name(item.path.name):
            item.add_marker(marker)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Get what the selected tests need (chromium, nginx, the e2e bundle) before they run."""
    provision.provision(session)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test begins (see ``pytest_runtest_makereport``)."""
    new_test_for_server_logs()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test's report ends with the tails of the Jupyter servers' logs it ran.

    What the server said (a refusal, a 404 and its cause) is often the only clue to a
    browser test's failure; the servers run as subprocesses whose output goes to files.
    """
    report = yield
    if report.failed and call.when == "call":
        report.sections.extend(server_log_tails())
    return report
