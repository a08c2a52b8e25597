"""The browser client with remote kernels: a page on another origin, a server in gateway mode.

A jupyter_server with the extension runs with its ``GatewayClient`` pointed at a real
Jupyter Kernel Gateway on another loopback port (:mod:`support.gateway`), allowing the
page's origin (``ServerApp.allow_origin``). The page (``http://localhost:Q/``, another
site than the server at ``http://127.0.0.1:P/``) imports our client from the server and
an unmodified ``@jupyterlab/services``, and through the tunnel, over the WebSocket and
over polling: lists the gateway's kernelspecs, starts a kernel there, runs code with
every kind of output, interrupts a running cell (the kernel keeps its state) and
restarts the kernel (services reconnects to it). In gateway mode
the server selects no kernel subprotocol (the legacy JSON protocol, see
docs/operators/gateway.md): over the WebSocket, Chromium fails the first kernel socket
(it offered one) and ``@jupyterlab/services`` opens it again without, as it does for a
direct client of the same server; over polling the first socket opens.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from support.browser import assert_kernel_outputs, kernel_code, open_page, page_dir, run_in_page
from support.browser import browser as browser
from support.browser import context as context
from support.browser import jp_asyncio_loop as jp_asyncio_loop
from support.browser import jp_server_cleanup as jp_server_cleanup
from support.gateway import GATEWAY_KERNEL, KernelGateway, gateway_server
from support.server_process import ServerProcess

from jupyter_http_over_ws.demo import PageServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

#: What the kernel test displays.
DISPLAY = {"text/plain": "a display", "text/markdown": "**a display**"}

TRANSPORTS = [["websocket"], ["polling"]]


@dataclass
class GatewayPage:
    """The gateway, the server that uses it, and the page on another origin."""

    gateway: KernelGateway
    server: ServerProcess
    page: str

    def run(self, context: Any, body: str, **args: Any) -> tuple[Any, list[str]]:
        """Open the page and run ``body`` there against the server with its token.

        Returns what ``body`` returned and the page's console lines.
        """
        page = open_page(context, self.page)
        console: list[str] = []
        page.on("console", lambda msg: console.append(msg.text))
        try:
            return run_in_page(page, self.server.url, self.server.token, body, **args), console
        finally:
            page.close()


#: What Chromium says when a WebSocket offered subprotocols and the server selected none.
NO_SUBPROTOCOL = "Sent non-empty 'Sec-WebSocket-Protocol' header but no response was received"


def assert_subprotocol_fallback(console: list[str], transport: str) -> None:
    """Over the WebSocket, Chromium fails the first kernel socket, and services retries.

    @jupyterlab/services offers the v1 kernel protocol; in gateway mode the server
    selects none, so Chromium fails that handshake (as for any direct client of the
    server) and services opens the socket again without subprotocols. The polling
    transport's socket reports the server's choice (none) without failing.
    """
    failed = [line for line in console if NO_SUBPROTOCOL in line]
    if transport == "websocket":
        assert len(failed) == 1, console
        assert "/http_over_websocket/proxied_ws/api/kernels/" in failed[0]
        assert any("reconnecting in 0 seconds" in line for line in console), console
    else:
        assert failed == [], console


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayPage]:
    """A Kernel Gateway, a server in gateway mode allowing the page, and the page server."""
    base = tmp_path_factory.mktemp("browser-gateway")
    with PageServer(page_dir(base)) as pages:
        origin = f"http://localhost:{pages.port}"
        gw = KernelGateway(base / "gateway")
        gw.start()
        try:
            server = gateway_server(base / "server", gw, server_app={"allow_origin": origin})
            server.start()
            try:
                yield GatewayPage(gw, server, origin + "/")
            finally:
                server.kill()
        finally:
            gw.kill()


#: In the page: ``step(name, promise)`` is ``promise``, failing after ``a.stepTimeout`` ms
#: with the step's name, so that a page that waits forever says where (pytest's own
#: timeout would end the test without a word of it).
STEPS = """
  const step = (name, promise) => Promise.race([promise, new Promise((_, reject) => {
    setTimeout(() => reject(new Error(`no answer in ${a.stepTimeout} ms: ${name}`)), a.stepTimeout);
  })]);
"""
STEP_TIMEOUT_MS = 60_000

#: In the page: the tunnel over ``a.transports`` and a @jupyterlab/services kernel on the
#: gateway's kernelspec (uses :data:`STEPS`).
START_GATEWAY_KERNEL = """
  const tunnel = await step("connect", connect({ transports: a.transports }));
  const serverSettings = settingsFor(tunnel);
  // The bundle exports no KernelSpecManager: its own request path, as that would use.
  const specs = await step("kernelspecs", services.ServerConnection.makeRequest(
    serverSettings.baseUrl + "api/kernelspecs", {}, serverSettings).then((r) => r.json()));
  const kernels = new services.KernelManager({ serverSettings });
  // Its first listing done before the start: a gateway that lists kernels while one is
  // starting answers 500, to a direct client too (docs/operators/gateway.md).
  await step("the kernel manager's first listing", kernels.ready);
  const kernel = await step("start the kernel", kernels.startNew({ name: a.kernelName }));
  await step("the kernel's info", kernel.info);
"""


@pytest.mark.parametrize("transports", TRANSPORTS, ids=lambda t: t[0])
def test_services_runs_code_on_the_gateway(
    context: Any, setup: GatewayPage, transports: list[str]
) -> None:
    result, console = setup.run(
        context,
        STEPS
        + START_GATEWAY_KERNEL
        + """
        const ok = await step("the code", execute(kernel, a.code));
        const bad = await step("1 / 0", execute(kernel, "1 / 0"));
        const out = {
          transport: tunnel.transport,
          specs: Object.keys(specs.kernelspecs),
          display: specs.kernelspecs[a.kernelName].spec.display_name,
          id: kernel.id,
          name: kernel.name,
          ok,
          bad,
        };
        await step("shutdown", kernel.shutdown());
        kernels.dispose();
        tunnel.close();
        return out;
        """,
        transports=transports,
        kernelName=GATEWAY_KERNEL,
        code=kernel_code(DISPLAY),
        stepTimeout=STEP_TIMEOUT_MS,
    )
    assert result["transport"] == transports[0]
    assert result["specs"] == [GATEWAY_KERNEL]
    assert result["display"] == "Python on the gateway"
    assert result["name"] == GATEWAY_KERNEL
    assert_kernel_outputs(result["ok"], result["bad"], DISPLAY)
    assert_subprotocol_fallback(console, transports[0])
    assert result["id"] not in setup.gateway.kernel_ids()  # shut down on the gateway
    assert not setup.server.error_lines(), setup.gateway.error_lines()


@pytest.mark.parametrize("transports", TRANSPORTS, ids=lambda t: t[0])
def test_services_interrupts_and_restarts_a_gateway_kernel(
    context: Any, setup: GatewayPage, transports: list[str]
) -> None:
    result, console = setup.run(
        context,
        STEPS
        + START_GATEWAY_KERNEL
        + """
        const onGateway = await step("the kernel's model", tunnel.fetch(
          "api/kernels/" + kernel.id).then((r) => r.json()));
        await step("x = 41", execute(kernel, "x = 41"));
        // A cell that sleeps: interrupt it once its first output has arrived.
        const outputs = [];
        let started;
        const running = new Promise((resolve) => { started = resolve; });
        const future = kernel.requestExecute({
          code: "import time\\nprint('sleeping', flush=True)\\ntime.sleep(60)",
        });
        future.onIOPub = (msg) => {
          if (msg.header.msg_type === "stream") started();
          if (["stream", "error"].includes(msg.header.msg_type)) {
            outputs.push({ type: msg.header.msg_type, content: msg.content });
          }
        };
        await step("the sleeping cell's first output", running);
        const before = Date.now();
        await step("interrupt", kernel.interrupt());
        const reply = await step("the interrupted cell's reply", future.done.then(
          (msg) => msg.content, () => ({ status: "rejected" })));
        const interruptedIn = Date.now() - before;
        const kept = await step("code after the interrupt", execute(kernel, "print(x + 1)"));
        // Restart: services asks the server, then opens the kernel's socket again. (Code
        // run right after a restart in gateway mode sometimes gets no reply at all, from
        // a direct client as through the tunnel: see docs/operators/gateway.md.)
        await step("restart", kernel.restart());
        const restarted = { connection: kernel.connectionStatus, status: kernel.status };
        const out = {
          transport: tunnel.transport,
          onGateway: onGateway.name,
          id: kernel.id,
          outputs,
          reply,
          interruptedIn,
          kept,
          restarted,
        };
        await step("shutdown", kernel.shutdown());
        kernels.dispose();
        tunnel.close();
        return out;
        """,
        transports=transports,
        kernelName=GATEWAY_KERNEL,
        stepTimeout=STEP_TIMEOUT_MS,
    )
    assert result["transport"] == transports[0]
    assert result["onGateway"] == GATEWAY_KERNEL
    errors = [o["content"]["ename"] for o in result["outputs"] if o["type"] == "error"]
    assert errors == ["KeyboardInterrupt"], result["outputs"]
    assert result["reply"]["status"] in ("error", "rejected"), result["reply"]
    assert result["interruptedIn"] < 30_000  # not the cell's 60 s
    texts = [o["content"]["text"] for o in result["kept"]["outputs"] if o["type"] == "stream"]
    assert "".join(texts) == "42\n"  # the interrupt kept the kernel's state
    assert result["restarted"]["connection"] == "connected", result["restarted"]
    assert result["restarted"]["status"] != "dead", result["restarted"]
    assert_subprotocol_fallback(console, transports[0])
    assert result["id"] not in setup.gateway.kernel_ids()
    assert not setup.server.error_lines(), setup.gateway.error_lines()
