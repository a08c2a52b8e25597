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
// JupyterLab awaits a plugin's asynchronous `activate`, and builds its ServiceManager
// from these settings before the application exists. A provider that failed would be
// replaced, silently, by the default settings (requests straight to the server): so this
// one never fails; it shows what went wrong and returns settings that refuse everything.
//
// Three things JupyterLab loads by URL rather than through the settings' fetch are
// redirected here (docs/users/jupyterlab.md, "What it relies on"): theme stylesheets
// (from the page's own origin), kernel spec logos and download URLs (`/files/`, as in a
// Markdown image) fetched through the tunnel into `blob:` URLs.
import { PageConfig, URLExt } from "@jupyterlab/coreutils";
import { Drive, IServerSettings, ServerConnection } from "@jupyterlab/services";
import { ThemeManager } from "@jupyterlab/apputils";

/** How long a `blob:` URL made for a download URL lives (it is loaded at once). */
const DOWNLOAD_URL_LIFETIME_MS = 60_000;

/** The server's base URL and token from the page's fragment, or null. */
function fromFragment() {
  const params = new URLSearchParams(window.location.hash.slice(1));
  const server = params.get("server");
  if (!server) return null;
  return { server: URLExt.normalize(server.endsWith("/") ? server : server + "/"), token: params.get("token") || "" };
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
 * fragment and reloads: nothing is stored, and nothing is sent until then.
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
  form.append(
    title,
    field("server", "Server URL", "url", "http://127.0.0.1:8888/"),
    field("token", "Token", "password", ""),
    submit,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const params = new URLSearchParams({ server: data.get("server"), token: data.get("token") });
    window.location.hash = params.toString();
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

async function activate() {
  const target = fromFragment();
  if (target === null) {
    askForServer();
    return refusingSettings(new Error("This page does not name a Jupyter server yet."));
  }
  let tunnel;
  try {
    const client = await import(
      /* webpackIgnore: true */ URLExt.join(target.server, "http_over_websocket/static/index.js")
    );
    tunnel = await client.connect({ url: target.server, token: target.token });
  } catch (error) {
    showProblem(
      `Cannot reach the Jupyter server at ${target.server} through the tunnel`,
      error.name === "TypeError" && /import/i.test(error.message)
        ? "The server did not answer, or does not have jupyter-http-over-ws: " + error.message
        : error.message,
    );
    return refusingSettings(error);
  }
  themesFromThePage();
  downloadsThroughTheTunnel(tunnel);
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
