"""Fixtures: a real jupyter_server with the extension, and tunnel clients for it."""

from __future__ import annotations

import pytest
from support import provision

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
