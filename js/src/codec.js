// The wire format, without any I/O: the browser client's mirror of
// jupyter_http_over_ws/wire/protocol.py, framing.py and polling.py
// (docs/developers/protocol.md, polling.md). tests/vectors/frames.json holds golden
// frames that both this codec and the Python one must read and write exactly.
//
// Requests go out as JSON text frames (every server) or, once the server has said
// hello with {"framing": "binary"}, as binary frames. Replies arrive as JSON text
// frames with base64 `data`, or as binary frames: a 4-byte big-endian header length,
// the JSON header, then the raw body chunk.

import { CloseCode } from "./names.js";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The largest JSON header a binary frame may carry (as the server enforces). */
export const MAX_BINARY_HEADER = 1024 * 1024;

/**
 * Request headers a tunnelled request may not carry: the server drops them (its
 * FORBIDDEN_REQUEST_HEADERS), so the client does not send them at all. Credentials
 * come from the tunnel's own authenticated connection.
 */
export const FORBIDDEN_REQUEST_HEADERS = new Set([
  "authorization", "connection", "content-length", "cookie", "expect", "forwarded",
  "host", "keep-alive", "origin", "proxy-authenticate", "proxy-authorization",
  "proxy-connection", "sec-websocket-extensions", "sec-websocket-key",
  "sec-websocket-protocol", "sec-websocket-version", "te", "trailer",
  "transfer-encoding", "upgrade", "x-forwarded-for", "x-forwarded-host",
  "x-forwarded-proto", "x-real-ip", "x-scheme",
]);

/** A malformed frame from the server. */
export class ProtocolError extends Error {
  constructor(message) {
    super(message);
    this.name = "ProtocolError";
  }
}

// ------------------------------------------------------------------- bytes

/** Any binary value (ArrayBuffer, TypedArray, DataView) as a Uint8Array view, no copy. */
export function toBytes(value) {
  if (value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) {
    return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  }
  if (typeof SharedArrayBuffer !== "undefined" && value instanceof SharedArrayBuffer) {
    return new Uint8Array(value);
  }
  throw new TypeError("expected an ArrayBuffer or a typed array");
}

/** A fresh ArrayBuffer holding exactly `bytes` (a view may cover part of a larger buffer). */
export function toArrayBuffer(bytes) {
  if (bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength &&
      bytes.buffer instanceof ArrayBuffer) {
    return bytes.buffer;
  }
  return bytes.slice().buffer;
}

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64_INDEX = new Int16Array(256).fill(-1);
for (let i = 0; i < B64.length; i++) B64_INDEX[B64.charCodeAt(i)] = i;

/** Standard base64 (with padding) of `bytes`, byte-exact. */
export function bytesToBase64(value) {
  const bytes = toBytes(value);
  if (typeof bytes.toBase64 === "function") return bytes.toBase64();
  // btoa over a binary string, in slices so that String.fromCharCode never gets
  // more arguments than an engine accepts.
  const parts = [];
  const step = 0x6000; // a multiple of 3, so only the last slice is padded
  for (let i = 0; i < bytes.length; i += step) {
    parts.push(btoa(String.fromCharCode.apply(null, bytes.subarray(i, i + step))));
  }
  return parts.join("");
}

/** Decode standard base64 (padding optional) to bytes; throws ProtocolError on anything else. */
export function base64ToBytes(text) {
  if (typeof text !== "string") throw new ProtocolError("base64 data must be a string");
  let end = text.length;
  while (end > 0 && text.charCodeAt(end - 1) === 61 /* = */) end--;
  if (text.length - end > 2 || end % 4 === 1) {
    throw new ProtocolError("invalid base64 length");
  }
  const out = new Uint8Array(Math.floor((end * 3) / 4));
  let o = 0;
  let i = 0;
  for (; i + 4 <= end; i += 4) {
    const a = B64_INDEX[text.charCodeAt(i)];
    const b = B64_INDEX[text.charCodeAt(i + 1)];
    const c = B64_INDEX[text.charCodeAt(i + 2)];
    const d = B64_INDEX[text.charCodeAt(i + 3)];
    if ((a | b | c | d) < 0) throw new ProtocolError("invalid base64 character");
    const n = (a << 18) | (b << 12) | (c << 6) | d;
    out[o++] = n >> 16;
    out[o++] = (n >> 8) & 255;
    out[o++] = n & 255;
  }
  const rest = end - i;
  if (rest >= 2) {
    const a = B64_INDEX[text.charCodeAt(i)];
    const b = B64_INDEX[text.charCodeAt(i + 1)];
    const c = rest === 3 ? B64_INDEX[text.charCodeAt(i + 2)] : 0;
    if ((a | b | c) < 0) throw new ProtocolError("invalid base64 character");
    const n = (a << 18) | (b << 12) | (c << 6);
    out[o++] = n >> 16;
    if (rest === 3) out[o++] = (n >> 8) & 255;
  }
  return out;
}

/** Concatenate byte arrays. */
export function concatBytes(chunks) {
  let total = 0;
  for (const c of chunks) total += c.byteLength;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.byteLength;
  }
  return out;
}

// ---------------------------------------------------------------- requests

function requestHeader(request) {
  const { messageId, method, path, headers } = request;
  if (typeof messageId !== "string" && typeof messageId !== "number") {
    throw new TypeError("messageId must be a string or a number");
  }
  const header = { message_id: messageId, method: String(method).toUpperCase(), path };
  const kept = {};
  let any = false;
  for (const [name, value] of headerEntries(headers)) {
    if (FORBIDDEN_REQUEST_HEADERS.has(name.toLowerCase())) continue;
    kept[name] = value;
    any = true;
  }
  if (any) header.headers = kept;
  return header;
}

function headerEntries(headers) {
  if (!headers) return [];
  if (typeof headers.entries === "function" && !Array.isArray(headers)) {
    return Array.from(headers.entries());
  }
  if (Array.isArray(headers)) return headers;
  return Object.entries(headers);
}

/**
 * Encode one tunnelled request.
 *
 * `request` is `{messageId, method, path, headers, body}`: `path` is relative to the
 * server's base_url, `headers` an object, a Headers or a list of pairs, `body` a
 * string, bytes or null. With `framing` "json" the result is the legacy JSON text
 * (a binary body travels as `body_base64`, byte-exact); with "binary" it is a
 * Uint8Array laid out as framing.py describes.
 */
export function encodeRequest(request, framing = "json") {
  const header = requestHeader(request);
  let body = request.body ?? null;
  if (framing === "binary") {
    if (typeof body === "string") body = encoder.encode(body);
    return joinFrame(header, body ? toBytes(body) : null);
  }
  if (typeof body === "string") {
    header.body = body;
  } else if (body !== null && body !== undefined) {
    const bytes = toBytes(body);
    if (bytes.byteLength) header.body_base64 = bytesToBase64(bytes);
  }
  return JSON.stringify(header);
}

/** The text message that cancels the in-flight request `messageId` (our addition). */
export function encodeCancel(messageId) {
  return JSON.stringify({ message_id: messageId, cancel: true });
}

function joinFrame(header, body) {
  const json = encoder.encode(JSON.stringify(header));
  const out = new Uint8Array(4 + json.byteLength + (body ? body.byteLength : 0));
  new DataView(out.buffer).setUint32(0, json.byteLength, false);
  out.set(json, 4);
  if (body) out.set(body, 4 + json.byteLength);
  return out;
}

function splitFrame(frame) {
  const bytes = toBytes(frame);
  if (bytes.byteLength < 4) {
    throw new ProtocolError("Binary frame shorter than its 4-byte header length");
  }
  const length = new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, false);
  if (length > MAX_BINARY_HEADER || 4 + length > bytes.byteLength) {
    throw new ProtocolError("Binary frame header length is out of range");
  }
  let header;
  try {
    header = JSON.parse(decoder.decode(bytes.subarray(4, 4 + length)));
  } catch {
    throw new ProtocolError("Binary frame header is not JSON");
  }
  if (header === null || typeof header !== "object" || Array.isArray(header)) {
    throw new ProtocolError("Binary frame header is not a JSON object");
  }
  return { header, body: bytes.subarray(4 + length) };
}

/** Decode a binary request frame (the server's view; used by tests and tools). */
export function parseBinaryRequest(frame) {
  const { header, body } = splitFrame(frame);
  return { ...header, body: body.byteLength ? body.slice() : null };
}

/**
 * Build a binary reply frame (the server's side; used by tests), byte for byte as
 * the server lays it out: `done` comes after the first frame's status and headers.
 */
export function encodeBinaryReply(reply) {
  const header = { message_id: reply.messageId };
  if (reply.status !== undefined && reply.status !== null) {
    header.status = reply.status;
    header.statusText = reply.statusText ?? "";
    header.headers = reply.headers ?? {};
  }
  header.done = Boolean(reply.done);
  return joinFrame(header, reply.data ? toBytes(reply.data) : null);
}

// ------------------------------------------------------------------ replies

function replyFromObject(obj, data) {
  if (obj === null || typeof obj !== "object" || Array.isArray(obj)) {
    throw new ProtocolError("reply frame is not a JSON object");
  }
  const reply = {
    messageId: "message_id" in obj ? obj.message_id : null,
    done: obj.done === true,
    status: typeof obj.status === "number" ? obj.status : null,
    statusText: typeof obj.statusText === "string" ? obj.statusText : null,
    headers: obj.headers && typeof obj.headers === "object" ? obj.headers : null,
    data,
  };
  return reply;
}

/**
 * Decode one reply frame, JSON text or binary: `{messageId, done, status, statusText,
 * headers, data}`, where `status`, `statusText` and `headers` are null except on a
 * request's first frame, and `data` is a Uint8Array or null.
 */
export function parseReply(frame) {
  if (typeof frame === "string") {
    let obj;
    try {
      obj = JSON.parse(frame);
    } catch {
      throw new ProtocolError("reply frame is not JSON");
    }
    const data = obj && typeof obj.data === "string" ? base64ToBytes(obj.data) : null;
    return replyFromObject(obj, data);
  }
  const { header, body } = splitFrame(frame);
  return replyFromObject(header, body.byteLength ? body : null);
}

/**
 * The version a binary-framing hello announces (`{"framing": "binary",
 * "extension_version": V}`), as `{framing, version}`, or null if `text` is not one.
 */
export function parseHello(text) {
  if (typeof text !== "string") return null;
  let obj;
  try {
    obj = JSON.parse(text);
  } catch {
    return null;
  }
  if (!obj || typeof obj !== "object" || Array.isArray(obj)) return null;
  if (!("framing" in obj) || "message_id" in obj || typeof obj.framing !== "string") {
    return null;
  }
  const version = typeof obj.extension_version === "string" ? obj.extension_version : null;
  return { framing: obj.framing, version };
}

/**
 * Collects the frames of many interleaved replies and hands each request its events.
 *
 * `push(frame)` decodes one frame and returns `{messageId, head, data, done}` for the
 * request it belongs to: `head` ({status, statusText, headers}) only on its first
 * frame. A tunnel error for a message the server could not read (no message_id) has
 * `messageId` null.
 */
export class ReplyAssembler {
  constructor() {
    this.started = new Set();
  }

  push(frame) {
    const reply = parseReply(frame);
    const key = reply.messageId;
    let head = null;
    if (!this.started.has(key) && reply.status !== null) {
      head = { status: reply.status, statusText: reply.statusText ?? "", headers: reply.headers ?? {} };
    }
    if (reply.done) this.started.delete(key);
    else this.started.add(key);
    return { messageId: key, head, data: reply.data, done: reply.done };
  }
}

// ---------------------------------------------------------------- polling

/**
 * Polling envelopes (docs/developers/polling.md): channel 0 is the tunnel, other
 * channels are proxied sockets.
 */
export function textEnvelope(channel, text) {
  return { channel, text };
}

export function binaryEnvelope(channel, bytes) {
  return { channel, binary: bytesToBase64(bytes) };
}

/** Open a proxied socket to `path` (relative to base_url, with its query) on `channel`. */
export function openEnvelope(channel, path, protocols) {
  return { channel, open: path, protocols: Array.from(protocols) };
}

/** Close the proxied socket of `channel`; `code` and `reason` are left out when undefined. */
export function closeEnvelope(channel, code, reason) {
  const close = {};
  if (code !== undefined) close.code = code;
  if (reason !== undefined) close.reason = reason;
  return { channel, close };
}

/** The body of a `send`: `envelopes` numbered from `seq`. */
export function encodeSendBatch(seq, envelopes) {
  return JSON.stringify({ seq, messages: envelopes });
}

/** Decode an envelope's payload: `{channel, kind, ...}` with kind text/binary/opened/closed. */
export function parseEnvelope(envelope) {
  if (!envelope || typeof envelope !== "object" || typeof envelope.channel !== "number") {
    throw new ProtocolError("envelope without a channel number");
  }
  const { channel } = envelope;
  if (typeof envelope.text === "string") return { channel, kind: "text", data: envelope.text };
  if (typeof envelope.binary === "string") {
    return { channel, kind: "binary", data: base64ToBytes(envelope.binary) };
  }
  if (envelope.opened && typeof envelope.opened === "object") {
    return { channel, kind: "opened", protocol: envelope.opened.protocol ?? "" };
  }
  if (envelope.closed && typeof envelope.closed === "object") {
    return {
      channel,
      kind: "closed",
      code: typeof envelope.closed.code === "number" ? envelope.closed.code : CloseCode.NO_STATUS,
      reason: typeof envelope.closed.reason === "string" ? envelope.closed.reason : "",
    };
  }
  throw new ProtocolError("envelope of an unknown kind");
}
