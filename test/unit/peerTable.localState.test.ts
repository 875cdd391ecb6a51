// What feeds this node's own row of the cluster view and its peer-state snapshots: model hashes
// (computed once, cached on disk by path, size and mtime), the speed figure of one timed
// generation, the GPU probe's answer as validated for the wire, the test-only protocol knob,
// LocalState's gathering, and doctor's explanations of failure codes.

import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { explainFailure } from "../../cli/doctor/explain.js";
import { announcedProtocolVersion } from "../../daemon/cluster/announcedProtocol.js";
import { LocalState } from "../../daemon/cluster/LocalState.js";
import { ModelHashes } from "../../daemon/cluster/ModelHashes.js";
import { tokensPerSecond } from "../../daemon/cluster/SpeedScores.js";
import type { ModelDescriptor } from "../../daemon/engine/types.js";
import { parseGpuProbeMessage } from "../../daemon/hardware/gpuInfo.js";
import { FileHashCache } from "../../daemon/models/fileHash.js";
import { HearthError } from "../../protocol/errors.js";
import { peerStateSchema } from "../../protocol/peer/messages.js";
import { waitFor } from "../support/wait.js";

const logger = pino({ level: "silent" });
let root: string;

beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "hearth-local-state-"));
});

afterEach(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

function model(id: string, content: string): ModelDescriptor {
  const file = path.join(root, "models", `${id}.gguf`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, content);
  return { id, aliases: [], path: file, sizeBytes: content.length, createdAt: 0 };
}

const sha256 = (text: string): string => createHash("sha256").update(text).digest("hex");

describe("ModelHashes", () => {
  it("hashes each model once in the background, and a restart reads the hashes from the cache", async () => {
    const dataDir = path.join(root, "data");
    const a = model("a", "first model");
    const b = model("b", "second model");
    let reads = 0;
    const counting = (): FileHashCache =>
      new FileHashCache((file) => {
        reads++;
        return Promise.resolve(sha256(fs.readFileSync(file, "utf8")));
      });
    const hashed: string[] = [];
    const first = new ModelHashes({ dataDir, logger, hashes: counting() });
    first.on("hashed", (id) => hashed.push(id));
    await first.refresh([a, b]);
    expect(first.hashOf(a)).toBeNull();
    await waitFor(() => first.pending === 0 && hashed.length === 2, 5_000, "both hashes");
    expect(first.hashOf(a)).toBe(sha256("first model"));
    expect(first.hashOf(b)).toBe(sha256("second model"));
    await first.refresh([a, b]);
    expect(reads).toBe(2);

    const second = new ModelHashes({ dataDir, logger, hashes: counting() });
    await second.refresh([a, b]);
    expect(second.pending).toBe(0);
    expect(second.hashOf(a)).toBe(sha256("first model"));
    expect(reads).toBe(2);
  });

  it("hashes a file again once it changes, and forgets the old version", async () => {
    const dataDir = path.join(root, "data");
    const a = model("a", "version one");
    const hashes = new ModelHashes({ dataDir, logger });
    await hashes.refresh([a]);
    await waitFor(() => hashes.hashOf(a) !== null, 5_000, "the first hash");
    fs.writeFileSync(a.path, "version two, longer");
    await hashes.refresh([a]);
    expect(hashes.hashOf(a)).toBeNull();
    await waitFor(() => hashes.hashOf(a) !== null, 5_000, "the new hash");
    expect(hashes.hashOf(a)).toBe(sha256("version two, longer"));
    const cache = JSON.parse(fs.readFileSync(path.join(dataDir, "cache", "model-hashes.json"), "utf8")) as { entries: Record<string, unknown> };
    expect(Object.keys(cache.entries)).toHaveLength(1);
  });

  it("with compute off, reports cached hashes only and reads no file", async () => {
    const dataDir = path.join(root, "data");
    const a = model("a", "cached");
    const b = model("b", "never hashed");
    const warm = new ModelHashes({ dataDir, logger });
    await warm.refresh([a]);
    await waitFor(() => warm.hashOf(a) !== null, 5_000, "the hash of a");
    const cold = new ModelHashes({
      dataDir,
      logger,
      compute: false,
      hashes: new FileHashCache(() => Promise.reject(new Error("must not hash"))),
    });
    await cold.refresh([a, b]);
    expect(cold.pending).toBe(0);
    expect(cold.hashOf(a)).toBe(sha256("cached"));
    expect(cold.hashOf(b)).toBeNull();
  });

  it("a corrupt cache file reads as empty and is replaced", async () => {
    const dataDir = path.join(root, "data");
    fs.mkdirSync(path.join(dataDir, "cache"), { recursive: true });
    fs.writeFileSync(path.join(dataDir, "cache", "model-hashes.json"), "{not json");
    const a = model("a", "content");
    const hashes = new ModelHashes({ dataDir, logger });
    await hashes.refresh([a]);
    await waitFor(() => hashes.hashOf(a) !== null, 5_000, "the hash");
    expect(JSON.parse(fs.readFileSync(path.join(dataDir, "cache", "model-hashes.json"), "utf8"))).toMatchObject({ format: 1 });
  });
});

describe("tokensPerSecond", () => {
  it("times the tokens after the first from the first token on", () => {
    expect(tokensPerSecond(32, 0, 500, 1500)).toBe(31);
  });

  it("falls back to the whole duration with a single token or no delta", () => {
    expect(tokensPerSecond(1, 0, 100, 500)).toBe(2);
    expect(tokensPerSecond(10, 0, undefined, 2000)).toBe(5);
  });

  it("says nothing for no tokens or no time", () => {
    expect(tokensPerSecond(0, 0, undefined, 1000)).toBeUndefined();
    expect(tokensPerSecond(5, 100, 100, 100)).toBeUndefined();
  });
});

describe("parseGpuProbeMessage", () => {
  it("accepts the probe's answer, cutting device names to what the wire takes", () => {
    const parsed = parseGpuProbeMessage({
      type: "gpuInfo",
      info: { backend: "cuda", devices: ["NVIDIA\u0007 RTX 4090", "x".repeat(300), "  "], vramTotalBytes: 24e9, vramFreeBytes: 30e9 },
    });
    expect(parsed).toEqual({
      type: "gpuInfo",
      info: { backend: "cuda", devices: ["NVIDIA  RTX 4090", "x".repeat(256)], vramTotalBytes: 24e9, vramFreeBytes: 24e9 },
    });
  });

  it("turns an unknown backend into none and refuses anything else", () => {
    expect(parseGpuProbeMessage({ type: "gpuInfo", info: { backend: "Bad Backend!", devices: [], vramTotalBytes: 0, vramFreeBytes: 0 } })).toMatchObject({ info: { backend: null } });
    expect(parseGpuProbeMessage({ type: "gpuProbeFailed", message: "no binary" })).toEqual({ type: "gpuProbeFailed", message: "no binary" });
    for (const bad of [null, "gpuInfo", { type: "gpuInfo" }, { type: "gpuInfo", info: { backend: null, devices: [], vramTotalBytes: -1, vramFreeBytes: 0 } }, { type: "other" }]) {
      expect(parseGpuProbeMessage(bad)).toBeUndefined();
    }
  });
});

describe("announcedProtocolVersion", () => {
  it("is this build's version unless the test knob names another major", () => {
    expect(announcedProtocolVersion({})).toEqual({ major: 1, minor: 0 });
    expect(announcedProtocolVersion({ HEARTH_TEST_PROTOCOL_MAJOR: "" })).toEqual({ major: 1, minor: 0 });
    expect(announcedProtocolVersion({ HEARTH_TEST_PROTOCOL_MAJOR: "2" })).toEqual({ major: 2, minor: 0 });
  });

  it.each(["two", "-1", "65536", "1.5"])("refuses %j, naming the knob", (value) => {
    let error: unknown;
    try {
      announcedProtocolVersion({ HEARTH_TEST_PROTOCOL_MAJOR: value });
    } catch (thrown) {
      error = thrown;
    }
    expect(error).toBeInstanceOf(HearthError);
    expect(error).toMatchObject({ code: "HEARTH_CONFIG_INVALID", param: "HEARTH_TEST_PROTOCOL_MAJOR" });
  });
});

describe("LocalState", () => {
  it("gathers one view and one wire snapshot the protocol accepts, advertising only wire-safe model ids", async () => {
    const good = model("tiny-1.5", "a");
    const odd = model("has space", "b");
    const state = new LocalState({
      nodeId: "N",
      fingerprintHex: "f".repeat(64),
      softwareVersion: "1.2.3",
      protocolVersion: { major: 1, minor: 0 },
      addresses: () => ["10.0.0.1:4328"],
      catalog: { list: () => Promise.resolve([good, odd]), resolve: () => Promise.reject(new Error("unused")) },
      engineStats: () => ({
        loaded: [
          { modelId: "tiny-1.5", placement: "whole", pid: 1, state: "ready", running: 2, queued: 3, lastUsedAt: 0 },
          { modelId: "loading-one", placement: "whole", pid: 2, state: "loading", running: 0, queued: 1, lastUsedAt: 0 },
        ],
      }),
      resources: () => ({ cpuCores: 4, ramTotalBytes: 100, ramFreeBytes: 50, gpu: { backend: "vulkan", devices: ["GPU0"], vramTotalBytes: 8, vramFreeBytes: 4 } }),
      hashOf: (descriptor) => (descriptor.id === "tiny-1.5" ? "ab".repeat(32) : null),
      refreshHashes: () => Promise.resolve(),
      speedScores: () => Promise.resolve({ "tiny-1.5": 12.5, "has space": 3 }),
      logger,
    });
    const { view, wire } = await state.collect();
    expect(view).toEqual({
      nodeId: "N",
      fingerprint: "f".repeat(64),
      addresses: ["10.0.0.1:4328"],
      protocolVersion: "1.0",
      softwareVersion: "1.2.3",
      resources: { cpuCores: 4, ramTotalBytes: 100, ramFreeBytes: 50, gpus: [{ name: "GPU0", vramTotalBytes: 8, vramFreeBytes: 4 }], gpuBackend: "vulkan", vramTotalBytes: 8, vramFreeBytes: 4 },
      models: [
        { id: "tiny-1.5", sizeBytes: 1, sha256: "ab".repeat(32) },
        { id: "has space", sizeBytes: 1, sha256: null },
      ],
      loadedModels: ["tiny-1.5"],
      queueDepth: 6,
      speedScores: { "tiny-1.5": 12.5, "has space": 3 },
    });
    expect(wire.modelsPresent).toEqual([{ id: "tiny-1.5", sizeBytes: 1, sha256: "ab".repeat(32) }]);
    expect(wire.speedScores).toEqual([{ modelId: "tiny-1.5", tokensPerSecond: 12.5 }]);
    expect(peerStateSchema.safeParse({ ...wire, type: "peerState", seq: 1 }).success).toBe(true);
  });
});

describe("explainFailure", () => {
  it("names the usual cause of each failure code", () => {
    expect(explainFailure("HEARTH_PEER_AUTH_FAILED").kind).toBe("wrong-cluster");
    expect(explainFailure("HEARTH_PEER_INCOMPATIBLE").kind).toBe("incompatible");
    expect(explainFailure("HEARTH_PEER_UNAVAILABLE").kind).toBe("unreachable");
    expect(explainFailure("HEARTH_PEER_UNAVAILABLE", "cannot reach 10.0.0.2:4328: Unexpected server response: 429").kind).toBe("rate-limited");
    expect(explainFailure("HEARTH_PEER_TIMEOUT").kind).toBe("timeout");
    expect(explainFailure("HEARTH_SOMETHING_ELSE").kind).toBe("other");
  });
});
