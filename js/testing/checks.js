// Checks shared by the node integration tests of both transports.
import assert from "node:assert/strict";

/** n bytes of a fixed pattern covering every byte value. */
export function pattern(n) {
  const bytes = new Uint8Array(n);
  for (let i = 0; i < n; i++) bytes[i] = (i * 2654435761) >>> 24;
  return bytes;
}

/** Every fetch body type reaches the server's echo handler byte-exact, Content-Type included. */
export async function checkBodyTypes(t) {
  const bytes = pattern(200_003);
  const form = new FormData();
  form.append("field", "value é");
  form.append("file", new Blob([bytes.subarray(0, 1000)], { type: "application/x-test" }), "a.bin");
  const cases = [
    ["ArrayBuffer", bytes.buffer, bytes, ""],
    ["Uint8Array view", bytes.subarray(7, 150_000), bytes.subarray(7, 150_000), ""],
    ["DataView", new DataView(bytes.buffer, 3, 1000), bytes.subarray(3, 1003), ""],
    ["Blob", new Blob([bytes], { type: "application/x-blob" }), bytes, "application/x-blob"],
    ["string", "héllo\u0000\u00ff", new TextEncoder().encode("héllo\u0000\u00ff"), "text/plain;charset=UTF-8"],
    ["URLSearchParams", new URLSearchParams({ a: "1 2", b: "é" }), new TextEncoder().encode("a=1+2&b=%C3%A9"),
      "application/x-www-form-urlencoded;charset=UTF-8"],
    ["empty", new Uint8Array(0), new Uint8Array(0), ""],
  ];
  for (const [name, body, expected, type] of cases) {
    const response = await t.fetch("hows-echo", { method: "PUT", body });
    assert.equal(response.status, 200, name);
    assert.equal(response.headers.get("X-Echo-Length"), String(expected.byteLength), name);
    assert.equal(response.headers.get("X-Echo-Content-Type"), type, name);
    assert.deepEqual(new Uint8Array(await response.arrayBuffer()), new Uint8Array(expected), name);
  }
  const response = await t.fetch("hows-echo", { method: "POST", body: form });
  const contentType = response.headers.get("X-Echo-Content-Type");
  assert.match(contentType, /^multipart\/form-data; boundary=/);
  const parsed = await new Response(await response.arrayBuffer(), { headers: { "Content-Type": contentType } }).formData();
  assert.equal(parsed.get("field"), "value é");
  assert.deepEqual(new Uint8Array(await parsed.get("file").arrayBuffer()), bytes.subarray(0, 1000));
}


const V1 = "v1.kernel.websocket.jupyter.org";
const enc = new TextEncoder();
const dec = new TextDecoder();

/** A Jupyter message in the kernel v1 WebSocket protocol (jupyter_server's layout). */
export function packV1(channel, msg, buffers = []) {
  const parts = [msg.header, msg.parent_header, msg.metadata, msg.content].map((p) => enc.encode(JSON.stringify(p)));
  parts.push(...buffers);
  const channelBytes = enc.encode(channel);
  const offsets = [8 * (1 + 1 + parts.length + 1)];
  offsets.push(offsets[0] + channelBytes.length);
  for (const p of parts) offsets.push(offsets[offsets.length - 1] + p.length);
  const out = new Uint8Array(offsets[offsets.length - 1]);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(offsets.length), true);
  offsets.forEach((o, i) => view.setBigUint64(8 * (i + 1), BigInt(o), true));
  out.set(channelBytes, offsets[0]);
  parts.forEach((p, i) => out.set(p, offsets[i + 1]));
  return out;
}

export function unpackV1(buffer) {
  const bytes = new Uint8Array(buffer);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(view.getBigUint64(0, true));
  const offsets = Array.from({ length: n }, (_, i) => Number(view.getBigUint64(8 * (i + 1), true)));
  const channel = dec.decode(bytes.subarray(offsets[0], offsets[1]));
  const parts = [];
  for (let i = 1; i < n - 1; i++) parts.push(bytes.subarray(offsets[i], offsets[i + 1]));
  const [header, parent_header, metadata, content] = parts.slice(0, 4).map((p) => JSON.parse(dec.decode(p)));
  return { channel, header, parent_header, metadata, content, buffers: parts.slice(4) };
}

function executeRequest(code, session) {
  return {
    header: { msg_id: crypto.randomUUID(), msg_type: "execute_request", username: "test", session, date: new Date().toISOString(), version: "5.3" },
    parent_header: {},
    metadata: {},
    content: { code, silent: false, store_history: false, user_expressions: {}, allow_stdin: false, stop_on_error: true },
  };
}

/**
 * Start a kernel through `tunnel.fetch`, open its channels with `tunnel.WebSocket` in
 * the v1 binary protocol, run `code`, and return {socket, stdout, kernelId}.
 */
export async function runOnKernel(tunnel, code, { keepOpen = false } = {}) {
  const started = await tunnel.fetch("api/kernels", { method: "POST", body: JSON.stringify({ name: "python3" }) });
  assert.equal(started.status, 201);
  const { id } = await started.json();
  const session = crypto.randomUUID();
  const socket = new tunnel.WebSocket(`${tunnel.url.replace(/^http/, "ws")}api/kernels/${id}/channels?session_id=${session}`, [V1]);
  assert.equal(socket.readyState, socket.CONNECTING);
  socket.binaryType = "arraybuffer";
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onclose = (e) => reject(new Error(`kernel socket closed: ${e.code} ${e.reason}`));
  });
  socket.onclose = null;
  assert.equal(socket.readyState, socket.OPEN);
  assert.equal(socket.protocol, V1);
  const stdout = await execute(socket, code, session);
  if (!keepOpen) {
    const closed = new Promise((resolve) => socket.addEventListener("close", resolve, { once: true }));
    socket.close(1000, "done");
    assert.equal(socket.readyState, socket.CLOSING);
    const event = await closed;
    assert.equal(socket.readyState, socket.CLOSED);
    assert.equal(event.code, 1000);
    const gone = await tunnel.fetch(`api/kernels/${id}`, { method: "DELETE" });
    assert.equal(gone.status, 204);
  }
  return { socket, stdout, kernelId: id, session };
}

/** Run `code` over an open v1 kernel socket; resolves with its stdout once the kernel is idle. */
export async function execute(socket, code, session) {
  let stdout = "";
  const deadline = Date.now() + 60000;
  // A fresh kernel may miss the first request while it starts: repeat until it answers.
  for (;;) {
    const request = executeRequest(code, session);
    let onMessage;
    const idle = new Promise((resolve) => {
      onMessage = (event) => {
        assert.ok(event.data instanceof ArrayBuffer, "binary frames come as ArrayBuffer");
        const msg = unpackV1(event.data);
        if (msg.parent_header.msg_id !== request.header.msg_id) return;
        if (msg.header.msg_type === "stream") stdout += msg.content.text;
        if (msg.header.msg_type === "status" && msg.content.execution_state === "idle") {
          socket.removeEventListener("message", onMessage);
          resolve(true);
        }
      };
      socket.addEventListener("message", onMessage);
    });
    socket.send(packV1("shell", request));
    const answered = await Promise.race([idle, new Promise((r) => setTimeout(() => r(false), 5000))]);
    if (answered) break;
    socket.removeEventListener("message", onMessage); // a late answer to this try is ignored
    stdout = "";
    if (Date.now() > deadline) throw new Error("the kernel never answered");
  }
  return stdout;
}

/**
 * `tunnel.close()` ends the proxied sockets opened through it, as a dropped connection
 * does in a browser: error, then close 1006, and the server sees the kernel's client go.
 */
export async function checkCloseEndsSockets(server, transports) {
  const { connect } = await import("../src/index.js");
  const own = await connect({ url: server.url, token: server.token, transports, upgradeInterval: 0 });
  const { socket, kernelId } = await runOnKernel(own, "pass", { keepOpen: true });
  const events = [];
  socket.onerror = () => events.push(`error ${socket.readyState}`);
  const closed = new Promise((resolve) => {
    socket.onclose = (e) => {
      events.push(`close ${e.code} ${e.wasClean}`);
      resolve();
    };
  });
  own.close();
  const outcome = await Promise.race([closed.then(() => "closed"), new Promise((r) => setTimeout(() => r("still open"), 5000))]);
  assert.equal(outcome, "closed", "tunnel.close() must close the proxied sockets too");
  assert.deepEqual(events, ["error 1", "close 1006 false"]);
  assert.equal(socket.readyState, socket.CLOSED);
  // The server's side of the kernel socket went too.
  const auth = { headers: { Authorization: `token ${server.token}` } };
  let connections = -1;
  for (let i = 0; i < 50 && connections !== 0; i++) {
    await new Promise((r) => setTimeout(r, 100));
    connections = (await (await fetch(`${server.url}api/kernels/${kernelId}`, auth)).json()).connections;
  }
  assert.equal(connections, 0);
  await fetch(`${server.url}api/kernels/${kernelId}`, { method: "DELETE", ...auth });
}
