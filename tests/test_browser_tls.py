"""The browser client over TLS: Chromium trusting the test CA, a fetch through the tunnel.

The Jupyter server speaks HTTPS only, with a certificate from :class:`support.tls.LocalCA`.
Chromium is told to trust exactly that CA's key (``--ignore-certificate-errors-spki-list``
with the CA's SPKI hash: a chain that does not verify is accepted only when one of its
certificates has that key), not to ignore certificate errors. The page, on another
origin, imports the client from the server's static route (over ``https://``) and
fetches a file byte-exact through the tunnel over ``wss://`` and over ``https://``
polling, and a kernel answers through a proxied socket. A Chromium without the pin
cannot even load the client: the certificate is really checked. A page that carries
the client itself gets only a network error from that Chromium, and the client's
explanation names the untrusted certificate among the causes, with what to do.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.browser import (
    CHROMIUM_ARGS,
    TEST_PAGE,
    chromium_path,
    new_context,
    open_page,
)
from support.browser import jp_asyncio_loop as jp_asyncio_loop
from support.browser import jp_server_cleanup as jp_server_cleanup
from support.ports import free_port
from support.tls import LocalCA, TlsServerProcess

from jupyter_http_over_ws.demo import PageServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

ALL_BYTES = bytes(range(256)) * 64
#: The browser client's sources (js/src), served by the page's own origin too.
JS_SRC = Path(__file__).resolve().parents[1] / "js" / "src"


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PageServer]:
    """The test page on its own origin (``http://localhost:Q/``)."""
    directory = tmp_path_factory.mktemp("pages")
    (directory / "index.html").write_text(TEST_PAGE)
    # The client as a page bundles it (from its own origin, not the server's).
    shutil.copytree(JS_SRC, directory / "client")
    with PageServer(directory, host="127.0.0.1") as server:
        yield server


@pytest.fixture(scope="module")
def tls_jupyter(
    pages: PageServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TlsServerProcess]:
    """Jupyter over HTTPS, allowing the page's origin."""
    ca = LocalCA(tmp_path_factory.mktemp("ca"))
    server = TlsServerProcess(
        tmp_path_factory.mktemp("tls-jupyter"),
        ca,
        ca.issue(),
        server_app={"allow_origin": f"http://localhost:{pages.port}"},
    )
    (server.root_dir / "all-bytes.bin").write_bytes(ALL_BYTES)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="module")
def chromiums(tls_jupyter: TlsServerProcess) -> Iterator[dict[str, Any]]:
    """Two Chromiums: ``trusting`` has the test CA's key pinned, ``plain`` has not.

    One Playwright runs both (its sync API allows one instance at a time).
    """
    from playwright.sync_api import sync_playwright

    pin = f"--ignore-certificate-errors-spki-list={tls_jupyter.ca.spki_hash}"
    playwright = sync_playwright().start()
    launched: dict[str, Any] = {}
    try:
        for name, extra in (("trusting", [pin]), ("plain", [])):
            launched[name] = playwright.chromium.launch(
                executable_path=chromium_path(), args=[*CHROMIUM_ARGS, *extra], headless=True
            )
        yield launched
    finally:
        for each in launched.values():
            each.close()
        playwright.stop()


FETCH_THROUGH_THE_TUNNEL = """
async (a) => {
  const client = await import(a.server + "http_over_websocket/static/index.js");
  const tunnel = await client.connect({
    url: a.server, token: a.token, transports: a.transports,
  });
  const transport = tunnel.transport;
  const r = await tunnel.fetch("files/all-bytes.bin");
  const bytes = Array.from(new Uint8Array(await r.arrayBuffer()));
  const started = await tunnel.fetch("api/kernels", { method: "POST", body: "{}" });
  const kernel = await started.json();
  const texts = [];
  const done = new Promise((resolve, reject) => {
    const ws = new tunnel.WebSocket(
      a.server.replace(/^http/, "ws") + `api/kernels/${kernel.id}/channels?session_id=s1`);
    const message = (msgType, content) => ({
      header: { msg_id: `${msgType}-${Math.random()}`, msg_type: msgType, username: "t",
                session: "s1", date: new Date().toISOString(), version: "5.3" },
      parent_header: {}, metadata: {}, channel: "shell", content,
    });
    const asked = new Set();
    let executeId = null;
    let timer = null;
    let replyStatus = null;
    let idle = false;
    // Ask kernel_info until its iopub status arrives (iopub may miss the first
    // messages while it connects), then run the code.
    const ask = () => {
      const info = message("kernel_info_request", {});
      asked.add(info.header.msg_id);
      ws.send(JSON.stringify(info));
      timer = setTimeout(ask, 500);
    };
    ws.onopen = ask;
    ws.onmessage = (event) => {
      const msg = JSON.parse(event.data);
      const parent = msg.parent_header.msg_id;
      if (executeId === null && msg.channel === "iopub" && asked.has(parent)) {
        clearTimeout(timer);
        const execute = message("execute_request", {
          code: "print('tls', 6 * 7)", silent: false, store_history: false,
          user_expressions: {}, allow_stdin: false, stop_on_error: true,
        });
        executeId = execute.header.msg_id;
        ws.send(JSON.stringify(execute));
        return;
      }
      if (parent !== executeId) return;
      if (msg.msg_type === "stream") texts.push(msg.content.text);
      if (msg.msg_type === "execute_reply") replyStatus = msg.content.status;
      // The reply (shell) may come before the outputs (iopub): done once both are in.
      if (msg.msg_type === "status" && msg.content.execution_state === "idle") idle = true;
      if (replyStatus !== null && idle) { ws.close(); resolve(replyStatus); }
    };
    ws.onerror = () => reject(new Error("kernel socket error"));
  });
  const status = await done;
  await tunnel.fetch(`api/kernels/${kernel.id}`, { method: "DELETE" });
  tunnel.close();
  return { transport, status: r.status, bytes, kernel: status, texts: texts.join("") };
}
"""


@pytest.mark.parametrize("transports", [["websocket"], ["polling"]], ids=lambda t: t[0])
def test_fetch_through_the_tunnel_over_tls(
    chromiums: dict[str, Any],
    tls_jupyter: TlsServerProcess,
    pages: PageServer,
    transports: list[str],
) -> None:
    with new_context(chromiums["trusting"]) as context:
        page = open_page(context, f"http://localhost:{pages.port}/")
        result = page.evaluate(
            FETCH_THROUGH_THE_TUNNEL,
            {"server": tls_jupyter.url, "token": tls_jupyter.token, "transports": transports},
        )
    assert result["transport"] == transports[0]
    assert result["status"] == 200
    assert bytes(result["bytes"]) == ALL_BYTES
    assert result["kernel"] == "ok"
    assert result["texts"] == "tls 42\n"


def test_without_the_ca_the_client_does_not_load(
    chromiums: dict[str, Any], tls_jupyter: TlsServerProcess, pages: PageServer
) -> None:
    with new_context(chromiums["plain"]) as context:
        page = open_page(context, f"http://localhost:{pages.port}/")
        console: list[str] = []
        page.on("console", lambda msg: console.append(msg.text))
        error = page.evaluate(
            """async (server) => {
                 try { await import(server + "http_over_websocket/static/index.js"); }
                 catch (e) { return String(e); }
                 return null;
               }""",
            tls_jupyter.url,
        )
    assert error is not None
    assert "Failed to fetch dynamically imported module" in error
    assert any("net::ERR_CERT_AUTHORITY_INVALID" in line for line in console), console


def test_without_the_ca_the_explanation_names_the_certificate(
    chromiums: dict[str, Any], tls_jupyter: TlsServerProcess, pages: PageServer
) -> None:
    # The page carries the client (served from its own origin), so it loads; the
    # WebSocket and the polling fetch to the server fail as a browser reports an
    # untrusted certificate to a page: as a network error, nothing more.
    with new_context(chromiums["plain"]) as context:
        page = open_page(context, f"http://localhost:{pages.port}/")
        console: list[str] = []
        page.on("console", lambda msg: console.append(msg.text))
        error = page.evaluate(
            """async (a) => {
                 const client = await import("/client/index.js");
                 try { await client.connect({ url: a.server, token: a.token }); }
                 catch (e) { return { name: e.name, kind: e.kind, message: e.message }; }
                 return null;
               }""",
            {"server": tls_jupyter.url, "token": tls_jupyter.token},
        )
    assert any("net::ERR_CERT_AUTHORITY_INVALID" in line for line in console), console
    assert error is not None
    assert error["name"] == "TunnelError"
    assert error["kind"] == "unreachable"
    message = error["message"]
    assert message.startswith(f"Could not open a tunnel to {tls_jupyter.url}: ")
    assert "its TLS certificate is not trusted by this browser" in message
    assert f"open {tls_jupyter.url} in a tab to see the certificate error" in message
    assert "trust the CA that signed it" in message
    assert f"jupyter http-over-ws doctor {tls_jupyter.url}" in message


def test_plain_http_explanation_does_not_name_a_certificate(
    chromiums: dict[str, Any], pages: PageServer
) -> None:
    # The same network error to an http:// address: no certificate there to blame.
    with new_context(chromiums["plain"]) as context:
        page = open_page(context, f"http://localhost:{pages.port}/")
        message = page.evaluate(
            """async (server) => {
                 const client = await import("/client/index.js");
                 try { await client.connect({ url: server, token: "t" }); }
                 catch (e) { return e.message; }
                 return null;
               }""",
            f"http://127.0.0.1:{free_port()}/",
        )
    assert message is not None
    assert message.startswith("Could not open a tunnel to ")
    assert "certificate" not in message
