// Model transfer wire (protocol/peer/modelTransferWire.ts): the `model.fetch` meta names a file
// only by sha256 and an offset, the header round-trips whatever the chunking, and hostile meta
// or header bytes are refused with a typed error, never a throw of anything else.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { HearthError } from "../../protocol/errors.js";
import {
  checkTransferHeader,
  encodeTransferHeader,
  MAX_TRANSFER_HEADER_BYTES,
  MODEL_FETCH_PURPOSE,
  parseModelFetchMeta,
  TransferHeaderDecoder,
  type HeaderDecodeResult,
} from "../../protocol/peer/modelTransferWire.js";
import { streamOpenSchema } from "../../protocol/peer/messages.js";
import { thrownBy } from "../support/thrown.js";

const SHA = "a".repeat(64);

function lengthPrefixed(body: Uint8Array, declared = body.byteLength): Uint8Array {
  const bytes = new Uint8Array(4 + body.byteLength);
  new DataView(bytes.buffer).setUint32(0, declared, false);
  bytes.set(body, 4);
  return bytes;
}

function decodeAll(bytes: Uint8Array, cuts: number[] = []): HeaderDecodeResult {
  const decoder = new TransferHeaderDecoder();
  let last: HeaderDecodeResult = { kind: "needMore" };
  let start = 0;
  for (const cut of [...cuts.filter((c) => c > 0 && c < bytes.byteLength).sort((a, b) => a - b), bytes.byteLength]) {
    last = decoder.push(bytes.subarray(start, cut));
    start = cut;
    if (last.kind !== "needMore") return last;
  }
  return last;
}

describe("model.fetch meta", () => {
  it("is a purpose the stream catalogue accepts", () => {
    expect(streamOpenSchema.safeParse({ type: "streamOpen", streamId: 1, purpose: MODEL_FETCH_PURPOSE, credit: 1 }).success).toBe(true);
  });

  it("accepts a lower-case sha256 and a non-negative offset, dropping unknown fields", () => {
    expect(parseModelFetchMeta({ sha256: SHA, offset: 0, path: "/etc/passwd" })).toEqual({ sha256: SHA, offset: 0 });
    expect(parseModelFetchMeta({ sha256: SHA, offset: Number.MAX_SAFE_INTEGER })).toEqual({ sha256: SHA, offset: Number.MAX_SAFE_INTEGER });
  });

  it.each([
    ["a path instead of a hash", { sha256: "../../../etc/passwd", offset: 0 }, "sha256"],
    ["upper-case hex", { sha256: "A".repeat(64), offset: 0 }, "sha256"],
    ["a short hash", { sha256: "a".repeat(63), offset: 0 }, "sha256"],
    ["a hash with a newline", { sha256: `${"a".repeat(64)}\n`, offset: 0 }, "sha256"],
    ["a negative offset", { sha256: SHA, offset: -1 }, "offset"],
    ["a fractional offset", { sha256: SHA, offset: 1.5 }, "offset"],
    ["an offset beyond 2^53", { sha256: SHA, offset: 2 ** 53 }, "offset"],
    ["an offset as a string", { sha256: SHA, offset: "0" }, "offset"],
    ["no offset", { sha256: SHA }, "offset"],
    ["nothing", undefined, "meta"],
    ["an array", [SHA, 0], "meta"],
  ])("refuses %s with HEARTH_INVALID_REQUEST naming the field", (_name, meta, field) => {
    const error = thrownBy(() => parseModelFetchMeta(meta));
    expect(error.code).toBe("HEARTH_INVALID_REQUEST");
    expect(error.param).toBe(field);
    // Nothing of the hostile input is echoed back.
    expect(error.message).not.toContain("passwd");
  });

  it("never throws anything but a HearthError for arbitrary values", () => {
    fc.assert(
      fc.property(fc.anything(), (meta) => {
        try {
          parseModelFetchMeta(meta);
        } catch (error) {
          return error instanceof HearthError && error.code === "HEARTH_INVALID_REQUEST";
        }
        return true;
      }),
      { numRuns: 500 },
    );
  });
});

describe("transfer header", () => {
  it("round-trips in any chunking and hands back the body bytes that came with it", () => {
    fc.assert(
      fc.property(
        fc.record({ size: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), frac: fc.double({ min: 0, max: 1, noNaN: true }) }),
        fc.uint8Array({ maxLength: 64 }),
        fc.array(fc.integer({ min: 0, max: 300 }), { maxLength: 6 }),
        ({ size, frac }, body, cuts) => {
          const header = { sha256: SHA, size, offset: Math.floor(size * frac) };
          const encoded = encodeTransferHeader(header);
          const stream = new Uint8Array(encoded.byteLength + body.byteLength);
          stream.set(encoded, 0);
          stream.set(body, encoded.byteLength);
          const result = decodeAll(stream, cuts);
          expect(result.kind).toBe("header");
          if (result.kind !== "header") return;
          expect(result.header).toEqual(header);
          // Body bytes that arrived in the header's last chunk are returned; later chunks are the caller's.
          const lastCut = [...cuts.filter((c) => c > 0 && c < stream.byteLength)].filter((c) => c >= encoded.byteLength).sort((a, b) => a - b)[0] ?? stream.byteLength;
          expect([...result.rest]).toEqual([...stream.subarray(encoded.byteLength, lastCut)]);
        },
      ),
      { numRuns: 300 },
    );
  });

  it.each([
    ["a zero length", lengthPrefixed(new Uint8Array(0))],
    ["a length beyond the limit", lengthPrefixed(new Uint8Array(8), MAX_TRANSFER_HEADER_BYTES + 1)],
    ["a 4 GiB length", lengthPrefixed(new Uint8Array(8), 0xffffffff)],
    ["bytes that are not JSON", lengthPrefixed(Buffer.from("not json"))],
    ["invalid UTF-8", lengthPrefixed(Uint8Array.of(0x7b, 0xff, 0xfe, 0x7d))],
    ["a JSON array", lengthPrefixed(Buffer.from("[1,2,3]"))],
    ["an offset past the size", lengthPrefixed(Buffer.from(JSON.stringify({ sha256: SHA, size: 10, offset: 11 })))],
    ["a negative size", lengthPrefixed(Buffer.from(JSON.stringify({ sha256: SHA, size: -1, offset: 0 })))],
    ["a size beyond 2^53", lengthPrefixed(Buffer.from(`{"sha256":"${SHA}","size":1e300,"offset":0}`))],
    ["a path for a hash", lengthPrefixed(Buffer.from(JSON.stringify({ sha256: "/etc/passwd", size: 10, offset: 0 })))],
    ["__proto__ keys", lengthPrefixed(Buffer.from(`{"__proto__":{"size":1},"sha256":"${SHA}","offset":0}`))],
  ])("refuses %s as a protocol violation", (_name, bytes) => {
    const result = decodeAll(bytes);
    expect(result.kind).toBe("error");
    if (result.kind === "error") expect(result.error.code).toBe("HEARTH_PEER_PROTOCOL_VIOLATION");
  });

  it("waits for more bytes while the header is incomplete, and is done after one result", () => {
    const decoder = new TransferHeaderDecoder();
    const encoded = encodeTransferHeader({ sha256: SHA, size: 5, offset: 0 });
    expect(decoder.push(encoded.subarray(0, 2)).kind).toBe("needMore");
    expect(decoder.push(encoded.subarray(2, 10)).kind).toBe("needMore");
    expect(decoder.push(encoded.subarray(10)).kind).toBe("header");
    expect(decoder.push(Uint8Array.of(1)).kind).toBe("error");
  });

  it("never throws for arbitrary bytes in arbitrary chunks", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2_000 }), fc.array(fc.integer({ min: 0, max: 2_000 }), { maxLength: 5 }), (bytes, cuts) => {
        const result = decodeAll(bytes, cuts);
        return result.kind === "needMore" || result.kind === "header" || (result.kind === "error" && result.error instanceof HearthError);
      }),
      { numRuns: 500 },
    );
  });

  it("refuses to encode a header whose offset passes its size (a local bug)", () => {
    expect(() => encodeTransferHeader({ sha256: SHA, size: 1, offset: 2 })).toThrow();
  });

  it("must describe the file and range that were asked for", () => {
    const header = { sha256: SHA, size: 100, offset: 40 };
    expect(checkTransferHeader(header, { sha256: SHA, offset: 40, size: 100 })).toBeUndefined();
    expect(checkTransferHeader(header, { sha256: SHA, offset: 40 })).toBeUndefined();
    expect(checkTransferHeader(header, { sha256: "b".repeat(64), offset: 40 })?.code).toBe("HEARTH_PEER_PROTOCOL_VIOLATION");
    expect(checkTransferHeader(header, { sha256: SHA, offset: 0 })?.code).toBe("HEARTH_PEER_PROTOCOL_VIOLATION");
    expect(checkTransferHeader(header, { sha256: SHA, offset: 40, size: 99 })?.code).toBe("HEARTH_PEER_PROTOCOL_VIOLATION");
  });
});
