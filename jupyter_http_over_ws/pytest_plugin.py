"""pytest fixtures for testing against the tunnel, built on pytest-jupyter.

Use them in another project with ``pytest_plugins = ["jupyter_http_over_ws.pytest_plugin"]``
next to pytest-jupyter's ``jupyter_server.pytest_plugin``; enable the extension in
``jp_server_config``. Fixtures: ``hows_server_url``, ``hows_token``, ``hows_tunnel``
(over the WebSocket) and ``hows_polling_tunnel`` (over the polling transport).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .client import TunnelClient


@pytest.fixture
def hows_server_url(
    jp_serverapp: Any, http_server: Any, jp_http_port: int, jp_base_url: str
) -> str:
    """The running test server's URL, ``base_url`` included."""
    return f"http://localhost:{jp_http_port}{jp_base_url}"


@pytest.fixture
def hows_token(jp_serverapp: Any) -> str:
    """The test server's token."""
    return str(jp_serverapp.identity_provider.token)


@pytest.fixture
def hows_tunnel(
    hows_server_url: str, hows_token: str, jp_asyncio_loop: Any
) -> Iterator[TunnelClient]:
    """A token-authenticated tunnel client connected to the test server over the WebSocket."""
    client = jp_asyncio_loop.run_until_complete(
        TunnelClient.connect(hows_server_url, token=hows_token)
    )
    yield client
    jp_asyncio_loop.run_until_complete(client.close())


@pytest.fixture
def hows_polling_tunnel(
    hows_server_url: str, hows_token: str, jp_asyncio_loop: Any
) -> Iterator[TunnelClient]:
    """A token-authenticated tunnel client on the polling transport only (plain HTTP requests).

    The same calls as on ``hows_tunnel``, for code that must work where WebSocket
    upgrades do not get through; it never moves to the WebSocket.
    """
    client = jp_asyncio_loop.run_until_complete(
        TunnelClient.connect(hows_server_url, token=hows_token, transports=("polling",))
    )
    yield client
    jp_asyncio_loop.run_until_complete(client.close())
