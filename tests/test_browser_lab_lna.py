"""JupyterLab on a public page, its Jupyter server on this machine: Local Network Access.

Chromium gates a public page's requests to loopback and private addresses behind a
permission (Chrome's Local Network Access). The page server here is on ``localhost``, so
Chromium is told to treat it as public (``--ip-address-space-overrides``, the flag
Chrome's documentation gives for testing this locally); the Jupyter server is on
``127.0.0.1``, the loopback space. Playwright grants the permission, or denies it (the
DevTools protocol's ``Browser.setPermission``), and the page must say which it is.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from support.browser import jp_asyncio_loop as jp_asyncio_loop
from support.browser import jp_server_cleanup as jp_server_cleanup
from support.browser import launch_browser
from support.lab import TUNNEL_PATH, Lab, lab_servers, open_lab, run_first_cell
from support.ports import free_port

from jupyter_http_over_ws.lab.command import lab_url

pytestmark = pytest.mark.slow

#: The Local Network Access permissions as the DevTools protocol names them.
PERMISSIONS = ("loopback-network", "local-network", "local-network-access")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with lab_servers(tmp_path_factory.mktemp("lab-lna")) as servers:
        yield servers


@pytest.fixture(scope="module")
def public_page_browser(lab: Lab) -> Iterator[Any]:
    """Chromium that takes the page server (only) for a public site."""
    override = f"--ip-address-space-overrides=127.0.0.1:{urlsplit(lab.page_origin).port}=public"
    with launch_browser([override]) as browser:
        yield browser


@pytest.fixture
def context(public_page_browser: Any) -> Iterator[Any]:
    context = public_page_browser.new_context()
    try:
        yield context
    finally:
        context.close()


def deny(context: Any, origin: str) -> None:
    """Deny ``origin`` the Local Network Access permissions, as a user's "Block" does."""
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    browser_context = cdp.send("Target.getTargetInfo")["targetInfo"]["browserContextId"]
    for name in PERMISSIONS:
        cdp.send(
            "Browser.setPermission",
            {
                "permission": {"name": name},
                "setting": "denied",
                "origin": origin,
                "browserContextId": browser_context,
            },
        )
    page.close()


def test_with_the_permission_granted_jupyterlab_runs_through_the_tunnel(
    context: Any, lab: Lab
) -> None:
    context.grant_permissions(["local-network-access"], origin=lab.page_origin)
    page, network = open_lab(context, lab_url(lab.page_origin, lab.server, lab.token))
    assert run_first_cell(page, "print(6*7)") == "42"
    assert page.query_selector("#hows-lab-problem") is None
    assert (
        page.evaluate(
            "(async () => (await navigator.permissions.query({name: 'loopback-network'})).state)()"
        )
        == "granted"
    )
    assert network.outside_the_tunnel(lab.server) == []
    assert any(urlsplit(u).path == TUNNEL_PATH for u in network.sockets)


def test_with_the_permission_denied_the_page_says_so(context: Any, lab: Lab) -> None:
    deny(context, lab.page_origin)
    page, network = open_lab(context, lab_url(lab.page_origin, lab.server, lab.token))
    problem = page.wait_for_selector("#hows-lab-problem", timeout=60_000).inner_text()
    assert f"This browser does not let this page reach {lab.server}" in problem
    assert "Local Network Access permission" in problem
    assert f"denied for {lab.page_origin}" in problem
    # The first request was refused by the browser; nothing else was tried.
    asked = [u for u in network.requests if urlsplit(u).netloc == urlsplit(lab.server).netloc]
    assert asked == [lab.server + "http_over_websocket/static/index.js"]
    assert network.failures[asked[0]].startswith("net::")
    assert network.sockets == []


def test_with_the_permission_granted_and_no_server_the_page_says_it_is_down(
    context: Any, lab: Lab
) -> None:
    context.grant_permissions(["local-network-access"], origin=lab.page_origin)
    nothing = f"http://127.0.0.1:{free_port()}/"
    page, network = open_lab(context, lab_url(lab.page_origin, nothing, lab.token))
    problem = page.wait_for_selector("#hows-lab-problem", timeout=60_000).inner_text()
    assert f"Cannot reach the Jupyter server at {nothing}" in problem
    assert "the server is not running, or the address is wrong" in problem
    assert f"jupyter http-over-ws doctor {nothing} --origin {lab.page_origin}" in problem
    assert "permission" not in problem
    assert network.sockets == []
