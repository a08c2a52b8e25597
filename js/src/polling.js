// The polling transport (docs/developers/polling.md): plain HTTP requests for
// networks that do not pass WebSocket upgrades.
//
// One session carries numbered envelopes both ways. Channel 0 is the tunnel (the same
// JSON messages as over the WebSocket transport); other channels are proxied sockets.
// Client -> server: envelopes are numbered from 0 and kept until the server's `ack`
// covers them, so a lost send is repeated and a duplicate is skipped by the server.
// Server -> client: `recv?since=N` acknowledges everything below N; numbers already
// seen are dropped here, so each envelope is delivered once and in order. A send says
// `since` too, and its answer carries the replies ready by then (sparing the recv an
// answer); a server without that answers the ack alone.

import {
  binaryEnvelope,
  closeEnvelope,
  encodeSendBatch,
  openEnvelope,
  parseEnvelope,
  textEnvelope,
  toBytes,
} from "./codec.js";
import { TunnelError } from "./errors.js";
import { CloseCode, POLLING_PATH } from "./names.js";

export { POLLING_PATH };

/** The most envelopes, and about the most bytes, one send carries. */
const MAX_BATCH = 512;
const MAX_BATCH_BYTES = 8 * 1024 * 1024;
/** Retry delays after a failed send or poll (ms): doubles up to the last. */
const RETRY_MIN = 100;
const RETRY_MAX = 5000;
/** How many failures in a row end the session. */
const MAX_FAILURES = 8;

function xsrfHeader() {
  // Cookie-authenticated writes need the _xsrf cookie's value, which only a page on
  // the server's own site can read. Token-authenticated requests skip the check.
  if (typeof document === "undefined" || typeof document.cookie !== "string") return {};
  const match = document.cookie.match(/(?:^|;\s*)_xsrf=([^;]*)/);
  return match ? { "X-XSRFToken": decodeURIComponent(match[1]) } : {};
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class PollingTransport {
  /**
   * Open a polling session. Rejects with a TunnelError: "version" (400 for
   * `minVersion`), "refused" (401/403), "unsupported" (404: no polling endpoint),
   * "unreachable" (network error or a browser's CORS refusal).
   */
  static async open({ baseUrl, token, minVersion, fetch: fetchImpl }) {
    const doFetch = fetchImpl || globalThis.fetch.bind(globalThis);
    const url = new URL(baseUrl + POLLING_PATH);
    if (minVersion) url.searchParams.set("min_version", minVersion);
    const transport = new PollingTransport(baseUrl, token, doFetch);
    let response;
    try {
      response = await doFetch(url.href, transport._init("POST", "{}"));
    } catch (e) {
      throw new TunnelError("unreachable", `the polling endpoint could not be reached (${e.message})`);
    }
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    if (response.status === 400 && body && typeof body.message === "string") {
      throw new TunnelError("version", body.message, { status: 400 });
    }
    if (response.status === 401 || response.status === 403) {
      // The server's CORS headers make its refusal readable to an allowed origin's page
      // (else the browser only says "Failed to fetch"): say which credentials failed.
      const why = typeof body?.message === "string" ? `: ${body.message}` : "";
      throw new TunnelError("refused", `the server refused the polling session's credentials (${response.status}${why})`, {
        status: response.status,
        reason: "credentials",
      });
    }
    if (response.status === 429) {
      throw new TunnelError("refused", `the server refused the polling session: ${body?.message ?? "too many sessions"}`, {
        status: 429,
      });
    }
    if (response.status === 404) {
      throw new TunnelError("unsupported", "the server has no polling endpoint (404)", { status: 404 });
    }
    if (!response.ok || !body || typeof body.session_id !== "string") {
      throw new TunnelError("refused", `the polling session could not be opened (${response.status})`, {
        status: response.status,
      });
    }
    transport.sessionId = body.session_id;
    transport.version = typeof body.extension_version === "string" ? body.extension_version : null;
    transport.pollTimeout = typeof body.poll_timeout === "number" ? body.poll_timeout : 30;
    transport._start();
    return transport;
  }

  constructor(baseUrl, token, doFetch) {
    this.name = "polling";
    this.baseUrl = baseUrl;
    this.token = token;
    this.fetch = doFetch;
    this.framing = "json";
    this.version = null;
    this.sessionId = null;
    this.pollTimeout = 30;
    this.closed = false;
    this.onTunnelMessage = () => {};
    this.onClose = () => {};
    // client -> server
    this._outbox = []; // [{seq, envelope, size}]
    this._nextSeq = 0;
    this._sending = false;
    this._sendFailures = 0;
    // server -> client
    this._since = 0;
    this._recvAbort = null;
    // proxied sockets
    this._channels = new Map();
    this._nextChannel = 1;
  }

  _init(method, body) {
    const headers = { ...xsrfHeader() };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (this.token) headers.Authorization = `token ${this.token}`;
    return {
      method,
      headers,
      body,
      // A token needs no cookie; without one, only the login cookie can authenticate.
      credentials: this.token ? "omit" : "include",
      cache: "no-store",
    };
  }

  _sessionUrl(suffix = "") {
    return `${this.baseUrl}${POLLING_PATH}/${encodeURIComponent(this.sessionId)}${suffix}`;
  }

  _start() {
    this._recvLoop();
  }

  // ------------------------------------------------------------ sending

  _enqueue(envelope) {
    if (this.closed) throw new TunnelError("closed", "the polling session is closed");
    const size = (envelope.text?.length ?? 0) + (envelope.binary?.length ?? 0) + 64;
    this._outbox.push({ seq: this._nextSeq++, envelope, size });
    this._flush();
  }

  get bufferedAmount() {
    let total = 0;
    for (const item of this._outbox) total += item.size;
    return total;
  }

  async _flush() {
    if (this._sending || this.closed) return;
    this._sending = true;
    try {
      while (this._outbox.length && !this.closed) {
        const batch = [];
        let bytes = 0;
        for (const item of this._outbox) {
          if (batch.length >= MAX_BATCH || (batch.length && bytes + item.size > MAX_BATCH_BYTES)) break;
          batch.push(item);
          bytes += item.size;
        }
        const body = encodeSendBatch(batch[0].seq, batch.map((i) => i.envelope));
        let response;
        try {
          response = await this.fetch(this._sessionUrl(`/send?since=${this._since}`), this._init("POST", body));
        } catch (e) {
          await this._failure(`send failed (${e.message})`);
          continue;
        }
        if (response.status === 200 || response.status === 409) {
          let answer = null;
          try {
            answer = await response.json();
          } catch {
            answer = null;
          }
          if (!answer || typeof answer.ack !== "number") {
            await this._failure("send answered without an ack");
            continue;
          }
          this._sendFailures = 0;
          this._acknowledge(answer.ack);
          if (response.status === 200 && typeof answer.seq === "number" && Array.isArray(answer.messages)) {
            this._take(answer);
          }
          continue;
        }
        if (response.status === 403 || response.status === 404 || response.status === 410) {
          this._gone(`the polling session ended (${response.status})`);
          return;
        }
        await this._failure(`send answered ${response.status}`);
      }
    } finally {
      this._sending = false;
    }
  }

  _acknowledge(ack) {
    // Everything below `ack` has arrived; a 409's ack makes the next send start there.
    while (this._outbox.length && this._outbox[0].seq < ack) this._outbox.shift();
  }

  async _failure(why) {
    this._sendFailures += 1;
    if (this._sendFailures > MAX_FAILURES) {
      this._gone(`the polling session was lost: ${why}`);
      return;
    }
    await sleep(Math.min(RETRY_MAX, RETRY_MIN * 2 ** (this._sendFailures - 1)));
  }

  // ---------------------------------------------------------- receiving

  async _recvLoop() {
    let failures = 0;
    while (!this.closed) {
      const abort = new AbortController();
      this._recvAbort = abort;
      // A poll that outlives poll_timeout by far was dropped on the way: ask again.
      const timer = setTimeout(() => abort.abort(), (this.pollTimeout + 15) * 1000);
      let response;
      let answer = null;
      try {
        const init = this._init("GET");
        init.signal = abort.signal;
        response = await this.fetch(this._sessionUrl(`/recv?since=${this._since}`), init);
        if (response.status === 200) answer = await response.json();
      } catch (e) {
        response = null;
        if (this.closed) return;
        failures += 1;
        if (failures > MAX_FAILURES) {
          this._gone(`the polling session was lost (${e.message})`);
          return;
        }
        await sleep(Math.min(RETRY_MAX, RETRY_MIN * 2 ** (failures - 1)));
        continue;
      } finally {
        clearTimeout(timer);
      }
      if (this.closed) return;
      if (response.status === 403 || response.status === 404 || response.status === 410) {
        this._gone(`the polling session ended (${response.status})`);
        return;
      }
      if (!answer || typeof answer.seq !== "number" || !Array.isArray(answer.messages)) {
        failures += 1;
        if (failures > MAX_FAILURES) {
          this._gone(`the polling session was lost (recv answered ${response.status})`);
          return;
        }
        await sleep(Math.min(RETRY_MAX, RETRY_MIN * 2 ** (failures - 1)));
        continue;
      }
      failures = 0;
      this._take(answer);
      if (answer.closed && typeof answer.closed === "object") {
        // The session ended on the server (expired, closed, server stopping).
        const { code, reason } = answer.closed;
        this._gone(`the polling session ended (${code ?? ""} ${reason ?? ""})`.trim(), code);
        return;
      }
    }
  }

  _take(answer) {
    // The envelopes of a recv's or a send's answer, numbered from `answer.seq`.
    answer.messages.forEach((envelope, i) => {
      const number = answer.seq + i;
      if (number < this._since) return; // already delivered (a repeated answer)
      this._since = number + 1;
      if (!this.closed) this._dispatch(envelope);
    });
  }

  _dispatch(raw) {
    let envelope;
    try {
      envelope = parseEnvelope(raw);
    } catch {
      return; // an envelope of a kind this client does not know: ignore it
    }
    if (envelope.channel === 0) {
      if (envelope.kind === "text" || envelope.kind === "binary") this.onTunnelMessage(envelope.data);
      return;
    }
    const channel = this._channels.get(envelope.channel);
    if (!channel) return;
    switch (envelope.kind) {
      case "opened":
        channel.handlers.onopen(envelope.protocol || "");
        break;
      case "text":
      case "binary":
        channel.handlers.onmessage(envelope.data);
        break;
      case "closed":
        this._channels.delete(envelope.channel);
        if (envelope.code >= 4000 && !channel.opened) channel.handlers.onerror();
        // Clean when the socket had opened and ended with a closing handshake (any code
        // but 1006), as a browser reports it; a socket refused before opening is not.
        channel.handlers.onclose(envelope.code, envelope.reason, channel.opened && envelope.code !== CloseCode.ABNORMAL);
        break;
      default:
        break;
    }
    if (envelope.kind === "opened") channel.opened = true;
  }

  // ---------------------------------------------------------- interface

  /** Send one tunnel message (channel 0). A binary frame is not used over polling. */
  sendTunnel(message) {
    if (typeof message !== "string") {
      throw new TypeError("the polling transport carries JSON text tunnel messages only");
    }
    this._enqueue(textEnvelope(0, message));
  }

  /** Open a proxied socket on a new channel (see WebSocketTransport.openChannel). */
  openChannel(path, protocols, handlers) {
    const id = this._nextChannel++;
    const channel = { handlers, opened: false };
    this._channels.set(id, channel);
    this._enqueue(openEnvelope(id, path, protocols));
    return {
      send: (data) => {
        if (typeof data === "string") this._enqueue(textEnvelope(id, data));
        else this._enqueue(binaryEnvelope(id, toBytes(data)));
      },
      close: (code, reason) => {
        if (this.closed) return;
        this._enqueue(closeEnvelope(id, code, reason));
      },
      get bufferedAmount() {
        return 0;
      },
      id,
    };
  }

  get openChannels() {
    return this._channels.size;
  }

  _gone(reason, code = CloseCode.ABNORMAL) {
    if (this.closed) return;
    this.closed = true;
    if (this._recvAbort) this._recvAbort.abort();
    const channels = Array.from(this._channels.values());
    this._channels.clear();
    for (const channel of channels) channel.handlers.onclose(CloseCode.ABNORMAL, reason, false);
    this.onClose({ code: typeof code === "number" ? code : CloseCode.ABNORMAL, reason });
  }

  /** End the session: the server releases everything it holds for it. */
  close() {
    if (this.closed) return;
    const channels = Array.from(this._channels.values());
    this._channels.clear();
    this.closed = true;
    if (this._recvAbort) this._recvAbort.abort();
    if (this.sessionId) {
      const init = this._init("DELETE");
      this.fetch(this._sessionUrl(), init).catch(() => {});
    }
    for (const channel of channels) channel.handlers.onclose(CloseCode.ABNORMAL, "the tunnel was closed", false);
    this.onClose({ code: CloseCode.NORMAL, reason: "closed by the client" });
  }
}
