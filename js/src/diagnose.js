// The `diagnose` endpoint: why a tunnel does not connect.
//
// It answers before authentication (only its origin is checked), so a page whose
// connect() failed can still learn the extension's version and whether it is too
// old. If even this socket fails, the server is unreachable, the extension is not
// loaded, the page's origin is not allowed, or a proxy in between drops WebSocket
// upgrades. The last one shows: the diagnose URL then answers a plain HTTP request
// (the extension's 400 for a request without `Upgrade`), and a tunnel still works
// over the polling transport, which `tunnel.diagnose()` reports instead of failing.

import { TunnelError } from "./errors.js";
import { DIAGNOSE_PATH } from "./names.js";
import { normalizeBaseUrl, toWebSocketUrl } from "./urls.js";

export { DIAGNOSE_PATH };

// The doctor command's words (jupyter_http_over_ws/doctor/polling.py, which is their
// home; js/test/diagnose.test.js checks that these are the same), so that a page
// behind such a proxy reads what `jupyter http-over-ws doctor` prints.

/** What a WebSocket upgrade that reaches the server without its `Upgrade` header means. */
export const UPGRADES_DROPPED = "a proxy in between drops WebSocket upgrades (it does not forward the Upgrade header)";
/** What still works then. */
export const POLLING_STILL_CONNECTS = "Clients with the polling transport still connect (they fall back to plain HTTP requests); clients that only speak WebSocket cannot.";
/** What fixes it. */
export const PROXY_FIX = "let the proxy pass WebSocket upgrades: forward the Upgrade and Connection headers over HTTP/1.1 (for nginx, in the location block: proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection \"upgrade\";)";

/** The extension's answer to a plain HTTP request at a WebSocket URL (no `Upgrade`). */
const UPGRADE_NOT_RECEIVED = 400;

/**
 * Ask the server's diagnose endpoint. Resolves with its JSON answer
 * ({message_id, extension_version, has_authentication_cookie, is_outdated_extension}).
 *
 * Options: `url` (the server's base URL), `minVersion` (sets is_outdated_extension),
 * `WebSocket` (an implementation, default the global one), `fetch` (for the plain
 * request that tells a dropped upgrade apart, default the global one), `timeout`
 * (ms, default 10000).
 */
export function diagnose({ url, minVersion, WebSocket: WS = globalThis.WebSocket, fetch: httpFetch, timeout = 10000 } = {}) {
  if (!url) return Promise.reject(new TypeError("diagnose() needs the server's url"));
  if (typeof WS !== "function") {
    return Promise.reject(new TypeError("no WebSocket implementation: pass one as the WebSocket option"));
  }
  const base = normalizeBaseUrl(url);
  const target = new URL(toWebSocketUrl(base) + DIAGNOSE_PATH);
  if (minVersion) target.searchParams.set("min_version", minVersion);
  return new Promise((resolve, reject) => {
    let settled = false;
    const ws = new WS(target.href);
    const finish = (error, value) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      try {
        ws.close();
      } catch {
        // already closed
      }
      if (error) reject(error);
      else resolve(value);
    };
    const timer = setTimeout(
      () => finish(new TunnelError("unreachable", `no answer from ${base} within ${timeout} ms`)),
      timeout,
    );
    ws.onopen = () => ws.send("diagnose");
    ws.onmessage = (event) => {
      try {
        finish(null, JSON.parse(String(event.data)));
      } catch {
        finish(new TunnelError("protocol", "the diagnose endpoint answered something that is not JSON"));
      }
    };
    let failed = false;
    const refused = async () => {
      if (settled || failed) return;
      failed = true;
      if (await upgradesDropped({ url: base, fetch: httpFetch, timeout })) {
        finish(
          new TunnelError(
            "unreachable",
            `${droppedMessage(base)} ${POLLING_STILL_CONNECTS} Fix: ${PROXY_FIX}.`,
            { websocket: "dropped" },
          ),
        );
        return;
      }
      finish(
        new TunnelError(
          "unreachable",
          `the diagnose endpoint at ${base} refused or failed: the server is not reachable, ` +
            "the jupyter-http-over-ws extension is not loaded there, or this page's origin is " +
            "not allowed (ServerApp.allow_origin / allow_origin_pat). " +
            `Run: jupyter http-over-ws doctor ${base} --origin <this page's origin>`,
        ),
      );
    };
    ws.onclose = refused;
    ws.onerror = () => setTimeout(refused, 50); // node 20 sends no close after a refused upgrade
  });
}

/**
 * Whether WebSocket upgrades to `url` are dropped on the way: its diagnose URL answers
 * a plain HTTP request as the extension does when a request arrives without `Upgrade`
 * (400), which a page can read only if the server allows its origin. Never rejects.
 */
export async function upgradesDropped({ url, fetch: httpFetch = defaultFetch(), timeout = 10000 }) {
  if (typeof httpFetch !== "function") return false;
  try {
    const response = await httpFetch(normalizeBaseUrl(url) + DIAGNOSE_PATH, {
      credentials: "omit",
      cache: "no-store",
      ...(typeof AbortSignal.timeout === "function" ? { signal: AbortSignal.timeout(timeout) } : {}),
    });
    try {
      await response.text();
    } catch {
      // the status is what matters
    }
    return response.status === UPGRADE_NOT_RECEIVED;
  } catch {
    return false; // unreachable, or this page may not read the answer (its origin)
  }
}

/**
 * What a tunnel working over the polling transport knows when the diagnose WebSocket
 * fails (`error`): the extension's version, whether a request through the tunnel
 * works, and whether WebSocket upgrades are dropped between the page and the server.
 * `tunnel.diagnose()` resolves with this instead of rejecting.
 */
export async function diagnoseOverPolling(tunnel, error, { fetch: httpFetch, timeout = 10000 } = {}) {
  const base = tunnel.url;
  const dropped = await upgradesDropped({ url: base, fetch: httpFetch, timeout });
  const status = await statusThrough(tunnel, timeout);
  const works = status >= 200 && status < 300;
  const why = dropped
    ? droppedMessage(base)
    : `The diagnose WebSocket at ${base}${DIAGNOSE_PATH} failed (${error.message}): ${UPGRADES_DROPPED}, ` +
      "or this page's origin is not allowed (ServerApp.allow_origin / allow_origin_pat), which a " +
      "tunnel authenticated with the token does not need.";
  const polling = works
    ? `This tunnel works over the polling transport: GET api/status through it answered ${status}. ${POLLING_STILL_CONNECTS}`
    : `This tunnel is on the polling transport, but GET api/status through it ${status ? `answered ${status}` : "failed"}.`;
  return {
    message_id: null,
    extension_version: tunnel.version,
    has_authentication_cookie: null,
    // The polling session opened, so the server met minVersion (it refuses otherwise).
    is_outdated_extension: false,
    transport: "polling",
    websocket: dropped ? "dropped" : "failed",
    polling: works ? "works" : "failed",
    message: `${why} ${polling}`,
    fix: PROXY_FIX,
  };
}

function droppedMessage(base) {
  return (
    `WebSocket upgrades do not reach the server: the diagnose WebSocket at ${base}${DIAGNOSE_PATH} ` +
    `failed, while that URL answers plain HTTP requests with the extension's HTTP ${UPGRADE_NOT_RECEIVED} ` +
    `for a request without Upgrade, so ${UPGRADES_DROPPED}.`
  );
}

/** The status of GET api/status through `tunnel`, or 0 if it failed. */
async function statusThrough(tunnel, timeout) {
  try {
    const signal = typeof AbortSignal.timeout === "function" ? AbortSignal.timeout(timeout) : undefined;
    const response = await tunnel.fetch("api/status", signal ? { signal } : {});
    await response.text();
    return response.status;
  } catch {
    return 0;
  }
}

function defaultFetch() {
  return globalThis.fetch ? globalThis.fetch.bind(globalThis) : undefined;
}
