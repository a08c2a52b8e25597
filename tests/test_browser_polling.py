"""The polling transport in a real browser: ``@jupyterlab/services`` over it, and a network
that blocks the tunnel's WebSocket (polling first, then back to the WebSocket).

The servers and pages are :mod:`support.cross_origin`'s.
"""

from __future__ import annotations

from typing import Any

import pytest
from support.browser import BlockedTunnelSocket, open_page
from support.browser import browser as browser
from support.browser import context as context
from support.browser import jp_asyncio_loop as jp_asyncio_loop
from support.browser import jp_server_cleanup as jp_server_cleanup
from support.cross_origin import Setup, run, run_on_page
from support.cross_origin import setup as setup

pytestmark = pytest.mark.slow


POLLING_KERNEL = """
        window.kernel = (await startKernel(window.tunnel)).kernel;
        window.runCode = async (code) => {
          const texts = [];
          const future = window.kernel.requestExecute({ code });
          future.onIOPub = (msg) => {
            if (msg.header.msg_type === "stream") texts.push(msg.content.text);
          };
          const reply = await future.done;
          return { status: reply.content.status, texts: texts.join("") };
        };
"""


def test_polling_transport_carries_jupyterlab_services(context: Any, setup: Setup) -> None:
    result = run_on_page(
        context,
        setup,
        """
        window.tunnel = await connect({ transports: ["polling"] });
        const transport = window.tunnel.transport;
        const listing = await (await window.tunnel.fetch("api/contents")).json();
        """
        + POLLING_KERNEL
        + """
        const first = await window.runCode("print('over polling', 6 * 7)");
        await window.kernel.shutdown();
        window.tunnel.close();
        return { transport, version: window.tunnel.version,
                 names: listing.content.map((f) => f.name), first };
        """,
    )
    assert result["transport"] == "polling"
    assert "hello.txt" in result["names"]
    assert result["first"] == {"status": "ok", "texts": "over polling 42\n"}


def test_blocked_websocket_falls_back_to_polling_and_upgrades_later(
    context: Any, setup: Setup
) -> None:
    """A network that refuses the tunnel's WebSocket: polling, then back to the WebSocket."""
    page = open_page(context, setup.page)
    blocked = BlockedTunnelSocket()
    blocked.route(page)
    before = run(
        page,
        setup,
        """
        window.tunnel = await connect({ upgradeInterval: 300 });
        window.changes = [];
        window.tunnel.addEventListener("transportchange", (e) => {
          window.changes.push(e.detail.transport);
        });
        """
        + POLLING_KERNEL
        + """
        const first = await window.runCode("print('before the upgrade')");
        return { transport: window.tunnel.transport, first };
        """,
    )
    assert blocked.refused >= 1
    assert before["transport"] == "polling"
    assert before["first"] == {"status": "ok", "texts": "before the upgrade\n"}

    blocked.on = False
    after = run(
        page,
        setup,
        """
        const deadline = Date.now() + 20000;
        while (window.tunnel.transport !== "websocket" && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        const transport = window.tunnel.transport;
        const file = await (await window.tunnel.fetch("api/contents/hello.txt?content=1")).json();
        // The kernel socket opened over polling keeps working after the upgrade.
        const second = await window.runCode("print('after the upgrade')");
        await window.kernel.shutdown();
        window.tunnel.close();
        return { transport, changes: window.changes, content: file.content, second };
        """,
    )
    assert after["transport"] == "websocket"
    assert after["changes"] == ["websocket"]
    assert after["content"] == "hello from the server's disk\n"
    assert after["second"] == {"status": "ok", "texts": "after the upgrade\n"}
