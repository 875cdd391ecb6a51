/**
 * ggml tensor encodings: F16 conversion and the Q8_0 / Q4_0 / Q4_K block formats, plus the
 * byte size of every common ggml type (including K-quants) so headers can be sized without data.
 *
 * The Q8_0 and Q4_0 encoders reproduce ggml's reference quantizers (`quantize_row_q8_0_ref`,
 * `quantize_row_q4_0_ref`) bit for bit, including float32 intermediate rounding, so a file
 * written here means to llama.cpp exactly what the numbers say. The Q4_K encoder writes valid
 * blocks with a plain min/max fit per sub-block instead of ggml's iterative search: synthetic
 * weights need the format and its kernels, not the best possible fit. Decoders exist for tests.
 */

import { GgmlType } from "./writer.js";

/** Elements per block of the legacy quants (Q4_0, Q8_0, ...) and K-quant super-blocks' sub-unit. */
export const QK = 32;
const QK_K = 256;

/** Bytes per block and elements per block of a ggml type. */
export interface GgmlTypeInfo {
  name: string;
  blockSize: number;
  blockBytes: number;
}

// From ggml.c's type_traits table in the llama.cpp bundled with node-llama-cpp 3.22.1. Types that were removed from
// ggml (Q4_2, Q4_3, Q4_0_4_4, ...) are absent, so a file using them is reported as unknown.
const TYPE_INFO: ReadonlyMap<number, GgmlTypeInfo> = new Map<number, GgmlTypeInfo>([
  [0, { name: "F32", blockSize: 1, blockBytes: 4 }],
  [1, { name: "F16", blockSize: 1, blockBytes: 2 }],
  [2, { name: "Q4_0", blockSize: QK, blockBytes: 2 + QK / 2 }],
  [3, { name: "Q4_1", blockSize: QK, blockBytes: 4 + QK / 2 }],
  [6, { name: "Q5_0", blockSize: QK, blockBytes: 2 + 4 + QK / 2 }],
  [7, { name: "Q5_1", blockSize: QK, blockBytes: 4 + 4 + QK / 2 }],
  [8, { name: "Q8_0", blockSize: QK, blockBytes: 2 + QK }],
  [9, { name: "Q8_1", blockSize: QK, blockBytes: 4 + QK }],
  [10, { name: "Q2_K", blockSize: QK_K, blockBytes: QK_K / 16 + QK_K / 4 + 4 }],
  [11, { name: "Q3_K", blockSize: QK_K, blockBytes: QK_K / 8 + QK_K / 4 + 12 + 2 }],
  [12, { name: "Q4_K", blockSize: QK_K, blockBytes: 4 + 12 + QK_K / 2 }],
  [13, { name: "Q5_K", blockSize: QK_K, blockBytes: 4 + 12 + QK_K / 8 + QK_K / 2 }],
  [14, { name: "Q6_K", blockSize: QK_K, blockBytes: QK_K / 2 + QK_K / 4 + QK_K / 16 + 2 }],
  [15, { name: "Q8_K", blockSize: QK_K, blockBytes: 4 + QK_K + (QK_K / 16) * 2 }],
  [16, { name: "IQ2_XXS", blockSize: QK_K, blockBytes: 2 + (QK_K / 8) * 2 }],
  [17, { name: "IQ2_XS", blockSize: QK_K, blockBytes: 2 + (QK_K / 8) * 2 + QK_K / 32 }],
  [18, { name: "IQ3_XXS", blockSize: QK_K, blockBytes: 2 + (3 * QK_K) / 8 }],
  [19, { name: "IQ1_S", blockSize: QK_K, blockBytes: 2 + QK_K / 8 + QK_K / 16 }],
  [20, { name: "IQ4_NL", blockSize: QK, blockBytes: 2 + QK / 2 }],
  [21, { name: "IQ3_S", blockSize: QK_K, blockBytes: 2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4 }],
  [22, { name: "IQ2_S", blockSize: QK_K, blockBytes: 2 + QK_K / 4 + QK_K / 16 }],
  [23, { name: "IQ4_XS", blockSize: QK_K, blockBytes: 2 + 2 + QK_K / 2 + QK_K / 64 }],
  [24, { name: "I8", blockSize: 1, blockBytes: 1 }],
  [25, { name: "I16", blockSize: 1, blockBytes: 2 }],
  [26, { name: "I32", blockSize: 1, blockBytes: 4 }],
  [27, { name: "I64", blockSize: 1, blockBytes: 8 }],
  [28, { name: "F64", blockSize: 1, blockBytes: 8 }],
  [29, { name: "IQ1_M", blockSize: QK_K, blockBytes: QK_K / 8 + QK_K / 16 + QK_K / 32 }],
  [30, { name: "BF16", blockSize: 1, blockBytes: 2 }],
  [34, { name: "TQ1_0", blockSize: QK_K, blockBytes: 2 + 4 * 13 }],
  [35, { name: "TQ2_0", blockSize: QK_K, blockBytes: 2 + 64 }],
  [39, { name: "MXFP4", blockSize: QK, blockBytes: 1 + QK / 2 }],
  [40, { name: "NVFP4", blockSize: 64, blockBytes: 4 + 32 }],
  [41, { name: "Q1_0", blockSize: 128, blockBytes: 2 + 128 / 8 }],
  [42, { name: "Q2_0", blockSize: 64, blockBytes: 2 + 64 / 4 }],
]);

export function ggmlTypeInfo(type: number): GgmlTypeInfo | undefined {
  return TYPE_INFO.get(type);
}

/** Encoded size of a row-major tensor, or undefined when the type is unknown or the row does not fill whole blocks. */
export function ggmlTensorBytes(type: number, dims: readonly number[]): number | undefined {
  const info = TYPE_INFO.get(type);
  if (!info) return undefined;
  const rowLength = dims[0] ?? 1;
  if (rowLength % info.blockSize !== 0) return undefined;
  let elements = 1;
  for (const dim of dims) elements *= dim;
  return (elements / info.blockSize) * info.blockBytes;
}

// Scratch views for reinterpreting float bits without allocating per value.
const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** IEEE binary16 bits of `value`, rounded to nearest even (what ggml's FP32_TO_FP16 does). */
export function f32ToF16Bits(value: number): number {
  f32Scratch[0] = value;
  const bits = u32Scratch[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa !== 0 ? 0x200 : 0);
  const halfExponent = exponent - 127 + 15;
  if (halfExponent >= 0x1f) return sign | 0x7c00;
  if (halfExponent <= 0) {
    if (halfExponent < -10) return sign;
    const full = mantissa | 0x800000;
    const shift = 14 - halfExponent;
    let half = full >>> shift;
    const remainder = full & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (remainder > halfway || (remainder === halfway && (half & 1) !== 0)) half++;
    return sign | half;
  }
  let half = (halfExponent << 10) | (mantissa >>> 13);
  const remainder = mantissa & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (and overflows to infinity).
  if (remainder > 0x1000 || (remainder === 0x1000 && (half & 1) !== 0)) half++;
  return sign | half;
}

export function f16BitsToF32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa !== 0 ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}


export function encodeF16(values: Float32Array, out: Uint8Array = new Uint8Array(values.length * 2)): Uint8Array {
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  for (let i = 0; i < values.length; i++) view.setUint16(i * 2, f32ToF16Bits(values[i]!), true);
  return out;
}

export function decodeF16(bytes: Uint8Array): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(bytes.byteLength / 2);
  for (let i = 0; i < out.length; i++) out[i] = f16BitsToF32(view.getUint16(i * 2, true));
  return out;
}

function assertWholeBlocks(length: number): void {
  if (length % QK !== 0) throw new RangeError(`quantized rows need a multiple of ${QK} values, got ${length}`);
}

/** ggml block_q8_0: fp16 scale d = max|x|/127, then 32 int8 round(x/d). */
export function quantizeQ8_0(values: Float32Array, out: Uint8Array = new Uint8Array((values.length / QK) * (2 + QK))): Uint8Array {
  assertWholeBlocks(values.length);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  let o = 0;
  for (let start = 0; start < values.length; start += QK) {
    let amax = 0;
    for (let j = 0; j < QK; j++) {
      const magnitude = Math.abs(values[start + j]!);
      if (magnitude > amax) amax = magnitude;
    }
    const d = Math.fround(amax / 127);
    const id = d !== 0 ? Math.fround(1 / d) : 0;
    view.setUint16(o, f32ToF16Bits(d), true);
    o += 2;
    for (let j = 0; j < QK; j++) {
      const x = Math.fround(values[start + j]! * id);
      // C's roundf (halves away from zero) without a sign branch, which random signs would
      // mispredict half the time (it tripled the 1B model's generation time): x + 128.5 is
      // positive, so |0 floors it; only a negative exact tie then needs one step down.
      let q = ((x + 128.5) | 0) - 128;
      if (q - x === 0.5 && x < 0) q--;
      out[o + j] = q; // Uint8Array stores the int8's two's complement byte.
    }
    o += QK;
  }
  return out;
}

export function dequantizeQ8_0(bytes: Uint8Array): Float32Array {
  const blocks = bytes.byteLength / (2 + QK);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(blocks * QK);
  for (let b = 0; b < blocks; b++) {
    const base = b * (2 + QK);
    const d = f16BitsToF32(view.getUint16(base, true));
    for (let j = 0; j < QK; j++) out[b * QK + j] = view.getInt8(base + 2 + j) * d;
  }
  return out;
}

/**
 * ggml block_q4_0: fp16 scale d = (value of largest magnitude)/-8, then 16 bytes whose low
 * nibbles hold elements 0..15 and high nibbles elements 16..31, each q = min(15, trunc(x/d + 8.5)).
 */
export function quantizeQ4_0(values: Float32Array, out: Uint8Array = new Uint8Array((values.length / QK) * (2 + QK / 2))): Uint8Array {
  assertWholeBlocks(values.length);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  const half = QK / 2;
  let o = 0;
  for (let start = 0; start < values.length; start += QK) {
    let amax = 0;
    let max = 0;
    for (let j = 0; j < QK; j++) {
      const value = values[start + j]!;
      if (amax < Math.abs(value)) {
        amax = Math.abs(value);
        max = value;
      }
    }
    const d = Math.fround(max / -8);
    const id = d !== 0 ? Math.fround(1 / d) : 0;
    view.setUint16(o, f32ToF16Bits(d), true);
    o += 2;
    for (let j = 0; j < half; j++) {
      const x0 = Math.fround(values[start + j]! * id);
      const x1 = Math.fround(values[start + half + j]! * id);
      // (int8_t)(x + 8.5f) truncates toward zero; x + 8.5 is never negative here.
      const q0 = Math.fround(x0 + 8.5) | 0;
      const q1 = Math.fround(x1 + 8.5) | 0;
      out[o++] = (q0 > 15 ? 15 : q0) | ((q1 > 15 ? 15 : q1) << 4);
    }
  }
  return out;
}

export function dequantizeQ4_0(bytes: Uint8Array): Float32Array {
  const blockBytes = 2 + QK / 2;
  const blocks = bytes.byteLength / blockBytes;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(blocks * QK);
  for (let b = 0; b < blocks; b++) {
    const base = b * blockBytes;
    const d = f16BitsToF32(view.getUint16(base, true));
    for (let j = 0; j < QK / 2; j++) {
      const byte = bytes[base + 2 + j]!;
      out[b * QK + j] = ((byte & 0x0f) - 8) * d;
      out[b * QK + QK / 2 + j] = ((byte >> 4) - 8) * d;
    }
  }
  return out;
}

/** Bytes of one Q4_K super-block: fp16 d and dmin, 12 bytes of 6-bit scales and mins, 128 bytes of nibbles. */
export const Q4_K_BLOCK_BYTES = 4 + 12 + QK_K / 2;
export const Q4_K_BLOCK_SIZE = QK_K;

const nearestInt = (value: number): number => Math.round(value);

/**
 * ggml block_q4_K: 256 values in 8 sub-blocks of 32, each x ~ d*sc_j*q - dmin*m_j with q in
 * 0..15 and 6-bit sc_j, m_j; the sub-block fits its own min (at most 0) and max, then the
 * scales are quantized against the block's largest and q re-fit to the stored scales.
 */
export function quantizeQ4_K(values: Float32Array, out: Uint8Array = new Uint8Array((values.length / QK_K) * Q4_K_BLOCK_BYTES)): Uint8Array {
  if (values.length % QK_K !== 0) throw new RangeError(`Q4_K rows need a multiple of ${QK_K} values, got ${values.length}`);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  const subBlocks = QK_K / QK;
  const scales = new Float64Array(subBlocks);
  const mins = new Float64Array(subBlocks);
  const levels = new Uint8Array(QK_K);
  for (let start = 0, o = 0; start < values.length; start += QK_K, o += Q4_K_BLOCK_BYTES) {
    let maxScale = 0;
    let maxMin = 0;
    for (let j = 0; j < subBlocks; j++) {
      let low = 0;
      let high = -Infinity;
      for (let l = 0; l < QK; l++) {
        const value = values[start + j * QK + l]!;
        if (value < low) low = value;
        if (value > high) high = value;
      }
      scales[j] = Math.max(0, (high - low) / 15);
      mins[j] = -low;
      maxScale = Math.max(maxScale, scales[j]!);
      maxMin = Math.max(maxMin, mins[j]!);
    }
    const dBits = f32ToF16Bits(maxScale / 63);
    const dminBits = f32ToF16Bits(maxMin / 63);
    const d = f16BitsToF32(dBits);
    const dmin = f16BitsToF32(dminBits);
    view.setUint16(o, dBits, true);
    view.setUint16(o + 2, dminBits, true);
    const packed = out.subarray(o + 4, o + 16);
    packed.fill(0);
    for (let j = 0; j < subBlocks; j++) {
      const ls = d > 0 ? Math.min(63, nearestInt(scales[j]! / d)) : 0;
      const lm = dmin > 0 ? Math.min(63, nearestInt(mins[j]! / dmin)) : 0;
      // get_scale_min_k4's layout: sub-blocks 0-3 in the low 6 bits, 4-7 split over nibbles and the top 2 bits.
      if (j < 4) {
        packed[j] = ls;
        packed[j + 4] = lm;
      } else {
        packed[j + 4] = (ls & 0x0f) | ((lm & 0x0f) << 4);
        packed[j - 4] = packed[j - 4]! | ((ls >> 4) << 6);
        packed[j] = packed[j]! | ((lm >> 4) << 6);
      }
      const step = d * ls;
      const offset = dmin * lm;
      for (let l = 0; l < QK; l++) {
        const q = step > 0 ? nearestInt((values[start + j * QK + l]! + offset) / step) : 0;
        levels[j * QK + l] = q < 0 ? 0 : q > 15 ? 15 : q;
      }
    }
    // Each 64 values share 32 bytes: the first 32 in the low nibbles, the next 32 in the high.
    for (let chunk = 0; chunk < QK_K; chunk += 2 * QK) {
      for (let l = 0; l < QK; l++) out[o + 16 + chunk / 2 + l] = levels[chunk + l]! | (levels[chunk + QK + l]! << 4);
    }
  }
  return out;
}

export function dequantizeQ4_K(bytes: Uint8Array): Float32Array {
  const blocks = bytes.byteLength / Q4_K_BLOCK_BYTES;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(blocks * QK_K);
  for (let b = 0; b < blocks; b++) {
    const base = b * Q4_K_BLOCK_BYTES;
    const d = f16BitsToF32(view.getUint16(base, true));
    const dmin = f16BitsToF32(view.getUint16(base + 2, true));
    const packed = bytes.subarray(base + 4, base + 16);
    const scaleMin = (j: number): [number, number] =>
      j < 4 ? [packed[j]! & 63, packed[j + 4]! & 63] : [(packed[j + 4]! & 0x0f) | ((packed[j - 4]! >> 6) << 4), (packed[j + 4]! >> 4) | ((packed[j]! >> 6) << 4)];
    for (let chunk = 0; chunk < QK_K; chunk += 2 * QK) {
      const [sc1, m1] = scaleMin(chunk / QK);
      const [sc2, m2] = scaleMin(chunk / QK + 1);
      for (let l = 0; l < QK; l++) {
        const byte = bytes[base + 16 + chunk / 2 + l]!;
        out[b * QK_K + chunk + l] = d * sc1 * (byte & 0x0f) - dmin * m1;
        out[b * QK_K + chunk + QK + l] = d * sc2 * (byte >> 4) - dmin * m2;
      }
    }
  }
  return out;
}

/** Encodes float values as `type`, into `out` when given (its length must be exact). */
export function encodeTensor(type: GgmlType, values: Float32Array, out?: Uint8Array): Uint8Array {
  switch (type) {
    case GgmlType.F32:
      if (!out) return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
      out.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
      return out;
    case GgmlType.F16: return encodeF16(values, out);
    case GgmlType.Q8_0: return quantizeQ8_0(values, out);
    case GgmlType.Q4_0: return quantizeQ4_0(values, out);
    case GgmlType.Q4_K: return quantizeQ4_K(values, out);
  }
}
