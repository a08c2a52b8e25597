// Unit tests of the wire codec and the URL helpers (no server): base64, requests,
// binary framing, replies, base URLs.
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { test } from "node:test";

import {
  ProtocolError,
  ReplyAssembler,
  base64ToBytes,
  bytesToBase64,
  encodeBinaryReply,
  encodeCancel,
  encodeRequest,
  parseBinaryRequest,
  parseEnvelope,
  parseHello,
  parseReply,
} from "../src/codec.js";
import { normalizeBaseUrl, pathUnderBase, toWebSocketUrl } from "../src/urls.js";

function allBytes() {
  const bytes = new Uint8Array(256 * 3 + 7);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 131 + 7) & 255;
  return bytes;
}

test("base64 encodes every byte value as the standard alphabet does, at every length", () => {
  const bytes = allBytes();
  for (const n of [0, 1, 2, 3, 4, 5, 255, 256, 0x6000, 0x6001, bytes.length]) {
    const slice = n <= bytes.length ? bytes.subarray(0, n) : new Uint8Array(n).map((_, i) => i * 7);
    assert.equal(bytesToBase64(slice), Buffer.from(slice).toString("base64"), `length ${n}`);
  }
});

test("base64 decodes byte-exact, with or without padding", () => {
  const bytes = allBytes();
  for (let n = 0; n < 40; n++) {
    const slice = bytes.subarray(n, n * 3 + n);
    const text = Buffer.from(slice).toString("base64");
    assert.deepEqual(base64ToBytes(text), new Uint8Array(slice));
    assert.deepEqual(base64ToBytes(text.replace(/=+$/, "")), new Uint8Array(slice));
  }
  const big = new Uint8Array(1 << 20).map((_, i) => (i * 2654435761) >>> 24);
  assert.deepEqual(base64ToBytes(bytesToBase64(big)), big);
});

test("base64 refuses what is not base64", () => {
  for (const bad of ["a", "ab!d", "abc=d", "a===", "ab cd", "ab\ncd", "é123"]) {
    assert.throws(() => base64ToBytes(bad), ProtocolError, bad);
  }
});

test("base64 of a view encodes only the view's bytes", () => {
  const buffer = new Uint8Array([1, 2, 3, 4, 5, 6]).buffer;
  assert.equal(bytesToBase64(new Uint8Array(buffer, 2, 3)), Buffer.from([3, 4, 5]).toString("base64"));
  assert.equal(bytesToBase64(new DataView(buffer, 1, 2)), Buffer.from([2, 3]).toString("base64"));
});

test("a JSON request carries a binary body as body_base64, byte-exact", () => {
  const body = allBytes();
  const text = encodeRequest({ messageId: 7, method: "put", path: "/api/contents/a.bin", body,
    headers: { "Content-Type": "application/octet-stream" } });
  const obj = JSON.parse(text);
  assert.equal(obj.message_id, 7);
  assert.equal(obj.method, "PUT");
  assert.equal(obj.path, "/api/contents/a.bin");
  assert.deepEqual(obj.headers, { "Content-Type": "application/octet-stream" });
  assert.equal(obj.body, undefined);
  assert.deepEqual(new Uint8Array(Buffer.from(obj.body_base64, "base64")), body);
});

test("a JSON request carries a text body as body and no body when there is none", () => {
  assert.deepEqual(JSON.parse(encodeRequest({ messageId: "a", method: "POST", path: "/x", body: "héllo" })),
    { message_id: "a", method: "POST", path: "/x", body: "héllo" });
  assert.deepEqual(JSON.parse(encodeRequest({ messageId: 1, method: "GET", path: "/api" })),
    { message_id: 1, method: "GET", path: "/api" });
});

test("requests leave out the headers the server would drop (credentials, hop-by-hop)", () => {
  const headers = new Headers({ Authorization: "token secret", Cookie: "a=b", "X-Custom": "1", "content-length": "3" });
  const obj = JSON.parse(encodeRequest({ messageId: 1, method: "GET", path: "/", headers }));
  assert.deepEqual(obj.headers, { "x-custom": "1" });
  assert.ok(!encodeRequest({ messageId: 1, method: "GET", path: "/", headers }).includes("secret"));
});

test("a binary request frame is a 4-byte length, the JSON header and the raw body", () => {
  const body = allBytes();
  const frame = encodeRequest({ messageId: 3, method: "POST", path: "/p", body, headers: { A: "b" } }, "binary");
  assert.ok(frame instanceof Uint8Array);
  const length = new DataView(frame.buffer).getUint32(0, false);
  const header = JSON.parse(Buffer.from(frame.subarray(4, 4 + length)).toString("utf8"));
  assert.deepEqual(header, { message_id: 3, method: "POST", path: "/p", headers: { A: "b" } });
  assert.deepEqual(frame.subarray(4 + length), body);
  const parsed = parseBinaryRequest(frame);
  assert.deepEqual(parsed.body, body);
  const text = parseBinaryRequest(encodeRequest({ messageId: 4, method: "POST", path: "/p", body: "é" }, "binary"));
  assert.deepEqual(text.body, new Uint8Array([0xc3, 0xa9]));
});

test("cancel messages are exactly the protocol's", () => {
  assert.deepEqual(JSON.parse(encodeCancel(7)), { message_id: 7, cancel: true });
  assert.deepEqual(JSON.parse(encodeCancel("x")), { message_id: "x", cancel: true });
});

test("legacy JSON reply frames decode, data byte-exact", () => {
  const data = allBytes();
  const first = parseReply(JSON.stringify({ message_id: 1, status: 200, statusText: "OK",
    headers: { "Content-Type": "x/y" }, data: Buffer.from(data).toString("base64"), done: false }));
  assert.equal(first.messageId, 1);
  assert.equal(first.status, 200);
  assert.equal(first.statusText, "OK");
  assert.deepEqual(first.headers, { "Content-Type": "x/y" });
  assert.deepEqual(first.data, data);
  assert.equal(first.done, false);
  const last = parseReply(JSON.stringify({ message_id: 1, done: true }));
  assert.equal(last.done, true);
  assert.equal(last.data, null);
  assert.equal(last.status, null);
});

test("binary reply frames decode, and round-trip with the encoder", () => {
  const data = allBytes();
  const frame = encodeBinaryReply({ messageId: "m", status: 201, statusText: "Created", headers: { A: "1" }, data, done: true });
  const reply = parseReply(frame.buffer);
  assert.equal(reply.messageId, "m");
  assert.equal(reply.status, 201);
  assert.deepEqual(reply.headers, { A: "1" });
  assert.deepEqual(reply.data, data);
  assert.equal(reply.done, true);
  const bare = parseReply(encodeBinaryReply({ messageId: "m", done: true }));
  assert.equal(bare.status, null);
  assert.equal(bare.data, null);
});

test("malformed binary frames are refused", () => {
  assert.throws(() => parseReply(new Uint8Array([0, 0])), ProtocolError);
  assert.throws(() => parseReply(new Uint8Array([0, 0, 0, 9, 123])), ProtocolError);
  const bad = new Uint8Array([0, 0, 0, 2, 0x5b, 0x5d]); // "[]"
  assert.throws(() => parseReply(bad), ProtocolError);
  assert.throws(() => parseReply("not json"), ProtocolError);
});

test("the assembler splits interleaved replies: one head each, chunks in order, one done", () => {
  const a = new ReplyAssembler();
  const body1 = allBytes();
  const body2 = new Uint8Array([9, 8, 7]);
  const frames = [
    JSON.stringify({ message_id: 1, status: 200, statusText: "OK", headers: {}, data: Buffer.from(body1.subarray(0, 100)).toString("base64"), done: false }),
    encodeBinaryReply({ messageId: 2, status: 404, statusText: "Not Found", headers: { X: "y" }, done: false }),
    JSON.stringify({ message_id: 1, data: Buffer.from(body1.subarray(100)).toString("base64"), done: false }),
    encodeBinaryReply({ messageId: 2, data: body2, done: true }),
    JSON.stringify({ message_id: 1, done: true }),
  ];
  const got = { 1: { heads: [], chunks: [], done: 0 }, 2: { heads: [], chunks: [], done: 0 } };
  for (const f of frames) {
    const ev = a.push(f);
    const g = got[ev.messageId];
    if (ev.head) g.heads.push(ev.head);
    if (ev.data) g.chunks.push(...ev.data);
    if (ev.done) g.done++;
  }
  assert.equal(got[1].heads.length, 1);
  assert.equal(got[1].heads[0].status, 200);
  assert.deepEqual(new Uint8Array(got[1].chunks), body1);
  assert.equal(got[1].done, 1);
  assert.deepEqual(got[2].heads, [{ status: 404, statusText: "Not Found", headers: { X: "y" } }]);
  assert.deepEqual(got[2].chunks, [9, 8, 7]);
  assert.equal(got[2].done, 1);
});

test("a tunnel error for an unreadable message has no message id", () => {
  const ev = new ReplyAssembler().push(JSON.stringify({ status: 400, statusText: "JSON input is required.", done: true }));
  assert.equal(ev.messageId, null);
  assert.equal(ev.head.status, 400);
  assert.equal(ev.done, true);
});

test("the hello frame is recognised and replies are not", () => {
  assert.deepEqual(parseHello('{"framing":"binary","extension_version":"1.2.3"}'), { framing: "binary", version: "1.2.3" });
  assert.equal(parseHello('{"message_id":1,"framing":"binary"}'), null);
  assert.equal(parseHello('{"message_id":1,"done":true}'), null);
  assert.equal(parseHello("nope"), null);
});

test("polling envelopes decode", () => {
  assert.deepEqual(parseEnvelope({ channel: 0, text: "{}" }), { channel: 0, kind: "text", data: "{}" });
  assert.deepEqual(parseEnvelope({ channel: 3, binary: "AAEC" }), { channel: 3, kind: "binary", data: new Uint8Array([0, 1, 2]) });
  assert.deepEqual(parseEnvelope({ channel: 3, opened: { protocol: null } }), { channel: 3, kind: "opened", protocol: "" });
  assert.deepEqual(parseEnvelope({ channel: 3, closed: { code: 4404, reason: "nope" } }), { channel: 3, kind: "closed", code: 4404, reason: "nope" });
  assert.throws(() => parseEnvelope({ text: "x" }), ProtocolError);
});

test("URLs map to paths under the base URL, and others are refused", () => {
  const base = normalizeBaseUrl("http://h:8888/user/alice");
  assert.equal(base, "http://h:8888/user/alice/");
  assert.equal(pathUnderBase("http://h:8888/user/alice/api/contents?x=1", base), "/api/contents?x=1");
  assert.equal(pathUnderBase("ws://h:8888/user/alice/api/kernels/k/channels?session_id=s", base), "/api/kernels/k/channels?session_id=s");
  assert.equal(pathUnderBase("api/contents", base), "/api/contents");
  assert.equal(pathUnderBase("/user/alice/", base), "/");
  assert.equal(pathUnderBase("http://h:8888/user/alice", base), "/");
  assert.equal(pathUnderBase("http://h:8888/user/bob/api", base), null);
  assert.equal(pathUnderBase("http://other:8888/user/alice/api", base), null);
  assert.equal(pathUnderBase("https://h:8888/user/alice/api", base), null);
  assert.equal(normalizeBaseUrl("ws://h:1/?token=x#y"), "http://h:1/");
  assert.throws(() => normalizeBaseUrl("ftp://h/"), TypeError);
  assert.equal(toWebSocketUrl("https://h/a/"), "wss://h/a/");
  assert.equal(toWebSocketUrl("http://h:1/"), "ws://h:1/");
});
