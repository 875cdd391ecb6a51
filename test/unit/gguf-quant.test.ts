// ggml encodings: fp16 rounding, Q8_0 / Q4_0 blocks bit for bit against an independent
// reference and hand-worked blocks, a hand-worked Q4_K block in ggml's layout, dequantize
// round trips, and type sizes.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  decodeF16,
  dequantizeQ4_0,
  dequantizeQ4_K,
  dequantizeQ8_0,
  encodeF16,
  f16BitsToF32,
  f32ToF16Bits,
  ggmlTensorBytes,
  ggmlTypeInfo,
  quantizeQ4_0,
  quantizeQ4_K,
  quantizeQ8_0,
} from "../../daemon/gguf/quant.js";

const f32 = Math.fround;

/** fp32 -> fp16 by exhaustive search over the non-negative halves: slow, obviously right. */
function referenceF16(value: number): number {
  if (Number.isNaN(value)) return 0x7e00;
  const sign = value < 0 || Object.is(value, -0) ? 0x8000 : 0;
  const magnitude = Math.abs(value);
  // Half a unit beyond the largest half (65504) or more, IEEE rounds to infinity.
  if (magnitude >= 65520) return sign | 0x7c00;
  let best = 0;
  let bestError = Infinity;
  for (let bits = 0; bits < 0x7c00; bits++) {
    const error = Math.abs(f16BitsToF32(bits) - magnitude);
    // On a tie the even mantissa wins.
    if (error < bestError || (error === bestError && (bits & 1) === 0)) {
      best = bits;
      bestError = error;
    }
  }
  return sign | best;
}

/** ggml's quantize_row_q8_0_ref transcribed literally, with float32 arithmetic via fround. */
function referenceQ8_0(values: Float32Array): number[] {
  const out: number[] = [];
  for (let b = 0; b < values.length / 32; b++) {
    const block = Array.from(values.subarray(b * 32, b * 32 + 32));
    const amax = Math.max(...block.map(Math.abs));
    const d = f32(amax / 127);
    const id = d ? f32(1 / d) : 0;
    const bits = f32ToF16Bits(d);
    out.push(bits & 0xff, bits >> 8);
    for (const x of block) {
      const scaled = f32(x * id);
      const rounded = Math.sign(scaled) * Math.floor(Math.abs(scaled) + 0.5); // roundf
      out.push(rounded & 0xff);
    }
  }
  return out;
}

function referenceQ4_0(values: Float32Array): number[] {
  const out: number[] = [];
  for (let b = 0; b < values.length / 32; b++) {
    const block = Array.from(values.subarray(b * 32, b * 32 + 32));
    let amax = 0;
    let max = 0;
    for (const v of block) if (amax < Math.abs(v)) [amax, max] = [Math.abs(v), v];
    const d = f32(max / -8);
    const id = d ? f32(1 / d) : 0;
    const bits = f32ToF16Bits(d);
    out.push(bits & 0xff, bits >> 8);
    for (let j = 0; j < 16; j++) {
      const q0 = Math.min(15, Math.trunc(f32(f32(block[j]! * id) + 8.5)));
      const q1 = Math.min(15, Math.trunc(f32(f32(block[16 + j]! * id) + 8.5)));
      out.push(q0 | (q1 << 4));
    }
  }
  return out;
}

const blockValues = (blocks: number) =>
  fc.array(fc.float({ min: -100, max: 100, noNaN: true, noDefaultInfinity: true }), { minLength: 32 * blocks, maxLength: 32 * blocks }).map((values) => new Float32Array(values));

/** Blocks whose scale (largest magnitude / `levels`) is a normal fp16; below 2^-14 the stored scale itself loses precision. */
const scaledBlocks = (blocks: number, levels: number) =>
  blockValues(blocks).filter((values) => {
    for (let b = 0; b < blocks; b++) {
      if (Math.max(...Array.from(values.subarray(b * 32, b * 32 + 32), Math.abs)) / levels < 2 ** -14) return false;
    }
    return true;
  });

describe("fp16", () => {
  it("encodes landmark values with round-to-nearest-even", () => {
    const cases: [number, number][] = [
      [1, 0x3c00], [-2, 0xc000], [0, 0x0000], [-0, 0x8000], [65504, 0x7bff], [65519.99, 0x7bff], [65520, 0x7c00],
      [Infinity, 0x7c00], [-Infinity, 0xfc00], [2 ** -24, 0x0001], [2 ** -25, 0x0000], [1.5 * 2 ** -25, 0x0001],
      [2 ** -14, 0x0400], [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02], [f32(0.1), 0x2e66],
    ];
    for (const [value, bits] of cases) expect([value, f32ToF16Bits(value)]).toEqual([value, bits]);
    expect(f32ToF16Bits(Number.NaN) & 0x7c00).toBe(0x7c00);
    expect(f32ToF16Bits(Number.NaN) & 0x3ff).not.toBe(0);
  });

  it("matches an exhaustive nearest-half search on random floats", () => {
    fc.assert(
      fc.property(fc.float({ min: -70000, max: 70000, noNaN: true }), (value) => {
        expect(f32ToF16Bits(value)).toBe(referenceF16(value));
      }),
      { numRuns: 150 },
    );
  });

  it("decodes every finite half back to the value it encodes, exactly", () => {
    for (let bits = 0; bits < 0x10000; bits++) {
      if ((bits & 0x7c00) === 0x7c00) continue;
      expect(f32ToF16Bits(f16BitsToF32(bits))).toBe(bits);
    }
    const values = new Float32Array([1, -0.5, 3.140625, 1000]);
    expect(Array.from(decodeF16(encodeF16(values)))).toEqual([1, -0.5, 3.140625, 1000]);
  });
});

describe("Q8_0", () => {
  it("encodes a hand-worked block: fp16 scale, then roundf(x/d) with ties away from zero", () => {
    const values = new Float32Array(32);
    values.set([1, -1, 0.5, -0.5, 0.25]);
    const bytes = quantizeQ8_0(values);
    expect(bytes).toHaveLength(34);
    expect(bytes[0]! | (bytes[1]! << 8)).toBe(f32ToF16Bits(1 / 127));
    const quants = Array.from(new Int8Array(bytes.buffer, 2, 32));
    // 0.5 * 127 = 63.5 rounds to 64 and -63.5 to -64 (Math.round would give -63).
    expect(quants.slice(0, 6)).toEqual([127, -127, 64, -64, 32, 0]);
  });

  it("encodes an all-zero block as scale 0 and zero quants", () => {
    expect(Array.from(quantizeQ8_0(new Float32Array(32)))).toEqual(new Array<number>(34).fill(0));
  });

  it("matches ggml's reference quantizer byte for byte", () => {
    fc.assert(
      fc.property(blockValues(3), (values) => {
        expect(Array.from(quantizeQ8_0(values))).toEqual(referenceQ8_0(values));
      }),
      { numRuns: 300 },
    );
  });

  it("dequantizes within 0.6 of a scale step of the input", () => {
    fc.assert(
      fc.property(scaledBlocks(2, 127), (values) => {
        const restored = dequantizeQ8_0(quantizeQ8_0(values));
        for (let b = 0; b < 2; b++) {
          const block = values.subarray(b * 32, b * 32 + 32);
          const step = Math.max(...Array.from(block, Math.abs)) / 127;
          for (let j = 0; j < 32; j++) expect(Math.abs(restored[b * 32 + j]! - block[j]!)).toBeLessThanOrEqual(step * 0.6);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("rejects rows that are not whole blocks", () => {
    expect(() => quantizeQ8_0(new Float32Array(33))).toThrow(RangeError);
  });
});

describe("Q4_0", () => {
  it("puts elements 0..15 in low nibbles and 16..31 in high nibbles, value = (q - 8) * d", () => {
    const values = new Float32Array(32);
    values.fill(-8, 0, 16); // the largest magnitude, so d = -8 / -8 = 1 and q = x/d + 8
    for (let j = 16; j < 32; j++) values[j] = j - 16 - 8; // -8 .. 7
    const bytes = quantizeQ4_0(values);
    expect(bytes).toHaveLength(18);
    expect(f16BitsToF32(bytes[0]! | (bytes[1]! << 8))).toBe(1);
    for (let j = 0; j < 16; j++) {
      expect(bytes[2 + j]! & 0x0f).toBe(0); // -8 -> q 0
      expect(bytes[2 + j]! >> 4).toBe(j); // j - 8 -> q j
    }
    expect(Array.from(dequantizeQ4_0(bytes))).toEqual(Array.from(values));
  });

  it("matches ggml's reference quantizer byte for byte", () => {
    fc.assert(
      fc.property(blockValues(3), (values) => {
        expect(Array.from(quantizeQ4_0(values))).toEqual(referenceQ4_0(values));
      }),
      { numRuns: 300 },
    );
  });

  it("dequantizes within one scale step (half a step except at the clipped end)", () => {
    fc.assert(
      fc.property(scaledBlocks(2, 8), (values) => {
        const restored = dequantizeQ4_0(quantizeQ4_0(values));
        for (let b = 0; b < 2; b++) {
          const block = values.subarray(b * 32, b * 32 + 32);
          const step = Math.max(...Array.from(block, Math.abs)) / 8;
          for (let j = 0; j < 32; j++) expect(Math.abs(restored[b * 32 + j]! - block[j]!)).toBeLessThanOrEqual(step * 1.01);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe("Q4_K", () => {
  // Sub-block j holds q * SCALES[j] - MINS[j] for q = 0..15 (twice): the largest scale and min
  // are 63, so d = dmin = 1 and every 6-bit value is stored as itself, high bits included.
  const SCALES = [63, 1, 2, 3, 40, 50, 17, 33];
  const MINS = [0, 63, 5, 6, 20, 31, 47, 0];
  const worked = (): Float32Array => Float32Array.from({ length: 256 }, (_, i) => (i % 16) * SCALES[i >> 5]! - MINS[i >> 5]!);

  it("packs d, dmin, the 6-bit scales and mins and the nibbles as ggml's block_q4_K", () => {
    const bytes = quantizeQ4_K(worked());
    expect(bytes).toHaveLength(144);
    expect(f16BitsToF32(bytes[0]! | (bytes[1]! << 8))).toBe(1);
    expect(f16BitsToF32(bytes[2]! | (bytes[3]! << 8))).toBe(1);
    // get_scale_min_k4: sub-blocks 0-3 in bytes 0-7's low 6 bits, 4-7 in bytes 8-11's nibbles
    // with their top 2 bits in bytes 0-7's top bits.
    const scales = Array.from(bytes.subarray(4, 16));
    for (let j = 0; j < 4; j++) {
      expect(scales[j]).toBe(SCALES[j]! | ((SCALES[j + 4]! >> 4) << 6));
      expect(scales[j + 4]).toBe(MINS[j]! | ((MINS[j + 4]! >> 4) << 6));
      expect(scales[j + 8]).toBe((SCALES[j + 4]! & 0x0f) | ((MINS[j + 4]! & 0x0f) << 4));
    }
    // Values 0..31 of each 64 in the low nibbles, 32..63 in the high ones.
    expect(bytes[16]).toBe(0x00);
    expect(bytes[17]).toBe(0x11);
    expect(bytes[16 + 31]).toBe(0xff);
    expect(Array.from(dequantizeQ4_K(bytes))).toEqual(Array.from(worked()));
  });

  it("dequantizes within half a step plus the scales' own rounding", () => {
    const values = fc.array(fc.integer({ min: -800, max: 800 }), { minLength: 512, maxLength: 512 }).map((ints) => Float32Array.from(ints, (k) => k / 8));
    fc.assert(
      fc.property(values, (input) => {
        const restored = dequantizeQ4_K(quantizeQ4_K(input));
        for (let b = 0; b < 2; b++) {
          const block = input.subarray(b * 256, b * 256 + 256);
          let maxScale = 0;
          let maxMin = 0;
          for (let j = 0; j < 8; j++) {
            const sub = Array.from(block.subarray(j * 32, j * 32 + 32));
            const low = Math.min(0, ...sub);
            maxScale = Math.max(maxScale, (Math.max(...sub) - low) / 15);
            maxMin = Math.max(maxMin, -low);
          }
          const bound = 0.6 * maxScale + (8 * maxScale) / 63 + maxMin / 63;
          for (let i = 0; i < 256; i++) expect(Math.abs(restored[b * 256 + i]! - block[i]!)).toBeLessThanOrEqual(bound);
        }
      }),
      { numRuns: 200 },
    );
  });

  it("rejects rows that are not whole super-blocks", () => {
    expect(() => quantizeQ4_K(new Float32Array(128))).toThrow(RangeError);
  });
});

describe("ggml type sizes", () => {
  it("knows block sizes of legacy, K- and I-quants", () => {
    expect(ggmlTensorBytes(0, [10, 3])).toBe(120);
    expect(ggmlTensorBytes(1, [10])).toBe(20);
    expect(ggmlTensorBytes(8, [64, 2])).toBe(4 * 34);
    expect(ggmlTensorBytes(2, [64, 2])).toBe(4 * 18);
    expect(ggmlTensorBytes(12, [256, 10])).toBe(10 * 144); // Q4_K
    expect(ggmlTensorBytes(14, [512])).toBe(2 * 210); // Q6_K
    expect(ggmlTensorBytes(10, [256])).toBe(84); // Q2_K
    expect(ggmlTensorBytes(11, [256])).toBe(110); // Q3_K
    expect(ggmlTensorBytes(13, [256])).toBe(176); // Q5_K
    expect(ggmlTensorBytes(23, [256])).toBe(136); // IQ4_XS
    expect(ggmlTensorBytes(30, [3])).toBe(6); // BF16
    expect(ggmlTypeInfo(39)?.name).toBe("MXFP4");
  });

  it("refuses rows that do not fill blocks and types ggml removed", () => {
    expect(ggmlTensorBytes(12, [128])).toBeUndefined();
    expect(ggmlTensorBytes(4, [32])).toBeUndefined(); // Q4_2, removed
    expect(ggmlTensorBytes(31, [32])).toBeUndefined(); // Q4_0_4_4, removed from files
    expect(ggmlTensorBytes(99, [32])).toBeUndefined();
  });
});
