// The first request to the server, and what its failure means: the browser's Local
// Network Access permission refused, or nothing answering.
import { URLExt } from "@jupyterlab/coreutils";

/**
 * Where `hostname` is for the browser's Local Network Access, by its name alone:
 * "loopback" (this machine), "local" (a private network) or null (public, or a name that
 * only DNS can place).
 */
function addressSpace(hostname) {
  const host = hostname.replace(/^\[|\]$/g, "").toLowerCase();
  if (host === "localhost" || host.endsWith(".localhost") || host === "::1" || /^127\./.test(host)) {
    return "loopback";
  }
  if (
    /^(10\.|192\.168\.|169\.254\.|172\.(1[6-9]|2\d|3[01])\.)/.test(host) ||
    /^f[cd][0-9a-f]{2}:|^fe[89ab][0-9a-f]:/.test(host) ||
    host.endsWith(".local")
  ) {
    return "local";
  }
  return null;
}

/**
 * The state ("granted", "prompt", "denied") of the Local Network Access permission this
 * page needs to reach `server`, or null where the browser has none (or cannot say).
 * Chrome names it loopback-network / local-network (local-network-access before 145).
 */
async function localNetworkPermission(server) {
  if (!navigator.permissions) return null;
  const space = addressSpace(new URL(server).hostname);
  const names =
    space === "loopback"
      ? ["loopback-network", "local-network-access"]
      : space === "local"
        ? ["local-network", "local-network-access"]
        : ["loopback-network", "local-network", "local-network-access"];
  let found = null;
  for (const name of names) {
    try {
      const { state } = await navigator.permissions.query({ name });
      if (state === "denied") return state;
      found = found || state;
    } catch {
      // Not a permission this browser knows.
    }
  }
  return found;
}

/**
 * Reach `server` once before anything else, as the browsers document: where they gate a
 * public page's requests to this machine or a private network (Chrome's Local Network
 * Access), this plain request is the one that asks the user, and its failure tells a
 * refused permission from a server that does not answer. Null when it answered, else
 * the problem to show ([title, message]).
 */
export async function firstReach(server) {
  try {
    // no-cors: any answer will do (the client module is public to every origin anyway).
    await fetch(URLExt.join(server, "http_over_websocket/static/index.js"), {
      method: "HEAD",
      mode: "no-cors",
      credentials: "omit",
      cache: "no-store",
    });
    return null;
  } catch (error) {
    const doctor = `jupyter http-over-ws doctor ${server} --origin ${window.location.origin}`;
    if ((await localNetworkPermission(server)) === "denied") {
      const which = addressSpace(new URL(server).hostname) === "local" ? "local network" : "this device";
      return [
        `This browser does not let this page reach ${server}`,
        `The Local Network Access permission (to reach apps and services on ${which}) is ` +
          `denied for ${window.location.origin}. Allow it in the site's settings (the icon ` +
          "left of the address), then reload the page.",
      ];
    }
    return [
      `Cannot reach the Jupyter server at ${server}`,
      `Nothing answered at ${server} (${error.message}): the server is not running, or the ` +
        `address is wrong (\`jupyter server list\` shows the running servers' URLs). Run: ${doctor}`,
    ];
  }
}
