/**
 * TensorCache: pre-filling rpc-server's cache from a local GGUF (real files in a temp dir).
 * Entry names are the FNV-1a of each by-hash tensor's bytes in the file; small tensors are
 * skipped; a repeat is warm; the bound evicts other models' least recently used entries and
 * pre-fills partially when even that is not enough; no temp file is left behind.
 */

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pino } from "pino";
import { afterAll, describe, expect, it } from "vitest";
import { GgmlType, writeGgufFile, type GgufTensorSpec } from "../../daemon/gguf/writer.js";
import { fnv1a64Hex, RPC_HASH_THRESHOLD_BYTES } from "../../daemon/rpc/fnv1a.js";
import { TensorCache } from "../../daemon/rpc/TensorCache.js";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "hearth-tensor-cache-"));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

/** Just above the threshold: an f32 vector of 10 MiB + 4 bytes. */
const BIG_ELEMENTS = RPC_HASH_THRESHOLD_BYTES / 4 + 1;
const BIG_BYTES = BIG_ELEMENTS * 4;

async function writeModel(name: string, seed: number, bigTensors: number): Promise<{ file: string; names: string[] }> {
  const tensors: GgufTensorSpec[] = [{ name: "small.weight", dims: [16], type: GgmlType.F32, byteLength: 64 }];
  for (let i = 0; i < bigTensors; i++) tensors.push({ name: `blk.${i}.big.weight`, dims: [BIG_ELEMENTS], type: GgmlType.F32, byteLength: BIG_BYTES });
  const contents = tensors.map((tensor, index) => {
    const bytes = new Uint8Array(tensor.byteLength);
    for (let j = 0; j < bytes.length; j += 4096) bytes[j] = (seed * 31 + index * 7 + j) & 0xff;
    return bytes;
  });
  const file = path.join(root, `${name}.gguf`);
  await writeGgufFile(file, new Map(), tensors, (_tensor, index) => contents[index]!);
  return { file, names: contents.slice(1).map((bytes) => fnv1a64Hex(bytes)) };
}

function cacheOf(directory: string, maxBytes: number): TensorCache {
  return new TensorCache({ directory, maxBytes, logger: pino({ level: "silent" }) });
}

describe("TensorCache", () => {
  it("writes each by-hash tensor under its FNV-1a name, skips small ones, and is warm the second time", async () => {
    const model = await writeModel("a", 1, 2);
    const directory = path.join(root, "c1", "rpc");
    const cache = cacheOf(directory, 1024 * 1024 * 1024);
    const first = await cache.prefill(model.file, "1".repeat(64));
    expect(first).toMatchObject({ tensors: 2, cachedTensors: 2, cachedBytes: 2 * BIG_BYTES, writtenBytes: 2 * BIG_BYTES });
    expect(fs.readdirSync(directory).sort()).toEqual([...model.names].sort());
    for (const name of model.names) expect(fs.statSync(path.join(directory, name)).size).toBe(BIG_BYTES);
    const second = await cache.prefill(model.file, "1".repeat(64));
    expect(second).toMatchObject({ tensors: 2, cachedTensors: 2, writtenBytes: 0 });
  });

  it("evicts other models' least recently used entries to stay under the bound, and pre-fills partially when it must", async () => {
    const older = await writeModel("b", 2, 1);
    const newer = await writeModel("c", 3, 2);
    const directory = path.join(root, "c2", "rpc");
    const cache = cacheOf(directory, 2 * BIG_BYTES + 100);
    await cache.prefill(older.file, "2".repeat(64));
    expect(fs.readdirSync(directory)).toEqual(older.names);
    const result = await cache.prefill(newer.file, "3".repeat(64));
    expect(result).toMatchObject({ tensors: 2, cachedTensors: 2 });
    // The older model's entry made room; the cache never exceeded its bound.
    expect(fs.readdirSync(directory).sort()).toEqual([...newer.names].sort());
    expect(await cache.usage()).toBeLessThanOrEqual(2 * BIG_BYTES + 100);

    const tight = cacheOf(path.join(root, "c3", "rpc"), BIG_BYTES + 100);
    const partial = await tight.prefill(newer.file, "3".repeat(64));
    expect(partial).toMatchObject({ tensors: 2, cachedTensors: 1 });
    expect(fs.readdirSync(path.join(root, "c3", "rpc")).filter((name) => name.startsWith(".tmp-"))).toEqual([]);
  });
});
