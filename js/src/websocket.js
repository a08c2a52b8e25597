// tunnel.WebSocket: a class with the browser WebSocket interface whose sockets are
// proxied through the tunnel's server (`proxied_ws` over the WebSocket transport, a
// channel of the session over polling).
//
// `new tunnel.WebSocket("ws://host:8888/api/kernels/K/channels?session_id=S",
// "v1.kernel.websocket.jupyter.org")` is what @jupyterlab/services does with
// `settings.WebSocket`; the URL must lie under the tunnel's base URL (ws, wss, http,
// https, or a path relative to the base URL).

import { toArrayBuffer, toBytes } from "./codec.js";
import { CloseCode } from "./names.js";
import { pathUnderBase, toWebSocketUrl } from "./urls.js";

const CONNECTING = 0;
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

const encoder = new TextEncoder();

function domError(message, name) {
  return new DOMException(message, name);
}

function makeCloseEvent(code, reason, wasClean) {
  if (typeof CloseEvent === "function") return new CloseEvent("close", { code, reason, wasClean });
  const event = new Event("close");
  Object.defineProperties(event, {
    code: { value: code, enumerable: true },
    reason: { value: reason, enumerable: true },
    wasClean: { value: wasClean, enumerable: true },
  });
  return event;
}

function makeMessageEvent(data, origin) {
  if (typeof MessageEvent === "function") return new MessageEvent("message", { data, origin });
  const event = new Event("message");
  Object.defineProperties(event, {
    data: { value: data, enumerable: true },
    origin: { value: origin, enumerable: true },
  });
  return event;
}

function normalizeProtocols(protocols) {
  if (protocols === undefined || protocols === null) return [];
  const list = typeof protocols === "string" ? [protocols] : Array.from(protocols, String);
  const seen = new Set();
  for (const p of list) {
    if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(p) || seen.has(p)) {
      throw domError(`Invalid or duplicate subprotocol ${JSON.stringify(p)}`, "SyntaxError");
    }
    seen.add(p);
  }
  return list;
}

function byteSize(data) {
  if (typeof data === "string") return encoder.encode(data).byteLength;
  if (typeof Blob !== "undefined" && data instanceof Blob) return data.size;
  return data.byteLength;
}

/** Make the WebSocket class of a tunnel. */
export function makeWebSocketClass(tunnel) {
  const handlerNames = ["open", "message", "error", "close"];

  class TunnelWebSocket extends EventTarget {
    static CONNECTING = CONNECTING;
    static OPEN = OPEN;
    static CLOSING = CLOSING;
    static CLOSED = CLOSED;

    #url;
    #protocols;
    #protocol = "";
    #readyState = CONNECTING;
    #binaryType = "blob";
    #channel = null;
    #closeRequest = null;
    #queue = Promise.resolve();
    #queued = 0;
    #handlers = {};
    #origin;
    #errored = false;

    constructor(url, protocols = undefined) {
      super();
      const wsBase = toWebSocketUrl(tunnel.url);
      let absolute;
      try {
        absolute = new URL(String(url), wsBase);
      } catch {
        throw domError(`Invalid WebSocket URL ${url}`, "SyntaxError");
      }
      if (absolute.hash) throw domError("A WebSocket URL must not have a fragment", "SyntaxError");
      if (absolute.protocol === "http:") absolute.protocol = "ws:";
      if (absolute.protocol === "https:") absolute.protocol = "wss:";
      const path = pathUnderBase(absolute.href, tunnel.url);
      if (path === null) {
        throw domError(`${absolute.href} is not under the tunnel's server ${tunnel.url}`, "SyntaxError");
      }
      this.#url = absolute.href;
      this.#origin = new URL(wsBase).origin;
      this.#protocols = normalizeProtocols(protocols);
      tunnel
        ._openChannel(path, this.#protocols, {
          onopen: (protocol) => this.#onOpen(protocol),
          onmessage: (data) => this.#onMessage(data),
          onerror: () => this.#onError(),
          onclose: (code, reason, wasClean) => this.#onClose(code, reason, wasClean),
        })
        .then(
          (channel) => {
            this.#channel = channel;
            if (this.#closeRequest) channel.close(...this.#closeRequest);
          },
          () => this.#onClose(CloseCode.ABNORMAL, "", false),
        );
    }

    get url() {
      return this.#url;
    }

    get readyState() {
      return this.#readyState;
    }

    get protocol() {
      return this.#protocol;
    }

    get extensions() {
      return "";
    }

    get binaryType() {
      return this.#binaryType;
    }

    set binaryType(value) {
      if (value === "blob" || value === "arraybuffer") this.#binaryType = value;
    }

    get bufferedAmount() {
      return this.#queued + (this.#channel ? this.#channel.bufferedAmount : 0);
    }

    get CONNECTING() {
      return CONNECTING;
    }

    get OPEN() {
      return OPEN;
    }

    get CLOSING() {
      return CLOSING;
    }

    get CLOSED() {
      return CLOSED;
    }

    /** Send a string, an ArrayBuffer, a typed array or DataView, or a Blob. */
    send(data) {
      if (this.#readyState === CONNECTING) {
        throw domError("Still in CONNECTING state.", "InvalidStateError");
      }
      let payload = data;
      if (typeof data === "string") {
        payload = data;
      } else if (typeof Blob !== "undefined" && data instanceof Blob) {
        payload = data;
      } else if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) {
        payload = toBytes(data).slice(); // the caller may reuse its buffer
      } else {
        payload = String(data);
      }
      if (this.#readyState !== OPEN) {
        // As browsers do: a send after close() is dropped, counted in bufferedAmount.
        this.#queued += byteSize(payload);
        return;
      }
      if (this.#queued === 0 && !(typeof Blob !== "undefined" && payload instanceof Blob)) {
        this.#channel.send(payload);
        return;
      }
      // A Blob is read asynchronously; later sends wait behind it to keep the order.
      const size = byteSize(payload);
      this.#queued += size;
      this.#queue = this.#queue.then(async () => {
        const bytes = typeof payload === "string" || !(payload instanceof Blob)
          ? payload
          : new Uint8Array(await payload.arrayBuffer());
        this.#queued -= size;
        if (this.#readyState === OPEN) this.#channel.send(bytes);
      });
    }

    /** Close with an optional code (1000 or 3000-4999) and reason (at most 123 bytes). */
    close(code = undefined, reason = undefined) {
      if (code !== undefined && code !== CloseCode.NORMAL && !(code >= 3000 && code <= 4999)) {
        throw domError(`The close code must be 1000 or 3000-4999, not ${code}`, "InvalidAccessError");
      }
      if (reason !== undefined && encoder.encode(String(reason)).byteLength > 123) {
        throw domError("The close reason must be at most 123 bytes of UTF-8", "SyntaxError");
      }
      if (this.#readyState === CLOSING || this.#readyState === CLOSED) return;
      this.#readyState = CLOSING;
      const args = code === undefined ? [] : reason === undefined ? [code] : [code, String(reason)];
      if (this.#channel) this.#channel.close(...args);
      else this.#closeRequest = args;
    }

    #onOpen(protocol) {
      if (this.#readyState !== CONNECTING) return;
      this.#readyState = OPEN;
      this.#protocol = protocol || "";
      this.dispatchEvent(new Event("open"));
    }

    #onMessage(data) {
      if (this.#readyState !== OPEN) return;
      let value = data;
      if (typeof data !== "string") {
        const bytes = toBytes(data);
        value = this.#binaryType === "arraybuffer" ? toArrayBuffer(bytes) : new Blob([bytes]);
      }
      this.dispatchEvent(makeMessageEvent(value, this.#origin));
    }

    #onError() {
      if (this.#readyState === CLOSED || this.#errored) return;
      this.#errored = true;
      this.dispatchEvent(new Event("error"));
    }

    #onClose(code, reason, wasClean) {
      if (this.#readyState === CLOSED) return;
      // As in browsers, a connection that ends abnormally (1006: it failed, or the
      // tunnel went away) fires error first, then close.
      if ((code ?? CloseCode.NO_STATUS) === CloseCode.ABNORMAL) this.#onError();
      this.#readyState = CLOSED;
      this.dispatchEvent(makeCloseEvent(code ?? CloseCode.NO_STATUS, reason ?? "", Boolean(wasClean)));
    }

    static {
      for (const name of handlerNames) {
        Object.defineProperty(this.prototype, `on${name}`, {
          configurable: true,
          enumerable: true,
          get() {
            return this.#handlers[name] ?? null;
          },
          set(fn) {
            const old = this.#handlers[name];
            if (old) this.removeEventListener(name, old);
            this.#handlers[name] = typeof fn === "function" ? fn : null;
            if (this.#handlers[name]) this.addEventListener(name, this.#handlers[name]);
          },
        });
      }
    }
  }

  return TunnelWebSocket;
}
