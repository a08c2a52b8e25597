"""JupyterLab on another origin, behind an nginx that drops WebSocket upgrades.

Layout: JupyterLab's page server on ``http://localhost:Q`` (origin A); the Jupyter server
on ``127.0.0.1:P``, reached only through Debian's nginx on ``http://127.0.0.1:N/``
configured as an old reverse proxy (``Upgrade`` not forwarded: every WebSocket upgrade
fails). The page knows nginx's URL only. The tunnel's WebSocket fails and the polling
transport carries everything: the page's requests, and the kernel's socket.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
from support.browser import browser as browser
from support.browser import context as context
from support.browser import jp_asyncio_loop as jp_asyncio_loop
from support.browser import jp_server_cleanup as jp_server_cleanup
from support.lab import TUNNEL_PATH, Lab, lab_servers, open_lab, run_first_cell, run_next_cell
from support.lab_scenarios import (
    interrupt_restart_rename_and_delete,
    rich_output_save_reload_and_a_terminal,
)
from support.nginx import Nginx
from support.ports import free_port

from jupyter_http_over_ws.lab.command import lab_url

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Behind:
    lab: Lab
    proxy: Nginx

    @property
    def server(self) -> str:
        """The server's URL as the page knows it: nginx's."""
        return self.proxy.url("/")


@pytest.fixture(scope="module")
def behind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Behind]:
    base = tmp_path_factory.mktemp("lab-nginx")
    port = free_port()
    proxy = Nginx(base / "nginx", port, upgrades=False)
    with lab_servers(base, port, page_server_url=proxy.url("/")) as lab:
        proxy.start()
        try:
            yield Behind(lab, proxy)
        finally:
            proxy.stop()


def test_jupyterlab_runs_a_cell_over_polling_when_the_proxy_drops_upgrades(
    context: Any, behind: Behind
) -> None:
    page, network = open_lab(
        context, lab_url(behind.lab.page_origin, behind.server, behind.lab.token)
    )
    assert run_first_cell(page, "print(6*7)") == "42"
    assert page.query_selector("#hows-lab-problem") is None

    assert network.outside_the_tunnel(behind.server) == []
    polling = [u for u in network.requests if urlsplit(u).path.startswith(TUNNEL_PATH + "/polling")]
    assert polling
    # Every socket the page tried (the tunnel's own) failed at nginx; nothing reached
    # the server as a WebSocket, and the kernel ran anyway.
    assert all(urlsplit(u).path == TUNNEL_PATH for u in network.sockets), network.sockets
    assert " 101 " not in behind.proxy.access_log()
    assert list(behind.lab.root.glob("*.ipynb"))


def test_jupyterlab_goes_on_after_the_proxy_restarts_in_the_middle_of_a_session(
    context: Any, behind: Behind
) -> None:
    # The polling transport's cut: every request fails while nginx is down.
    url = lab_url(behind.lab.page_origin, behind.server, behind.lab.token)
    page, network = open_lab(context, url.replace("/lab#", "/lab?reset#"))
    assert run_first_cell(page, "x = 6*7; print(x)") == "42"
    behind.proxy.stop()
    try:
        page.wait_for_timeout(3_000)
    finally:
        behind.proxy.start()
    # The client polls again once the proxy is back; the kernel and its state are the same.
    assert run_next_cell(page, "print(x + 1)", 2) == "43"
    # The outage was seen: polling requests failed while nginx was down.
    failed = [u for u in network.failures if urlsplit(u).path.startswith(TUNNEL_PATH + "/polling")]
    assert failed, network.failures
    assert network.outside_the_tunnel(behind.server) == []
    assert " 101 " not in behind.proxy.access_log()


def test_rich_output_a_traceback_save_reload_and_a_terminal_over_polling(
    context: Any, behind: Behind
) -> None:
    network = rich_output_save_reload_and_a_terminal(context, behind.lab, behind.server)
    # The terminal's socket too was carried by polling: no socket but the tunnel's tries.
    assert all(urlsplit(u).path == TUNNEL_PATH for u in network.sockets), network.sockets
    assert " 101 " not in behind.proxy.access_log()


def test_interrupt_restart_rename_and_delete_over_polling(context: Any, behind: Behind) -> None:
    network = interrupt_restart_rename_and_delete(context, behind.lab, behind.server)
    assert all(urlsplit(u).path == TUNNEL_PATH for u in network.sockets), network.sockets
    assert " 101 " not in behind.proxy.access_log()
