"""The browser client in a real browser: Debian's Chromium, a page on another origin.

Layout (all on loopback):

- Jupyter with the extension at ``http://127.0.0.1:P/``, token ``T``, allowing the
  origins ``http://localhost:Q`` and ``http://127.0.0.1:Q`` (``allow_origin_pat``);
- the test page at ``http://localhost:Q/``: cross-origin *and* cross-site (an IP
  address is a site of its own), the case the tunnel is for;
- the same page server reached as ``http://127.0.0.1:Q/``: cross-origin but same-site,
  to contrast what a login cookie does;
- a second page server at ``http://127.0.0.1:R/``: an origin the server does not allow
  (same site as the server, so a login cookie goes along and only the origin is wrong).

The page imports the client from the server (``http_over_websocket/static/index.js``)
and an unmodified ``@jupyterlab/services`` from npm (bundled by esbuild in ``e2e/``).
The server also loads ``hows_echo`` (``js/testing/hows_echo.py``, shared with the node
tests), a real handler that echoes request bodies, to check the bytes a tunnelled
request delivers.
"""

from __future__ import annotations

import re
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.browser import (
    jupyter_server,
    launch_browser,
    new_context,
    open_page,
    run_in_page,
    services_bundle,
    stream_texts,
)

from jupyter_http_over_ws import __version__
from jupyter_http_over_ws.demo import PageServer, free_port

pytestmark = pytest.mark.slow

ALL_BYTES = bytes(range(256)) * 64  # 16 KiB, every byte value, in every position mod 256
BIG_SIZE = 512 * 1024 * 1024  # a sparse file: costs no disk, takes seconds to send whole


class Setup:
    """What the tests need to know about the servers."""

    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)

    server: str
    token: str
    root: Path
    page: str
    same_site_page: str
    foreign_page: str
    pid: int


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """Jupyter and the page servers for this module."""
    base = tmp_path_factory.mktemp("browser")
    pages = base / "pages"
    pages.mkdir()
    (pages / "index.html").write_text(
        "<!doctype html><meta charset=utf-8><link rel=icon href='data:,'>"
        "<title>test page</title><p>test page</p>\n"
    )
    shutil.copy(services_bundle(), pages / "services.js")
    root = base / "root"
    root.mkdir()
    (root / "hello.txt").write_text("hello from the server's disk\n")
    (root / "all-bytes.bin").write_bytes(ALL_BYTES)
    with open(root / "big.bin", "wb") as f:
        f.truncate(BIG_SIZE)

    token = secrets.token_hex(16)
    port = free_port()
    with PageServer(pages) as page, PageServer(pages) as foreign:
        pattern = rf"^http://(localhost|127\.0\.0\.1):{page.port}$"
        with jupyter_server(
            base / "jupyter",
            port=port,
            token=token,
            root_dir=root,
            allow_origin_pat=pattern,
            # A real handler that echoes request bodies (js/testing/hows_echo.py).
            extra=("--ServerApp.jpserver_extensions=hows_echo=True",),
        ) as process:
            yield Setup(
                server=f"http://127.0.0.1:{port}/",
                token=token,
                root=root,
                page=f"http://localhost:{page.port}/",
                same_site_page=f"http://127.0.0.1:{page.port}/",
                foreign_page=f"http://127.0.0.1:{foreign.port}/",
                pid=process.pid,
            )


@pytest.fixture
def jp_asyncio_loop() -> None:
    """Replace pytest-jupyter's autouse loop: Playwright's sync API runs its own."""


@pytest.fixture
def jp_server_cleanup() -> None:
    """Replace pytest-jupyter's autouse cleanup: no in-process server here, and no loop."""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium for the module; each test gets its own context (cookies, storage)."""
    with launch_browser() as b:
        yield b


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    """A fresh browser context: no cookies, no cache."""
    with new_context(browser) as ctx:
        yield ctx


def run(page: Any, setup: Setup, body: str, token: str | None = None, **args: Any) -> Any:
    """Run ``body`` (an async function's body, with the prelude's names) in the page."""
    return run_in_page(page, setup.server, setup.token if token is None else token, body, **args)


def log_in(context: Any, setup: Setup) -> list[dict[str, Any]]:
    """Log in to Jupyter the way a person does (its URL with ?token=), returning its cookies."""
    page = open_page(context, f"{setup.server}tree?token={setup.token}")
    page.close()
    return [c for c in context.cookies() if c["domain"] == "127.0.0.1"]


PLAIN_VERSUS_TUNNEL = """
        const plain = async (init) => {
          try {
            const r = await fetch(a.server + "api/contents", init);
            return `status ${r.status}`;
          } catch (e) {
            return errorText(e);
          }
        };
        const out = {
          cookie: await plain({ credentials: "include" }),
          token: await plain({ headers: { Authorization: `token ${a.token}` } }),
        };
        const tunnel = await connect();
        const r = await tunnel.fetch("api/contents");
        out.status = r.status;
        out.type = r.headers.get("content-type");
        out.names = (await r.json()).content.map((f) => f.name).sort();
        tunnel.close();
        return out;
"""


def test_plain_cross_origin_fetch_is_refused_while_the_tunnel_works(
    context: Any, setup: Setup
) -> None:
    log_in(context, setup)
    allowed = run(open_page(context, setup.page), setup, PLAIN_VERSUS_TUNNEL)
    foreign = run(open_page(context, setup.foreign_page), setup, PLAIN_VERSUS_TUNNEL)
    print({"allowed": allowed, "foreign": foreign})
    for result in (allowed, foreign):
        assert result["status"] == 200
        assert result["type"].startswith("application/json")
        assert {"all-bytes.bin", "big.bin", "hello.txt"} <= set(result["names"])
        # The browser refuses a plain request relying on the login cookie (no credentialed
        # CORS grant, and no cookie on a cross-site request): a network error, no response.
        assert result["cookie"].startswith("TypeError"), result
    # With the token, a plain request from an origin the server does not list is refused
    # by the browser too (no CORS grant), while the tunnel, given the same token, works.
    assert foreign["token"].startswith("TypeError"), foreign
    # For a listed origin, jupyter_server grants CORS to a token-carrying request: there
    # a plain fetch with the token works as well (the tunnel is not the only way in).
    assert allowed["token"] == "status 200", allowed


def test_binary_upload_and_download_are_byte_exact(context: Any, setup: Setup) -> None:
    page = open_page(context, setup.page)
    result = run(
        page,
        setup,
        """
        const tunnel = await connect();
        const expected = new Uint8Array(256 * 64).map((_, i) => i % 256);
        // Download: the file on disk holds every byte value.
        const down = await tunnel.fetch(a.server + "files/all-bytes.bin");
        const got = new Uint8Array(await down.arrayBuffer());
        const same = (x) => x.length === expected.length && x.every((b, i) => b === expected[i]);
        const downloadExact = same(got);
        // Upload through the Contents API (base64 in JSON), the request body sent as bytes.
        let binary = "";
        for (const b of expected) binary += String.fromCharCode(b);
        const model = { type: "file", format: "base64", content: btoa(binary) };
        const body = new TextEncoder().encode(JSON.stringify(model));
        const up = await tunnel.fetch(new Request(a.server + "api/contents/uploaded.bin", {
          method: "PUT", body, headers: { "Content-Type": "application/json" },
        }));
        const upModel = await up.json();
        // And back again, as the Contents API returns it.
        const back = await tunnel.fetch("api/contents/uploaded.bin?content=1&format=base64");
        const backText = atob((await back.json()).content);
        const backBytes = Uint8Array.from(backText, (c) => c.charCodeAt(0));
        tunnel.close();
        return {
          downStatus: down.status,
          downLength: got.length,
          downloadExact,
          upStatus: up.status,
          upSize: upModel.size,
          roundTripExact: same(backBytes),
        };
        """,
    )
    assert result["downStatus"] == 200
    assert result["downLength"] == len(ALL_BYTES)
    assert result["downloadExact"] is True
    assert result["upStatus"] == 201, result
    assert result["upSize"] == len(ALL_BYTES)
    assert (setup.root / "uploaded.bin").read_bytes() == ALL_BYTES
    assert result["roundTripExact"] is True


KERNEL_CODE = """
import sys
from IPython.display import display
print("to stdout")
print("to stderr", file=sys.stderr)
display({"text/plain": "a display", "text/markdown": "**a display**"}, raw=True)
6 * 7
"""


def test_jupyterlab_services_kernel_outputs_through_the_tunnel(context: Any, setup: Setup) -> None:
    page = open_page(context, setup.page)
    result = run(
        page,
        setup,
        """
        const tunnel = await connect();
        const kernels = new services.KernelManager({ serverSettings: settingsFor(tunnel) });
        const kernel = await kernels.startNew({ name: "python3" });
        const execute = async (code) => {
          const outputs = [];
          const future = kernel.requestExecute({ code });
          future.onIOPub = (msg) => {
            const kinds = ["stream", "display_data", "execute_result", "error"];
            if (kinds.includes(msg.header.msg_type)) {
              outputs.push({ type: msg.header.msg_type, content: msg.content });
            }
          };
          let reply;
          try {
            reply = (await future.done).content;
          } catch (e) {
            reply = { status: "rejected", error: errorText(e) };
          }
          return { reply, outputs };
        };
        const ok = await execute(a.code);
        const bad = await execute("1 / 0");
        const running = [...kernels.running()].map((k) => k.id);
        const id = kernel.id;
        await kernel.shutdown();
        kernels.dispose();
        tunnel.close();
        return { ok, bad, running, id };
        """,
        code=KERNEL_CODE,
    )
    ok, bad = result["ok"], result["bad"]
    assert ok["reply"]["status"] == "ok", ok
    assert stream_texts(ok["outputs"]) == {"stdout": "to stdout\n", "stderr": "to stderr\n"}
    displays = [o["content"]["data"] for o in ok["outputs"] if o["type"] == "display_data"]
    assert displays == [{"text/plain": "a display", "text/markdown": "**a display**"}]
    results = [o["content"]["data"] for o in ok["outputs"] if o["type"] == "execute_result"]
    assert results == [{"text/plain": "42"}]
    errors = [o["content"] for o in bad["outputs"] if o["type"] == "error"]
    assert [(e["ename"], e["evalue"]) for e in errors] == [
        ("ZeroDivisionError", "division by zero")
    ]
    assert bad["reply"]["status"] in ("error", "rejected"), bad
    assert result["id"] in result["running"]


def test_session_and_contents_managers_through_the_tunnel(context: Any, setup: Setup) -> None:
    page = open_page(context, setup.page)
    result = run(
        page,
        setup,
        """
        const tunnel = await connect();
        const serverSettings = settingsFor(tunnel);
        const contents = new services.ContentsManager({ serverSettings });
        const saved = await contents.save("saved-by-services.txt", {
          type: "file", format: "text", content: "saved through the tunnel\\n",
        });
        const listing = await contents.get("");
        const sessions = new services.SessionManager({
          serverSettings,
          kernelManager: new services.KernelManager({ serverSettings }),
        });
        const session = await sessions.startNew({
          path: "notebook.ipynb", type: "notebook", name: "notebook.ipynb",
          kernel: { name: "python3" },
        });
        await sessions.refreshRunning();
        const running = [...sessions.running()].map((s) => s.path);
        const reply = await session.kernel.requestExecute({ code: "x = 1" }).done;
        await session.shutdown();
        await sessions.refreshRunning();
        const after = [...sessions.running()].map((s) => s.path);
        sessions.dispose();
        tunnel.close();
        return {
          saved: saved.path,
          names: listing.content.map((f) => f.name),
          running,
          after,
          status: reply.content.status,
        };
        """,
    )
    assert result["saved"] == "saved-by-services.txt"
    assert "saved-by-services.txt" in result["names"]
    assert (setup.root / "saved-by-services.txt").read_text() == "saved through the tunnel\n"
    assert result["running"] == ["notebook.ipynb"]
    assert result["status"] == "ok"
    assert result["after"] == []


COMM_TARGET = """
from comm import get_comm_manager

def _open(comm, open_msg):
    @comm.on_msg
    def _echo(msg):
        buffers = [bytes(b)[::-1] for b in msg["buffers"]]
        comm.send(data={"echo": msg["content"]["data"], "sizes": [len(b) for b in buffers]},
                  buffers=buffers)

get_comm_manager().register_target("hows-echo", _open)
"""


def test_comm_message_with_a_binary_buffer_round_trips(context: Any, setup: Setup) -> None:
    page = open_page(context, setup.page)
    result = run(
        page,
        setup,
        """
        const tunnel = await connect();
        const kernels = new services.KernelManager({ serverSettings: settingsFor(tunnel) });
        const kernel = await kernels.startNew({ name: "python3" });
        const setupReply = await kernel.requestExecute({ code: a.code }).done;
        const comm = kernel.createComm("hows-echo");
        const answer = new Promise((resolve) => { comm.onMsg = resolve; });
        await comm.open({}).done;
        const payload = new Uint8Array(256).map((_, i) => i);
        comm.send({ method: "update", state: { value: 7 } }, {}, [payload.buffer]);
        const msg = await answer;
        const buffer = msg.buffers[0];
        const view = buffer instanceof ArrayBuffer ? new Uint8Array(buffer)
          : new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
        await kernel.shutdown();
        kernels.dispose();
        tunnel.close();
        return {
          setup: setupReply.content.status,
          data: msg.content.data,
          bytes: Array.from(view),
        };
        """,
        code=COMM_TARGET,
    )
    assert result["setup"] == "ok"
    assert result["data"] == {"echo": {"method": "update", "state": {"value": 7}}, "sizes": [256]}
    assert result["bytes"] == list(range(255, -1, -1))


def _io_bytes(pid: int) -> int:
    """Bytes the process has read and written with system calls (files and sockets)."""
    fields = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    return int(fields["rchar"]) + int(fields["wchar"])


def _settled_io_bytes(pid: int) -> int:
    """The process's I/O count once it has stopped moving for half a second."""
    before = _io_bytes(pid)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = _io_bytes(pid)
        if now - before < 1024 * 1024:
            return now
        before = now
    return _io_bytes(pid)


def test_abort_of_a_large_download_cancels_it_on_the_server(context: Any, setup: Setup) -> None:
    page = open_page(context, setup.page)
    run(page, setup, "window.tunnel = await connect();")
    start = _settled_io_bytes(setup.pid)
    result = run(
        page,
        setup,
        """
        const controller = new AbortController();
        const response = await window.tunnel.fetch("files/big.bin", { signal: controller.signal });
        const reader = response.body.getReader();
        let received = 0;
        while (received < 1024 * 1024) {
          const { value, done } = await reader.read();
          if (done) break;
          received += value.length;
        }
        controller.abort();
        let after;
        try {
          while (true) {
            const { value, done } = await reader.read();
            if (done) { after = "done"; break; }
            received += value.length;
          }
        } catch (e) {
          after = e.name;
        }
        // The tunnel is still good for the next request.
        const next = await window.tunnel.fetch("api/contents/hello.txt?content=1");
        return { status: response.status, length: response.headers.get("content-length"),
                 received, after, next: (await next.json()).content };
        """,
    )
    moved = _settled_io_bytes(setup.pid) - start
    run(page, setup, "window.tunnel.close();")
    assert result["status"] == 200
    assert result["length"] == str(BIG_SIZE)
    assert result["after"] == "AbortError", result
    assert 1024 * 1024 <= result["received"] < BIG_SIZE
    assert result["next"] == "hello from the server's disk\n"
    # The server stopped reading and sending the file: it moved a few frames' worth after
    # the abort, not the rest of the 512 MiB (which it would if the cancel never arrived).
    assert moved < 64 * 1024 * 1024, f"the server moved {moved} bytes after the abort"


def test_foreign_origin_is_refused_with_a_clear_message(context: Any, setup: Setup) -> None:
    # A page on a port the server does not allow, but on the server's own site: the
    # browser sends the login cookie, so the origin alone is what gets it refused.
    log_in(context, setup)
    page = open_page(context, setup.foreign_page)
    result = run(
        page,
        setup,
        """
        const out = {};
        const attempt = async (options) => {
          try {
            const tunnel = await client.connect({ url: a.server, ...options });
            const r = await tunnel.fetch("api/contents/hello.txt?content=1");
            const transport = tunnel.transport;
            tunnel.close();
            return `connected (${transport}): ${r.status}`;
          } catch (e) {
            return errorText(e);
          }
        };
        out.cookie = await attempt({});
        out.token = await attempt({ token: a.token });
        try {
          out.diagnose = JSON.stringify(await client.diagnose({ url: a.server }));
        } catch (e) {
          out.diagnose = errorText(e);
        }
        return out;
        """,
    )
    print(result)
    assert not result["cookie"].startswith("connected"), result
    assert "Error" in result["cookie"].split(":")[0], result
    # connect() tells the origin apart from an unreachable server (the client's own code
    # answers every origin; diagnose refuses this one) and names the flag that fixes it.
    assert (
        f"this page's origin {setup.foreign_page.rstrip('/')} is not allowed" in result["cookie"]
    ), result
    assert f"--ServerApp.allow_origin='{setup.foreign_page.rstrip('/')}'" in result["cookie"]
    # diagnose() is refused too (its origin check applies), and says the origin may be why.
    assert "Error" in result["diagnose"].split(":")[0], result
    assert "origin is not allowed" in result["diagnose"], result
    assert "allow_origin" in result["diagnose"], result
    # jupyter_server's own rule, which the tunnel keeps: a token-authenticated request
    # skips the origin check (IdentityProvider.should_check_origin), as it does for the
    # REST API and kernel sockets. allow_origin guards cookie-authenticated pages.
    assert result["token"] == "connected (websocket): 200", result


def test_wrong_token_is_refused_and_diagnose_says_the_origin_is_fine(
    context: Any, setup: Setup
) -> None:
    page = open_page(context, setup.page)
    result = run(
        page,
        setup,
        """
        const out = {};
        try { await connect(); out.right = "connected"; } catch (e) { out.right = errorText(e); }
        try {
          await client.connect({ url: a.server, token: "not-the-token" });
          out.wrong = "connected";
        } catch (e) {
          out.wrong = errorText(e);
        }
        out.diagnose = await client.diagnose({ url: a.server });
        return out;
        """,
    )
    print(result)
    assert result["right"] == "connected"
    assert result["wrong"] != "connected"
    assert "token" in result["wrong"].lower(), result
    # The origin is allowed, so the unauthenticated diagnose socket answers.
    assert result["diagnose"]["extension_version"]
    assert result["diagnose"]["has_authentication_cookie"] is False


def test_wrong_token_over_polling_is_a_readable_403(context: Any, setup: Setup) -> None:
    # The polling endpoint's refusal carries the CORS headers of the allowed origin, so
    # the page reads a 403 about its credentials (not "Failed to fetch": unreachable).
    page = open_page(context, setup.page)
    result = run(
        page,
        setup,
        """
        try {
          await client.connect({ url: a.server, token: "not-the-token", transports: ["polling"] });
          return { connected: true };
        } catch (e) {
          const failed = e.failures[0].error;
          return { kind: failed.kind, status: failed.status, message: failed.message };
        }
        """,
    )
    assert result["kind"] == "refused", result
    assert result["status"] == 403, result
    assert "credentials (403: Polling request not authenticated" in result["message"], result


def test_login_cookie_does_not_authenticate_a_cross_site_page_but_the_token_does(
    context: Any, setup: Setup
) -> None:
    cookies = log_in(context, setup)
    names = {c["name"] for c in cookies}
    assert "_xsrf" in names, cookies
    assert any(n.startswith("username-") for n in names), cookies
    # Jupyter sets no SameSite attribute: Chromium treats the cookies as SameSite=Lax.
    assert {c["sameSite"] for c in cookies} <= {"Lax", "None"}
    check = """
        const out = { diagnose: await client.diagnose({ url: a.server }) };
        try {
          const tunnel = await client.connect({ url: a.server });
          const r = await tunnel.fetch("api/contents/hello.txt?content=1");
          out.cookieOnly = `${r.status}`;
          tunnel.close();
        } catch (e) {
          out.cookieOnly = errorText(e);
        }
        const tunnel = await connect();
        const r = await tunnel.fetch("api/contents/hello.txt?content=1");
        out.withToken = `${r.status}`;
        tunnel.close();
        return out;
    """
    cross_site = run(open_page(context, setup.page), setup, check)
    same_site = run(open_page(context, setup.same_site_page), setup, check)
    print({"cross_site": cross_site, "same_site": same_site})
    # Same site (127.0.0.1:Q -> 127.0.0.1:P): the browser sends the login cookie, and it
    # alone authenticates the tunnel. This is the original README's advice at work...
    assert same_site["diagnose"]["has_authentication_cookie"] is True
    assert same_site["cookieOnly"] == "200"
    # ...which fails for a page on another site (localhost:Q): the same browser, logged
    # in, withholds the cookie from the cross-site upgrade, and only the token works.
    assert cross_site["diagnose"]["has_authentication_cookie"] is False
    assert cross_site["cookieOnly"] != "200"
    assert "Error" in cross_site["cookieOnly"].split(":")[0], cross_site
    assert "token" in cross_site["cookieOnly"], cross_site
    assert cross_site["withToken"] == "200"
    assert same_site["withToken"] == "200"


POLLING_KERNEL = """
        const kernels = new services.KernelManager({ serverSettings: settingsFor(window.tunnel) });
        window.kernel = await kernels.startNew({ name: "python3" });
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
    page = open_page(context, setup.page)
    result = run(
        page,
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
    blocked = {"on": True, "refused": 0}

    def tunnel_socket(ws: Any) -> None:
        if blocked["on"]:
            blocked["refused"] += 1
            ws.close(code=1011, reason="blocked by the test's network")
        else:
            ws.connect_to_server()

    # Only the tunnel socket (not diagnose, not the proxied kernel sockets) is blocked.
    page.route_web_socket(re.compile(r"/http_over_websocket\?"), tunnel_socket)
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
    assert blocked["refused"] >= 1
    assert before["transport"] == "polling"
    assert before["first"] == {"status": "ok", "texts": "before the upgrade\n"}

    blocked["on"] = False
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


def test_tunnel_websocket_has_the_browser_websocket_interface(context: Any, setup: Setup) -> None:
    """Kernel channels in Jupyter's binary v1 protocol, by hand: blob and arraybuffer, close."""
    page = open_page(context, setup.page)
    result = run(
        page,
        setup,
        """
        const tunnel = await connect();
        const started = await tunnel.fetch("api/kernels", { method: "POST", body: "{}" });
        const kernel = await started.json();
        const session = crypto.randomUUID();
        const url = a.server.replace(/^http/, "ws") +
          `api/kernels/${kernel.id}/channels?session_id=${session}`;
        // Jupyter's v1 kernel WebSocket framing: offsets, then channel and message parts.
        const encode = (channel, parts) => {
          const chunks = [channel, ...parts].map((p) => new TextEncoder().encode(p));
          const count = chunks.length + 1;
          const offsets = [8 * (1 + count)];
          for (const c of chunks) offsets.push(offsets[offsets.length - 1] + c.length);
          const out = new Uint8Array(offsets[offsets.length - 1]);
          const view = new DataView(out.buffer);
          view.setBigUint64(0, BigInt(count), true);
          offsets.forEach((o, i) => view.setBigUint64(8 * (i + 1), BigInt(o), true));
          chunks.forEach((c, i) => out.set(c, offsets[i]));
          return out;
        };
        const decode = (buffer) => {
          const view = new DataView(buffer);
          const count = Number(view.getBigUint64(0, true));
          const offsets = [];
          for (let i = 0; i < count; i++) {
            offsets.push(Number(view.getBigUint64(8 * (i + 1), true)));
          }
          const part = (i) => new TextDecoder().decode(buffer.slice(offsets[i], offsets[i + 1]));
          return { channel: part(0), header: JSON.parse(part(1)) };
        };
        const request = (id) => encode("shell", [
          JSON.stringify({ msg_id: id, msg_type: "kernel_info_request", username: "t",
                           session, date: new Date().toISOString(), version: "5.3" }),
          "{}", "{}", "{}",
        ]);

        const ws = new tunnel.WebSocket(url, ["v1.kernel.websocket.jupyter.org"]);
        const out = { initial: ws.readyState, binaryTypeDefault: ws.binaryType, events: [] };
        const replies = [];
        let wanted = null;
        ws.addEventListener("open", () => out.events.push("open (listener)"));
        ws.onmessage = async (event) => {
          const raw = event.data;
          const kind = raw instanceof Blob ? "Blob" : raw instanceof ArrayBuffer ? "ArrayBuffer"
            : typeof raw;
          const buffer = raw instanceof Blob ? await raw.arrayBuffer() : raw;
          const msg = decode(buffer);
          if (msg.header.msg_type === "kernel_info_reply") {
            replies.push({ kind, channel: msg.channel });
            if (wanted) wanted();
          }
        };
        const nextReply = () => new Promise((resolve) => { wanted = resolve; });
        await new Promise((resolve, reject) => {
          ws.onopen = () => { out.events.push("open (handler)"); resolve(); };
          ws.onerror = () => reject(new Error("the kernel socket did not open"));
        });
        out.open = ws.readyState;
        out.protocol = ws.protocol;
        out.url = ws.url === url;

        let got = nextReply();
        ws.send(request("first"));  // a Uint8Array
        await got;
        ws.binaryType = "arraybuffer";
        got = nextReply();
        ws.send(request("second").buffer);  // an ArrayBuffer
        await got;
        got = nextReply();
        ws.send(new Blob([request("third")]));  // a Blob
        await got;
        out.replies = replies;

        const closed = new Promise((resolve) => {
          ws.onclose = (event) => resolve({ code: event.code, reason: event.reason,
                                            wasClean: event.wasClean });
        });
        ws.close(4321, "done here");
        out.closing = ws.readyState;
        out.close = await closed;
        out.final = ws.readyState;
        await tunnel.fetch(`api/kernels/${kernel.id}`, { method: "DELETE" });
        tunnel.close();
        return out;
        """,
    )
    print(result)
    assert result["initial"] == 0
    assert result["binaryTypeDefault"] == "blob"
    assert result["open"] == 1
    assert result["protocol"] == "v1.kernel.websocket.jupyter.org"
    assert result["url"] is True
    assert sorted(result["events"]) == ["open (handler)", "open (listener)"]
    assert result["replies"] == [
        {"kind": "Blob", "channel": "shell"},
        {"kind": "ArrayBuffer", "channel": "shell"},
        {"kind": "ArrayBuffer", "channel": "shell"},
    ]
    assert result["closing"] == 2
    # The close code comes back as a direct socket's would. (Tornado echoes the code of a
    # client's close frame but not its reason, so the reason is not checked.)
    assert result["close"]["code"] == 4321
    assert result["close"]["wasClean"] is True
    assert result["final"] == 3


def test_binary_request_bodies_arrive_byte_exact(context: Any, setup: Setup) -> None:
    """Every body type fetch accepts for bytes, echoed by a real handler in the server."""
    page = open_page(context, setup.page)
    result = run(
        page,
        setup,
        """
        const tunnel = await connect();
        const allBytes = new Uint8Array(256 * 64).map((_, i) => i % 256);
        // 3 MiB that is not a repeating pattern: many frames, and order matters.
        const big = new Uint8Array(3 * 1024 * 1024);
        let x = 12345;
        for (let i = 0; i < big.length; i++) {
          x = (x * 1103515245 + 12345) >>> 0;
          big[i] = x >>> 24;
        }
        const digest = async (bytes) => Array.from(
          new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)),
          (b) => b.toString(16).padStart(2, "0"),
        ).join("");
        const bodies = {
          uint8array: allBytes,
          arraybuffer: allBytes.buffer,
          dataview: new DataView(allBytes.buffer),
          blob: new Blob([allBytes], { type: "application/x-test" }),
          request: null,  // a Request carrying the bytes
          big,
        };
        const out = {};
        for (const [name, body] of Object.entries(bodies)) {
          const expected = name === "big" ? big : allBytes;
          const response = name === "request"
            ? await tunnel.fetch(new Request(a.server + "hows-echo", {
                method: "PUT", body: allBytes, headers: { "Content-Type": "application/x-req" },
              }))
            : await tunnel.fetch("hows-echo", { method: "POST", body });
          const echoed = new Uint8Array(await response.arrayBuffer());
          out[name] = {
            status: response.status,
            length: response.headers.get("x-echo-length"),
            sha: response.headers.get("x-echo-sha256") === await digest(expected),
            echoed: echoed.length === expected.length && echoed.every((b, i) => b === expected[i]),
            type: response.headers.get("x-echo-content-type"),
          };
        }
        out.expectedBigSha = await digest(big);
        tunnel.close();
        return out;
        """,
    )
    for name in ("uint8array", "arraybuffer", "dataview", "blob", "request"):
        assert result[name]["status"] == 200, (name, result)
        assert result[name]["length"] == str(256 * 64), (name, result)
        assert result[name]["sha"] is True, (name, result)
        assert result[name]["echoed"] is True, (name, result)
    assert result["blob"]["type"] == "application/x-test"
    assert result["request"]["type"] == "application/x-req"
    big = result["big"]
    assert (big["status"], big["length"], big["sha"], big["echoed"]) == (
        200,
        str(3 * 1024 * 1024),
        True,
        True,
    )


def test_min_version_refusal_and_tunnel_diagnose(context: Any, setup: Setup) -> None:
    page = open_page(context, setup.page)
    result = run(
        page,
        setup,
        """
        const out = {};
        const tunnel = await connect({ minVersion: "0.0.7" });
        out.version = tunnel.version;
        out.diagnose = await tunnel.diagnose();
        tunnel.close();
        try {
          await connect({ minVersion: "999.0.0" });
          out.newer = "connected";
        } catch (e) {
          out.newer = errorText(e);
        }
        return out;
        """,
    )
    assert result["version"] == __version__
    assert result["diagnose"]["extension_version"] == __version__
    assert result["diagnose"]["is_outdated_extension"] is False
    assert result["diagnose"]["message_id"]
    assert result["newer"] != "connected"
    assert "999.0.0" in result["newer"], result
    assert __version__ in result["newer"], result
