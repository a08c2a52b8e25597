// JupyterLab on one origin, its Jupyter server on another, and nothing between them but
// the tunnel: this plugin provides JupyterLab's server connection settings
// (IServerSettings) with the tunnel's `fetch` and `WebSocket`, so every manager JupyterLab
// builds (contents, kernels, sessions, terminals, settings, workspaces, translations,
// events, nbconvert...) talks to the server through `http_over_websocket`.
//
// The page (served by `jupyter http-over-ws lab`, see docs/users/jupyterlab.md) disables
// JupyterLab's own provider, `@jupyterlab/services-extension:server-settings`, in its
// page config, and names the server and token in its fragment (`#server=URL&token=T`),
// which the browser never sends anywhere; without one, the page asks for them. The browser client is imported from the
// server itself, so it always matches the server's extension.
//
// Before anything else it makes one plain request to the server: where the browser gates
// a public page's requests to this machine or a private network (Chrome's Local Network
// Access), that request is what asks the user, and when it fails the permission's state
// tells "permission denied" from "server down" (the tunnel's own explanation covers the
// rest: origin not allowed, wrong token, a proxy dropping upgrades).
//
// JupyterLab awaits a plugin's asynchronous `activate`, and builds its ServiceManager
// from these settings before the application exists. A provider that failed would be
// replaced, silently, by the default settings (requests straight to the server): so this
// one never fails; it shows what went wrong and returns settings that refuse everything.
//
// Three things JupyterLab loads by URL rather than through the settings' fetch are
// redirected here (docs/users/jupyterlab.md, "What it relies on"): theme stylesheets
// (from the page's own origin), kernel spec logos (fetched through the tunnel into
// `blob:` URLs) and download URLs (`/files/`, as in a Markdown image): on the page's
// origin at /hows-files/, answered by the page's Service Worker (/hows-sw.js), which
// asks this page to fetch them through the tunnel; `blob:` URLs where no worker runs.
import { PageConfig, URLExt } from "@jupyterlab/coreutils";
import { Drive, IServerSettings, ServerConnection } from "@jupyterlab/services";
import { ThemeManager } from "@jupyterlab/apputils";

/** How long a `blob:` URL made for a download URL lives (it is loaded at once). */
const DOWNLOAD_URL_LIFETIME_MS = 60_000;

/** Where the login form keeps the server and token when the user asks it to (this tab only). */
const REMEMBERED = "jupyter-http-over-ws-lab:server";

/** `{ server, token }` with the server's URL normalized, or null without a server. */
function serverAndToken(server, token) {
  if (!server) return null;
  return { server: URLExt.normalize(server.endsWith("/") ? server : server + "/"), token: token || "" };
}

/**
 * The server's base URL and token from the page's fragment, or null. The fragment is
 * then taken off the address (and this history entry): the token is not left on show.
 */
function fromFragment() {
  const params = new URLSearchParams(window.location.hash.slice(1));
  const found = serverAndToken(params.get("server"), params.get("token"));
  if (found !== null) {
    window.history.replaceState(window.history.state, "", window.location.pathname + window.location.search);
  }
  return found;
}

/** What the login form remembered for this tab (sessionStorage), or null. */
function fromThisTab() {
  try {
    const { server, token } = JSON.parse(window.sessionStorage.getItem(REMEMBERED) || "{}");
    return serverAndToken(server, token);
  } catch {
    return null;
  }
}

/** Show `message` over the page: JupyterLab itself cannot start without a server. */
function showProblem(title, message) {
  const box = document.createElement("div");
  box.id = "hows-lab-problem";
  box.setAttribute("role", "alert");
  box.style.cssText =
    "position:fixed;z-index:100000;top:2em;left:50%;transform:translateX(-50%);max-width:40em;" +
    "padding:1em 1.5em;background:#fff;color:#000;border:2px solid #c62828;border-radius:4px;" +
    "font:14px/1.4 sans-serif;white-space:pre-wrap;box-shadow:0 2px 8px rgba(0,0,0,.3)";
  const heading = document.createElement("strong");
  heading.textContent = title;
  box.append(heading, document.createElement("br"), document.createTextNode(message));
  document.body.append(box);
}

/**
 * Ask for the server's URL and token (this page names none). Submitting puts them in the
 * fragment and reloads; nothing is sent until then, and nothing is stored unless the
 * user ticks "Remember" (sessionStorage: this tab, until it is closed).
 */
function askForServer() {
  const form = document.createElement("form");
  form.id = "hows-lab-login";
  form.style.cssText =
    "position:fixed;z-index:100000;top:2em;left:50%;transform:translateX(-50%);width:32em;" +
    "padding:1em 1.5em;background:#fff;color:#000;border:1px solid #888;border-radius:4px;" +
    "font:14px/1.6 sans-serif;box-shadow:0 2px 8px rgba(0,0,0,.3)";
  const title = document.createElement("strong");
  title.textContent = "Which Jupyter server?";
  const field = (name, label, type, placeholder) => {
    const row = document.createElement("label");
    row.style.cssText = "display:block;margin-top:.5em";
    const input = document.createElement("input");
    Object.assign(input, { name, type, placeholder, required: name === "server" });
    input.style.cssText = "display:block;width:100%;box-sizing:border-box";
    row.append(label, input);
    return row;
  };
  const submit = document.createElement("button");
  submit.type = "submit";
  submit.textContent = "Connect";
  submit.style.marginTop = ".75em";
  const remember = document.createElement("label");
  remember.style.cssText = "display:block;margin-top:.5em";
  const box = document.createElement("input");
  Object.assign(box, { name: "remember", type: "checkbox" });
  remember.append(box, " Remember them in this tab until it is closed (a reload connects again)");
  form.append(
    title,
    field("server", "Server URL", "url", "http://127.0.0.1:8888/"),
    field("token", "Token", "password", ""),
    remember,
    submit,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const params = new URLSearchParams({ server: data.get("server"), token: data.get("token") });
    if (data.get("remember")) {
      const chosen = { server: data.get("server"), token: data.get("token") };
      window.sessionStorage.setItem(REMEMBERED, JSON.stringify(chosen));
    } else {
      window.location.hash = params.toString();
    }
    window.location.reload();
  });
  document.body.append(form);
}

/** Settings whose every request and socket fails with `error` (never a direct request). */
function refusingSettings(error) {
  class RefusedWebSocket {
    constructor() {
      throw error;
    }
  }
  return ServerConnection.makeSettings({
    baseUrl: PageConfig.getBaseUrl(),
    appendToken: false,
    fetch: () => Promise.reject(error),
    WebSocket: RefusedWebSocket,
  });
}

/** Theme stylesheets from the page's origin, where the page server keeps them. */
function themesFromThePage() {
  const themes = URLExt.join(PageConfig.getBaseUrl(), PageConfig.getOption("themesUrl"));
  const loadCSS = ThemeManager.prototype.loadCSS;
  ThemeManager.prototype.loadCSS = function (path) {
    return loadCSS.call(this, URLExt.isLocal(path) ? URLExt.join(themes, path) : path);
  };
}

/** `blob:` URL of what `path` (relative to the server) answers through the tunnel. */
async function blobUrl(tunnel, path) {
  const response = await tunnel.fetch(path);
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return URL.createObjectURL(await response.blob());
}

/** Download URLs (`/files/...`) as `blob:` URLs fetched through the tunnel. */
function downloadsThroughTheTunnel(tunnel) {
  Drive.prototype.getDownloadUrl = async function (localPath) {
    const url = await blobUrl(tunnel, "files/" + URLExt.encodeParts(localPath));
    setTimeout(() => URL.revokeObjectURL(url), DOWNLOAD_URL_LIFETIME_MS);
    // Renderers append "?<timestamp>" to a download URL: a query breaks a blob: URL,
    // a fragment does not.
    return url + "#";
  };
}

/** Where the page's Service Worker answers `files/` URLs, on the page's own origin. */
const FILES_PATH = "hows-files";
/** How long to wait for the Service Worker to take this page over on a first visit. */
const SERVICE_WORKER_TIMEOUT_MS = 5000;

/**
 * Answer the page's Service Worker (`/hows-sw.js`, shipped by the page server): it asks
 * an open page for `files/<path>` through the tunnel and gets the answer streamed back.
 */
function answerTheServiceWorker(tunnel) {
  if (!("serviceWorker" in navigator)) return;
  navigator.serviceWorker.addEventListener("message", async ({ data, ports }) => {
    if (!data || data.type !== "hows-files" || !ports || !ports[0]) return;
    const port = ports[0];
    port.postMessage({ accepted: true });
    let segments;
    try {
      segments = decodeURIComponent(data.path).split("/");
    } catch {
      segments = [".."];
    }
    if (segments.some((segment) => segment === ".." || segment === ".")) {
      // Only files under the server's root: no dot segments, however they are encoded.
      port.postMessage({ status: 400, error: "Only files under the Jupyter server's root." });
      return;
    }
    try {
      // `data.path` is still URL-encoded, as the page asked for it.
      const response = await tunnel.fetch("files/" + data.path, { method: data.method });
      const body = data.method === "HEAD" || [204, 304].includes(response.status) ? null : response.body;
      const headers = [...response.headers].filter(([name]) => name !== "content-security-policy");
      // Whatever the file is, it is not to run on the page's origin: no scripts, an opaque origin.
      headers.push(["content-security-policy", "sandbox"]);
      const answer = { status: response.status, statusText: response.statusText, headers };
      try {
        port.postMessage({ ...answer, body }, body ? [body] : []);
      } catch {
        // A browser that cannot transfer a stream: the body whole.
        port.postMessage({ ...answer, body: body ? await new Response(body).arrayBuffer() : null });
      }
    } catch (error) {
      port.postMessage({ error: String((error && error.message) || error) });
    }
  });
  navigator.serviceWorker.startMessages();
}

/**
 * Register the page's Service Worker and wait until it controls this page; false where
 * there is none (no secure context, a browser without them, a failed registration).
 */
async function serviceWorkerControls() {
  if (!("serviceWorker" in navigator) || !window.isSecureContext) return false;
  const base = PageConfig.getBaseUrl();
  try {
    await navigator.serviceWorker.register(URLExt.join(base, "hows-sw.js"), { scope: base });
    await navigator.serviceWorker.ready;
    if (!navigator.serviceWorker.controller) {
      // A first visit: the worker claims the open pages once it is active.
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, SERVICE_WORKER_TIMEOUT_MS);
        navigator.serviceWorker.addEventListener("controllerchange", () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  } catch (error) {
    console.warn("jupyter-http-over-ws: no Service Worker, download URLs are blob: URLs", error);
    return false;
  }
  return Boolean(navigator.serviceWorker.controller);
}

/**
 * Download URLs on the page's origin, which the Service Worker answers through the
 * tunnel; and JupyterLab's "Download" (a click on an `<a download>` with such a URL,
 * which Chromium cancels when a Service Worker answers it) made here instead: the file
 * through the tunnel, saved under its own name.
 */
function downloadsThroughTheServiceWorker(tunnel) {
  const files = URLExt.join(PageConfig.getBaseUrl(), FILES_PATH) + "/";
  Drive.prototype.getDownloadUrl = async function (localPath) {
    return files + URLExt.encodeParts(localPath);
  };
  document.addEventListener(
    "click",
    (event) => {
      const link = event.target instanceof Element ? event.target.closest("a[download]") : null;
      if (!link || !link.href.startsWith(files) || link.dataset.howsSaved) return;
      event.preventDefault();
      const path = new URL(link.href).pathname.slice(new URL(files).pathname.length);
      const name = link.getAttribute("download") || decodeURIComponent(path.split("/").pop());
      blobUrl(tunnel, "files/" + path).then(
        (url) => {
          const save = document.createElement("a");
          save.href = url;
          save.download = name;
          save.dataset.howsSaved = "1";
          document.body.append(save);
          save.click();
          save.remove();
          setTimeout(() => URL.revokeObjectURL(url), DOWNLOAD_URL_LIFETIME_MS);
        },
        (error) => console.error(`jupyter-http-over-ws: cannot download ${name}`, error),
      );
    },
    true,
  );
}

/** A fetch whose kernel spec listings name their logos as `blob:` URLs. */
function withKernelspecLogos(tunnel) {
  const logos = new Map(); // server path -> Promise<blob: URL>, made once per page
  const logo = (path) => {
    if (!logos.has(path)) logos.set(path, blobUrl(tunnel, path.replace(/^\/+/, "")).catch(() => path));
    return logos.get(path);
  };
  const kernelspecs = URLExt.join(tunnel.url, "api/kernelspecs");
  return async (input, init) => {
    const response = await tunnel.fetch(input, init);
    const url = input instanceof Request ? input.url : String(input);
    if (!response.ok || url.split("?")[0] !== kernelspecs) return response;
    const listing = await response.json();
    const jobs = [];
    for (const spec of Object.values(listing.kernelspecs || {})) {
      for (const [name, path] of Object.entries(spec.resources || {})) {
        if (typeof path === "string" && /\.(png|svg|gif|jpe?g)$/i.test(path)) {
          jobs.push(logo(path).then((blob) => (spec.resources[name] = blob)));
        }
      }
    }
    await Promise.all(jobs);
    const headers = new Headers(response.headers);
    headers.delete("content-length");
    return new Response(JSON.stringify(listing), {
      status: response.status,
      statusText: response.statusText,
      headers,
    });
  };
}

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
async function firstReach(server) {
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

async function activate() {
  const target = fromFragment() || fromThisTab();
  if (target === null) {
    askForServer();
    return refusingSettings(new Error("This page does not name a Jupyter server yet."));
  }
  const unreachable = await firstReach(target.server);
  if (unreachable !== null) {
    // What failed is not worth remembering: a reload asks again.
    window.sessionStorage.removeItem(REMEMBERED);
    showProblem(...unreachable);
    return refusingSettings(new Error(unreachable.join(": ")));
  }
  let tunnel;
  try {
    const client = await import(
      /* webpackIgnore: true */ URLExt.join(target.server, "http_over_websocket/static/index.js")
    );
    tunnel = await client.connect({ url: target.server, token: target.token });
  } catch (error) {
    window.sessionStorage.removeItem(REMEMBERED);
    showProblem(
      `Cannot reach the Jupyter server at ${target.server} through the tunnel`,
      error.name === "TypeError" && /import/i.test(error.message)
        ? "The server did not answer, or does not have jupyter-http-over-ws: " + error.message
        : error.message,
    );
    return refusingSettings(error);
  }
  themesFromThePage();
  answerTheServiceWorker(tunnel);
  if (await serviceWorkerControls()) {
    downloadsThroughTheServiceWorker(tunnel);
  } else {
    downloadsThroughTheTunnel(tunnel);
  }
  window.httpOverWsTunnel = tunnel;
  return ServerConnection.makeSettings({
    baseUrl: target.server,
    wsUrl: target.server.replace(/^http/, "ws"),
    // The tunnel's socket is authenticated already: no token in any socket's URL.
    appendToken: false,
    token: target.token,
    fetch: withKernelspecLogos(tunnel),
    WebSocket: tunnel.WebSocket,
    Request,
    Headers,
  });
}

export default {
  id: "jupyter-http-over-ws-lab:server-settings",
  description: "Server connection settings whose fetch and WebSocket go through the tunnel.",
  autoStart: true,
  provides: IServerSettings,
  activate,
};
