// The WebSocket transport: one tunnel socket for HTTP requests, plus one native
// WebSocket per proxied socket through `{base_url}http_over_websocket/proxied_ws/`.
//
// The tunnel asks for binary framing (`framing=binary`). A server that knows it says
// hello first ({"framing": "binary", "extension_version": V}); one that does not
// (the original extension) says nothing, and the client keeps to JSON frames, which
// every server reads.

import { parseHello, toBytes } from "./codec.js";
import { TunnelError } from "./errors.js";
import { CloseCode, PROXIED_WS_PREFIX, TUNNEL_PATH } from "./names.js";
import { toWebSocketUrl } from "./urls.js";

/** How long to wait for the hello before taking the server for a legacy one (ms). */
const HELLO_TIMEOUT = 2000;

// Kept for importers under their earlier names (names.js defines them).
export { PROXIED_WS_PREFIX as PROXIED_WS_PATH, TUNNEL_PATH };

function withQuery(url, params) {
  const u = new URL(url);
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") u.searchParams.set(name, value);
  }
  return u.href;
}

/** Data from a native WebSocket message as the transport passes it on: string or bytes. */
function messageData(data) {
  if (typeof data === "string") return data;
  return toBytes(data);
}

export class WebSocketTransport {
  /**
   * Open the tunnel socket; resolves once the server has said hello (or was found to
   * be a legacy server). Rejects with a TunnelError: `kind` "upgrade" when the
   * upgrade failed (the browser does not say why), "version" when the server closed
   * with 4400 for `minVersion`, "refused" for another close right after opening.
   */
  static open({ baseUrl, token, minVersion, WebSocket: WS, helloTimeout = HELLO_TIMEOUT }) {
    const url = withQuery(toWebSocketUrl(baseUrl) + TUNNEL_PATH, {
      framing: "binary",
      min_version: minVersion,
      token,
    });
    return new Promise((resolve, reject) => {
      let ws;
      try {
        ws = new WS(url);
      } catch (e) {
        reject(new TunnelError("upgrade", `could not open the tunnel WebSocket: ${e.message}`));
        return;
      }
      ws.binaryType = "arraybuffer";
      const transport = new WebSocketTransport(baseUrl, token, WS, ws);
      let opened = false;
      let settled = false;
      let timer = null;
      const early = [];
      const finish = (error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (error) {
          reject(error);
          return;
        }
        transport._attach();
        resolve(transport);
        for (const data of early) transport._deliver(data);
      };
      ws.onopen = () => {
        opened = true;
        timer = setTimeout(() => finish(null), helloTimeout);
      };
      ws.onmessage = (event) => {
        const data = messageData(event.data);
        if (!settled && early.length === 0) {
          const hello = parseHello(data);
          if (hello) {
            transport.framing = hello.framing === "binary" ? "binary" : "json";
            transport.version = hello.version;
            finish(null);
            return;
          }
        }
        early.push(data);
        finish(null);
      };
      ws.onclose = (event) => {
        if (settled) return;
        if (!opened) {
          finish(new TunnelError("upgrade", "the tunnel WebSocket upgrade failed", { code: event.code }));
        } else if (event.code === CloseCode.BAD_REQUEST) {
          finish(new TunnelError("version", event.reason || "the server is older than minVersion", {
            code: event.code,
            reason: event.reason,
          }));
        } else {
          finish(new TunnelError("refused", `the server closed the tunnel: ${event.code} ${event.reason}`, {
            code: event.code,
            reason: event.reason,
          }));
        }
      };
      // Some implementations (node 20's) report a refused upgrade with an error event and
      // never a close event: an error before the socket opened is the failure itself.
      ws.onerror = () => {
        if (!opened) {
          setTimeout(() => finish(new TunnelError("upgrade", "the tunnel WebSocket upgrade failed", { code: CloseCode.ABNORMAL })), 50);
        }
      };
    });
  }

  constructor(baseUrl, token, WS, ws) {
    this.name = "websocket";
    this.baseUrl = baseUrl;
    this.token = token;
    this.WS = WS;
    this.ws = ws;
    this.framing = "json";
    this.version = null;
    this.closed = false;
    /** The proxied sockets still open: each ends with 1006 when the transport is closed. */
    this._channels = new Set();
    /** Set by the tunnel: called with each frame (string or Uint8Array) of channel 0. */
    this.onTunnelMessage = () => {};
    /** Set by the tunnel: called once when the transport is gone ({code, reason}). */
    this.onClose = () => {};
  }

  _attach() {
    this.ws.onmessage = (event) => this._deliver(messageData(event.data));
    this.ws.onclose = (event) => this._closed(event.code, event.reason);
  }

  _deliver(data) {
    this.onTunnelMessage(data);
  }

  _closed(code, reason) {
    if (this.closed) return;
    this.closed = true;
    this.onClose({ code, reason });
  }

  /** Send one tunnel message: a JSON string or a binary frame. */
  sendTunnel(message) {
    if (this.closed || this.ws.readyState !== 1) throw new TunnelError("closed", "the tunnel is closed");
    this.ws.send(message);
  }

  get bufferedAmount() {
    return this.ws.bufferedAmount;
  }

  /**
   * Open a proxied socket to `path` (relative to base_url, with its query) as a native
   * WebSocket through `proxied_ws`. `handlers` gets onopen(protocol), onmessage(data),
   * onclose(code, reason, wasClean) and onerror().
   */
  openChannel(path, protocols, handlers) {
    const url = new URL(toWebSocketUrl(this.baseUrl) + PROXIED_WS_PREFIX + path.replace(/^\//, ""));
    if (this.token) url.searchParams.set("token", this.token);
    const ws = protocols.length ? new this.WS(url.href, protocols) : new this.WS(url.href);
    ws.binaryType = "arraybuffer";
    let opened = false;
    let closed = false;
    const onclose = (code, reason, wasClean) => {
      if (closed) return;
      closed = true;
      this._channels.delete(end);
      handlers.onclose(code, reason, wasClean);
    };
    // tunnel.close(): the socket goes with the tunnel, as over polling.
    const end = () => {
      try {
        ws.close(CloseCode.NORMAL);
      } catch {
        // already closing
      }
      onclose(CloseCode.ABNORMAL, "the tunnel was closed", false);
    };
    this._channels.add(end);
    ws.onopen = () => {
      opened = true;
      handlers.onopen(ws.protocol || "");
    };
    ws.onmessage = (event) => handlers.onmessage(messageData(event.data));
    ws.onerror = () => {
      handlers.onerror();
      // As in open(): a refused upgrade may come without a close event.
      if (!opened) setTimeout(() => onclose(CloseCode.ABNORMAL, "", false), 50);
    };
    ws.onclose = (event) => onclose(event.code, event.reason, event.wasClean);
    return {
      send: (data) => ws.send(data),
      close: (code, reason) => (code === undefined ? ws.close() : ws.close(code, reason)),
      get bufferedAmount() {
        return ws.bufferedAmount;
      },
    };
  }

  /** Close the tunnel socket and every proxied socket opened through this transport. */
  close() {
    if (this.closed) return;
    try {
      this.ws.close(CloseCode.NORMAL);
    } catch {
      // already closing
    }
    for (const end of Array.from(this._channels)) end();
    this._closed(CloseCode.NORMAL, "closed by the client");
  }
}
