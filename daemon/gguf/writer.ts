/**
 * Streaming GGUF v3 writer.
 *
 * Writes metadata and tensors to a file without holding all tensor data in memory, so the
 * 1B-parameter benchmark model can be produced on a small machine. Tensor data is supplied
 * by a callback per tensor, in declaration order. The file appears atomically: it is written
 * under a temporary name in the target directory and renamed into place once complete, so
 * nobody (a model registry scan, a concurrent test) ever sees half a model.
 */

import { randomBytes } from "node:crypto";
import fs from "node:fs";

export const GGUF_MAGIC = 0x46554747; // "GGUF" little-endian
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;

export enum GgufValueType {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
}

/** The ggml tensor types Hearth writes; the reader knows many more (see quant.ts). */
export enum GgmlType {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q8_0 = 8,
  Q4_K = 12,
}

export type GgufNumberType =
  | GgufValueType.UINT8
  | GgufValueType.INT8
  | GgufValueType.UINT16
  | GgufValueType.INT16
  | GgufValueType.UINT32
  | GgufValueType.INT32
  | GgufValueType.FLOAT32
  | GgufValueType.FLOAT64;

export type GgufBigIntType = GgufValueType.UINT64 | GgufValueType.INT64;

export type GgufScalar =
  | { type: GgufNumberType; value: number }
  | { type: GgufBigIntType; value: bigint }
  | { type: GgufValueType.BOOL; value: boolean }
  | { type: GgufValueType.STRING; value: string };

/** Arrays of scalars; GGUF (and llama.cpp) do not allow arrays of arrays. */
export type GgufArray =
  | { type: GgufValueType.ARRAY; itemType: GgufValueType.STRING; value: string[] }
  | { type: GgufValueType.ARRAY; itemType: GgufNumberType; value: number[] }
  | { type: GgufValueType.ARRAY; itemType: GgufBigIntType; value: bigint[] }
  | { type: GgufValueType.ARRAY; itemType: GgufValueType.BOOL; value: boolean[] };

export type GgufValue = GgufScalar | GgufArray;

export interface GgufTensorSpec {
  name: string;
  /** ggml order: ne[0] is the fastest-varying (row length). */
  dims: number[];
  type: GgmlType;
  /** Exact byte size of the encoded data. */
  byteLength: number;
}

/** Growable little-endian byte buffer for the header. */
class ByteSink {
  private buffer = Buffer.alloc(1 << 16);
  length = 0;

  private ensure(extra: number): void {
    if (this.length + extra <= this.buffer.length) return;
    let size = this.buffer.length * 2;
    while (size < this.length + extra) size *= 2;
    const next = Buffer.alloc(size);
    this.buffer.copy(next, 0, 0, this.length);
    this.buffer = next;
  }

  u8(v: number): void { this.ensure(1); this.buffer.writeUInt8(v, this.length); this.length += 1; }
  i8(v: number): void { this.ensure(1); this.buffer.writeInt8(v, this.length); this.length += 1; }
  u16(v: number): void { this.ensure(2); this.buffer.writeUInt16LE(v, this.length); this.length += 2; }
  i16(v: number): void { this.ensure(2); this.buffer.writeInt16LE(v, this.length); this.length += 2; }
  u32(v: number): void { this.ensure(4); this.buffer.writeUInt32LE(v, this.length); this.length += 4; }
  i32(v: number): void { this.ensure(4); this.buffer.writeInt32LE(v, this.length); this.length += 4; }
  f32(v: number): void { this.ensure(4); this.buffer.writeFloatLE(v, this.length); this.length += 4; }
  f64(v: number): void { this.ensure(8); this.buffer.writeDoubleLE(v, this.length); this.length += 8; }
  u64(v: bigint | number): void { this.ensure(8); this.buffer.writeBigUInt64LE(BigInt(v), this.length); this.length += 8; }
  i64(v: bigint): void { this.ensure(8); this.buffer.writeBigInt64LE(v, this.length); this.length += 8; }
  string(s: string): void {
    const bytes = Buffer.from(s, "utf8");
    this.u64(bytes.length);
    this.ensure(bytes.length);
    bytes.copy(this.buffer, this.length);
    this.length += bytes.length;
  }
  pad(alignment: number): void {
    const rem = this.length % alignment;
    if (rem !== 0) { const n = alignment - rem; this.ensure(n); this.buffer.fill(0, this.length, this.length + n); this.length += n; }
  }
  bytes(): Buffer { return this.buffer.subarray(0, this.length); }
}

function writeScalar(sink: ByteSink, type: GgufValueType, value: number | bigint | boolean | string): void {
  switch (type) {
    case GgufValueType.UINT8: sink.u8(value as number); break;
    case GgufValueType.INT8: sink.i8(value as number); break;
    case GgufValueType.UINT16: sink.u16(value as number); break;
    case GgufValueType.INT16: sink.i16(value as number); break;
    case GgufValueType.UINT32: sink.u32(value as number); break;
    case GgufValueType.INT32: sink.i32(value as number); break;
    case GgufValueType.FLOAT32: sink.f32(value as number); break;
    case GgufValueType.FLOAT64: sink.f64(value as number); break;
    case GgufValueType.BOOL: sink.u8(value ? 1 : 0); break;
    case GgufValueType.STRING: sink.string(value as string); break;
    case GgufValueType.UINT64: sink.u64(value as bigint); break;
    case GgufValueType.INT64: sink.i64(value as bigint); break;
    default: throw new Error(`GGUF scalar type ${String(type)} cannot be written as a scalar`);
  }
}

export function encodeGgufHeader(metadata: ReadonlyMap<string, GgufValue>, tensors: readonly GgufTensorSpec[], alignment = GGUF_DEFAULT_ALIGNMENT): { header: Buffer; offsets: number[] } {
  const sink = new ByteSink();
  sink.u32(GGUF_MAGIC);
  sink.u32(GGUF_VERSION);
  sink.u64(tensors.length);
  sink.u64(metadata.size);
  for (const [key, entry] of metadata) {
    sink.string(key);
    sink.u32(entry.type);
    if (entry.type === GgufValueType.ARRAY) {
      sink.u32(entry.itemType);
      sink.u64(entry.value.length);
      for (const item of entry.value) writeScalar(sink, entry.itemType, item);
    } else {
      writeScalar(sink, entry.type, entry.value);
    }
  }
  const offsets: number[] = [];
  let offset = 0;
  for (const tensor of tensors) {
    sink.string(tensor.name);
    sink.u32(tensor.dims.length);
    for (const dim of tensor.dims) sink.u64(dim);
    sink.u32(tensor.type);
    sink.u64(offset);
    offsets.push(offset);
    offset += tensor.byteLength;
    offset += (alignment - (offset % alignment)) % alignment;
  }
  sink.pad(alignment);
  return { header: Buffer.from(sink.bytes()), offsets };
}

export interface WriteGgufOptions {
  alignment?: number;
  /** Called after each tensor is written, with bytes written so far and the final file size. */
  onProgress?: (writtenBytes: number, totalBytes: number) => void;
}

function dataSectionSize(tensors: readonly GgufTensorSpec[], alignment: number): number {
  let size = 0;
  for (const tensor of tensors) size += tensor.byteLength + ((alignment - (tensor.byteLength % alignment)) % alignment);
  return size;
}

/**
 * Writes a GGUF file atomically. `produce(tensor, index)` returns the tensor's encoded bytes;
 * it is called once per tensor in order, so callers can generate data lazily. The writer is
 * done with the returned bytes before it calls `produce` again, so a producer may reuse one
 * buffer for every tensor.
 */
export async function writeGgufFile(
  filePath: string,
  metadata: ReadonlyMap<string, GgufValue>,
  tensors: readonly GgufTensorSpec[],
  produce: (tensor: GgufTensorSpec, index: number) => Uint8Array,
  options: WriteGgufOptions = {},
): Promise<void> {
  const alignment = options.alignment ?? GGUF_DEFAULT_ALIGNMENT;
  const { header } = encodeGgufHeader(metadata, tensors, alignment);
  const totalBytes = header.length + dataSectionSize(tensors, alignment);
  // Same directory as the target so the rename cannot cross filesystems.
  const tempPath = `${filePath}.${process.pid}.${randomBytes(6).toString("hex")}.partial`;
  const handle = await fs.promises.open(tempPath, "wx");
  let written = 0;
  try {
    try {
      await handle.write(header);
      written += header.length;
      const zeros = Buffer.alloc(alignment);
      for (const [index, tensor] of tensors.entries()) {
        const data = produce(tensor, index);
        if (data.byteLength !== tensor.byteLength) {
          throw new Error(`tensor ${tensor.name}: produced ${data.byteLength} bytes, declared ${tensor.byteLength}`);
        }
        await handle.write(data);
        const padding = (alignment - (data.byteLength % alignment)) % alignment;
        if (padding > 0) await handle.write(zeros, 0, padding);
        written += data.byteLength + padding;
        options.onProgress?.(written, totalBytes);
      }
    } finally {
      await handle.close();
    }
    await fs.promises.rename(tempPath, filePath);
  } catch (error) {
    await fs.promises.rm(tempPath, { force: true });
    throw error;
  }
}
