// Peer-link codec: every message round-trips, and hostile bytes are refused with the right
// code and close code without ever throwing.

import fc from "fast-check";
import { Packr } from "msgpackr";
import { describe, expect, it } from "vitest";
import { ERROR_CATALOGUE } from "../../protocol/errors.js";
import type { HearthErrorCode } from "../../protocol/errors.js";
import { decodeFrame, DEFAULT_PEER_FRAME_LIMITS, encodeFrame } from "../../protocol/peer/codec.js";
import type { DecodeResult } from "../../protocol/peer/codec.js";
import { fingerprintToHex, nodeIdFromFingerprint } from "../../protocol/peer/identity.js";
import { PEER_MESSAGE_TYPES, PEER_WIRE_LIMITS } from "../../protocol/peer/messages.js";
import type { PeerMessage, PeerMessageType } from "../../protocol/peer/messages.js";
import { PeerProtocolError } from "../../protocol/peer/peerError.js";

const fingerprint = Uint8Array.from({ length: 32 }, (_, i) => (i * 37 + 11) & 0xff);
const nodeId = nodeIdFromFingerprint(fingerprint);

const SAMPLES: Record<PeerMessageType, PeerMessage> = {
  hello: {
    type: "hello",
    nodeId,
    protocol: { major: 1, minor: 0 },
    certFingerprint: fingerprintToHex(fingerprint),
    nonce: new Uint8Array(32).fill(7),
  },
  authProof: { type: "authProof", proof: new Uint8Array(32).fill(0xab), info: { software: "0.1.0", capabilities: ["streams", "rpc-tunnel", "state.gpu-v2"] } },
  authConfirm: { type: "authConfirm", proof: new Uint8Array(32).fill(0xcd), info: { software: "0.2.0-rc.1+build", capabilities: [] } },
  handshakeReject: { type: "handshakeReject", error: { code: "HEARTH_PEER_AUTH_FAILED", message: "handshake refused" } },
  heartbeat: { type: "heartbeat", seq: 42, sentAt: 1_726_000_000_123.25 },
  heartbeatAck: { type: "heartbeatAck", seq: 42, sentAt: 1_726_000_000_123.25 },
  peerState: {
    type: "peerState",
    seq: 3,
    cpuCores: 8,
    ramTotalBytes: 34_359_738_368,
    ramFreeBytes: 12_000_000_000,
    gpu: { backend: "cuda", devices: [{ name: "NVIDIA GeForce RTX 3060" }], vramTotalBytes: 12_884_901_888, vramFreeBytes: 10_000_000_000 },
    modelsPresent: [
      { id: "Llama-3.2-1B-Instruct-Q4_K_M", sizeBytes: 807_694_464, sha256: "a".repeat(64) },
      { id: "qwen2.5-7b-instruct-q4_k_m", sizeBytes: 4_683_073_984, sha256: null },
    ],
    modelsLoaded: [{ id: "Llama-3.2-1B-Instruct-Q4_K_M" }],
    queueDepth: 2,
    speedScores: [{ modelId: "Llama-3.2-1B-Instruct-Q4_K_M", tokensPerSecond: 41.5 }],
  },
  request: { type: "request", id: 1, method: "infer.chat", payload: { messages: [{ role: "user", content: "hi" }], maxTokens: 16 }, timeoutMs: 30_000 },
  response: { type: "response", id: 1, payload: { text: "hello", usage: [1, 2, 3], ok: true, nothing: null } },
  responseError: { type: "responseError", id: 1, error: { code: "HEARTH_QUEUE_FULL", message: "queue full", param: null, retryAfterSeconds: 1 } },
  requestCancel: { type: "requestCancel", id: 1, reason: "client went away" },
  streamOpen: { type: "streamOpen", streamId: 3, purpose: "tunnel.rpc", credit: 1_048_576, meta: { device: 0 } },
  streamData: { type: "streamData", streamId: 3, seq: 0, bytes: Uint8Array.from([1, 2, 3, 4, 5]) },
  streamCredit: { type: "streamCredit", streamId: 3, credit: 65_536 },
  streamClose: { type: "streamClose", streamId: 3 },
  streamReset: { type: "streamReset", streamId: 3, error: { code: "HEARTH_CANCELLED", message: "cancelled" } },
};

/** A permissive encoder, standing in for a hostile or buggy peer. */
const rawPackr = new Packr({ useRecords: false });
const raw = (value: unknown): Uint8Array => rawPackr.pack(value);

function expectRejected(result: DecodeResult, code: HearthErrorCode): PeerProtocolError {
  expect(result.ok).toBe(false);
  if (result.ok) throw new Error("unreachable");
  expect(result.error).toBeInstanceOf(PeerProtocolError);
  expect(result.error.code).toBe(code);
  expect(result.error.closeCode).toBe(ERROR_CATALOGUE[code].closeCode);
  return result.error;
}

function expectDecoded(result: DecodeResult): PeerMessage {
  if (!result.ok) throw new Error(`expected a message, got ${result.error.code}: ${result.error.message}`);
  return result.message;
}

/** Calls decodeFrame and fails the test if it throws or returns something malformed. */
function decodeNeverThrows(bytes: unknown): DecodeResult {
  let result: DecodeResult | undefined;
  expect(() => {
    result = decodeFrame(bytes as Uint8Array);
  }).not.toThrow();
  expect(result).toBeDefined();
  if (!result!.ok) {
    expect(result!.error).toBeInstanceOf(PeerProtocolError);
    expect(["HEARTH_PEER_FRAME_INVALID", "HEARTH_PEER_FRAME_TOO_LARGE", "HEARTH_PEER_INCOMPATIBLE"]).toContain(result!.error.code);
  }
  return result!;
}

describe("round trip", () => {
  it("covers every message type in the catalogue", () => {
    expect(Object.keys(SAMPLES).sort()).toEqual([...PEER_MESSAGE_TYPES].sort());
  });

  for (const type of PEER_MESSAGE_TYPES) {
    it(`decodes an encoded ${type} to an equal message`, () => {
      const frame = encodeFrame(SAMPLES[type]);
      const decoded = expectDecoded(decodeFrame(frame));
      expect(decoded).toEqual(SAMPLES[type]);
    });
  }

  it("returns byte fields that do not alias the received frame", () => {
    const frame = encodeFrame(SAMPLES.streamData);
    const decoded = expectDecoded(decodeFrame(frame));
    frame.fill(0);
    expect(decoded.type === "streamData" && Array.from(decoded.bytes)).toEqual([1, 2, 3, 4, 5]);
  });

  it("drops unknown keys of a stream chunk, as the schema does for every message", () => {
    const decoded = expectDecoded(decodeFrame(raw({ type: "streamData", streamId: 4, seq: 7, bytes: Uint8Array.of(9), extra: "ignored" })));
    expect(decoded).toEqual({ type: "streamData", streamId: 4, seq: 7, bytes: Uint8Array.of(9) });
    expect(() => encodeFrame({ type: "streamData", streamId: 1, seq: -1, bytes: Uint8Array.of(1) })).toThrow(/refusing to send an invalid streamData/);
  });

  it("keeps every catalogued error code through a responseError", () => {
    for (const code of Object.keys(ERROR_CATALOGUE) as HearthErrorCode[]) {
      const message: PeerMessage = { type: "responseError", id: 9, error: { code, message: `failed with ${code}`, param: "messages[0]" } };
      expect(expectDecoded(decodeFrame(encodeFrame(message)))).toEqual(message);
    }
  });

  it("maps an error code from a newer peer to HEARTH_INTERNAL and keeps the original in the message", () => {
    const frame = raw({ type: "responseError", id: 2, error: { code: "HEARTH_FROM_THE_FUTURE", message: "new failure" } });
    const decoded = expectDecoded(decodeFrame(frame));
    expect(decoded).toEqual({ type: "responseError", id: 2, error: { code: "HEARTH_INTERNAL", message: "(HEARTH_FROM_THE_FUTURE) new failure" } });
  });

  it("drops fields it does not know, so a newer minor version can add optional ones", () => {
    const decoded = expectDecoded(decodeFrame(raw({ ...SAMPLES.heartbeat, jitterMs: 3, extra: { nested: true } })));
    expect(decoded).toEqual(SAMPLES.heartbeat);
  });

  it("accepts an int64-encoded safe integer and never produces a BigInt", () => {
    // fixmap(3) type:"heartbeat" seq:uint64(7) sentAt:uint64(1000)
    const frame = Uint8Array.from([
      0x83, 0xa4, ...Buffer.from("type"), 0xa9, ...Buffer.from("heartbeat"),
      0xa3, ...Buffer.from("seq"), 0xcf, 0, 0, 0, 0, 0, 0, 0, 7,
      0xa6, ...Buffer.from("sentAt"), 0xcf, 0, 0, 0, 0, 0, 0, 0x03, 0xe8,
    ]);
    expect(expectDecoded(decodeFrame(frame))).toEqual({ type: "heartbeat", seq: 7, sentAt: 1000 });
  });
});

describe("refusals", () => {
  it("refuses a frame over maxFrameBytes before parsing it (1009)", () => {
    const limits = { ...DEFAULT_PEER_FRAME_LIMITS, maxFrameBytes: 64 };
    // Garbage that would be FRAME_INVALID if it were parsed: the size check must come first.
    const error = expectRejected(decodeFrame(new Uint8Array(65).fill(0xc1), limits), "HEARTH_PEER_FRAME_TOO_LARGE");
    expect(error.closeCode).toBe(1009);
    expect(decodeFrame(encodeFrame(SAMPLES.heartbeat), limits).ok).toBe(true);
  });

  it("refuses the default 1 MiB + 1 byte frame", () => {
    expectRejected(decodeFrame(new Uint8Array(1024 * 1024 + 1)), "HEARTH_PEER_FRAME_TOO_LARGE");
  });

  it("refuses a stream chunk over maxStreamChunkBytes even inside a legal frame", () => {
    const chunk = new Uint8Array(DEFAULT_PEER_FRAME_LIMITS.maxStreamChunkBytes + 1);
    const frame = raw({ type: "streamData", streamId: 1, seq: 0, bytes: chunk });
    expect(frame.byteLength).toBeLessThan(DEFAULT_PEER_FRAME_LIMITS.maxFrameBytes);
    expectRejected(decodeFrame(frame), "HEARTH_PEER_FRAME_TOO_LARGE");
    const atLimit = raw({ type: "streamData", streamId: 1, seq: 0, bytes: chunk.subarray(1) });
    expect(decodeFrame(atLimit).ok).toBe(true);
  });

  it("refuses every truncation of every valid frame (1007)", () => {
    for (const message of Object.values(SAMPLES)) {
      const frame = encodeFrame(message);
      for (let length = 0; length < frame.byteLength; length++) {
        const error = expectRejected(decodeNeverThrows(frame.subarray(0, length)), "HEARTH_PEER_FRAME_INVALID");
        expect(error.closeCode).toBe(1007);
      }
    }
  });

  it("refuses trailing bytes after a valid message", () => {
    const frame = encodeFrame(SAMPLES.heartbeat);
    expectRejected(decodeFrame(Uint8Array.from([...frame, 0xc0])), "HEARTH_PEER_FRAME_INVALID");
  });

  it.each([
    ["an unknown type", { type: "launchMissiles", id: 1 }],
    ["a missing type", { seq: 1, sentAt: 2 }],
    ["a non-object message", [1, 2, 3]],
    ["a bare string", "hello"],
    ["a string where a number belongs", { type: "heartbeat", seq: "1", sentAt: 2 }],
    ["a negative sequence number", { type: "heartbeat", seq: -1, sentAt: 2 }],
    ["a fractional sequence number", { type: "heartbeat", seq: 1.5, sentAt: 2 }],
    ["an unsafe integer", { type: "heartbeat", seq: 2 ** 60, sentAt: 2 }],
    ["NaN", { type: "heartbeat", seq: 1, sentAt: Number.NaN }],
    ["Infinity", { type: "heartbeat", seq: 1, sentAt: Number.POSITIVE_INFINITY }],
    ["a malformed node id", { ...SAMPLES.hello, nodeId: "not-a-node-id" }],
    ["a node id with a wrong check character", { ...SAMPLES.hello, nodeId: `${nodeId.slice(0, -1)}${nodeId.endsWith("A") ? "B" : "A"}` }],
    ["a short nonce", { ...SAMPLES.hello, nonce: new Uint8Array(31) }],
    ["a nonce sent as a string", { ...SAMPLES.hello, nonce: "x".repeat(32) }],
    ["an upper-case fingerprint", { ...SAMPLES.hello, certFingerprint: fingerprintToHex(fingerprint).toUpperCase() }],
    ["too many capabilities", { ...SAMPLES.authProof, info: { software: "0.1.0", capabilities: Array.from({ length: 65 }, (_, i) => `cap${i}`) } }],
    ["a capability with spaces", { ...SAMPLES.authConfirm, info: { software: "0.1.0", capabilities: ["rm -rf"] } }],
    ["a control character in the software version", { ...SAMPLES.authProof, info: { software: "1.0\u0007", capabilities: [] } }],
    ["an authConfirm without info", { type: "authConfirm", proof: new Uint8Array(32) }],
    ["an authProof whose info lacks capabilities", { ...SAMPLES.authProof, info: { software: "0.1.0" } }],
    ["a model id that is a path", { ...SAMPLES.peerState, modelsPresent: [{ id: "../../etc/passwd", sizeBytes: 1, sha256: null }] }],
    ["an over-long model id", { ...SAMPLES.peerState, modelsLoaded: [{ id: "m".repeat(201) }] }],
    ["a request id of zero", { ...SAMPLES.request, id: 0 }],
    ["a method name with a slash", { ...SAMPLES.request, method: "infer/chat" }],
    ["an over-long error message", { type: "responseError", id: 1, error: { code: "HEARTH_INTERNAL", message: "x".repeat(4097) } }],
    ["a lower-case error code", { type: "responseError", id: 1, error: { code: "hearth_internal", message: "x" } }],
    ["an empty stream chunk", { type: "streamData", streamId: 1, seq: 0, bytes: new Uint8Array(0) }],
    // streamData's id, seq and bytes rules (messages.ts streamDataSchema).
    ["a stream chunk on stream 0", { type: "streamData", streamId: 0, seq: 0, bytes: Uint8Array.of(1) }],
    ["a stream chunk with a negative seq", { type: "streamData", streamId: 1, seq: -1, bytes: Uint8Array.of(1) }],
    ["a stream chunk with a fractional seq", { type: "streamData", streamId: 1, seq: 0.5, bytes: Uint8Array.of(1) }],
    ["a stream chunk with an unsafe stream id", { type: "streamData", streamId: 2 ** 53, seq: 0, bytes: Uint8Array.of(1) }],
    ["a stream chunk whose bytes are a string", { type: "streamData", streamId: 1, seq: 0, bytes: "abc" }],
    ["a stream chunk whose bytes are an array", { type: "streamData", streamId: 1, seq: 0, bytes: [1, 2, 3] }],
    ["a stream chunk without a seq", { type: "streamData", streamId: 1, bytes: Uint8Array.of(1) }],
    ["a zero credit grant", { type: "streamCredit", streamId: 1, credit: 0 }],
  ])("refuses %s (1007)", (_name, value) => {
    expectRejected(decodeNeverThrows(raw(value)), "HEARTH_PEER_FRAME_INVALID");
  });

  it.each([
    ["Set", new Set([1, 2])],
    ["Map as map (Packr default writes Map as map, with non-string keys)", new Map<unknown, unknown>([[1, "a"]])],
    ["RegExp", /(a+)+$/],
    ["Error", new Error("boom")],
    ["Date", new Date(0)],
    ["BigInt beyond 64 bits", 2n ** 80n],
    ["Float64Array", new Float64Array([1.5])],
  ])("refuses a %s smuggled into a free-form payload", (_name, value) => {
    const packr = new Packr({ useRecords: false, moreTypes: true, useBigIntExtension: true });
    const frame = packr.pack({ type: "request", id: 1, method: "x.y", payload: { value } });
    const error = expectRejected(decodeNeverThrows(frame), "HEARTH_PEER_FRAME_INVALID");
    expect(error.message).toMatch(/not plain MessagePack/);
  });

  it("refuses msgpackr records and structured-clone references", () => {
    const recordFrame = new Packr({ useRecords: true }).pack({ type: "heartbeat", seq: 1, sentAt: 2 });
    expectRejected(decodeNeverThrows(recordFrame), "HEARTH_PEER_FRAME_INVALID");
    const shared = { a: 1 };
    const cloneFrame = new Packr({ structuredClone: true, useRecords: false }).pack({ type: "request", id: 1, method: "x", payload: [shared, shared] });
    expectRejected(decodeNeverThrows(cloneFrame), "HEARTH_PEER_FRAME_INVALID");
  });

  it("refuses the reserved byte 0xc1 and map keys that are not strings", () => {
    expectRejected(decodeNeverThrows(Uint8Array.from([0xc1])), "HEARTH_PEER_FRAME_INVALID");
    expectRejected(decodeNeverThrows(Uint8Array.from([0x81, 0x01, 0x02])), "HEARTH_PEER_FRAME_INVALID");
  });

  it('refuses a "__proto__" key anywhere', () => {
    const protoKey = [0xa9, ...Buffer.from("__proto__")];
    // {"type":"request","id":1,"method":"x","payload":{"__proto__":{"polluted":true}}}
    const frame = Uint8Array.from([
      0x84, 0xa4, ...Buffer.from("type"), 0xa7, ...Buffer.from("request"), 0xa2, ...Buffer.from("id"), 0x01,
      0xa6, ...Buffer.from("method"), 0xa1, 0x78, 0xa7, ...Buffer.from("payload"),
      0x81, ...protoKey, 0x81, 0xa8, ...Buffer.from("polluted"), 0xc3,
    ]);
    const error = expectRejected(decodeNeverThrows(frame), "HEARTH_PEER_FRAME_INVALID");
    expect(error.message).toMatch(/__proto__/);
    expect(({} as Record<string, unknown>)["polluted"]).toBeUndefined();
  });

  it("refuses 100 000 levels of nesting without a RangeError", () => {
    const depth = 100_000;
    const arrays = new Uint8Array(depth + 1).fill(0x91);
    arrays[depth] = 0xc0;
    const error = expectRejected(decodeNeverThrows(arrays), "HEARTH_PEER_FRAME_INVALID");
    expect(error.message).toMatch(/nesting deeper than 32/);
    const maps = new Uint8Array(depth * 3 + 1);
    for (let i = 0; i < depth; i++) maps.set([0x81, 0xa1, 0x6b], i * 3);
    maps[depth * 3] = 0xc0;
    expectRejected(decodeNeverThrows(maps), "HEARTH_PEER_FRAME_INVALID");
  });

  it("accepts a payload nested up to maxNestingDepth and refuses one level more", () => {
    const nest = (levels: number): unknown => (levels === 0 ? 1 : [nest(levels - 1)]);
    // The envelope map is level 1, so the payload may hold maxNestingDepth - 1 levels.
    const limit = DEFAULT_PEER_FRAME_LIMITS.maxNestingDepth;
    expect(decodeFrame(raw({ type: "response", id: 1, payload: nest(limit - 1) })).ok).toBe(true);
    expectRejected(decodeFrame(raw({ type: "response", id: 1, payload: nest(limit) })), "HEARTH_PEER_FRAME_INVALID");
  });

  it("refuses a container that declares more items than the frame holds", () => {
    // array32 claiming 4 billion items, followed by one byte
    expectRejected(decodeNeverThrows(Uint8Array.from([0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0])), "HEARTH_PEER_FRAME_INVALID");
    // str32 claiming 4 GiB
    expectRejected(decodeNeverThrows(Uint8Array.from([0xdb, 0xff, 0xff, 0xff, 0xff, 0x61])), "HEARTH_PEER_FRAME_INVALID");
  });

  it.each([
    ["an empty frame", new Uint8Array(0)],
    ["a string", "hello"],
    ["null", null],
    ["an ArrayBuffer", new ArrayBuffer(8)],
    ["an array of numbers", [0x81, 0xa1, 0x61, 0x01]],
  ])("refuses %s as a frame", (_name, value) => {
    expectRejected(decodeNeverThrows(value), "HEARTH_PEER_FRAME_INVALID");
  });

  it("reports a hello from another major version as incompatible (4426), even when reshaped", () => {
    const futureHello = { type: "hello", protocol: { major: 2, minor: 0 }, nodeId: 12345, publicKey: "something new" };
    const error = expectRejected(decodeFrame(raw(futureHello)), "HEARTH_PEER_INCOMPATIBLE");
    expect(error.closeCode).toBe(4426);
    expect(error.message).toMatch(/2\.0.*1\.0/);
    // Same major, broken hello: that is just an invalid frame.
    expectRejected(decodeFrame(raw({ ...futureHello, protocol: { major: 1, minor: 5 } })), "HEARTH_PEER_FRAME_INVALID");
  });

  it("never echoes a long peer-chosen key into the error message", () => {
    const longKey = "k".repeat(5000);
    const result = decodeFrame(raw({ type: "request", id: 1, method: "x", payload: 1, timeoutMs: 0, [longKey]: 1 }));
    const error = expectRejected(result, "HEARTH_PEER_FRAME_INVALID");
    expect(error.message.length).toBeLessThan(400);
  });
});

describe("encodeFrame", () => {
  it("refuses to send a message the peer would refuse", () => {
    const bad = { ...SAMPLES.heartbeat, seq: -1 } as PeerMessage;
    expect(() => encodeFrame(bad)).toThrow(PeerProtocolError);
    expect(() => encodeFrame(bad)).toThrow(expect.objectContaining({ code: "HEARTH_PEER_FRAME_INVALID" }));
  });

  it.each([
    ["Date", new Date(), "Date is not plain data"],
    ["Set", new Set([1]), "Set is not plain data"],
    ["Map", new Map([["a", 1]]), "Map is not plain data"],
    ["RegExp", /a/, "RegExp is not plain data"],
    ["Error", new Error("x"), "Error is not plain data"],
    ["BigInt", 5n, "bigint is not plain data"],
    ["Float32Array", new Float32Array([1]), "Float32Array is not plain data"],
    ["function", () => 1, "function is not plain data"],
    ["class instance", new (class Point { x = 1 })(), "Point is not plain data"],
    ["undefined array item", [1, undefined], "an array holds undefined"],
  ])("refuses a %s in a free-form payload instead of silently converting it, naming what it found", (_name, value, reason) => {
    const refusal = expect.objectContaining({ code: "HEARTH_PEER_FRAME_INVALID", message: expect.stringContaining(reason) });
    expect(() => encodeFrame({ type: "response", id: 1, payload: { nested: [value] } })).toThrow(PeerProtocolError);
    expect(() => encodeFrame({ type: "response", id: 1, payload: { nested: [value] } })).toThrow(refusal);
    expect(() => encodeFrame({ type: "streamOpen", streamId: 1, purpose: "a", credit: 0, meta: { value } })).toThrow(refusal);
  });

  it("accepts Buffers and null-prototype objects in a free-form payload", () => {
    const bag = Object.assign(Object.create(null) as Record<string, unknown>, { a: 1 });
    const decoded = expectDecoded(decodeFrame(encodeFrame({ type: "response", id: 1, payload: { buffer: Buffer.from([1, 2]), bag } })));
    expect(decoded).toEqual({ type: "response", id: 1, payload: { buffer: Uint8Array.from([1, 2]), bag: { a: 1 } } });
  });

  it("refuses a frame larger than maxFrameBytes and a chunk larger than maxStreamChunkBytes", () => {
    expect(() => encodeFrame({ type: "response", id: 1, payload: "x".repeat(2 * 1024 * 1024) })).toThrow(/exceeds the limit/);
    expect(() => encodeFrame({ type: "streamData", streamId: 1, seq: 0, bytes: new Uint8Array(256 * 1024 + 1) })).toThrow(/exceeds the limit/);
  });

  it("omits absent optional fields instead of writing undefined", () => {
    const message: PeerMessage = { type: "streamClose", streamId: 5, reason: undefined };
    expect(expectDecoded(decodeFrame(encodeFrame(message)))).toEqual({ type: "streamClose", streamId: 5 });
  });

  it("fits a maximal peer state snapshot in the default frame", () => {
    const id = (i: number) => `m${i}`.padEnd(PEER_WIRE_LIMITS.maxModelIdLength, "x");
    const state: PeerMessage = {
      ...(SAMPLES.peerState as PeerMessage & { type: "peerState" }),
      modelsPresent: Array.from({ length: PEER_WIRE_LIMITS.maxModelsPresent }, (_, i) => ({ id: id(i), sizeBytes: 2 ** 40, sha256: "f".repeat(64) })),
    };
    expect(decodeFrame(encodeFrame(state)).ok).toBe(true);
  });
});

describe("fuzz", () => {
  const validFrames = Object.values(SAMPLES).map((message) => encodeFrame(message));

  it("never throws on thousands of random byte arrays", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        decodeNeverThrows(bytes);
      }),
      { numRuns: 5000 },
    );
  });

  it("never throws on random bytes that start like a message map", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0x80, max: 0x8f }), fc.uint8Array({ maxLength: 300 }), (head, tail) => {
        decodeNeverThrows(Uint8Array.from([head, ...tail]));
      }),
      { numRuns: 3000 },
    );
  });

  it("never throws on mutated valid frames, and whatever it accepts is a valid message", () => {
    const mutation = fc.record({
      frame: fc.constantFrom(...validFrames),
      edits: fc.array(fc.record({ at: fc.nat(), value: fc.integer({ min: 0, max: 255 }), kind: fc.constantFrom("set", "insert", "delete") }), {
        minLength: 1,
        maxLength: 6,
      }),
      cut: fc.option(fc.nat()),
    });
    fc.assert(
      fc.property(mutation, ({ frame, edits, cut }) => {
        const bytes = [...frame];
        for (const edit of edits) {
          const at = bytes.length === 0 ? 0 : edit.at % bytes.length;
          if (edit.kind === "set") bytes[at] = edit.value;
          else if (edit.kind === "insert") bytes.splice(at, 0, edit.value);
          else bytes.splice(at, 1);
        }
        const mutated = Uint8Array.from(cut === null ? bytes : bytes.slice(0, cut % (bytes.length + 1)));
        const result = decodeNeverThrows(mutated);
        if (result.ok) {
          // Anything accepted must be something this node could have sent itself.
          expect(() => encodeFrame(result.message)).not.toThrow();
        }
      }),
      { numRuns: 5000 },
    );
  });

  it("never throws on arbitrary structured values packed by a permissive encoder", () => {
    const packr = new Packr({ useRecords: false, moreTypes: true });
    fc.assert(
      fc.property(fc.anything({ withBigInt: true, withDate: true, withMap: true, withSet: true, withTypedArray: true, withNullPrototype: true }), (value) => {
        let frame: Uint8Array;
        try {
          frame = packr.pack(value);
        } catch {
          return; // not encodable at all: nothing to send
        }
        decodeNeverThrows(frame);
        decodeNeverThrows(packr.pack({ type: "request", id: 1, method: "a.b", payload: value }));
      }),
      { numRuns: 2000 },
    );
  });
});
