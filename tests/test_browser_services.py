"""An unmodified ``@jupyterlab/services`` in a real browser, through the tunnel: kernels,
sessions and contents managers, a comm with a binary buffer, and the tunnel's WebSocket
class by hand (Jupyter's binary v1 kernel protocol).

The servers and pages are :mod:`support.cross_origin`'s.
"""

from __future__ import annotations

from typing import Any

import pytest
from support.browser import assert_kernel_outputs, kernel_code
from support.browser import browser as browser
from support.browser import context as context
from support.browser import jp_asyncio_loop as jp_asyncio_loop
from support.browser import jp_server_cleanup as jp_server_cleanup
from support.cross_origin import Setup, run_on_page
from support.cross_origin import setup as setup

pytestmark = pytest.mark.slow

#: What the kernel test displays.
DISPLAY = {"text/plain": "a display", "text/markdown": "**a display**"}


def test_jupyterlab_services_kernel_outputs_through_the_tunnel(context: Any, setup: Setup) -> None:
    result = run_on_page(
        context,
        setup,
        """
        const tunnel = await connect();
        const { kernels, kernel } = await startKernel(tunnel);
        const ok = await execute(kernel, a.code);
        const bad = await execute(kernel, "1 / 0");
        const running = [...kernels.running()].map((k) => k.id);
        const id = kernel.id;
        await kernel.shutdown();
        kernels.dispose();
        tunnel.close();
        return { ok, bad, running, id };
        """,
        code=kernel_code(DISPLAY),
    )
    assert_kernel_outputs(result["ok"], result["bad"], DISPLAY)
    assert result["id"] in result["running"]


def test_session_and_contents_managers_through_the_tunnel(context: Any, setup: Setup) -> None:
    result = run_on_page(
        context,
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
    result = run_on_page(
        context,
        setup,
        """
        const tunnel = await connect();
        const { kernels, kernel } = await startKernel(tunnel);
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


def test_tunnel_websocket_has_the_browser_websocket_interface(context: Any, setup: Setup) -> None:
    """Kernel channels in Jupyter's binary v1 protocol, by hand: blob and arraybuffer, close."""
    result = run_on_page(
        context,
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
