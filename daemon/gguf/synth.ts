/**
 * Synthetic llama-architecture models with random weights and a byte-level tokenizer.
 *
 * Nothing can be downloaded on Hearth's machines, so tests and benchmarks run on models this
 * module makes. Random weights cost real compute and memory, and greedy decoding over them
 * is deterministic, which is all the tests need. See shared design notes §6 for what
 * llama.cpp requires of the metadata.
 */

import { GgmlType, GgufValueType, writeGgufFile, type GgufTensorSpec, type GgufValue } from "./writer.js";

export interface SynthShape {
  layers: number;
  embd: number;
  ff: number;
  heads: number;
  kvHeads: number;
  contextLength: number;
}

export type SynthQuant = "f32";

export interface SynthOptions extends SynthShape {
  quant: SynthQuant;
  seed: number;
  name?: string;
}

export const SYNTH_PRESETS = {
  tiny: { layers: 8, embd: 128, ff: 384, heads: 4, kvHeads: 2, contextLength: 4096, quant: "f32" },
} as const satisfies Record<string, SynthShape & { quant: SynthQuant }>;

export type SynthPreset = keyof typeof SYNTH_PRESETS;

/** Deterministic PRNG (mulberry32) so a seed always yields the same file. */
export function createRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal samples via Box-Muller. */
function fillNormal(target: Float32Array, random: () => number, mean: number, std: number): void {
  for (let i = 0; i < target.length; i += 2) {
    const u1 = random() || Number.MIN_VALUE;
    const u2 = random();
    const radius = Math.sqrt(-2 * Math.log(u1));
    target[i] = mean + std * radius * Math.cos(2 * Math.PI * u2);
    if (i + 1 < target.length) target[i + 1] = mean + std * radius * Math.sin(2 * Math.PI * u2);
  }
}

const TOKEN_TYPE_NORMAL = 1;
const TOKEN_TYPE_UNKNOWN = 2;
const TOKEN_TYPE_CONTROL = 3;
const TOKEN_TYPE_BYTE = 6;

/** `<unk>`, `<s>`, `</s>`, 256 byte tokens, `▁` and printable ASCII: 354 tokens. */
export function buildByteVocab(): { tokens: string[]; scores: number[]; types: number[] } {
  const tokens: string[] = [];
  const scores: number[] = [];
  const types: number[] = [];
  const add = (token: string, score: number, type: number): void => {
    tokens.push(token);
    scores.push(score);
    types.push(type);
  };
  add("<unk>", 0, TOKEN_TYPE_UNKNOWN);
  add("<s>", 0, TOKEN_TYPE_CONTROL);
  add("</s>", 0, TOKEN_TYPE_CONTROL);
  for (let byte = 0; byte < 256; byte++) add(`<0x${byte.toString(16).toUpperCase().padStart(2, "0")}>`, 0, TOKEN_TYPE_BYTE);
  add("\u2581", -1, TOKEN_TYPE_NORMAL);
  for (let code = 33; code < 127; code++) add(String.fromCharCode(code), -2 - (code - 33) * 0.001, TOKEN_TYPE_NORMAL);
  return { tokens, scores, types };
}

interface TensorPlan extends GgufTensorSpec {
  /** How to fill it: a matrix with normal(0, std), or a norm vector near 1. */
  fill: { kind: "normal"; mean: number; std: number };
}

function planTensors(shape: SynthShape, vocabSize: number): TensorPlan[] {
  const { embd, ff, heads, kvHeads, layers } = shape;
  const headDim = embd / heads;
  const plans: TensorPlan[] = [];
  const matrix = (name: string, rows: number, cols: number, std: number): void => {
    plans.push({ name, dims: [cols, rows], type: GgmlType.F32, byteLength: rows * cols * 4, fill: { kind: "normal", mean: 0, std } });
  };
  const vector = (name: string, length: number): void => {
    plans.push({ name, dims: [length], type: GgmlType.F32, byteLength: length * 4, fill: { kind: "normal", mean: 1, std: 0.1 } });
  };
  const inv = 1 / Math.sqrt(embd);
  matrix("token_embd.weight", vocabSize, embd, 1);
  vector("output_norm.weight", embd);
  matrix("output.weight", vocabSize, embd, inv * 4);
  for (let layer = 0; layer < layers; layer++) {
    const p = `blk.${layer}.`;
    vector(`${p}attn_norm.weight`, embd);
    matrix(`${p}attn_q.weight`, heads * headDim, embd, inv);
    matrix(`${p}attn_k.weight`, kvHeads * headDim, embd, inv);
    matrix(`${p}attn_v.weight`, kvHeads * headDim, embd, inv);
    matrix(`${p}attn_output.weight`, embd, heads * headDim, inv * 0.5);
    vector(`${p}ffn_norm.weight`, embd);
    matrix(`${p}ffn_gate.weight`, ff, embd, inv);
    matrix(`${p}ffn_up.weight`, ff, embd, inv);
    matrix(`${p}ffn_down.weight`, embd, ff, (1 / Math.sqrt(ff)) * 0.5);
  }
  return plans;
}

export async function writeSyntheticModel(filePath: string, options: SynthOptions): Promise<{ parameterCount: number; tensorCount: number }> {
  const vocab = buildByteVocab();
  const u32 = (value: number): GgufValue => ({ type: GgufValueType.UINT32, value });
  const f32 = (value: number): GgufValue => ({ type: GgufValueType.FLOAT32, value });
  const str = (value: string): GgufValue => ({ type: GgufValueType.STRING, value });
  const metadata = new Map<string, GgufValue>([
    ["general.architecture", str("llama")],
    ["general.name", str(options.name ?? `hearth-synthetic-${options.embd}x${options.layers}-${options.quant}`)],
    ["general.file_type", u32(0)],
    ["llama.context_length", u32(options.contextLength)],
    ["llama.embedding_length", u32(options.embd)],
    ["llama.block_count", u32(options.layers)],
    ["llama.feed_forward_length", u32(options.ff)],
    ["llama.attention.head_count", u32(options.heads)],
    ["llama.attention.head_count_kv", u32(options.kvHeads)],
    ["llama.attention.layer_norm_rms_epsilon", f32(1e-5)],
    ["llama.rope.freq_base", f32(10000)],
    ["llama.rope.dimension_count", u32(options.embd / options.heads)],
    ["llama.vocab_size", u32(vocab.tokens.length)],
    ["tokenizer.ggml.model", str("llama")],
    ["tokenizer.ggml.tokens", { type: GgufValueType.ARRAY, itemType: GgufValueType.STRING, value: vocab.tokens }],
    ["tokenizer.ggml.scores", { type: GgufValueType.ARRAY, itemType: GgufValueType.FLOAT32, value: vocab.scores }],
    ["tokenizer.ggml.token_type", { type: GgufValueType.ARRAY, itemType: GgufValueType.INT32, value: vocab.types }],
    ["tokenizer.ggml.bos_token_id", u32(1)],
    ["tokenizer.ggml.eos_token_id", u32(2)],
    ["tokenizer.ggml.unknown_token_id", u32(0)],
    ["tokenizer.ggml.add_bos_token", { type: GgufValueType.BOOL, value: true }],
    ["tokenizer.ggml.add_eos_token", { type: GgufValueType.BOOL, value: false }],
  ]);
  const plans = planTensors(options, vocab.tokens.length);
  const random = createRandom(options.seed);
  let parameterCount = 0;
  await writeGgufFile(filePath, metadata, plans, (tensor, index) => {
    const plan = plans[index]!;
    const values = new Float32Array(tensor.byteLength / 4);
    fillNormal(values, random, plan.fill.mean, plan.fill.std);
    parameterCount += values.length;
    return new Uint8Array(values.buffer);
  });
  return { parameterCount, tensorCount: plans.length };
}
