// The `diagnose` endpoint: why a tunnel does not connect.
//
// It answers before authentication (only its origin is checked), so a page whose
// connect() failed can still learn the extension's version and whether it is too
// old. If even this socket fails, the server is unreachable, the extension is not
// loaded, or the page's origin is not allowed.

import { TunnelError } from "./errors.js";
import { DIAGNOSE_PATH } from "./names.js";
import { normalizeBaseUrl, toWebSocketUrl } from "./urls.js";

export { DIAGNOSE_PATH };

/**
 * Ask the server's diagnose endpoint. Resolves with its JSON answer
 * ({message_id, extension_version, has_authentication_cookie, is_outdated_extension}).
 *
 * Options: `url` (the server's base URL), `minVersion` (sets is_outdated_extension),
 * `WebSocket` (an implementation, default the global one), `timeout` (ms, default 10000).
 */
export function diagnose({ url, minVersion, WebSocket: WS = globalThis.WebSocket, timeout = 10000 } = {}) {
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
    const refused = () =>
      finish(
        new TunnelError(
          "unreachable",
          `the diagnose endpoint at ${base} refused or failed: the server is not reachable, ` +
            "the jupyter-http-over-ws extension is not loaded there, or this page's origin is " +
            "not allowed (ServerApp.allow_origin / allow_origin_pat). " +
            `Run: jupyter http-over-ws doctor ${base} --origin <this page's origin>`,
        ),
      );
    ws.onclose = refused;
    ws.onerror = () => setTimeout(refused, 50); // node 20 sends no close after a refused upgrade
  });
}
