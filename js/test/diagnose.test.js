// tunnel.diagnose() and diagnose() behind a proxy that drops WebSocket upgrades: the
// tunnel works over polling there, and diagnose says so instead of calling the server
// unreachable. The words are the doctor command's.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { after, before, test } from "node:test";

import { connect, diagnose } from "../src/index.js";
import { POLLING_STILL_CONNECTS, PROXY_FIX, UPGRADES_DROPPED } from "../src/diagnose.js";
import { startDroppingProxy } from "../testing/dropping-proxy.js";
import { startServer } from "../testing/server.js";

let server;
let proxy;

before(async () => {
  server = await startServer();
  proxy = await startDroppingProxy(server.port);
});

after(async () => {
  await proxy?.close();
  await server?.stop();
});

test("the words are the doctor's (jupyter_http_over_ws/doctor/polling.py)", () => {
  const python = process.env.PYTHON || "python3";
  const probe = spawnSync(
    python,
    [
      "-c",
      "import json; from jupyter_http_over_ws.doctor import polling as p; " +
        "print(json.dumps([p.UPGRADES_DROPPED, p.POLLING_STILL_CONNECTS, p.PROXY_FIX]))",
    ],
    { encoding: "utf8" },
  );
  assert.equal(probe.status, 0, probe.stderr);
  assert.deepEqual(JSON.parse(probe.stdout), [UPGRADES_DROPPED, POLLING_STILL_CONNECTS, PROXY_FIX]);
});

test("behind a proxy that drops upgrades, tunnel.diagnose() resolves with what the tunnel learned", async () => {
  const direct = await diagnose({ url: server.url });
  const tunnel = await connect({ url: proxy.url, token: server.token, upgradeInterval: 0 });
  try {
    assert.equal(tunnel.transport, "polling");
    assert.ok(proxy.requests.some((r) => /^UPGRADE \/http_over_websocket\?\S* 400$/.test(r)), proxy.requests);
    const answer = await tunnel.diagnose();
    assert.equal(answer.extension_version, direct.extension_version);
    assert.equal(answer.extension_version, tunnel.version);
    assert.equal(answer.transport, "polling");
    assert.equal(answer.websocket, "dropped");
    assert.equal(answer.polling, "works");
    assert.equal(answer.is_outdated_extension, false);
    assert.equal(answer.has_authentication_cookie, null);
    assert.ok(answer.message.startsWith("WebSocket upgrades do not reach the server: "), answer.message);
    assert.ok(answer.message.includes(`, so ${UPGRADES_DROPPED}.`), answer.message);
    assert.ok(answer.message.includes("GET api/status through it answered 200"), answer.message);
    assert.ok(answer.message.includes(POLLING_STILL_CONNECTS), answer.message);
    assert.ok(!/not reachable|not loaded/.test(answer.message), answer.message);
    assert.equal(answer.fix, PROXY_FIX);
    // The diagnose socket went to the server as a plain request: the extension's 400.
    assert.ok(proxy.requests.some((r) => /^UPGRADE \/http_over_websocket\/diagnose \S*400$/.test(r)), proxy.requests);
  } finally {
    tunnel.close();
  }
});

test("behind a proxy that drops upgrades, diagnose() says so when it rejects", async () => {
  await assert.rejects(diagnose({ url: proxy.url, timeout: 5000 }), (error) => {
    assert.equal(error.kind, "unreachable");
    assert.equal(error.websocket, "dropped");
    assert.ok(error.message.includes(UPGRADES_DROPPED), error.message);
    assert.ok(error.message.includes(PROXY_FIX), error.message);
    assert.ok(!/not reachable|not loaded/.test(error.message), error.message);
    return true;
  });
});

test("behind a proxy that drops upgrades, a WebSocket-only connect() says so, not the token or the origin", async () => {
  await assert.rejects(connect({ url: proxy.url, token: server.token, transports: ["websocket"] }), (error) => {
    assert.equal(error.kind, "unreachable");
    assert.equal(error.websocket, "dropped");
    assert.ok(error.message.startsWith("WebSocket upgrades do not reach the server: "), error.message);
    assert.ok(error.message.includes(POLLING_STILL_CONNECTS), error.message);
    assert.ok(error.message.includes(PROXY_FIX), error.message);
    assert.ok(!/token|origin/.test(error.message.split("(tried")[0]), error.message);
    return true;
  });
});

test("a tunnel over polling whose diagnose answers nothing readable names both causes", async () => {
  // As for a page whose origin the server does not allow (a token-authenticated tunnel
  // needs no allowed origin): the diagnose socket fails, and its URL cannot be read.
  class NoDiagnose extends WebSocket {
    constructor(url, protocols) {
      super(url.includes("/diagnose") ? url.replace("/diagnose", "/no-such-endpoint") : url, protocols);
    }
  }
  const unreadable = (url, init) =>
    String(url).endsWith("/diagnose") ? Promise.reject(new TypeError("Failed to fetch")) : fetch(url, init);
  const tunnel = await connect({
    url: server.url,
    token: server.token,
    transports: ["polling"],
    WebSocket: NoDiagnose,
    fetch: unreadable,
  });
  try {
    const answer = await tunnel.diagnose();
    assert.equal(answer.websocket, "failed");
    assert.equal(answer.polling, "works");
    assert.equal(answer.extension_version, tunnel.version);
    assert.ok(answer.message.includes(UPGRADES_DROPPED), answer.message);
    assert.ok(answer.message.includes("origin is not allowed"), answer.message);
  } finally {
    tunnel.close();
  }
});

test("a tunnel on the WebSocket whose diagnose fails still rejects", async () => {
  class NoDiagnose extends WebSocket {
    constructor(url, protocols) {
      super(url.includes("/diagnose") ? url.replace("/diagnose", "/no-such-endpoint") : url, protocols);
    }
  }
  const tunnel = await connect({ url: server.url, token: server.token, WebSocket: NoDiagnose });
  try {
    assert.equal(tunnel.transport, "websocket");
    await assert.rejects(tunnel.diagnose(), { kind: "unreachable" });
  } finally {
    tunnel.close();
  }
});
