// What JupyterLab loads by URL rather than through its settings' fetch: theme
// stylesheets (from the page's own origin), kernel spec logos (blob: URLs fetched through
// the tunnel), and download URLs (the default drive's): on the page's origin at
// /hows-files/, answered by the page's Service Worker (/hows-sw.js) through this page's
// tunnel, or blob: URLs where no worker runs (docs/users/jupyterlab.md, "What it relies
// on").
import { PageConfig, URLExt } from "@jupyterlab/coreutils";
import { Drive } from "@jupyterlab/services";
import { ThemeManager } from "@jupyterlab/apputils";

/** How long a `blob:` URL made for a download URL lives (it is loaded at once). */
const DOWNLOAD_URL_LIFETIME_MS = 60_000;
/** Theme stylesheets from the page's origin, where the page server keeps them. */
export function themesFromThePage() {
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

/**
 * The server's default drive, whose download URLs are `downloadUrl(localPath)`: what
 * JupyterLab loads by URL from `files/` goes through the tunnel, not to the server.
 * Without one (no tunnel: the settings refuse everything, their base URL is the page's),
 * the drive's own URLs, on the page's origin.
 */
export class DriveThroughTheTunnel extends Drive {
  constructor(options, downloadUrl) {
    super(options);
    this._downloadUrl = downloadUrl;
  }

  async getDownloadUrl(localPath) {
    return this._downloadUrl ? this._downloadUrl(localPath) : super.getDownloadUrl(localPath);
  }
}

/** Download URLs (`/files/...`) as `blob:` URLs fetched through the tunnel. */
export function downloadsThroughTheTunnel(tunnel) {
  return async (localPath) => {
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
export function answerTheServiceWorker(tunnel) {
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
export async function serviceWorkerControls() {
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
 * tunnel (the function returned makes them); and JupyterLab's "Download" (a click on an
 * `<a download>` with such a URL, which Chromium cancels when a Service Worker answers
 * it) made here instead: the file through the tunnel, saved under its own name.
 */
export function downloadsThroughTheServiceWorker(tunnel) {
  const files = URLExt.join(PageConfig.getBaseUrl(), FILES_PATH) + "/";
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
  return async (localPath) => files + URLExt.encodeParts(localPath);
}

/** A fetch whose kernel spec listings name their logos as `blob:` URLs. */
export function withKernelspecLogos(tunnel) {
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
