"""Fixtures: a real jupyter_server with the extension, and tunnel clients for it."""

from __future__ import annotations

import pytest

pytest_plugins = ["jupyter_http_over_ws.pytest_plugin"]


@pytest.fixture
def jp_server_config():
    """Enable the extension (pytest-jupyter does not read installed config files)."""
    return {"ServerApp": {"jpserver_extensions": {"jupyter_http_over_ws": True}}}
