// The browser client's codec against the golden frames in tests/vectors/frames.json
// (written once by the Python codec; tests/unit/test_golden_frames.py holds the Python
// side to the same file). Every frame the browser writes must come out byte for byte,
// and every frame it reads must give exactly the values the file says.
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import {
  binaryEnvelope,
  closeEnvelope,
  encodeBinaryReply,
  encodeCancel,
  encodeRequest,
  encodeSendBatch,
  openEnvelope,
  parseBinaryRequest,
  parseEnvelope,
  parseHello,
  parseReply,
  textEnvelope,
} from "../src/codec.js";
import { CloseCode } from "../src/names.js";

const vectors = JSON.parse(readFileSync(new URL("../../tests/vectors/frames.json", import.meta.url), "utf8"));

/** Bytes from base64, decoded by node (not by the codec under test). */
const bytes = (base64) => new Uint8Array(Buffer.from(base64, "base64"));
const hex = (frame) => Buffer.from(frame).toString("hex");

function forEachCase(section, check) {
  assert.ok(vectors[section].length, `${section} has cases`);
  for (const c of vectors[section]) check(c);
}

/** The codec's request argument for a case's request. */
function requestOf(r, body = r.body_base64 !== undefined ? bytes(r.body_base64) : r.body) {
  return { messageId: r.message_id, method: r.method, path: r.path, headers: r.headers, body };
}

/** What parseReply gives for a case's reply. */
function replyOf(r) {
  return {
    messageId: r.message_id ?? null,
    done: r.done,
    status: r.status ?? null,
    statusText: r.statusText ?? null,
    headers: r.headers ?? null,
    data: r.data_base64 !== undefined ? bytes(r.data_base64) : null,
  };
}

/** The envelope the client builds for a neutral client-side envelope. */
function buildEnvelope(e) {
  switch (e.kind) {
    case "text":
      return textEnvelope(e.channel, e.text);
    case "binary":
      return binaryEnvelope(e.channel, bytes(e.data_base64));
    case "open":
      return openEnvelope(e.channel, e.path, e.protocols);
    case "close":
      return closeEnvelope(e.channel, e.code, e.reason);
    default:
      return null; // "opened" and "closed" come from the server only
  }
}

/** What parseEnvelope gives for a neutral server-side envelope. */
function parsedEnvelope(e) {
  switch (e.kind) {
    case "text":
      return { channel: e.channel, kind: "text", data: e.text };
    case "binary":
      return { channel: e.channel, kind: "binary", data: bytes(e.data_base64) };
    case "opened":
      return { channel: e.channel, kind: "opened", protocol: e.protocol ?? "" };
    case "closed":
      // No code: the close frame had none, reported as 1005 as browsers do.
      return { channel: e.channel, kind: "closed", code: e.code ?? CloseCode.NO_STATUS, reason: e.reason ?? "" };
    default:
      return null; // "open" and "close" go to the server only
  }
}

test("JSON request frames are written exactly (the client's key order)", () => {
  forEachCase("json_requests", (c) => {
    assert.equal(encodeRequest(requestOf(c.request)), c.js_text ?? c.text, c.name);
    assert.equal(encodeRequest(requestOf(c.request), "json"), c.js_text ?? c.text, c.name);
  });
});

test("cancel messages are written exactly", () => {
  forEachCase("cancels", (c) => assert.equal(encodeCancel(c.message_id), c.text, c.name));
});

test("JSON reply frames are read exactly", () => {
  forEachCase("json_replies", (c) => assert.deepEqual(parseReply(c.text), replyOf(c.reply), c.name));
});

test("error frames are read exactly, with or without a message id", () => {
  forEachCase("error_replies", (c) => {
    const expected = replyOf({ ...c.error, done: true });
    assert.deepEqual(parseReply(c.text), expected, c.name);
  });
});

test("binary request frames are written and read exactly", () => {
  forEachCase("binary_requests", (c) => {
    const frame = encodeRequest(requestOf(c.request), "binary");
    assert.ok(frame instanceof Uint8Array, c.name);
    assert.equal(hex(frame), c.hex, c.name);
    // A text body goes out as its UTF-8 bytes: the same frame.
    if (c.request.body_base64 !== undefined) {
      const text = Buffer.from(c.request.body_base64, "base64").toString("utf8");
      if (Buffer.from(text, "utf8").toString("base64") === c.request.body_base64) {
        assert.equal(hex(encodeRequest(requestOf(c.request, text), "binary")), c.hex, c.name);
      }
    }
    const { body_base64: body, ...header } = c.request;
    assert.deepEqual(parseBinaryRequest(new Uint8Array(Buffer.from(c.hex, "hex"))), {
      ...header,
      body: body !== undefined ? bytes(body) : null,
    }, c.name);
  });
});

test("binary reply frames are read exactly, and the test encoder writes the server's bytes", () => {
  forEachCase("binary_replies", (c) => {
    const frame = new Uint8Array(Buffer.from(c.hex, "hex"));
    const expected = replyOf(c.reply);
    assert.deepEqual(parseReply(frame), expected, c.name);
    assert.deepEqual(parseReply(frame.buffer), expected, c.name);
    const encoded = encodeBinaryReply({
      messageId: c.reply.message_id,
      status: c.reply.status,
      statusText: c.reply.statusText,
      headers: c.reply.headers,
      data: expected.data,
      done: c.reply.done,
    });
    assert.equal(hex(encoded), c.hex, c.name);
  });
});

test("the binary hello is recognised, and other text frames are not", () => {
  forEachCase("hellos", (c) => assert.deepEqual(parseHello(c.text), { framing: c.framing, version: c.version }, c.name));
  forEachCase("not_hellos", (text) => assert.equal(parseHello(text), null, text));
});

test("polling envelopes are written and read exactly", () => {
  let built = 0;
  let parsed = 0;
  forEachCase("envelopes", (c) => {
    const envelope = buildEnvelope(c.envelope);
    if (envelope) {
      assert.equal(JSON.stringify(envelope), c.json, c.name);
      built++;
    }
    const expected = parsedEnvelope(c.envelope);
    if (expected) {
      assert.deepEqual(parseEnvelope(JSON.parse(c.json)), expected, c.name);
      parsed++;
    }
  });
  assert.ok(built >= 4 && parsed >= 4, "client and server envelopes both covered");
});

test("send batches are written exactly", () => {
  forEachCase("send_batches", (c) => {
    assert.equal(encodeSendBatch(c.seq, c.envelopes.map(buildEnvelope)), c.json, c.name);
  });
});

test("recv answers are read exactly", () => {
  forEachCase("recv_answers", (c) => {
    const answer = JSON.parse(c.json);
    assert.equal(answer.seq, c.seq, c.name);
    assert.deepEqual(answer.messages.map(parseEnvelope), c.envelopes.map(parsedEnvelope), c.name);
    assert.deepEqual(answer.closed, c.closed, c.name);
  });
});
