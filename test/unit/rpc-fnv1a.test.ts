/**
 * The tensor-cache names of rpc-server: FNV-1a 64 as ggml-rpc.cpp computes it.
 *
 * The reference values were computed by the `fnv_hash` function cut verbatim out of the
 * bundled llama.cpp source (node_modules/node-llama-cpp/llama/gitRelease.bundle,
 * ggml/src/ggml-rpc/ggml-rpc.cpp) and compiled with g++ -O2; the xorshift buffer is
 * 10 MiB + 1 bytes, the smallest tensor that goes by hash. The integration test
 * (rpc-tunnel.test.ts) checks the same function against the files a real rpc-server writes.
 */

import fc from "fast-check";
import fs from "node:fs";
import { describe, expect, it } from "vitest";
import { Fnv1a64, RPC_HASH_THRESHOLD_BYTES, fnv1a64Hex, goesByHash, isTensorCacheName } from "../../daemon/rpc/fnv1a.js";

function xorshiftBytes(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  let x = 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    bytes[i] = x & 0xff;
  }
  return bytes;
}

/** The textbook definition with BigInt: slow, obviously right. */
function referenceFnv(bytes: Uint8Array): string {
  let hash = 0xcbf29ce484222325n;
  for (const byte of bytes) {
    hash ^= BigInt(byte);
    hash = (hash * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return hash.toString(16).padStart(16, "0");
}

describe("FNV-1a 64 as ggml-rpc.cpp names cache files", () => {
  it("matches the values computed by llama.cpp's own fnv_hash", () => {
    expect(fnv1a64Hex(new Uint8Array())).toBe("cbf29ce484222325");
    expect(fnv1a64Hex(Buffer.from("a"))).toBe("af63dc4c8601ec8c");
    expect(fnv1a64Hex(Buffer.from("foobar"))).toBe("85944171f73967e8");
    // Computed by fnv_hash over 10 MiB + 1 bytes (upstream's threshold when this was recorded).
    expect(fnv1a64Hex(xorshiftBytes(10 * 1024 * 1024 + 1))).toBe("f877d2e2515e49fb");
  });

  it("uses the weight hash threshold the native build patches into ggml-rpc.cpp", () => {
    const build = fs.readFileSync(new URL("../../native/build.mjs", import.meta.url), "utf8");
    const match = /const WEIGHT_HASH_THRESHOLD_BYTES = (\d+) \* 1024;/.exec(build);
    expect(match, "native/build.mjs declares WEIGHT_HASH_THRESHOLD_BYTES").not.toBeNull();
    expect(RPC_HASH_THRESHOLD_BYTES).toBe(Number(match![1]) * 1024);
    expect(goesByHash(RPC_HASH_THRESHOLD_BYTES)).toBe(false);
    expect(goesByHash(RPC_HASH_THRESHOLD_BYTES + 1)).toBe(true);
  });

  it("equals the BigInt definition for any bytes, in any chunking", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), fc.nat({ max: 512 }), (bytes, cut) => {
        const split = Math.min(cut, bytes.length);
        const chunked = new Fnv1a64().update(bytes.subarray(0, split)).update(bytes.subarray(split)).hex();
        const expected = referenceFnv(bytes);
        expect(chunked).toBe(expected);
        expect(fnv1a64Hex(bytes)).toBe(expected);
        expect(new Fnv1a64().update(bytes).bigint().toString(16).padStart(16, "0")).toBe(expected);
      }),
    );
  });

  it("names are always 16 lower-case hex digits", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => isTensorCacheName(fnv1a64Hex(bytes))));
    expect(isTensorCacheName(".tmp-0123456789abcdef")).toBe(false);
    expect(isTensorCacheName("0123456789ABCDEF")).toBe(false);
    expect(isTensorCacheName("0123456789abcde")).toBe(false);
  });

  it("only weight tensors strictly above 64 KiB go by hash", () => {
    expect(goesByHash(64 * 1024)).toBe(false);
    expect(goesByHash(64 * 1024 + 1)).toBe(true);
    expect(goesByHash(0)).toBe(false);
  });
});
