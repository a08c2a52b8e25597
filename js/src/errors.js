// The errors the client reports, with a `kind` a program can test and a message a
// person can read.

/**
 * Why a tunnel could not be opened or used.
 *
 * `kind` is one of: "upgrade" (the WebSocket upgrade failed; browsers do not say
 * why), "version" (the server is older than `minVersion`), "refused" (the server
 * refused the credentials or the origin), "unreachable" (no answer, or the browser
 * blocked the request), "unsupported" (the server lacks the endpoint), "closed"
 * (the tunnel is closed), "protocol" (the server sent something malformed).
 */
export class TunnelError extends Error {
  constructor(kind, message, details = {}) {
    super(message);
    this.name = "TunnelError";
    this.kind = kind;
    Object.assign(this, details);
  }
}

/** The error a fetch rejects with when its signal aborts (the signal's reason if any). */
export function abortError(signal) {
  if (signal && signal.reason !== undefined) return signal.reason;
  return new DOMException("The operation was aborted.", "AbortError");
}
