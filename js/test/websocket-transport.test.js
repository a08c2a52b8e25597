// The client against a real Jupyter server over the WebSocket transport: fetch
// (bodies byte-exact, streaming, abort), tunnel.WebSocket on a real kernel, diagnose,
// and connect()'s errors.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { connect, diagnose } from "../src/index.js";
import { checkBodyTypes, checkCloseEndsSockets, pattern, runOnKernel } from "../testing/checks.js";
import { startServer } from "../testing/server.js";

let server;
let tunnel;

before(async () => {
  server = await startServer();
  tunnel = await connect({ url: server.url, token: server.token, transports: ["websocket"] });
});

after(async () => {
  tunnel?.close();
  await server?.stop();
});

test("connect uses the WebSocket transport with binary framing and knows the version", async () => {
  assert.equal(tunnel.transport, "websocket");
  assert.equal(tunnel.framing, "binary");
  const status = await (await fetch(`${server.url}api/status`, { headers: { Authorization: `token ${server.token}` } })).json();
  assert.ok(status);
  const answer = await diagnose({ url: server.url });
  assert.match(tunnel.version, /^\d+\.\d+/);
  assert.equal(tunnel.version, answer.extension_version);
});

test("fetch returns a real Response with status, headers and JSON body", async () => {
  const response = await tunnel.fetch("api/contents");
  assert.ok(response instanceof Response);
  assert.equal(response.status, 200);
  assert.equal(response.ok, true);
  assert.match(response.headers.get("Content-Type"), /application\/json/);
  assert.equal(response.url, `${server.url}api/contents`);
  const listing = await response.json();
  assert.equal(listing.type, "directory");
});

test("fetch takes a Request and absolute URLs, and reports 404 as a response", async () => {
  const response = await tunnel.fetch(new Request(`${server.url}api/contents/missing.txt`));
  assert.equal(response.status, 404);
  await response.text();
  await assert.rejects(tunnel.fetch("http://elsewhere.invalid/api"), TypeError);
});

test("a binary file uploads through the contents API and downloads byte-exact", async () => {
  const bytes = pattern(300_000);
  const put = await tunnel.fetch("api/contents/blob.bin", {
    method: "PUT",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ type: "file", format: "base64", content: Buffer.from(bytes).toString("base64") }),
  });
  assert.equal(put.status, 201);
  await put.body.cancel();
  const download = await tunnel.fetch("files/blob.bin");
  assert.equal(download.status, 200);
  assert.deepEqual(new Uint8Array(await download.arrayBuffer()), bytes);
});

test("request bodies of every fetch type arrive byte-exact (binary framing)", () => checkBodyTypes(tunnel));

test("request bodies arrive byte-exact over legacy JSON framing too (body_base64)", async () => {
  const bytes = pattern(70_001);
  tunnel._transport.framing = "json";
  try {
    const response = await tunnel.fetch("hows-echo", { method: "POST", body: bytes });
    assert.deepEqual(new Uint8Array(await response.arrayBuffer()), bytes);
  } finally {
    tunnel._transport.framing = "binary";
  }
});

test("a streaming body arrives in chunks before the download ends", async () => {
  const bytes = pattern(2 * 1024 * 1024 + 3);
  const put = await tunnel.fetch("api/contents/big.bin", {
    method: "PUT",
    body: JSON.stringify({ type: "file", format: "base64", content: Buffer.from(bytes).toString("base64") }),
  });
  assert.equal(put.status, 201);
  await put.text();
  const response = await tunnel.fetch("files/big.bin");
  const reader = response.body.getReader();
  const chunks = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    chunks.push(value);
  }
  assert.ok(chunks.length > 1, `expected several chunks, got ${chunks.length}`);
  assert.deepEqual(new Uint8Array(await new Blob(chunks).arrayBuffer()), bytes);
});

test("abort before the reply rejects with AbortError; abort mid-body errors the stream", async () => {
  const already = new AbortController();
  already.abort();
  await assert.rejects(tunnel.fetch("api/contents", { signal: already.signal }), { name: "AbortError" });

  const controller = new AbortController();
  const response = await tunnel.fetch("files/big.bin", { signal: controller.signal });
  const reader = response.body.getReader();
  await reader.read();
  controller.abort();
  await assert.rejects(
    (async () => {
      for (;;) if ((await reader.read()).done) break;
    })(),
    { name: "AbortError" },
  );
  // The tunnel still works, and nothing is left in flight.
  const ok = await tunnel.fetch("api/status");
  assert.equal(ok.status, 200);
  await ok.text();
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(tunnel._pending.size, 0);
});

test("many concurrent requests each get their own reply", async () => {
  const responses = await Promise.all(
    Array.from({ length: 20 }, (_, i) => tunnel.fetch(`api/contents/nothing-${i}`)),
  );
  for (const r of responses) {
    assert.equal(r.status, 404);
    assert.match(await r.text(), new RegExp(`nothing-${responses.indexOf(r)}'`));
  }
});

test("POST through the tunnel passes (token-authenticated, no XSRF needed) and 204 has no body", async () => {
  const created = await tunnel.fetch("api/contents", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ type: "directory" }),
  });
  assert.equal(created.status, 201);
  const { path } = await created.json();
  const deleted = await tunnel.fetch(`api/contents/${encodeURIComponent(path)}`, { method: "DELETE" });
  assert.equal(deleted.status, 204);
  assert.equal(deleted.body, null);
  const head = await tunnel.fetch("files/blob.bin", { method: "HEAD" });
  assert.equal(head.status, 200);
  assert.equal(head.body, null);
  assert.equal(head.headers.get("Content-Length"), "300000");
});

test("diagnose answers through the tunnel and standalone", async () => {
  const answer = await tunnel.diagnose();
  assert.equal(typeof answer.extension_version, "string");
  assert.equal(answer.is_outdated_extension, false);
  const outdated = await diagnose({ url: server.url, minVersion: "999.0" });
  assert.equal(outdated.is_outdated_extension, true);
});

test("connect with a minVersion newer than the server rejects with the server's reason", async () => {
  await assert.rejects(connect({ url: server.url, token: server.token, minVersion: "999.0", transports: ["websocket"] }), (e) => {
    assert.equal(e.kind, "version");
    assert.match(e.message, /Requested version \(999\.0\) > Current version/);
    return true;
  });
});

test("a wrong token is refused with a message that says so", async () => {
  await assert.rejects(connect({ url: server.url, token: "wrong", transports: ["websocket"] }), (e) => {
    assert.equal(e.kind, "refused");
    assert.match(e.message, /the token is wrong: use the one the server printed/);
    assert.match(e.message, /doctor/);
    return true;
  });
  // Without a token: the message says why a logged-in browser still needs one.
  await assert.rejects(connect({ url: server.url, transports: ["websocket"] }), (e) => {
    assert.equal(e.kind, "refused");
    assert.match(e.message, /no token was given, and browsers do not send a login cookie/);
    return true;
  });
});

test("an unreachable server is reported as such", async () => {
  await assert.rejects(connect({ url: "http://127.0.0.1:9/", token: "x", transports: ["websocket"] }), (e) => {
    assert.equal(e.kind, "unreachable");
    assert.match(e.message, /not reachable/);
    return true;
  });
});

test("tunnel.WebSocket runs code on a real kernel in the v1 binary protocol", async () => {
  const { stdout } = await runOnKernel(tunnel, "print(6 * 7)");
  assert.equal(stdout, "42\n");
});

test("tunnel.WebSocket's interface: constants, url, send before open, bad close codes", async () => {
  const WS = tunnel.WebSocket;
  assert.equal(WS.CONNECTING, 0);
  assert.equal(WS.OPEN, 1);
  assert.equal(WS.CLOSING, 2);
  assert.equal(WS.CLOSED, 3);
  assert.ok(new WS("api/kernels/x/channels") instanceof EventTarget);
  const socket = new WS(`${server.url}api/kernels/nope/channels`);
  assert.equal(socket.url, `${server.url.replace("http", "ws")}api/kernels/nope/channels`);
  assert.equal(socket.binaryType, "blob");
  assert.throws(() => socket.send("x"), { name: "InvalidStateError" });
  assert.throws(() => socket.close(1001), { name: "InvalidAccessError" });
  assert.throws(() => new WS("ws://elsewhere.invalid/api"), { name: "SyntaxError" });
  // An unknown kernel: the socket fails to open and reports error then close.
  const events = [];
  await new Promise((resolve) => {
    socket.onerror = () => events.push("error");
    socket.onclose = (e) => {
      events.push(`close ${e.wasClean}`);
      resolve();
    };
  });
  assert.deepEqual(events, ["error", "close false"]);
  assert.equal(socket.readyState, WS.CLOSED);
});

test("a server that sends no hello (the original's JSON framing) still works, version from diagnose", async () => {
  // Upgrades without framing=binary: the real server then speaks the legacy JSON frames
  // and sends no hello, exactly as a server that does not know the option.
  class LegacyWebSocket extends WebSocket {
    constructor(url, protocols) {
      super(url.replace(/([?&])framing=binary&?/, "$1"), protocols);
    }
  }
  const legacy = await connect({ url: server.url, token: server.token, transports: ["websocket"], WebSocket: LegacyWebSocket, helloTimeout: 300 });
  try {
    assert.equal(legacy.framing, "json");
    assert.equal(legacy.version, (await diagnose({ url: server.url })).extension_version);
    const bytes = pattern(100_000);
    const echo = await legacy.fetch("hows-echo", { method: "POST", body: bytes });
    assert.deepEqual(new Uint8Array(await echo.arrayBuffer()), bytes);
  } finally {
    legacy.close();
  }
});

test("a dropped tunnel socket is reopened: later requests work", async () => {
  const again = await connect({ url: server.url, token: server.token, transports: ["websocket"] });
  try {
    const first = again._transport;
    first.ws.close(); // a real close of the tunnel socket, as when a network drops it
    await new Promise((resolve) => again.addEventListener("transportchange", resolve, { once: true }));
    assert.notEqual(again._transport, first);
    const r = await again.fetch("api/status");
    assert.equal(r.status, 200);
    await r.text();
  } finally {
    again.close();
  }
});

test("a request in flight when the tunnel closes rejects like a network error", async () => {
  const doomed = await connect({ url: server.url, token: server.token, transports: ["websocket"] });
  const pending = doomed.fetch("files/big.bin");
  doomed.close();
  await assert.rejects(pending, TypeError);
  await assert.rejects(doomed.fetch("api/status"), TypeError);
});

test("abort sends the protocol's cancel for that request, and the server ends it", async () => {
  const sent = [];
  class RecordingWebSocket extends WebSocket {
    send(data) {
      if (typeof data === "string") sent.push(JSON.parse(data));
      super.send(data);
    }
  }
  const recording = await connect({ url: server.url, token: server.token, transports: ["websocket"], WebSocket: RecordingWebSocket });
  try {
    const frames = [];
    const transport = recording._transport;
    const deliver = transport.onTunnelMessage;
    transport.onTunnelMessage = (frame) => {
      frames.push(frame);
      deliver(frame);
    };
    const put = await recording.fetch("api/contents/cancel.bin", {
      method: "PUT",
      body: JSON.stringify({ type: "file", format: "base64", content: Buffer.from(pattern(4 << 20)).toString("base64") }),
    });
    assert.equal(put.status, 201);
    await put.text();
    const controller = new AbortController();
    const response = await recording.fetch("files/cancel.bin", { signal: controller.signal });
    assert.equal(response.status, 200);
    const reader = response.body.getReader();
    await reader.read();
    controller.abort();
    await assert.rejects(reader.read(), { name: "AbortError" });
    const cancel = sent.find((m) => m.cancel === true);
    assert.ok(cancel, "a cancel message went out");
    assert.deepEqual(Object.keys(cancel).sort(), ["cancel", "message_id"]);
    // The server ends the cancelled request with exactly one final frame.
    const { parseReply } = await import("../src/codec.js");
    for (let i = 0; i < 50; i++) {
      if (frames.map(parseReply).some((f) => f.messageId === cancel.message_id && f.done)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const mine = frames.map(parseReply).filter((f) => f.messageId === cancel.message_id);
    assert.equal(mine.filter((f) => f.done).length, 1);
  } finally {
    recording.close();
  }
});

test("redirects under the server are followed, or returned with redirect: manual", async () => {
  const body = pattern(1000);
  const manual = await tunnel.fetch("hows-redirect?status=307", { method: "POST", body, redirect: "manual" });
  assert.equal(manual.status, 307);
  assert.equal(new URL(manual.headers.get("Location"), server.url).href, `${server.url}hows-echo`);
  await manual.text();
  // 307 keeps the method and the body; 303 (and 302 after a POST) becomes a GET.
  const kept = await tunnel.fetch("hows-redirect?status=307", { method: "POST", body });
  assert.equal(kept.redirected, true);
  assert.equal(kept.url, `${server.url}hows-echo`);
  assert.equal(kept.headers.get("X-Echo-Method"), "POST");
  assert.deepEqual(new Uint8Array(await kept.arrayBuffer()), body);
  const seeOther = await tunnel.fetch("hows-redirect?status=303", {
    method: "POST", body, headers: { "Content-Type": "application/x-gone" },
  });
  assert.equal(seeOther.headers.get("X-Echo-Method"), "GET");
  assert.equal(seeOther.headers.get("X-Echo-Length"), "0");
  // As fetch does, the GET goes without the headers that described the dropped body.
  assert.equal(seeOther.headers.get("X-Echo-Content-Type"), "");
  await seeOther.text();
  await assert.rejects(tunnel.fetch("hows-redirect", { redirect: "error" }), TypeError);
});

test("tunnel.close() closes its proxied sockets: error, then close 1006", () => checkCloseEndsSockets(server, ["websocket"]));

test("without any WebSocket implementation, connect says so (kind unsupported)", async () => {
  // As in a runtime without one (node 20 without --experimental-websocket).
  const saved = Object.getOwnPropertyDescriptor(globalThis, "WebSocket");
  Object.defineProperty(globalThis, "WebSocket", { value: undefined, configurable: true, writable: true });
  try {
    await assert.rejects(connect({ url: server.url, token: server.token, transports: ["websocket"] }), (e) => {
      assert.equal(e.kind, "unsupported");
      assert.match(e.message, /no WebSocket implementation here: pass one as connect\(\)'s WebSocket option/);
      assert.doesNotMatch(e.message, /not reachable/);
      return true;
    });
  } finally {
    Object.defineProperty(globalThis, "WebSocket", saved);
  }
});

test("a server that refuses minVersion without a reason is still reported as too old (from diagnose)", async () => {
  // As the original extension did: its close code 400 reaches a browser as 1006 with no
  // reason. Here the tunnel upgrade fails outright, and only diagnose can say why.
  class OriginalWebSocket extends WebSocket {
    constructor(url, protocols) {
      super(url.includes("/diagnose") ? url : url.replace("/http_over_websocket?", "/no-such-endpoint?"), protocols);
    }
  }
  await assert.rejects(
    connect({ url: server.url, token: server.token, minVersion: "999.0", transports: ["websocket"], WebSocket: OriginalWebSocket }),
    (e) => {
      assert.equal(e.kind, "version");
      assert.match(e.message, /older than the 999\.0 this page needs/);
      assert.doesNotMatch(e.message, /token/);
      return true;
    },
  );
});
