// The tunnel: one connection to a Jupyter server over a transport (WebSocket or
// polling), carrying many HTTP requests and proxied sockets.
//
// It owns the in-flight requests (by message id) and hands each one its reply
// frames. When it runs over polling and the WebSocket is allowed, it tries the
// WebSocket again from time to time; once that works, new requests and sockets use
// it, work already on the polling session finishes there, and the polling session
// is closed when it holds nothing more. Each request and socket stays on the
// transport it started on, so nothing is sent twice or lost in the switch.

import { ReplyAssembler, encodeCancel, encodeRequest, parseHello } from "./codec.js";
import { diagnose, diagnoseOverPolling } from "./diagnose.js";
import { TunnelError } from "./errors.js";
import { explain } from "./explain.js";
import { makeFetch } from "./fetch.js";
import { PollingTransport } from "./polling.js";
import { normalizeBaseUrl } from "./urls.js";
import { makeWebSocketClass } from "./websocket.js";
import { WebSocketTransport } from "./ws-transport.js";

const TRANSPORTS = ["websocket", "polling"];
/** How often a tunnel on polling tries the WebSocket again (ms). */
const UPGRADE_INTERVAL = 15000;

function openTransport(name, options) {
  if (name === "websocket") {
    if (typeof options.WebSocket !== "function") {
      return Promise.reject(new TunnelError("unsupported", "no WebSocket implementation here: pass one as connect()'s WebSocket option"));
    }
    return WebSocketTransport.open(options);
  }
  return PollingTransport.open(options);
}

async function openFirst(names, options) {
  const failures = [];
  for (const name of names) {
    try {
      return await openTransport(name, options);
    } catch (error) {
      failures.push({ transport: name, error });
      if (error.kind === "version") break; // another transport meets the same server
    }
  }
  throw await explain(failures, options);
}

function makeTransportEvent(transport, version) {
  const detail = { transport, version };
  if (typeof CustomEvent === "function") return new CustomEvent("transportchange", { detail });
  const event = new Event("transportchange");
  event.detail = detail;
  return event;
}

export class Tunnel extends EventTarget {
  constructor(options, transport) {
    super();
    this._options = options;
    /** The server's base URL, ending with "/". */
    this.url = options.baseUrl;
    this._transport = null;
    this._connecting = null;
    this._closed = false;
    this._nextId = 1;
    this._pending = new Map(); // message id -> {transport, sink}
    this._channels = new Map(); // transport -> open channel count
    this._retiring = new Set();
    this._upgradeTimer = null;
    this._upgrading = false;
    this._upgradeFailures = 0;
    this.fetch = makeFetch(this);
    this.WebSocket = makeWebSocketClass(this);
    this._use(transport);
  }

  /** "websocket" or "polling": the transport new requests and sockets use. */
  get transport() {
    return this._transport ? this._transport.name : null;
  }

  /** The server extension's version (null for an original 0.0.x server over JSON framing). */
  get version() {
    return this._transport ? this._transport.version : this._lastVersion ?? null;
  }

  /** The framing requests go out in on the current transport: "binary" or "json". */
  get framing() {
    return this._transport ? this._transport.framing : null;
  }

  get closed() {
    return this._closed;
  }

  _use(transport) {
    const previous = this._transport;
    const assembler = new ReplyAssembler();
    transport.onTunnelMessage = (frame) => this._onFrame(transport, assembler, frame);
    transport.onClose = (info) => this._onTransportClosed(transport, info);
    this._transport = transport;
    this._lastVersion = transport.version;
    if (!this._channels.has(transport)) this._channels.set(transport, 0);
    if (previous && previous !== transport) this._retire(previous);
    this._scheduleUpgrade();
    if (previous !== transport) this.dispatchEvent(makeTransportEvent(transport.name, transport.version));
  }

  _scheduleUpgrade() {
    clearTimeout(this._upgradeTimer);
    this._upgradeTimer = null;
    const { transports, upgradeInterval } = this._options;
    if (this._closed || !this._transport || this._transport.name !== "polling") return;
    if (!transports.includes("websocket") || !(upgradeInterval > 0)) return;
    // Back off while upgrades keep failing (up to 8 intervals), so a network that never
    // passes WebSockets costs one failed upgrade every few minutes at most.
    const delay = upgradeInterval * Math.min(8, 2 ** this._upgradeFailures);
    this._upgradeTimer = setTimeout(() => this._tryUpgrade(), delay);
  }

  async _tryUpgrade() {
    if (this._closed || this._upgrading) return;
    this._upgrading = true;
    try {
      const transport = await WebSocketTransport.open(this._options);
      if (this._closed) {
        transport.close();
        return;
      }
      this._upgradeFailures = 0;
      this._use(transport);
    } catch {
      this._upgradeFailures += 1;
      this._scheduleUpgrade();
    } finally {
      this._upgrading = false;
    }
  }

  _retire(transport) {
    this._retiring.add(transport);
    this._maybeCloseRetired(transport);
  }

  _busy(transport) {
    if ((this._channels.get(transport) || 0) > 0) return true;
    for (const entry of this._pending.values()) if (entry.transport === transport) return true;
    return false;
  }

  _maybeCloseRetired(transport) {
    if (!this._retiring.has(transport) || this._busy(transport)) return;
    this._retiring.delete(transport);
    this._channels.delete(transport);
    transport.onClose = () => {};
    transport.close();
  }

  _onFrame(transport, assembler, frame) {
    if (typeof frame === "string" && parseHello(frame)) return; // a late hello: nothing to do
    let event;
    try {
      event = assembler.push(frame);
    } catch {
      return; // a frame this client cannot read belongs to no request it can fail
    }
    const entry = this._pending.get(event.messageId);
    if (!entry || entry.transport !== transport) return;
    if (event.head) entry.sink.head(event.head);
    if (event.data) entry.sink.data(event.data);
    if (event.done) {
      this._pending.delete(event.messageId);
      entry.sink.done();
      this._maybeCloseRetired(transport);
    }
  }

  _onTransportClosed(transport, info) {
    const error = new TypeError(`Failed to fetch: the tunnel's ${transport.name} transport closed (${info.code} ${info.reason || ""})`.trim());
    for (const [id, entry] of Array.from(this._pending)) {
      if (entry.transport !== transport) continue;
      this._pending.delete(id);
      entry.sink.error(error);
    }
    this._channels.delete(transport);
    this._retiring.delete(transport);
    if (transport !== this._transport || this._closed) return;
    // The transport in use went away: reconnect, in the configured order.
    this._transport = null;
    this._connecting = openFirst(this._options.transports, this._options).then(
      (next) => {
        this._connecting = null;
        if (this._closed) next.close();
        else this._use(next);
        return next;
      },
      (e) => {
        this._connecting = null;
        this._fail(e);
        throw e;
      },
    );
    this._connecting.catch(() => {});
  }

  _fail(error) {
    if (this._closed) return;
    this._closed = true;
    clearTimeout(this._upgradeTimer);
    this.closeReason = error;
    const event = new Event("close");
    event.error = error;
    this.dispatchEvent(event);
  }

  async _ready() {
    if (this._closed) throw new TunnelError("closed", "the tunnel is closed");
    if (this._transport) return this._transport;
    if (this._connecting) return this._connecting;
    throw new TunnelError("closed", "the tunnel is closed");
  }

  /**
   * The transport in use once one is ready, read after the wait: an upgrade that lands
   * while a request waits retires (and may close) the transport the wait began on.
   */
  async _current() {
    for (;;) {
      await this._ready();
      if (this._transport) return this._transport;
    }
  }

  /**
   * Start one tunnelled request. `sink` gets head({status, statusText, headers}),
   * data(bytes), done() and error(e). Resolves with a handle whose cancel() sends the
   * protocol's cancel (the request still ends with one final frame).
   */
  async _request({ method, path, headers, body }, sink) {
    const transport = await this._current();
    const messageId = this._nextId++;
    const message = encodeRequest({ messageId, method, path, headers, body }, body && body.byteLength && transport.framing === "binary" ? "binary" : "json");
    this._pending.set(messageId, { transport, sink });
    try {
      transport.sendTunnel(message);
    } catch (e) {
      this._pending.delete(messageId);
      throw e;
    }
    return {
      messageId,
      cancel: () => {
        const entry = this._pending.get(messageId);
        if (!entry) return;
        // The final frame (499 or a bare done) still comes; stop listening for it.
        this._pending.delete(messageId);
        try {
          transport.sendTunnel(encodeCancel(messageId));
        } catch {
          // the transport is gone, and with it the request
        }
        this._maybeCloseRetired(transport);
      },
    };
  }

  /** Open a proxied socket; resolves with the transport's channel. */
  async _openChannel(path, protocols, handlers) {
    const transport = await this._current();
    this._channels.set(transport, (this._channels.get(transport) || 0) + 1);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      if (this._channels.has(transport)) {
        this._channels.set(transport, Math.max(0, this._channels.get(transport) - 1));
      }
      this._maybeCloseRetired(transport);
    };
    return transport.openChannel(path, protocols, {
      onopen: handlers.onopen,
      onmessage: handlers.onmessage,
      onerror: handlers.onerror,
      onclose: (code, reason, wasClean) => {
        release();
        handlers.onclose(code, reason, wasClean);
      },
    });
  }

  /**
   * The diagnose endpoint's answer for this server. When its WebSocket fails while this
   * tunnel works over polling (a proxy that drops WebSocket upgrades), what the tunnel
   * learned instead: the version, that polling works, and why (see diagnoseOverPolling).
   */
  async diagnose() {
    const options = { WebSocket: this._options.WebSocket, fetch: this._options.fetch };
    try {
      return await diagnose({ url: this.url, minVersion: this._options.minVersion, ...options });
    } catch (error) {
      if (this._closed || this.transport !== "polling") throw error;
      return diagnoseOverPolling(this, error, options);
    }
  }

  /** Close every transport; in-flight requests fail and proxied sockets close. */
  close() {
    if (this._closed) return;
    this._closed = true;
    clearTimeout(this._upgradeTimer);
    const transports = new Set([this._transport, ...this._retiring, ...this._channels.keys()]);
    for (const transport of transports) {
      if (!transport) continue;
      transport.onClose = (info) => this._onTransportClosed(transport, info);
      transport.close();
    }
    this._transport = null;
    this.dispatchEvent(new Event("close"));
  }
}

/**
 * Open a tunnel to a Jupyter server.
 *
 * Options: `url` (the server's base URL, base_url included), `token` (the server's
 * token), `minVersion` (refuse a server extension older than this), `transports`
 * (default ["websocket", "polling"], tried in order), `upgradeInterval` (ms between
 * attempts to move from polling back to the WebSocket; 0 never), `WebSocket` and
 * `fetch` (implementations, default the global ones).
 */
export async function connect(options = {}) {
  if (!options.url) throw new TypeError("connect() needs the server's url");
  const transports = options.transports ? Array.from(options.transports) : TRANSPORTS.slice();
  for (const name of transports) {
    if (!TRANSPORTS.includes(name)) throw new TypeError(`unknown transport ${JSON.stringify(name)}`);
  }
  if (!transports.length) throw new TypeError("transports must name at least one transport");
  const resolved = {
    baseUrl: normalizeBaseUrl(options.url),
    token: options.token || undefined,
    minVersion: options.minVersion || undefined,
    transports,
    upgradeInterval: options.upgradeInterval ?? UPGRADE_INTERVAL,
    helloTimeout: options.helloTimeout,
    WebSocket: options.WebSocket || globalThis.WebSocket,
    fetch: options.fetch || (globalThis.fetch ? globalThis.fetch.bind(globalThis) : undefined),
  };
  if (resolved.helloTimeout === undefined) delete resolved.helloTimeout;
  const transport = await openFirst(transports, resolved);
  if (transport.name === "websocket" && transport.version === null) {
    // A server that sent no hello (the original extension): ask diagnose for its version.
    try {
      transport.version = (await diagnose({ url: resolved.baseUrl, WebSocket: resolved.WebSocket, timeout: 5000 })).extension_version;
    } catch {
      transport.version = null;
    }
  }
  return new Tunnel(resolved, transport);
}
