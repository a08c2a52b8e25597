// tunnel.fetch: the WHATWG fetch contract over the tunnel.
//
// The input and init are turned into a real Request first, so every body type fetch
// takes (string, ArrayBuffer, typed arrays, DataView, Blob, URLSearchParams,
// FormData) is encoded by the platform exactly as fetch would, Content-Type
// included; the bytes then travel byte-exact. The answer is a real Response whose
// body streams the reply's chunks as they arrive. An AbortSignal rejects with its
// reason (an AbortError) and cancels the request on the server too.

import { abortError } from "./errors.js";
import { pathUnderBase } from "./urls.js";

/** Statuses whose Response must have a null body. */
const NULL_BODY = new Set([101, 103, 204, 205, 304]);
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 20;
/** Headers that describe a body: dropped with the body when a redirect turns into a GET. */
const BODY_HEADERS = new Set(["content-encoding", "content-language", "content-location", "content-type"]);

function makeHeaders(raw) {
  const headers = new Headers();
  for (const [name, value] of Object.entries(raw || {})) {
    try {
      headers.append(name, String(value));
    } catch {
      // a header the platform does not accept (e.g. a non-Latin-1 value): leave it out
    }
  }
  return headers;
}

function makeResponse(body, head, url, redirected, method) {
  const init = { status: head.status, statusText: head.statusText, headers: makeHeaders(head.headers) };
  const content = NULL_BODY.has(head.status) || method === "HEAD" ? null : body;
  let response;
  try {
    response = new Response(content, init);
  } catch {
    init.statusText = ""; // a reason phrase the platform refuses
    response = new Response(content, init);
  }
  Object.defineProperty(response, "url", { value: url, enumerable: true });
  if (redirected) Object.defineProperty(response, "redirected", { value: true, enumerable: true });
  return response;
}

/**
 * Send one request through the tunnel; resolves with a Response when the reply's
 * first frame arrives.
 */
function send(tunnel, { method, path, headers, body, signal, url, redirected }) {
  return new Promise((resolve, reject) => {
    let handle = null;
    let controller = null;
    let settled = false;
    let finished = false;
    const onAbort = () => {
      if (finished) return;
      finished = true;
      const reason = abortError(signal);
      if (handle) handle.cancel();
      if (!settled) {
        settled = true;
        reject(reason);
      } else if (controller) {
        try {
          controller.error(reason);
        } catch {
          // the stream is already closed
        }
      }
    };
    const cleanup = () => {
      finished = true;
      if (signal) signal.removeEventListener("abort", onAbort);
    };
    const stream = new ReadableStream({
      start(c) {
        controller = c;
      },
      cancel() {
        // The reader lost interest: stop the request on the server.
        cleanup();
        if (handle) handle.cancel();
      },
    });
    const sink = {
      head(head) {
        if (settled) return;
        settled = true;
        resolve({ head, response: makeResponse(stream, head, url, redirected, method) });
      },
      data(bytes) {
        if (finished) return;
        try {
          controller.enqueue(bytes);
        } catch {
          // the stream was cancelled
        }
      },
      done() {
        if (finished) return;
        cleanup();
        if (!settled) {
          settled = true;
          reject(new TypeError("Failed to fetch: the reply ended without a status"));
          return;
        }
        try {
          controller.close();
        } catch {
          // the stream was cancelled
        }
      },
      error(e) {
        if (finished) return;
        cleanup();
        if (!settled) {
          settled = true;
          reject(e);
        } else {
          try {
            controller.error(e);
          } catch {
            // the stream was cancelled
          }
        }
      },
    };
    if (signal) signal.addEventListener("abort", onAbort, { once: true });
    tunnel._request({ method, path, headers, body }, sink).then(
      (h) => {
        handle = h;
        if (finished && signal && signal.aborted) h.cancel();
      },
      (e) => sink.error(e instanceof TypeError ? e : new TypeError(`Failed to fetch: ${e.message}`)),
    );
  });
}

/** Make the `fetch` function of a tunnel. */
export function makeFetch(tunnel) {
  return async function fetch(input, init = undefined) {
    let target = input;
    if (typeof input === "string" || input instanceof URL) target = new URL(String(input), tunnel.url).href;
    const request = new Request(target, init);
    const signal = init && init.signal ? init.signal : request.signal;
    if (signal && signal.aborted) throw abortError(signal);
    let method = request.method;
    let url = request.url;
    let body = null;
    if (method !== "GET" && method !== "HEAD" && request.body !== null) {
      body = new Uint8Array(await request.arrayBuffer());
    }
    let headers = Array.from(request.headers.entries());
    let redirected = false;
    for (let hops = 0; ; hops++) {
      const path = pathUnderBase(url, tunnel.url);
      if (path === null) {
        throw new TypeError(`Failed to fetch: ${url} is not under the tunnel's server ${tunnel.url}`);
      }
      const { head, response } = await send(tunnel, { method, path, headers, body, signal, url, redirected });
      const location = response.headers.get("Location");
      if (!REDIRECTS.has(head.status) || !location || request.redirect === "manual") return response;
      if (request.redirect === "error") {
        response.body?.cancel().catch(() => {});
        throw new TypeError("Failed to fetch: redirect with redirect mode \"error\"");
      }
      const next = new URL(location, url).href;
      if (hops >= MAX_REDIRECTS || pathUnderBase(next, tunnel.url) === null) return response;
      response.body?.cancel().catch(() => {});
      if (head.status === 303 || ((head.status === 301 || head.status === 302) && method === "POST")) {
        if (method !== "HEAD") method = "GET";
        body = null;
        headers = headers.filter(([name]) => !BODY_HEADERS.has(name.toLowerCase()));
      }
      url = next;
      redirected = true;
    }
  };
}
