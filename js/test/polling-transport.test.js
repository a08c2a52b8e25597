// The client over the polling transport against a real Jupyter server: the same fetch
// and WebSocket contract as over the WebSocket, the session's end, and the switch
// back to the WebSocket when it becomes possible.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { connect } from "../src/index.js";
import { checkBodyTypes, checkCloseEndsSockets, execute, pattern, runOnKernel } from "../testing/checks.js";
import { startServer } from "../testing/server.js";
import { WebSocketTransport } from "../src/ws-transport.js";

let server;
let tunnel;

before(async () => {
  server = await startServer();
  tunnel = await connect({ url: server.url, token: server.token, transports: ["polling"] });
});

after(async () => {
  tunnel?.close();
  await server?.stop();
});

test("connect over polling reports the transport and the server's version", async () => {
  assert.equal(tunnel.transport, "polling");
  assert.equal(tunnel.framing, "json");
  const answer = await tunnel.diagnose();
  assert.equal(tunnel.version, answer.extension_version);
});

test("fetch over polling: JSON, 404, byte-exact bodies of every type", async () => {
  const listing = await tunnel.fetch("api/contents");
  assert.equal(listing.status, 200);
  assert.equal((await listing.json()).type, "directory");
  const missing = await tunnel.fetch("api/contents/none");
  assert.equal(missing.status, 404);
  await missing.text();
  await checkBodyTypes(tunnel);
});

test("a large download over polling streams byte-exact, and abort cancels it", async () => {
  const bytes = pattern(3 * 1024 * 1024 + 1);
  const put = await tunnel.fetch("api/contents/big.bin", {
    method: "PUT",
    body: JSON.stringify({ type: "file", format: "base64", content: Buffer.from(bytes).toString("base64") }),
  });
  assert.equal(put.status, 201);
  await put.text();
  const download = await tunnel.fetch("files/big.bin");
  assert.deepEqual(new Uint8Array(await download.arrayBuffer()), bytes);

  const controller = new AbortController();
  const response = await tunnel.fetch("files/big.bin", { signal: controller.signal });
  const reader = response.body.getReader();
  await reader.read();
  controller.abort();
  await assert.rejects(reader.read(), { name: "AbortError" });
  const ok = await tunnel.fetch("api/status");
  assert.equal(ok.status, 200);
  await ok.text();
});

test("tunnel.WebSocket over polling runs code on a real kernel (v1 binary protocol)", async () => {
  const { stdout } = await runOnKernel(tunnel, "print('polled', 6 * 7)");
  assert.equal(stdout, "polled 42\n");
});

test("a proxied socket to an unknown kernel fails with error then close over polling", async () => {
  const socket = new tunnel.WebSocket("api/kernels/00000000-0000-0000-0000-000000000000/channels");
  const events = [];
  const event = await new Promise((resolve) => {
    socket.onerror = () => events.push("error");
    socket.onclose = resolve;
  });
  assert.deepEqual(events, ["error"]);
  assert.equal(event.code, 4404);
  assert.equal(socket.readyState, socket.CLOSED);
});

test("a wrong token over polling is refused in plain words", async () => {
  await assert.rejects(connect({ url: server.url, token: "wrong", transports: ["polling"] }), (e) => {
    assert.equal(e.kind, "refused");
    assert.match(e.message, /the token is wrong: use the one the server printed/);
    // The polling endpoint's own answer: a readable 403 that names the credentials.
    const [polling] = e.failures;
    assert.equal(polling.transport, "polling");
    assert.equal(polling.error.kind, "refused");
    assert.equal(polling.error.status, 403);
    assert.equal(polling.error.reason, "credentials");
    assert.match(polling.error.message, /credentials \(403: Polling request not authenticated/);
    return true;
  });
});

test("closing the tunnel ends the polling session on the server", async () => {
  const other = await connect({ url: server.url, token: server.token, transports: ["polling"] });
  const transport = other._transport;
  const sessionUrl = transport._sessionUrl("/recv?since=0");
  other.close();
  await assert.rejects(other.fetch("api/status"), TypeError);
  // The DELETE went out: the session is gone (404) soon after.
  let status = 0;
  for (let i = 0; i < 50 && status !== 404; i++) {
    await new Promise((r) => setTimeout(r, 100));
    status = (await fetch(sessionUrl, { headers: { Authorization: `token ${server.token}` } })).status;
  }
  assert.equal(status, 404);
});

test("a tunnel on polling moves to the WebSocket once an upgrade succeeds, without losing work", async () => {
  // The first upgrade attempts are refused for real (a WebSocket implementation whose
  // upgrades go to a closed port), then it is allowed through.
  let allow = false;
  class FlakyWebSocket extends WebSocket {
    constructor(url, protocols) {
      super(allow ? url : url.replace(/:\d+\//, ":9/"), protocols);
    }
  }
  const switching = await connect({ url: server.url, token: server.token, WebSocket: FlakyWebSocket, upgradeInterval: 300 });
  try {
    assert.equal(switching.transport, "polling");
    // Work in flight on polling while the switch happens: a kernel socket kept open.
    const { socket, kernelId, session } = await runOnKernel(switching, "x = 1", { keepOpen: true });
    const changes = [];
    const changed = new Promise((resolve) => {
      switching.addEventListener("transportchange", (e) => {
        changes.push(e.detail.transport);
        resolve();
      });
    });
    allow = true;
    await changed;
    assert.deepEqual(changes, ["websocket"]);
    assert.equal(switching.transport, "websocket");
    // The socket opened on polling still works after the switch...
    const polled = switching._retiring.size;
    assert.equal(polled, 1, "the polling session stays while the socket is open");
    assert.equal(await execute(socket, "print('still', x)", session), "still 1\n");
    const { stdout } = await runOnKernel(switching, "print('after', x if 'x' in dir() else 0)");
    assert.equal(stdout, "after 0\n"); // a new kernel, over the WebSocket
    const closed = new Promise((resolve) => socket.addEventListener("close", resolve, { once: true }));
    socket.close();
    await closed;
    // ...and once it closes, the polling session is closed too.
    for (let i = 0; i < 50 && switching._retiring.size; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(switching._retiring.size, 0);
    const r = await switching.fetch(`api/kernels/${kernelId}`, { method: "DELETE" });
    assert.equal(r.status, 204);
  } finally {
    switching.close();
  }
});

test("a request or socket started just as the upgrade lands goes to the new transport", async () => {
  // The switch (here done by hand with a real WebSocket transport) lands between the
  // moment fetch()/new WebSocket() start and the moment they pick a transport: they must
  // not pick the polling session that the switch has just retired and closed.
  const switching = await connect({ url: server.url, token: server.token, transports: ["polling"] });
  try {
    const ws = await WebSocketTransport.open(switching._options);
    const response = switching.fetch("api/status");
    const socket = new switching.WebSocket(`${server.url}api/kernels/not-a-kernel/channels`);
    const closed = new Promise((resolve) => socket.addEventListener("close", resolve, { once: true }));
    switching._use(ws);
    assert.equal(switching.transport, "websocket");
    assert.equal((await response).status, 200);
    // The socket reached the server (which refuses the unknown kernel), not a closed session.
    const event = await closed;
    assert.equal(switching._channels.size, 1, "no count is left on the retired transport");
    assert.equal(event.wasClean, false);
  } finally {
    switching.close();
  }
});

test("lost and repeated polling answers: every message is delivered once, in order", async () => {
  // A network that loses answers: the request reaches the real server, but the client
  // never sees the answer (every third send and every second recv with data), so the
  // client must repeat them, and the server's numbering must drop the duplicates.
  // Replies come in send answers (`send?since=N`); in the middle round the network also
  // strips that argument, as in front of a server without it, so they come by recv.
  let sends = 0;
  let recvs = 0;
  let lostSends = 0;
  let lostCarried = 0;
  let lostRecvs = 0;
  let stripSince = false;
  const lossy = async (url, init) => {
    if (stripSince && url.includes("/send?")) url = url.slice(0, url.indexOf("?"));
    const response = await fetch(url, init);
    if (url.includes("/send") && ++sends % 3 === 0) {
      lostSends++;
      const body = await response.clone().json().catch(() => null);
      if (body && body.messages?.length) lostCarried++;
      throw new TypeError("answer lost");
    }
    if (url.includes("/recv")) {
      const body = await response.clone().json().catch(() => null);
      if (body && body.messages?.length && ++recvs % 2 === 0) {
        lostRecvs++;
        throw new TypeError("answer lost");
      }
    }
    return response;
  };
  const flaky = await connect({ url: server.url, token: server.token, transports: ["polling"], fetch: lossy });
  try {
    const transport = flaky._transport;
    const frames = [];
    const deliver = transport.onTunnelMessage;
    transport.onTunnelMessage = (frame) => {
      frames.push(JSON.parse(frame));
      deliver(frame);
    };
    const bodies = Array.from({ length: 24 }, (_, i) => pattern(1000 + i * 37).map((b) => b ^ i));
    for (let round = 0; round < 3; round++) {
      stripSince = round === 1;
      const batch = bodies.slice(round * 8, round * 8 + 8);
      const replies = await Promise.all(batch.map((body) => flaky.fetch("hows-echo", { method: "POST", body })));
      for (let i = 0; i < batch.length; i++) {
        assert.deepEqual(new Uint8Array(await replies[i].arrayBuffer()), batch[i]);
      }
    }
    assert.ok(
      lostSends > 0 && lostCarried > 0 && lostRecvs > 0,
      `lost ${lostSends} sends (${lostCarried} carrying replies) and ${lostRecvs} recvs`,
    );
    // Each request's reply ended exactly once, and its first frame came first.
    const done = new Map();
    const first = new Map();
    for (const f of frames) {
      if (!first.has(f.message_id)) first.set(f.message_id, f);
      if (f.done) done.set(f.message_id, (done.get(f.message_id) || 0) + 1);
    }
    assert.equal(done.size, 24);
    for (const [id, count] of done) {
      assert.equal(count, 1, `message ${id} ended ${count} times`);
      assert.equal(first.get(id).status, 200);
    }
  } finally {
    flaky.close();
  }
});

test("tunnel.close() closes its proxied sockets over polling: error, then close 1006", () => checkCloseEndsSockets(server, ["polling"]));

test("a proxied socket closed with an application code over polling closes cleanly with that code", async () => {
  const { socket, kernelId } = await runOnKernel(tunnel, "pass", { keepOpen: true });
  const closed = new Promise((resolve) => (socket.onclose = resolve));
  socket.close(4321, "done here");
  const event = await closed;
  assert.equal(event.code, 4321);
  assert.equal(event.wasClean, true);
  assert.equal((await tunnel.fetch(`api/kernels/${kernelId}`, { method: "DELETE" })).status, 204);
});
