/**
 * What a peer may put in the RPC tunnel's meta and the rpc.* requests, the RPC HELLO framing,
 * and the [rpc] config table.
 */

import { describe, expect, it } from "vitest";
import { DEFAULT_RPC } from "../../daemon/config/defaults.js";
import { validateConfigObject } from "../../daemon/config/schema.js";
import { helloRequest, parseHelloResponse } from "../../daemon/rpc/rpcHello.js";
import {
  parseRpcPayload,
  rpcPrepareRequestSchema,
  rpcPrepareResponseSchema,
  rpcReleaseRequestSchema,
  rpcTunnelMetaSchema,
} from "../../protocol/peer/rpcWire.js";
import { thrownBy } from "../support/thrown.js";

const SHA = "a".repeat(64);

describe("rpc.tunnel meta", () => {
  it("is exactly {v: 1}", () => {
    expect(parseRpcPayload(rpcTunnelMetaSchema, { v: 1 }, "meta")).toEqual({ v: 1 });
  });

  it.each([
    ["missing", undefined],
    ["another version", { v: 2 }],
    ["a port", { v: 1, port: 50052 }],
    ["a host", { v: 1, host: "10.0.0.1" }],
    ["a path", { v: 1, cacheDir: "/etc" }],
    ["an array", [1]],
    ["a string", "127.0.0.1:50052"],
  ])("refuses %s with HEARTH_INVALID_REQUEST, naming no input", (_label, meta) => {
    const error = thrownBy(() => parseRpcPayload(rpcTunnelMetaSchema, meta, "rpc.tunnel meta"));
    expect(error.code).toBe("HEARTH_INVALID_REQUEST");
    expect(error.message).not.toContain("10.0.0.1");
    expect(error.message).not.toContain("/etc");
  });
});

describe("rpc.prepare and rpc.release", () => {
  it("prepare takes a sha256 and nothing else", () => {
    expect(parseRpcPayload(rpcPrepareRequestSchema, { sha256: SHA }, "req")).toEqual({ sha256: SHA });
    for (const bad of [{}, { sha256: SHA.toUpperCase() }, { sha256: "../../etc/passwd" }, { sha256: SHA, path: "/models/x.gguf" }, { sha256: 1 }, null]) {
      const error = thrownBy(() => parseRpcPayload(rpcPrepareRequestSchema, bad, "rpc.prepare request"));
      expect(error.code).toBe("HEARTH_INVALID_REQUEST");
    }
    expect(thrownBy(() => parseRpcPayload(rpcPrepareRequestSchema, { sha256: SHA, path: "/x" }, "r")).param).toBe("path");
  });

  it("a prepare answer must be well formed (the host validates what the peer says)", () => {
    const answer = { status: "prefilled", tensors: 3, cachedTensors: 3, cachedBytes: 10, writtenBytes: 0, ms: 1, freeMemoryBytes: 5 };
    expect(rpcPrepareResponseSchema.parse(answer)).toEqual(answer);
    expect(rpcPrepareResponseSchema.safeParse({ ...answer, status: "ok" }).success).toBe(false);
    expect(rpcPrepareResponseSchema.safeParse({ ...answer, tensors: -1 }).success).toBe(false);
  });

  it("release takes an empty object", () => {
    expect(parseRpcPayload(rpcReleaseRequestSchema, {}, "r")).toEqual({});
    expect(thrownBy(() => parseRpcPayload(rpcReleaseRequestSchema, { host: "x" }, "r")).code).toBe("HEARTH_INVALID_REQUEST");
  });
});

describe("RPC HELLO framing (ggml-rpc.cpp protocol 7)", () => {
  it("the request is cmd 14, a 24-byte size, 24 zero bytes of capabilities", () => {
    const request = helloRequest();
    expect(request.length).toBe(1 + 8 + 24);
    expect(request[0]).toBe(14);
    expect(request.readBigUInt64LE(1)).toBe(24n);
    expect(request.subarray(9).every((byte) => byte === 0)).toBe(true);
  });

  it("parses a complete answer only", () => {
    const answer = Buffer.alloc(8 + 28);
    answer.writeBigUInt64LE(28n, 0);
    answer.set([7, 0, 0], 8);
    expect(parseHelloResponse(answer)).toEqual({ major: 7, minor: 0, patch: 0 });
    expect(parseHelloResponse(answer.subarray(0, 20))).toBeUndefined();
    const wrongSize = Buffer.from(answer);
    wrongSize.writeBigUInt64LE(4n, 0);
    expect(parseHelloResponse(wrongSize)).toBeUndefined();
  });
});

describe("[rpc] config", () => {
  it("accepts every key in TOML spelling", () => {
    const result = validateConfigObject({
      rpc: { threads: 2, cache_dir: "/var/cache/hearth", cache_max_bytes: 1024, prefill: false, idle_timeout: "30s", start_timeout: "5s", max_workers: 1, prepare_timeout: "2m" },
    });
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.values.rpc).toEqual({ threads: 2, cacheDir: "/var/cache/hearth", cacheMaxBytes: 1024, prefill: false, idleTimeoutMs: 30_000, startTimeoutMs: 5_000, maxWorkers: 1, prepareTimeoutMs: 120_000 });
  });

  it("names a bad or unknown key", () => {
    const bad = validateConfigObject({ rpc: { threads: -1, port: 50052 } });
    expect(bad.ok).toBe(false);
    if (bad.ok) return;
    expect(bad.issues.map((issue) => issue.path.join("."))).toEqual(expect.arrayContaining(["rpc.threads", "rpc.port"]));
  });

  it("defaults: prefill on, a bounded cache, workers stop when idle", () => {
    expect(DEFAULT_RPC.prefill).toBe(true);
    expect(DEFAULT_RPC.cacheMaxBytes).toBeGreaterThan(0);
    expect(DEFAULT_RPC.idleTimeoutMs).toBeGreaterThan(0);
  });
});
