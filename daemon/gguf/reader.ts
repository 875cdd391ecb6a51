/**
 * GGUF header reader: metadata and tensor infos, never tensor data.
 *
 * Model files can be gigabytes and may be corrupt or hostile (anything dropped into the models
 * dir is read), so the header is read incrementally through a small window, every count and
 * length is checked against the bytes actually left in the file and against
 * DEFAULT_GGUF_LIMITS before anything is allocated, and every failure is a HearthError
 * HEARTH_GGUF_INVALID with a reason. The checks follow llama.cpp's gguf.cpp, so a file this
 * reader accepts has a header llama.cpp accepts too.
 */

import fs from "node:fs";
import { DEFAULT_GGUF_LIMITS, type GgufLimitsConfig } from "../config/defaults.js";
import type { HearthError } from "../../protocol/errors.js";
import { errors } from "../../protocol/errors.js";
import { ggmlTensorBytes, ggmlTypeInfo } from "./quant.js";
import { GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GgufValueType, type GgufValue } from "./writer.js";

/** ggml's GGML_MAX_DIMS and GGML_MAX_NAME (names must be shorter than this, in bytes). */
const MAX_DIMS = 4;
const MAX_TENSOR_NAME_BYTES = 64;
const SUPPORTED_VERSIONS = new Set([2, 3]);

const WINDOW_BYTES = 1 << 20;

export interface GgufTensorInfo {
  name: string;
  /** ggml order: dims[0] is the row length. */
  dims: number[];
  /** ggml type id (see quant.ts for names and sizes). */
  type: number;
  /** Offset of the tensor's data from the start of the data section. */
  offset: number;
  byteLength: number;
}

export interface GgufHeader {
  version: number;
  metadata: Map<string, GgufValue>;
  tensors: GgufTensorInfo[];
  alignment: number;
  /** Absolute file offset where tensor data starts. */
  dataOffset: number;
  fileSize: number;
}

function invalid(reason: string): HearthError {
  return errors.ggufInvalid(`invalid GGUF: ${reason}`);
}

type ReadAt = (target: Buffer, targetOffset: number, length: number, position: number) => Promise<number>;

/** A sliding window over the file: sync reads after an explicit `ensure`. */
class HeaderCursor {
  private buffer = Buffer.alloc(WINDOW_BYTES);
  /** File offset of buffer[0]. */
  private base = 0;
  private pos = 0;
  private end = 0;

  constructor(
    private readonly readAt: ReadAt,
    readonly fileSize: number,
    private readonly maxHeaderBytes: number,
  ) {}

  get offset(): number {
    return this.base + this.pos;
  }

  get remaining(): number {
    return this.fileSize - this.offset;
  }

  /** Makes `n` bytes readable synchronously; undefined when they already are (no microtask). */
  ensure(n: number): Promise<void> | undefined {
    if (this.offset + n > this.maxHeaderBytes) throw invalid(`header is larger than the ${this.maxHeaderBytes}-byte limit`);
    return this.end - this.pos >= n ? undefined : this.fill(n);
  }

  private async fill(n: number): Promise<void> {
    if (n > this.remaining) throw invalid(`truncated: ${n} bytes needed at offset ${this.offset}, but the file is ${this.fileSize} bytes`);
    const kept = this.end - this.pos;
    if (n > this.buffer.length) {
      const grown = Buffer.alloc(Math.max(n, this.buffer.length * 2));
      this.buffer.copy(grown, 0, this.pos, this.end);
      this.buffer = grown;
    } else {
      this.buffer.copy(this.buffer, 0, this.pos, this.end);
    }
    this.base += this.pos;
    this.pos = 0;
    this.end = kept;
    while (this.end < n) {
      const want = Math.min(this.buffer.length - this.end, this.fileSize - (this.base + this.end));
      const got = await this.readAt(this.buffer, this.end, want, this.base + this.end);
      if (got <= 0) throw invalid(`truncated: the file ended at offset ${this.base + this.end} while being read`);
      this.end += got;
    }
  }

  u8(): number { return this.buffer[this.pos++]!; }
  i8(): number { const v = this.buffer.readInt8(this.pos); this.pos += 1; return v; }
  u16(): number { const v = this.buffer.readUInt16LE(this.pos); this.pos += 2; return v; }
  i16(): number { const v = this.buffer.readInt16LE(this.pos); this.pos += 2; return v; }
  u32(): number { const v = this.buffer.readUInt32LE(this.pos); this.pos += 4; return v; }
  i32(): number { const v = this.buffer.readInt32LE(this.pos); this.pos += 4; return v; }
  f32(): number { const v = this.buffer.readFloatLE(this.pos); this.pos += 4; return v; }
  f64(): number { const v = this.buffer.readDoubleLE(this.pos); this.pos += 8; return v; }
  u64(): bigint { const v = this.buffer.readBigUInt64LE(this.pos); this.pos += 8; return v; }
  i64(): bigint { const v = this.buffer.readBigInt64LE(this.pos); this.pos += 8; return v; }
  utf8(length: number): string { const v = this.buffer.toString("utf8", this.pos, this.pos + length); this.pos += length; return v; }
}

// Bytes per element of fixed-size metadata value types.
const SCALAR_BYTES: ReadonlyMap<GgufValueType, number> = new Map([
  [GgufValueType.UINT8, 1], [GgufValueType.INT8, 1], [GgufValueType.BOOL, 1],
  [GgufValueType.UINT16, 2], [GgufValueType.INT16, 2],
  [GgufValueType.UINT32, 4], [GgufValueType.INT32, 4], [GgufValueType.FLOAT32, 4],
  [GgufValueType.UINT64, 8], [GgufValueType.INT64, 8], [GgufValueType.FLOAT64, 8],
]);

const VALUE_TYPES: ReadonlyMap<number, GgufValueType> = new Map(
  Object.values(GgufValueType).filter((v): v is GgufValueType => typeof v === "number").map((v) => [v as number, v]),
);

class HeaderParser {
  constructor(
    private readonly cursor: HeaderCursor,
    private readonly limits: GgufLimitsConfig,
  ) {}

  /** A u64 count that must be at most `max` and leave room for `minBytesEach` per item. */
  async count(what: string, max: number, minBytesEach: number): Promise<number> {
    await this.cursor.ensure(8);
    const raw = this.cursor.u64();
    if (raw > BigInt(max)) throw invalid(`${what} count ${raw} exceeds the limit of ${max}`);
    const count = Number(raw);
    if (count * minBytesEach > this.cursor.remaining) {
      throw invalid(`${what} count ${count} cannot fit in the ${this.cursor.remaining} bytes left in the file`);
    }
    return count;
  }

  async string(what: string): Promise<string> {
    const pending = this.cursor.ensure(8);
    if (pending) await pending;
    const raw = this.cursor.u64();
    if (raw > BigInt(this.limits.maxStringBytes)) throw invalid(`${what} is ${raw} bytes, over the ${this.limits.maxStringBytes}-byte limit`);
    const length = Number(raw);
    const more = this.cursor.ensure(length);
    if (more) await more;
    return this.cursor.utf8(length);
  }

  private valueType(what: string, raw: number): GgufValueType {
    const type = VALUE_TYPES.get(raw);
    if (type === undefined) throw invalid(`${what} has unknown value type ${raw}`);
    return type;
  }

  /** Reads one fixed-size scalar; the caller has ensured its bytes. */
  private scalar(type: GgufValueType, what: string): number | bigint | boolean {
    const c = this.cursor;
    switch (type) {
      case GgufValueType.UINT8: return c.u8();
      case GgufValueType.INT8: return c.i8();
      case GgufValueType.UINT16: return c.u16();
      case GgufValueType.INT16: return c.i16();
      case GgufValueType.UINT32: return c.u32();
      case GgufValueType.INT32: return c.i32();
      case GgufValueType.FLOAT32: return c.f32();
      case GgufValueType.FLOAT64: return c.f64();
      case GgufValueType.UINT64: return c.u64();
      case GgufValueType.INT64: return c.i64();
      case GgufValueType.BOOL: {
        const byte = c.u8();
        if (byte > 1) throw invalid(`${what} has a bool byte of ${byte}`);
        return byte === 1;
      }
      default: throw invalid(`${what}: type ${type} is not a scalar`);
    }
  }

  async value(key: string): Promise<GgufValue> {
    await this.cursor.ensure(4);
    const type = this.valueType(`key "${key}"`, this.cursor.u32());
    if (type === GgufValueType.STRING) return { type, value: await this.string(`value of "${key}"`) };
    if (type !== GgufValueType.ARRAY) {
      await this.cursor.ensure(SCALAR_BYTES.get(type)!);
      return { type, value: this.scalar(type, `value of "${key}"`) } as GgufValue;
    }
    await this.cursor.ensure(4);
    const itemType = this.valueType(`array "${key}"`, this.cursor.u32());
    if (itemType === GgufValueType.ARRAY) throw invalid(`array "${key}" nests arrays, which GGUF readers do not support`);
    const itemBytes = itemType === GgufValueType.STRING ? 8 : SCALAR_BYTES.get(itemType)!;
    const length = await this.count(`array "${key}" element`, this.limits.maxArrayLength, itemBytes);
    if (itemType === GgufValueType.STRING) {
      const items: string[] = [];
      for (let i = 0; i < length; i++) items.push(await this.string(`element ${i} of "${key}"`));
      return { type, itemType, value: items };
    }
    const items: (number | bigint | boolean)[] = [];
    const batchMax = Math.max(1, Math.floor(WINDOW_BYTES / itemBytes));
    for (let done = 0; done < length; ) {
      const batch = Math.min(batchMax, length - done);
      await this.cursor.ensure(batch * itemBytes);
      for (let i = 0; i < batch; i++) items.push(this.scalar(itemType, `element ${done + i} of "${key}"`));
      done += batch;
    }
    return { type, itemType, value: items } as GgufValue;
  }

  async tensorInfo(index: number, seenNames: Set<string>): Promise<{ name: string; dims: number[]; type: number; offset: bigint }> {
    const name = await this.string(`name of tensor ${index}`);
    if (Buffer.byteLength(name) >= MAX_TENSOR_NAME_BYTES) throw invalid(`tensor ${index} name is ${Buffer.byteLength(name)} bytes; ggml allows at most ${MAX_TENSOR_NAME_BYTES - 1}`);
    if (seenNames.has(name)) throw invalid(`duplicate tensor name "${name}"`);
    seenNames.add(name);
    await this.cursor.ensure(4);
    const dimCount = this.cursor.u32();
    if (dimCount > MAX_DIMS) throw invalid(`tensor "${name}" has ${dimCount} dimensions; ggml allows at most ${MAX_DIMS}`);
    await this.cursor.ensure(dimCount * 8 + 4 + 8);
    const dims: number[] = [];
    let elements = 1n;
    for (let d = 0; d < dimCount; d++) {
      const dim = this.cursor.u64();
      elements *= dim;
      if (dim > BigInt(Number.MAX_SAFE_INTEGER) || elements > BigInt(Number.MAX_SAFE_INTEGER)) {
        throw invalid(`tensor "${name}" has more elements than can be addressed`);
      }
      dims.push(Number(dim));
    }
    const type = this.cursor.u32();
    const offset = this.cursor.u64();
    return { name, dims, type, offset };
  }
}

function numberFromValue(value: GgufValue | undefined): number | undefined {
  if (!value) return undefined;
  if (typeof value.value === "number") return value.value;
  if (typeof value.value === "bigint") return value.value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value.value) : undefined;
  return undefined;
}

async function parseHeader(readAt: ReadAt, fileSize: number, limits: GgufLimitsConfig): Promise<GgufHeader> {
  const cursor = new HeaderCursor(readAt, fileSize, limits.maxHeaderBytes);
  const parser = new HeaderParser(cursor, limits);
  if (fileSize < 4) throw invalid(`the file is ${fileSize} bytes, too short for a GGUF header`);
  await cursor.ensure(4);
  const magic = cursor.u32();
  if (magic !== GGUF_MAGIC) throw invalid(`wrong magic 0x${magic.toString(16).padStart(8, "0")} (expected "GGUF")`);
  await cursor.ensure(4);
  const version = cursor.u32();
  if (!SUPPORTED_VERSIONS.has(version)) {
    const swapped = ((version & 0xff) << 24) | ((version & 0xff00) << 8) | ((version >>> 8) & 0xff00) | (version >>> 24);
    if (SUPPORTED_VERSIONS.has(swapped >>> 0)) throw invalid("big-endian GGUF files are not supported");
    throw invalid(`unsupported GGUF version ${version} (supported: 2, 3)`);
  }
  // Each tensor info takes at least 8 (name length) + 4 + 4 + 8 bytes; each key/value 8 + 4 + 1.
  const tensorCount = await parser.count("tensor", limits.maxTensors, 24);
  const entryCount = await parser.count("metadata entry", limits.maxMetadataEntries, 13);

  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < entryCount; i++) {
    const key = await parser.string(`metadata key ${i}`);
    if (key.length === 0) throw invalid(`metadata key ${i} is empty`);
    if (metadata.has(key)) throw invalid(`duplicate metadata key "${key}"`);
    metadata.set(key, await parser.value(key));
  }

  let alignment = GGUF_DEFAULT_ALIGNMENT;
  const alignmentValue = metadata.get("general.alignment");
  if (alignmentValue) {
    if (alignmentValue.type !== GgufValueType.UINT32) throw invalid("general.alignment must be a uint32");
    alignment = alignmentValue.value;
    if (alignment === 0 || (alignment & (alignment - 1)) !== 0) throw invalid(`alignment ${alignment} is not a power of two`);
  }

  const raw: { name: string; dims: number[]; type: number; offset: bigint }[] = [];
  const seenNames = new Set<string>();
  for (let i = 0; i < tensorCount; i++) raw.push(await parser.tensorInfo(i, seenNames));

  const headerEnd = cursor.offset;
  const dataOffset = tensorCount > 0 ? headerEnd + ((alignment - (headerEnd % alignment)) % alignment) : headerEnd;
  const tensors: GgufTensorInfo[] = [];
  let expectedOffset = 0;
  for (const tensor of raw) {
    const info = ggmlTypeInfo(tensor.type);
    if (!info) throw invalid(`tensor "${tensor.name}" has unknown ggml type ${tensor.type}`);
    const byteLength = ggmlTensorBytes(tensor.type, tensor.dims);
    if (byteLength === undefined) throw invalid(`tensor "${tensor.name}" rows of ${tensor.dims[0] ?? 1} values do not fill whole ${info.name} blocks of ${info.blockSize}`);
    // llama.cpp requires tensors to be laid out back to back, each padded to the alignment.
    if (tensor.offset !== BigInt(expectedOffset)) throw invalid(`tensor "${tensor.name}" is at data offset ${tensor.offset}, expected ${expectedOffset}`);
    if (dataOffset + expectedOffset + byteLength > fileSize) {
      throw invalid(`truncated: tensor "${tensor.name}" ends at byte ${dataOffset + expectedOffset + byteLength}, but the file is ${fileSize} bytes`);
    }
    tensors.push({ name: tensor.name, dims: tensor.dims, type: tensor.type, offset: expectedOffset, byteLength });
    expectedOffset += byteLength + ((alignment - (byteLength % alignment)) % alignment);
  }
  return { version, metadata, tensors, alignment, dataOffset, fileSize };
}

/** Reads a GGUF file's header without reading tensor data. Throws HearthError HEARTH_GGUF_INVALID. */
export async function readGgufHeader(filePath: string, limits: Partial<GgufLimitsConfig> = {}): Promise<GgufHeader> {
  const effective = { ...DEFAULT_GGUF_LIMITS, ...limits };
  let handle: fs.promises.FileHandle;
  try {
    handle = await fs.promises.open(filePath, "r");
  } catch (error) {
    throw errors.ggufInvalid(`cannot open GGUF file: ${(error as Error).message}`, { cause: error });
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw invalid("not a regular file");
    return await parseHeader(
      async (target, targetOffset, length, position) => (await handle.read(target, targetOffset, length, position)).bytesRead,
      stat.size,
      effective,
    );
  } finally {
    await handle.close();
  }
}

/** Parses a GGUF header held in memory (tests, or bytes received elsewhere). */
export function parseGgufHeader(bytes: Uint8Array, limits: Partial<GgufLimitsConfig> = {}): Promise<GgufHeader> {
  const source = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return parseHeader(
    (target, targetOffset, length, position) => Promise.resolve(source.copy(target, targetOffset, position, position + length)),
    source.length,
    { ...DEFAULT_GGUF_LIMITS, ...limits },
  );
}

export interface GgufDescription {
  architecture: string | undefined;
  name: string | undefined;
  /** Total elements over all tensors. */
  parameterCount: number;
  /** ggml type name holding the most parameters, e.g. "Q8_0" (norm vectors stay F32 in any file). */
  quantization: string | undefined;
  /** general.file_type (llama_ftype), when present. */
  fileType: number | undefined;
  contextLength: number | undefined;
  blockCount: number | undefined;
  embeddingLength: number | undefined;
  feedForwardLength: number | undefined;
  headCount: number | undefined;
  headCountKv: number | undefined;
  /** n_vocab: rows of `token_embd`, else the tokenizer's token count. */
  vocabularySize: number | undefined;
  /** tokenizer.chat_template: the Jinja template the model's prompts are rendered with. */
  chatTemplate: string | undefined;
  /** The tokenizer has fill-in-the-middle tokens (prefix and suffix markers), so text can be inserted before a suffix. */
  infill: boolean;
  /** Sum of all tensors' data bytes (without alignment padding). */
  tensorBytes: number;
  /** Bytes of `blk.N.*` tensors, indexed by N. */
  layerBytes: number[];
  /** Bytes of tensors outside the blocks, by name without `.weight`/`.bias` (token_embd, output, output_norm, ...). */
  nonLayerBytes: Record<string, number>;
}

/** Per-layer values (some architectures store one per block) are reduced to their maximum. */
function architectureNumber(metadata: ReadonlyMap<string, GgufValue>, key: string): number | undefined {
  const value = metadata.get(key);
  if (value?.type === GgufValueType.ARRAY) {
    let max: number | undefined;
    for (const item of value.value) {
      const n = typeof item === "number" ? item : typeof item === "bigint" ? Number(item) : undefined;
      if (n !== undefined && (max === undefined || n > max)) max = n;
    }
    return max;
  }
  return numberFromValue(value);
}

const LAYER_TENSOR = /^blk\.(\d+)\./;

function vocabularySizeOf(header: GgufHeader): number | undefined {
  // ggml order: token_embd is [n_embd, n_vocab].
  const embedding = header.tensors.find((tensor) => tensor.name === "token_embd.weight");
  if (embedding?.dims[1] !== undefined) return embedding.dims[1];
  const tokens = header.metadata.get("tokenizer.ggml.tokens");
  return tokens?.type === GgufValueType.ARRAY ? tokens.value.length : undefined;
}

/** llama.cpp's names for the infill markers, current and older. */
const INFILL_TOKEN_KEYS = [
  ["tokenizer.ggml.fim_pre_token_id", "tokenizer.ggml.fim_suf_token_id"],
  ["tokenizer.ggml.prefix_token_id", "tokenizer.ggml.suffix_token_id"],
] as const;

function hasInfillTokens(metadata: ReadonlyMap<string, GgufValue>): boolean {
  return INFILL_TOKEN_KEYS.some((keys) => keys.every((key) => numberFromValue(metadata.get(key)) !== undefined));
}

export function describeGguf(header: GgufHeader): GgufDescription {
  const { metadata } = header;
  const stringValue = (key: string): string | undefined => {
    const value = metadata.get(key);
    return value?.type === GgufValueType.STRING ? value.value : undefined;
  };
  const architecture = stringValue("general.architecture");
  const archNumber = (suffix: string): number | undefined => (architecture ? architectureNumber(metadata, `${architecture}.${suffix}`) : undefined);

  let parameterCount = 0;
  let tensorBytes = 0;
  const elementsByType = new Map<number, number>();
  const layerBytes: number[] = [];
  // Keys come from the file: a null-prototype object keeps "__proto__" an ordinary key.
  const nonLayerBytes = Object.create(null) as Record<string, number>;
  for (const tensor of header.tensors) {
    const elements = tensor.dims.reduce((product, dim) => product * dim, 1);
    parameterCount += elements;
    tensorBytes += tensor.byteLength;
    elementsByType.set(tensor.type, (elementsByType.get(tensor.type) ?? 0) + elements);
    const layerMatch = LAYER_TENSOR.exec(tensor.name);
    if (layerMatch) {
      const layer = Number(layerMatch[1]);
      // Holes (a file listing blk.0 and blk.5 only) read as zero-byte layers, never as sparse arrays.
      while (layerBytes.length <= layer) layerBytes.push(0);
      layerBytes[layer]! += tensor.byteLength;
    } else {
      const base = tensor.name.replace(/\.(weight|bias)$/, "");
      nonLayerBytes[base] = (nonLayerBytes[base] ?? 0) + tensor.byteLength;
    }
  }
  const blockCount = archNumber("block_count");
  if (blockCount !== undefined && blockCount <= header.tensors.length) {
    while (layerBytes.length < blockCount) layerBytes.push(0);
  }
  let predominant: number | undefined;
  for (const [type, elements] of elementsByType) {
    if (predominant === undefined || elements > elementsByType.get(predominant)!) predominant = type;
  }
  return {
    architecture,
    name: stringValue("general.name"),
    parameterCount,
    quantization: predominant === undefined ? undefined : ggmlTypeInfo(predominant)?.name,
    fileType: numberFromValue(metadata.get("general.file_type")),
    contextLength: archNumber("context_length"),
    blockCount,
    embeddingLength: archNumber("embedding_length"),
    feedForwardLength: archNumber("feed_forward_length"),
    headCount: archNumber("attention.head_count"),
    headCountKv: archNumber("attention.head_count_kv"),
    vocabularySize: vocabularySizeOf(header),
    chatTemplate: stringValue("tokenizer.chat_template"),
    infill: hasInfillTokens(metadata),
    tensorBytes,
    layerBytes,
    nonLayerBytes,
  };
}
