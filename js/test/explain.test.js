// explain's words for refused credentials (no server needed): under JupyterHub, a
// WebSocket-only refusal with a token names the hub's rule on tokens in URLs.
import assert from "node:assert/strict";
import { test } from "node:test";

import { refusedWhy } from "../src/explain.js";

const ws = { transport: "websocket", error: { kind: "upgrade", message: "upgrade failed" } };
const polling = { transport: "polling", error: { kind: "refused", status: 403, message: "403" } };

test("a refused WebSocket to a hub user's server names the hub's token rule and the fixes", () => {
  const why = refusedWhy([ws], { token: "t", baseUrl: "https://hub.example/user/alice/" });
  assert.match(why, /JupyterHub \(5 or later\)/);
  assert.match(why, /Sec-Fetch-Mode: websocket/);
  assert.match(why, /JUPYTERHUB_ALLOW_TOKEN_IN_URL=1 in c\.Spawner\.environment/);
  assert.match(why, /Authorization header/);
});

test("elsewhere, or when polling was refused too, the token is wrong", () => {
  const plain = refusedWhy([ws], { token: "t", baseUrl: "http://127.0.0.1:8888/" });
  assert.match(plain, /^the token is wrong: use the one the server printed/);
  const both = refusedWhy([ws, polling], { token: "t", baseUrl: "https://hub.example/user/alice/" });
  assert.match(both, /^the token is wrong: use the one the server printed/);
});

test("without a token the words say why a logged-in browser still needs one", () => {
  const why = refusedWhy([ws], { baseUrl: "https://hub.example/user/alice/" });
  assert.match(why, /no token was given, and browsers do not send a login cookie/);
});
