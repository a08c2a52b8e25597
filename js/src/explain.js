// Why a tunnel could not be opened, in plain words a page can show its user, with
// the command that tells more. A browser does not say why a WebSocket upgrade failed,
// so this asks the server's diagnose endpoint, which answers before authentication.

import { diagnose } from "./diagnose.js";
import { TunnelError } from "./errors.js";
import { STATIC_PREFIX } from "./names.js";

/** The client's entry module, served by the extension to every origin. */
const STATIC_PATH = STATIC_PREFIX + "index.js";

/** Does `baseUrl` look like a user's server behind JupyterHub (`…/user/<name>/`)? */
function looksLikeHub(baseUrl) {
  return /\/user\/[^/]+\/$/.test(new URL(baseUrl).pathname);
}

/**
 * Why the server refused the tunnel's credentials, for `failures` (what each transport
 * answered) and `options` (`token`, `baseUrl`).
 */
export function refusedWhy(failures, options) {
  if (!options.token) return withoutTokenWhy(failures, options, pageLocation());
  const onlyWebSocket = failures.every((f) => f.transport === "websocket");
  if (onlyWebSocket && looksLikeHub(options.baseUrl)) {
    // JupyterHub 5+ takes ?token= on a WebSocket only with Sec-Fetch-Mode: websocket,
    // which Chromium does not send; a browser cannot put the token in a header there.
    return "the token is wrong, or this is a JupyterHub (5 or later) user server, which refuses " +
      "a token in a WebSocket's URL unless the browser sends Sec-Fetch-Mode: websocket " +
      "(Chromium does not). Allow polling (connect()'s default transports fall back to it; " +
      "it sends the token in the Authorization header), or have the hub's operator set " +
      "JUPYTERHUB_ALLOW_TOKEN_IN_URL=1 in c.Spawner.environment. ";
  }
  return "the token is wrong: use the one the server printed at start (`jupyter server list` shows it). ";
}

/** How to get and pass a token: a hub API token under JupyterHub, else the server's. */
function tokenFix(baseUrl) {
  if (!looksLikeHub(baseUrl)) return "pass the server's token (connect({ url, token })). ";
  const name = decodeURIComponent(new URL(baseUrl).pathname.split("/").slice(-2)[0]);
  return "use a JupyterHub API token with access to this server (scope " +
    `access:servers!user=${name}; make one at ${new URL("../../hub/token", baseUrl).href} or ` +
    "through the hub's REST API) and pass it: connect({ url, token }), whose polling transport " +
    "sends it in the Authorization header, or the Python client (jupyter_http_over_ws.client). ";
}

/**
 * Why a tunnel without a token was refused, for a page at `page` (a Location, or null
 * outside a browser). Login cookies belong to the server's host alone (ports aside) and
 * stay off cross-site requests (SameSite=Lax), so a page elsewhere cannot use them. A
 * page on the server's own host sends them; then a cookie-authenticated polling request
 * also needs the server's `_xsrf` cookie in X-XSRFToken, which the page must be able to
 * read (JupyterHub sets it for the server's path, /user/<name>/, only).
 */
export function withoutTokenWhy(failures, options, page) {
  const server = new URL(options.baseUrl);
  const fix = tokenFix(options.baseUrl);
  if (!page || !page.hostname || page.protocol !== server.protocol || page.hostname !== server.hostname) {
    const where = page && page.host
      ? `: they belong to ${server.host} alone, and this page is on ${page.host}`
      : "";
    return "no token was given, and browsers do not send a login cookie on a cross-site WebSocket " +
      `upgrade or polling request${where}, so ${fix}`;
  }
  const pollingRefused = failures.some((f) => f.transport === "polling" && f.error.status === 403);
  const xsrfReadable = typeof page.cookie === "string" && /(?:^|;\s*)_xsrf=/.test(page.cookie);
  if (pollingRefused && !xsrfReadable) {
    return "no token was given; this page is on the server's own host, so the login cookie went " +
      "along, but a polling request authenticated by a cookie also needs the server's _xsrf cookie " +
      `(sent as X-XSRFToken), and this page cannot read it (it is set for ${server.pathname} only). ` +
      "Use the WebSocket transport (a logged-in page on this host needs no XSRF token there: the " +
      `server takes it from the upgrade's cookies), serve the page under ${server.pathname}, or ${fix}`;
  }
  return "no token was given, and the login cookie this browser sent (if any) was not accepted: " +
    `log in by opening ${options.baseUrl} once in this browser` +
    (looksLikeHub(options.baseUrl) ? " (the hub's login then sets this server's own cookie)" : "") +
    `, or ${fix}`;
}

/** Plain words for why no transport could be opened (asks `diagnose` when that helps). */
export async function explain(failures, options) {
  const version = failures.find((f) => f.error.kind === "version");
  if (version) {
    return new TunnelError(
      "version",
      `The server's jupyter-http-over-ws is too old for this page: ${version.error.message} ` +
        "Upgrade it on the server: pip install -U jupyter-http-over-ws",
      { failures },
    );
  }
  const tried = failures.map((f) => `${f.transport}: ${f.error.message}`).join("; ");
  if (failures.every((f) => f.error.kind === "unsupported")) {
    // Nothing was refused: this client could not try (no WebSocket here, no polling there).
    return new TunnelError("unsupported", `No transport could be used to reach ${options.baseUrl}: ${tried}`, {
      failures,
    });
  }
  const limit = failures.find((f) => f.error.status === 429 || (f.error.code >= 4000 && f.error.code < 5000));
  if (limit) {
    // The server took the credentials and said why it will not go on (e.g. 4429, too many sockets).
    return new TunnelError("refused", `The server refused the tunnel: ${limit.error.reason || limit.error.message}`, {
      failures,
    });
  }
  let diagnosis = null;
  let diagnoseError = null;
  if (typeof options.WebSocket === "function") {
    try {
      diagnosis = await diagnose({ url: options.baseUrl, minVersion: options.minVersion, WebSocket: options.WebSocket, timeout: 5000 });
    } catch (e) {
      diagnoseError = e;
    }
  }
  const doctor = `jupyter http-over-ws doctor ${options.baseUrl} --origin ${pageOrigin()}`;
  if (diagnosis && diagnosis.is_outdated_extension === true) {
    // A server that refuses minVersion without saying so in a close reason (the
    // original closed with code 400, which browsers report as 1006 with no reason).
    return new TunnelError(
      "version",
      `The server's jupyter-http-over-ws ${diagnosis.extension_version} is older than the ` +
        `${options.minVersion} this page needs. Upgrade it on the server: pip install -U jupyter-http-over-ws`,
      { failures, diagnosis },
    );
  }
  if (diagnosis) {
    const why = refusedWhy(failures, options);
    return new TunnelError(
      "refused",
      `The server (jupyter-http-over-ws ${diagnosis.extension_version}) refused the tunnel: ${why}` +
        `Run: ${doctor} (tried ${tried})`,
      { failures, diagnosis },
    );
  }
  if (diagnoseError && diagnoseError.websocket === "dropped") {
    // diagnose's upgrade reached the extension as a plain request (its 400): a proxy in
    // between drops WebSocket upgrades; neither the token nor the origin is to blame.
    return new TunnelError("unreachable", `${diagnoseError.message} (tried ${tried})`, {
      failures,
      websocket: "dropped",
    });
  }
  if (diagnoseError && (await clientAnswers(options))) {
    // The server and the extension answer a request that needs no origin check (the
    // client's own code, public to every origin), but diagnose refused this page: its
    // origin is what the server does not allow. (With a valid token the tunnel would
    // have opened anyway: jupyter_server skips the origin check for tokens.)
    const origin = pageOrigin();
    const token = options.token
      ? "the token was refused, and this page's origin"
      : "no token was given, and this page's origin";
    return new TunnelError(
      "refused",
      `The server at ${options.baseUrl} answers, but refused the tunnel: ${token} ${origin} is not ` +
        `allowed there. Start it with --ServerApp.allow_origin='${origin}' (or an allow_origin_pat ` +
        "that matches it), or connect with the server's token. (Behind a proxy that drops " +
        `WebSocket upgrades the same happens; the doctor tells them apart.) Run: ${doctor} (tried ${tried})`,
      { failures },
    );
  }
  const refused = failures.find((f) => f.error.kind === "refused");
  if (refused && !diagnoseError) {
    return new TunnelError("refused", `The server refused the tunnel (${tried}). Run: ${doctor}`, { failures });
  }
  return new TunnelError(
    "unreachable",
    `Could not open a tunnel to ${options.baseUrl}: the server is not reachable, ` +
      untrustedCertificate(options.baseUrl) +
      "the jupyter-http-over-ws extension is not loaded there, or this page's origin is not " +
      "allowed (ServerApp.allow_origin / allow_origin_pat), or the token is wrong. " +
      `Run: ${doctor} (tried ${tried})`,
    { failures },
  );
}

/**
 * For an https:// server, the cause a browser hides behind a plain network error: a TLS
 * certificate it does not trust (a page's fetch and WebSocket only see a failure).
 */
function untrustedCertificate(baseUrl) {
  if (new URL(baseUrl).protocol !== "https:") return "";
  return "its TLS certificate is not trusted by this browser (a browser reports only a failed " +
    `connection: open ${baseUrl} in a tab to see the certificate error, then trust the CA that ` +
    "signed it, or give the server a certificate the browser trusts), ";
}

/** Whether the extension's static client answers (no credentials, any origin). */
async function clientAnswers(options) {
  if (typeof options.fetch !== "function") return false;
  try {
    const response = await options.fetch(`${options.baseUrl}${STATIC_PATH}`, {
      method: "HEAD",
      credentials: "omit",
      cache: "no-store",
    });
    return response.ok;
  } catch {
    return false;
  }
}

/** The page's location and its readable cookies, or null outside a browser. */
function pageLocation() {
  if (typeof location === "undefined" || !location.hostname) return null;
  const cookie = typeof document !== "undefined" && typeof document.cookie === "string" ? document.cookie : null;
  return { protocol: location.protocol, hostname: location.hostname, host: location.host, cookie };
}

function pageOrigin() {
  return typeof location !== "undefined" && location.origin && location.origin !== "null"
    ? location.origin
    : "<this page's origin>";
}
