// The lab page's Service Worker (served at /hows-sw.js, scope: the whole page origin).
//
// JupyterLab loads some things by URL rather than through its settings' fetch: a file's
// "Download" and "Open in New Browser Tab", images in Markdown and outputs, the HTML
// viewer's relative links. The page's plugin gives them URLs on the page's own origin,
// /hows-files/<path>; this worker answers those by asking an open JupyterLab page of
// this origin to fetch <server>/files/<path> through its tunnel, and streams the answer
// back. Nothing else is touched. The worker knows no server and no token: only the pages
// do, and they keep them.

const FILES = "/hows-files/";
/** How long a page has to say it will answer (it answers at once if it can). */
const ACCEPT_TIMEOUT_MS = 2000;

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (url.origin !== self.location.origin || !url.pathname.startsWith(FILES)) return;
  if (event.request.method !== "GET" && event.request.method !== "HEAD") {
    event.respondWith(plain(405, "Only GET and HEAD reach files here."));
    return;
  }
  event.respondWith(throughAPage(event, url.pathname.slice(FILES.length)));
});

function plain(status, text) {
  return new Response(text, { status, headers: { "Content-Type": "text/plain; charset=utf-8" } });
}

/** The answer for `path` (URL-encoded, relative to the server's files/), from a page. */
async function throughAPage(event, path) {
  const pages = [];
  if (event.clientId) pages.push(await self.clients.get(event.clientId));
  pages.push(...(await self.clients.matchAll({ type: "window" })));
  const asked = new Set();
  for (const page of pages) {
    // A tab showing a file (at /hows-files/...) has no tunnel: only JupyterLab pages do.
    if (!page || asked.has(page.id) || new URL(page.url).pathname.startsWith(FILES)) continue;
    asked.add(page.id);
    const answer = await ask(page, path, event.request.method);
    if (answer !== null) return answer;
  }
  return plain(
    503,
    "No JupyterLab page of this site is open and connected to the Jupyter server: open one, then reload.",
  );
}

/** Ask `page` for `path`; null when it does not answer that it will. */
function ask(page, path, method) {
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    const timer = setTimeout(() => {
      channel.port1.close();
      resolve(null);
    }, ACCEPT_TIMEOUT_MS);
    channel.port1.onmessage = ({ data }) => {
      if (data.accepted !== undefined) {
        clearTimeout(timer);
        if (!data.accepted) {
          channel.port1.close();
          resolve(null);
        }
        return;
      }
      channel.port1.close();
      if (data.error !== undefined) {
        // A refusal the page explains (its status), or a fetch that failed.
        resolve(data.status ? plain(data.status, data.error) : plain(502, `Could not fetch it through the tunnel: ${data.error}`));
        return;
      }
      resolve(
        new Response(method === "HEAD" ? null : data.body, {
          status: data.status,
          statusText: data.statusText,
          headers: data.headers,
        }),
      );
    };
    page.postMessage({ type: "hows-files", path, method }, [channel.port2]);
  });
}
