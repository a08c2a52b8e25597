// URLs: the server's base URL, and which URLs lie under it (as the protocol's paths).

/**
 * The server's base URL, normalised to end with "/" (e.g. "http://h:8888/user/a/").
 * Relative URLs resolve against `location` where there is one.
 */
export function normalizeBaseUrl(url) {
  const base = typeof location !== "undefined" ? location.href : undefined;
  const parsed = new URL(String(url), base);
  if (parsed.protocol === "ws:") parsed.protocol = "http:";
  if (parsed.protocol === "wss:") parsed.protocol = "https:";
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new TypeError(`url must be an http(s) URL of the Jupyter server, not ${parsed.protocol}`);
  }
  parsed.search = "";
  parsed.hash = "";
  if (!parsed.pathname.endsWith("/")) parsed.pathname += "/";
  return parsed.href;
}

/** The ws(s) form of an http(s) URL. */
export function toWebSocketUrl(httpUrl) {
  return httpUrl.replace(/^http/, "ws");
}

/**
 * The path (with query) of `url` relative to the server's base URL, as the protocol
 * wants it ("/api/contents?x=1"), or null if `url` is not on that server. `url` may
 * be absolute (http, https, ws or wss) or relative to the base URL.
 */
export function pathUnderBase(url, baseUrl) {
  const base = new URL(baseUrl);
  let target;
  try {
    target = new URL(String(url), baseUrl);
  } catch {
    return null;
  }
  const scheme = (p) => (p === "ws:" ? "http:" : p === "wss:" ? "https:" : p);
  if (scheme(target.protocol) !== base.protocol || target.host !== base.host) return null;
  const prefix = base.pathname; // ends with "/"
  const path = target.pathname;
  if (path + "/" === prefix) return "/" + target.search;
  if (!path.startsWith(prefix)) return null;
  return "/" + path.slice(prefix.length) + target.search;
}
