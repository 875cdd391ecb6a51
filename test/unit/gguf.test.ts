// GGUF writer -> reader round trip, the reader's defences against malformed and hostile
// files, and describeGguf's derived numbers.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HearthError } from "../../protocol/errors.js";
import { describeGguf, parseGgufHeader, readGgufHeader, type GgufHeader } from "../../daemon/gguf/reader.js";
import { SYNTH_PRESETS, writeSyntheticModel } from "../../daemon/gguf/synth.js";
import {
  encodeGgufHeader,
  GGUF_MAGIC,
  GgmlType,
  GgufValueType,
  writeGgufFile,
  type GgufTensorSpec,
  type GgufValue,
} from "../../daemon/gguf/writer.js";
import { rejectionOf } from "../support/thrown.js";

let dir: string;
beforeAll(async () => {
  dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), "hearth-gguf-test-"));
});
afterAll(async () => {
  await fs.promises.rm(dir, { recursive: true, force: true });
});

/** Every value type the format has, including 64-bit integers beyond 2^53 and every array kind. */
function everyKindOfMetadata(): Map<string, GgufValue> {
  return new Map<string, GgufValue>([
    ["general.architecture", { type: GgufValueType.STRING, value: "llama" }],
    ["t.u8", { type: GgufValueType.UINT8, value: 255 }],
    ["t.i8", { type: GgufValueType.INT8, value: -128 }],
    ["t.u16", { type: GgufValueType.UINT16, value: 65535 }],
    ["t.i16", { type: GgufValueType.INT16, value: -32768 }],
    ["t.u32", { type: GgufValueType.UINT32, value: 4294967295 }],
    ["t.i32", { type: GgufValueType.INT32, value: -2147483648 }],
    ["t.f32", { type: GgufValueType.FLOAT32, value: 1.5 }],
    ["t.f64", { type: GgufValueType.FLOAT64, value: Math.PI }],
    ["t.u64", { type: GgufValueType.UINT64, value: 18446744073709551615n }],
    ["t.i64", { type: GgufValueType.INT64, value: -9223372036854775808n }],
    ["t.bool", { type: GgufValueType.BOOL, value: true }],
    ["t.unicode", { type: GgufValueType.STRING, value: "héllo ▁ 🔥" }],
    ["t.empty", { type: GgufValueType.STRING, value: "" }],
    ["t.strings", { type: GgufValueType.ARRAY, itemType: GgufValueType.STRING, value: ["a", "", "ü"] }],
    ["t.floats", { type: GgufValueType.ARRAY, itemType: GgufValueType.FLOAT32, value: [0.25, -2, 1e10] }],
    ["t.ints", { type: GgufValueType.ARRAY, itemType: GgufValueType.INT32, value: [1, -1, 0] }],
    ["t.u64s", { type: GgufValueType.ARRAY, itemType: GgufValueType.UINT64, value: [0n, 2n ** 63n] }],
    ["t.bools", { type: GgufValueType.ARRAY, itemType: GgufValueType.BOOL, value: [false, true] }],
    ["t.none", { type: GgufValueType.ARRAY, itemType: GgufValueType.UINT8, value: [] }],
  ]);
}

const SAMPLE_TENSORS: GgufTensorSpec[] = [
  { name: "a.weight", dims: [64, 3], type: GgmlType.F32, byteLength: 64 * 3 * 4 },
  { name: "b.weight", dims: [32, 5], type: GgmlType.Q8_0, byteLength: 5 * 34 },
  { name: "c.weight", dims: [7], type: GgmlType.F16, byteLength: 14 },
  { name: "d.weight", dims: [64, 2, 3], type: GgmlType.Q4_0, byteLength: 6 * 2 * 18 },
];

/** A complete file (header + zeroed, padded tensor data) in memory. */
function sampleFile(metadata = everyKindOfMetadata(), tensors = SAMPLE_TENSORS): Buffer {
  const { header } = encodeGgufHeader(metadata, tensors);
  let data = 0;
  for (const tensor of tensors) data += tensor.byteLength + ((32 - (tensor.byteLength % 32)) % 32);
  return Buffer.concat([header, Buffer.alloc(data)]);
}

async function expectInvalid(promise: Promise<unknown>, reason: RegExp): Promise<void> {
  const error = await rejectionOf(promise);
  expect(error.code).toBe("HEARTH_GGUF_INVALID");
  expect(error.message).toMatch(reason);
}

/** Patches a header field: writes a u64 at the byte offset where it sits. */
function withU64(bytes: Buffer, offset: number, value: bigint): Buffer {
  const copy = Buffer.from(bytes);
  copy.writeBigUInt64LE(value, offset);
  return copy;
}

describe("writer -> reader round trip", () => {
  it("reads back every metadata value and tensor info exactly as written", async () => {
    const metadata = everyKindOfMetadata();
    const file = path.join(dir, "roundtrip.gguf");
    await writeGgufFile(file, metadata, SAMPLE_TENSORS, (tensor) => new Uint8Array(tensor.byteLength));
    const header = await readGgufHeader(file);
    expect(header.version).toBe(3);
    // FLOAT32 values survive because the samples are exactly representable.
    expect([...header.metadata.entries()]).toEqual([...metadata.entries()]);
    const { offsets } = encodeGgufHeader(metadata, SAMPLE_TENSORS);
    expect(header.tensors).toEqual(SAMPLE_TENSORS.map((tensor, index) => ({ ...tensor, offset: offsets[index] })));
    expect(header.dataOffset % 32).toBe(0);
    expect(header.fileSize).toBe((await fs.promises.stat(file)).size);
  });

  it("parses the same header from memory as from the file", async () => {
    const file = path.join(dir, "same.gguf");
    const bytes = sampleFile();
    await fs.promises.writeFile(file, bytes);
    expect(await parseGgufHeader(bytes)).toEqual(await readGgufHeader(file));
  });

  it("honours general.alignment when laying out and reading tensor data", async () => {
    const metadata = new Map<string, GgufValue>([["general.alignment", { type: GgufValueType.UINT32, value: 64 }]]);
    const { header } = encodeGgufHeader(metadata, SAMPLE_TENSORS, 64);
    const parsed = await parseGgufHeader(Buffer.concat([header, Buffer.alloc(64 * 20)]));
    expect(parsed.alignment).toBe(64);
    expect(parsed.dataOffset % 64).toBe(0);
    expect(parsed.tensors.map((tensor) => tensor.offset % 64)).toEqual([0, 0, 0, 0]);
  });

  it("reads a multi-gigabyte model's header without reading its data", async () => {
    // A sparse file: 4 GiB of declared F32 data that occupies no disk. Reading it would take
    // seconds and gigabytes; the header alone is a few hundred bytes.
    const tensors: GgufTensorSpec[] = [{ name: "huge.weight", dims: [32768, 32768], type: GgmlType.F32, byteLength: 32768 * 32768 * 4 }];
    const { header } = encodeGgufHeader(new Map(), tensors);
    const file = path.join(dir, "sparse.gguf");
    const handle = await fs.promises.open(file, "w");
    await handle.write(header);
    await handle.truncate(header.length + tensors[0]!.byteLength);
    await handle.close();
    const started = performance.now();
    const parsed = await readGgufHeader(file);
    expect(performance.now() - started).toBeLessThan(2000);
    expect(describeGguf(parsed).parameterCount).toBe(32768 * 32768);
    expect(parsed.tensors[0]!.byteLength).toBe(4 * 1024 ** 3);
  });
});

describe("reader rejects malformed files with HEARTH_GGUF_INVALID", () => {
  const bytes = sampleFile();
  // Offsets in the fixed preamble: magic 0, version 4, tensor count 8, kv count 16.
  it("wrong magic", async () => {
    const copy = Buffer.from(bytes);
    copy.write("GGML", 0, "latin1");
    await expectInvalid(parseGgufHeader(copy), /wrong magic/);
  });

  it("empty and tiny files", async () => {
    await expectInvalid(parseGgufHeader(Buffer.alloc(0)), /too short/);
    await expectInvalid(parseGgufHeader(Buffer.from("GGU")), /too short/);
  });

  it("unsupported and big-endian versions", async () => {
    const v1 = Buffer.from(bytes);
    v1.writeUInt32LE(1, 4);
    await expectInvalid(parseGgufHeader(v1), /unsupported GGUF version 1/);
    const bigEndian = Buffer.from(bytes);
    bigEndian.writeUInt32BE(3, 4);
    await expectInvalid(parseGgufHeader(bigEndian), /big-endian/);
  });

  it("truncation at every point of the header and in the tensor data", async () => {
    const { header } = encodeGgufHeader(everyKindOfMetadata(), SAMPLE_TENSORS);
    for (let length = 0; length < header.length; length += 7) {
      await expectInvalid(parseGgufHeader(bytes.subarray(0, length)), /truncated|too short|cannot fit/);
    }
    await expectInvalid(parseGgufHeader(bytes.subarray(0, bytes.length - 40)), /truncated: tensor "d.weight"/);
  });

  it("absurd tensor, metadata and array counts, before allocating anything", async () => {
    await expectInvalid(parseGgufHeader(withU64(bytes, 8, 2n ** 63n)), /tensor count .* exceeds/);
    await expectInvalid(parseGgufHeader(withU64(bytes, 8, 100_000n)), /tensor count 100000 cannot fit/);
    await expectInvalid(parseGgufHeader(withU64(bytes, 16, 2n ** 40n)), /metadata entry count .* exceeds/);
    await expectInvalid(parseGgufHeader(withU64(bytes, 16, 60_000n)), /metadata entry count 60000 cannot fit/);
    const hugeArray = new Map<string, GgufValue>([["x", { type: GgufValueType.ARRAY, itemType: GgufValueType.UINT32, value: [1, 2] }]]);
    const file = sampleFile(hugeArray, []);
    // Layout: 24-byte preamble, key (8 + 1), type 4, item type 4, then the u64 length.
    await expectInvalid(parseGgufHeader(withU64(file, 24 + 9 + 8, 2n ** 50n)), /array "x" element count .* exceeds/);
    await expectInvalid(parseGgufHeader(withU64(file, 24 + 9 + 8, 1000n)), /cannot fit/);
  });

  it("absurd string lengths", async () => {
    const file = sampleFile(new Map([["k", { type: GgufValueType.STRING, value: "v" }]]), []);
    await expectInvalid(parseGgufHeader(withU64(file, 24, 2n ** 62n)), /over the .*-byte limit/);
    await expectInvalid(parseGgufHeader(withU64(file, 24, 5000n)), /truncated/);
    await expectInvalid(parseGgufHeader(file, { maxStringBytes: 0 }), /over the 0-byte limit/);
  });

  it("configured caps apply", async () => {
    await expectInvalid(parseGgufHeader(bytes, { maxTensors: 3 }), /tensor count 4 exceeds the limit of 3/);
    await expectInvalid(parseGgufHeader(bytes, { maxMetadataEntries: 5 }), /exceeds the limit of 5/);
    await expectInvalid(parseGgufHeader(bytes, { maxArrayLength: 2 }), /array "t.strings" element count 3 exceeds/);
    await expectInvalid(parseGgufHeader(bytes, { maxHeaderBytes: 100 }), /header is larger than the 100-byte limit/);
  });

  it("structural errors llama.cpp would also refuse", async () => {
    const cases: [Map<string, GgufValue>, GgufTensorSpec[], RegExp][] = [
      [new Map([["", { type: GgufValueType.UINT8, value: 1 }]]), [], /key 0 is empty/],
      [new Map([["general.alignment", { type: GgufValueType.UINT32, value: 48 }]]), [], /not a power of two/],
      [new Map([["general.alignment", { type: GgufValueType.UINT64, value: 32n }]]), [], /must be a uint32/],
      [new Map(), [{ name: "x".repeat(64), dims: [1], type: GgmlType.F32, byteLength: 4 }], /name is 64 bytes/],
      [new Map(), [{ name: "q", dims: [33], type: GgmlType.Q8_0, byteLength: 34 }], /do not fill whole Q8_0 blocks of 32/],
      [new Map(), [{ name: "t", dims: [1], type: 4 as GgmlType, byteLength: 4 }], /unknown ggml type 4/],
      [new Map(), [{ name: "t", dims: [1, 1, 1, 1, 1], type: GgmlType.F32, byteLength: 4 }], /5 dimensions/],
      [new Map(), [{ name: "t", dims: [2 ** 30, 2 ** 30], type: GgmlType.F32, byteLength: 4 }], /more elements than can be addressed/],
    ];
    for (const [metadata, tensors, reason] of cases) {
      const { header } = encodeGgufHeader(metadata, tensors);
      await expectInvalid(parseGgufHeader(Buffer.concat([header, Buffer.alloc(256)])), reason);
    }
  });

  it("duplicate keys and tensor names, nested arrays, unknown value types, bad bools, moved offsets", async () => {
    const twoTensors = SAMPLE_TENSORS.slice(0, 2);
    const { header } = encodeGgufHeader(new Map([["aa", { type: GgufValueType.UINT8, value: 1 }], ["bb", { type: GgufValueType.UINT8, value: 1 }]]), twoTensors);
    const file = Buffer.concat([header, Buffer.alloc(2048)]);
    // Layout: preamble 24; "aa": len 8 + 2, type 4, value 1 = 15 bytes; then "bb" key bytes at 24 + 15 + 8.
    const duplicateKey = Buffer.from(file);
    duplicateKey.write("aa", 24 + 15 + 8, "latin1");
    await expectInvalid(parseGgufHeader(duplicateKey), /duplicate metadata key "aa"/);
    const badType = Buffer.from(file);
    badType.writeUInt32LE(13, 24 + 10);
    await expectInvalid(parseGgufHeader(badType), /unknown value type 13/);
    const badBool = Buffer.from(file);
    badBool.writeUInt32LE(GgufValueType.BOOL, 24 + 10);
    badBool.writeUInt8(7, 24 + 14);
    await expectInvalid(parseGgufHeader(badBool), /bool byte of 7/);
    const nested = Buffer.from(file);
    nested.writeUInt32LE(GgufValueType.ARRAY, 24 + 10);
    nested.writeUInt32LE(GgufValueType.ARRAY, 24 + 14);
    await expectInvalid(parseGgufHeader(nested), /nests arrays/);

    const tensorsAt = 24 + 15 + 15;
    const duplicateName = Buffer.from(file);
    duplicateName.write("a", tensorsAt + 8 + "a.weight".length + 4 + 16 + 4 + 8 + 8, "latin1");
    await expectInvalid(parseGgufHeader(duplicateName), /duplicate tensor name "a.weight"/);
    const movedOffset = Buffer.from(file);
    // Second tensor's offset field: after tensor 1 info (8+8 name, 4, 2x8 dims, 4 type, 8 offset) and tensor 2's name/dims/type.
    const secondOffsetAt = tensorsAt + (8 + 8 + 4 + 16 + 4 + 8) + (8 + 8 + 4 + 16 + 4);
    movedOffset.writeBigUInt64LE(800n, secondOffsetAt);
    await expectInvalid(parseGgufHeader(movedOffset), /"b.weight" is at data offset 800, expected 768/);
  });

  it("a missing file or a directory is HEARTH_GGUF_INVALID too", async () => {
    await expectInvalid(readGgufHeader(path.join(dir, "missing.gguf")), /cannot open/);
    await expectInvalid(readGgufHeader(dir), /not a regular file|cannot open/);
  });

  it("random bytes and random corruptions never throw anything but HEARTH_GGUF_INVALID", async () => {
    const isExpected = (error: unknown): boolean => error instanceof HearthError && error.code === "HEARTH_GGUF_INVALID";
    const limits = { maxHeaderBytes: 1 << 20, maxArrayLength: 4096, maxStringBytes: 4096 };
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 512 }), fc.boolean(), async (random, withMagic) => {
        const input = withMagic ? Buffer.concat([Buffer.from([0x47, 0x47, 0x55, 0x46, 3, 0, 0, 0]), random]) : Buffer.from(random);
        try {
          await parseGgufHeader(input, limits);
        } catch (error) {
          if (!isExpected(error)) throw error;
        }
      }),
      { numRuns: 1500 },
    );
    // Flipping bytes of a valid file reaches deep into the parser, past the preamble checks.
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.nat(bytes.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }), fc.nat(bytes.length), async (edits, cut) => {
        const copy = Buffer.from(bytes.subarray(0, Math.max(cut, 24)));
        for (const [at, value] of edits) if (at < copy.length) copy[at] = value;
        try {
          const header = await parseGgufHeader(copy, limits);
          describeGguf(header);
        } catch (error) {
          if (!isExpected(error)) throw error;
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe("describeGguf", () => {
  let header: GgufHeader;
  beforeAll(async () => {
    const file = path.join(dir, "tiny.gguf");
    await writeSyntheticModel(file, { ...SYNTH_PRESETS.tiny, seed: 3 });
    header = await readGgufHeader(file);
  });

  it("reports the tiny preset's shape, parameter count and type", () => {
    const { embd, ff, layers, heads, kvHeads, contextLength } = SYNTH_PRESETS.tiny;
    const vocab = 354;
    const kvDim = (embd / heads) * kvHeads;
    const perLayer = 2 * embd + embd * embd * 2 + 2 * embd * kvDim + 3 * embd * ff;
    const description = describeGguf(header);
    expect(description).toMatchObject({
      architecture: "llama",
      parameterCount: 2 * vocab * embd + embd + layers * perLayer,
      quantization: "F32",
      fileType: 0,
      contextLength,
      blockCount: layers,
      embeddingLength: embd,
      feedForwardLength: ff,
      headCount: heads,
      headCountKv: kvHeads,
    });
    expect(description.parameterCount).toBe(1_665_664);
  });

  it("splits tensor bytes into per-layer and non-layer totals that add up", () => {
    const { embd, ff, layers, heads, kvHeads } = SYNTH_PRESETS.tiny;
    const kvDim = (embd / heads) * kvHeads;
    const description = describeGguf(header);
    expect(description.layerBytes).toHaveLength(layers);
    const perLayer = 4 * (2 * embd + embd * embd * 2 + 2 * embd * kvDim + 3 * embd * ff);
    expect(description.layerBytes).toEqual(Array.from({ length: layers }, () => perLayer));
    expect({ ...description.nonLayerBytes }).toEqual({ token_embd: 354 * embd * 4, output: 354 * embd * 4, output_norm: embd * 4 });
    const nonLayer = Object.values(description.nonLayerBytes).reduce((a, b) => a + b, 0);
    expect(description.layerBytes.reduce((a, b) => a + b, 0) + nonLayer).toBe(description.tensorBytes);
    expect(header.dataOffset + description.tensorBytes).toBeLessThanOrEqual(header.fileSize);
  });

  it("sizes K-quant tensors right and names the predominant type by parameters", async () => {
    const tensors: GgufTensorSpec[] = [
      { name: "blk.0.attn_q.weight", dims: [256, 4], type: GgmlType.Q4_K, byteLength: 4 * 144 }, // Q4_K
      { name: "blk.1.ffn_down.weight", dims: [256, 2], type: 14 as GgmlType, byteLength: 2 * 210 }, // Q6_K
      { name: "output_norm.weight", dims: [256], type: GgmlType.F32, byteLength: 1024 },
    ];
    const metadata = new Map<string, GgufValue>([
      ["general.architecture", { type: GgufValueType.STRING, value: "qwen3" }],
      ["qwen3.block_count", { type: GgufValueType.UINT32, value: 2 }],
      ["qwen3.attention.head_count_kv", { type: GgufValueType.ARRAY, itemType: GgufValueType.INT32, value: [2, 8] }],
    ]);
    const description = describeGguf(await parseGgufHeader(sampleFile(metadata, tensors)));
    expect(description.quantization).toBe("Q4_K");
    expect(description.layerBytes).toEqual([576, 420]);
    expect(description.headCountKv).toBe(8);
    expect(description.nonLayerBytes).toEqual(Object.assign(Object.create(null) as object, { output_norm: 1024 }));
  });
});

describe("header constants", () => {
  it("magic spells GGUF", () => {
    const buffer = Buffer.alloc(4);
    buffer.writeUInt32LE(GGUF_MAGIC);
    expect(buffer.toString("latin1")).toBe("GGUF");
  });
});
