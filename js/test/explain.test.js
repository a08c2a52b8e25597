// explain's words for refused credentials (no server needed): under JupyterHub, a
// WebSocket-only refusal with a token names the hub's rule on tokens in URLs.
import assert from "node:assert/strict";
import { test } from "node:test";

import { refusedWhy, withoutTokenWhy } from "../src/explain.js";

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

// Without a token, from a page whose location is known (withoutTokenWhy's third argument).
const hubUrl = "http://127.0.0.1:8000/user/alice/";
const page = (hostname, cookie = "") => ({ protocol: "http:", hostname, host: `${hostname}:3000`, cookie });

test("a page on another host is told the login cookie is not its to send, and the hub token fix", () => {
  const why = withoutTokenWhy([ws, polling], { baseUrl: hubUrl }, page("localhost"));
  assert.match(why, /^no token was given, and browsers do not send a login cookie/);
  assert.match(why, /they belong to 127\.0\.0\.1:8000 alone, and this page is on localhost:3000/);
  assert.match(why, /access:servers!user=alice; make one at http:\/\/127\.0\.0\.1:8000\/hub\/token/);
  assert.match(why, /Authorization header/);
  assert.match(why, /Python client/);
});

test("a page on the hub's host that cannot read _xsrf is told polling needs it, and the ways out", () => {
  const why = withoutTokenWhy([polling], { baseUrl: hubUrl }, page("127.0.0.1", "other=1"));
  assert.match(why, /polling request authenticated by a cookie also needs the server's _xsrf cookie/);
  assert.match(why, /set for \/user\/alice\/ only/);
  assert.match(why, /Use the WebSocket transport/);
  assert.match(why, /access:servers!user=alice/);
});

test("a page on the server's host whose cookie was refused is told to log in", () => {
  const why = withoutTokenWhy([ws, polling], { baseUrl: hubUrl }, page("127.0.0.1", "_xsrf=x"));
  assert.match(why, /log in by opening http:\/\/127\.0\.0\.1:8000\/user\/alice\/ once/);
  assert.match(why, /the hub's login then sets this server's own cookie/);
  const plain = withoutTokenWhy([ws], { baseUrl: "http://127.0.0.1:8888/" }, page("127.0.0.1"));
  assert.match(plain, /or pass the server's token \(connect\(\{ url, token \}\)\)/);
});
