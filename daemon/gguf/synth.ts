/**
 * Synthetic llama-architecture models with random weights and a byte-level tokenizer.
 *
 * Nothing can be downloaded on Hearth's machines, so tests and benchmarks run on models this
 * module makes. Random weights cost real compute and memory, and greedy decoding over them
 * is deterministic, which is all the tests need. llama.cpp accepts a random-weight `llama`
 * architecture given the context, embedding, block, feed-forward and head counts, the RMS
 * epsilon and rope settings, and a tokenizer with scores and token types (below).
 *
 * Generation speed matters for the 1B benchmark model (over a billion weights), so weights
 * come from one PRNG draw per two values through a 65536-entry inverse-normal table, into
 * buffers reused across tensors; no per-element allocation happens anywhere.
 */

import type { HearthError } from "../../protocol/errors.js";
import { errors } from "../../protocol/errors.js";
import { encodeTensor, Q4_K_BLOCK_BYTES, Q4_K_BLOCK_SIZE, QK } from "./quant.js";
import { GgmlType, GgufValueType, writeGgufFile, type GgufTensorSpec, type GgufValue } from "./writer.js";

export interface SynthShape {
  layers: number;
  embd: number;
  ff: number;
  heads: number;
  kvHeads: number;
  contextLength: number;
}

export const SYNTH_QUANTS = ["f32", "f16", "q8_0", "q4_0", "q4_k"] as const;
export type SynthQuant = (typeof SYNTH_QUANTS)[number];

export interface SynthOptions extends SynthShape {
  quant: SynthQuant;
  seed: number;
  name?: string;
  /** Jinja chat template stored as tokenizer.chat_template; null leaves it out. Default: SYNTH_CHAT_TEMPLATE. */
  chatTemplate?: string | null;
  /**
   * Zero the output rows of every token that is not plain text, so greedy decoding emits
   * printable ASCII only. Random weights otherwise favour byte and control tokens, whose text
   * re-tokenizes differently (defeating prefix reuse of an answer) and may stream nothing.
   * Benchmarks use it so every generated token is one visible streamed chunk.
   */
  textOnlyOutput?: boolean;
}

/**
 * Bumped whenever the bytes writeSyntheticModel produces for the same options change, so
 * caches keyed on options (test/helpers/models.ts) never serve a stale file.
 */
export const SYNTH_FORMAT_VERSION = 2;

export const SYNTH_PRESETS = {
  /** ≈1.7M parameters, 6.7 MB: what tests load. */
  tiny: { layers: 8, embd: 128, ff: 384, heads: 4, kvHeads: 2, contextLength: 4096, quant: "f32" },
  /** ≈24M parameters, ≈26 MB: a quantized model still quick to load. */
  small: { layers: 8, embd: 512, ff: 1408, heads: 8, kvHeads: 4, contextLength: 4096, quant: "q8_0" },
  /** ≈1.08B parameters, ≈1.15 GB (TinyLlama's shape): for benchmarks and layer splits. */
  "1b": { layers: 24, embd: 2048, ff: 5632, heads: 32, kvHeads: 8, contextLength: 4096, quant: "q8_0" },
} as const satisfies Record<string, SynthShape & { quant: SynthQuant }>;

export type SynthPreset = keyof typeof SYNTH_PRESETS;

export function isSynthQuant(value: string): value is SynthQuant {
  return (SYNTH_QUANTS as readonly string[]).includes(value);
}

/**
 * The opening of a ChatML template with Hermes tools: a system turn listing the tools in
 * `<tools>` and how to call them, or the plain system turn. The random-weight and the scripted
 * synthetic models share it.
 */
export const CHATML_TOOLS_PREAMBLE: readonly string[] = [
  "{%- if tools %}",
  "    {{- '<|im_start|>system\\n' }}",
  "    {%- if messages[0]['role'] == 'system' %}",
  "        {{- messages[0]['content'] + '\\n\\n' }}",
  "    {%- endif %}",
  "    {{- \"# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>\" }}",
  "    {%- for tool in tools %}",
  "        {{- \"\\n\" }}",
  "        {{- tool | tojson }}",
  "    {%- endfor %}",
  "    {{- \"\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\\"name\\\": <function-name>, \\\"arguments\\\": <args-json-object>}\\n</tool_call><|im_end|>\\n\" }}",
  "{%- else %}",
  "    {%- if messages[0]['role'] == 'system' %}",
  "        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}",
  "    {%- endif %}",
  "{%- endif %}",
];

/**
 * ChatML with Hermes / Qwen2.5-style tools, the most common template among open chat models.
 *
 * Measured with node-llama-cpp 3.22.1: without any template it resolves Llama2Chat (because
 * BOS is `<s>`); with plain ChatML it resolves ChatMLChatWrapper, whose tool calls use the
 * generic `||call: name({...})` syntax. With this template it resolves JinjaTemplateChatWrapper
 * and extracts the template's own tool-call syntax (`<tool_call>\n{"name": ..., "arguments":
 * ...}\n</tool_call>`, parallel calls allowed, results as `<tool_response>` turns), which is
 * how real models are driven and maps one-to-one onto OpenAI `tool_calls`. Plain chat renders
 * as ChatML. Leading `bos_token` keeps BOS, as tokenizer.ggml.add_bos_token says.
 */
export const SYNTH_CHAT_TEMPLATE = [
  "{{- bos_token }}",
  ...CHATML_TOOLS_PREAMBLE,
  "{%- for message in messages %}",
  "    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) or (message.role == \"assistant\" and not message.tool_calls) %}",
  "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}",
  "    {%- elif message.role == \"assistant\" %}",
  "        {{- '<|im_start|>' + message.role }}",
  "        {%- if message.content %}",
  "            {{- '\\n' + message.content }}",
  "        {%- endif %}",
  "        {%- for tool_call in message.tool_calls %}",
  "            {%- if tool_call.function is defined %}",
  "                {%- set tool_call = tool_call.function %}",
  "            {%- endif %}",
  "            {{- '\\n<tool_call>\\n{\"name\": \"' }}",
  "            {{- tool_call.name }}",
  "            {{- '\", \"arguments\": ' }}",
  "            {{- tool_call.arguments | tojson }}",
  "            {{- '}\\n</tool_call>' }}",
  "        {%- endfor %}",
  "        {{- '<|im_end|>\\n' }}",
  "    {%- elif message.role == \"tool\" %}",
  "        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != \"tool\") %}",
  "            {{- '<|im_start|>user' }}",
  "        {%- endif %}",
  "        {{- '\\n<tool_response>\\n' }}",
  "        {{- message.content }}",
  "        {{- '\\n</tool_response>' }}",
  "        {%- if loop.last or (messages[loop.index0 + 1].role != \"tool\") %}",
  "            {{- '<|im_end|>\\n' }}",
  "        {%- endif %}",
  "    {%- endif %}",
  "{%- endfor %}",
  "{%- if add_generation_prompt %}",
  "    {{- '<|im_start|>assistant\\n' }}",
  "{%- endif %}",
].join("\n");

// A single tensor is held in a Float32Array while it is generated; this keeps it allocatable.
const MAX_TENSOR_ELEMENTS = 2 ** 30;
// llama.cpp's LLAMA_MAX_LAYERS: it refuses models with more blocks.
const MAX_LAYERS = 512;

// general.file_type values (llama_ftype) for the quant types we write.
// q4_k: every matrix Q4_K, which is llama.cpp's MOSTLY_Q4_K_S.
const FILE_TYPE: Record<SynthQuant, number> = { f32: 0, f16: 1, q4_0: 2, q8_0: 7, q4_k: 14 };
const MATRIX_TYPE: Record<SynthQuant, GgmlType> = { f32: GgmlType.F32, f16: GgmlType.F16, q8_0: GgmlType.Q8_0, q4_0: GgmlType.Q4_0, q4_k: GgmlType.Q4_K };
/** Values per block of each quantized matrix type: every matrix row must fill whole blocks. */
const BLOCK_VALUES: Record<SynthQuant, number> = { f32: 1, f16: 1, q8_0: QK, q4_0: QK, q4_k: Q4_K_BLOCK_SIZE };

/** Options as a caller assembled them (from flags): any quant name, to be checked. */
export type SynthCandidate = Omit<SynthOptions, "quant"> & { quant: string };

/** The options whose values are checked, and which messages name. */
export type SynthCheckedOption = keyof SynthShape | "quant" | "seed";

/**
 * Throws HearthError HEARTH_CLI_USAGE (param = the offending option key) unless llama.cpp can
 * load the shape. `label` names options in messages, so the CLI can say `--kv-heads`.
 */
export function validateSynthOptions(options: SynthCandidate, label: (key: SynthCheckedOption) => string = (key) => key): asserts options is SynthOptions {
  const usage = (param: SynthCheckedOption, message: string): HearthError => errors.cliUsage(message, { param });
  const positive: (keyof SynthShape)[] = ["layers", "embd", "ff", "heads", "kvHeads", "contextLength"];
  for (const key of positive) {
    const value: unknown = options[key];
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value <= 0) {
      throw usage(key, `${label(key)} must be a positive integer (got ${String(value)})`);
    }
  }
  if (typeof options.seed !== "number" || !Number.isInteger(options.seed) || options.seed < 0 || options.seed > 0xffffffff) {
    throw usage("seed", `${label("seed")} must be an integer from 0 to 4294967295 (got ${String(options.seed)})`);
  }
  const quant = String(options.quant);
  if (!isSynthQuant(quant)) {
    throw usage("quant", `${label("quant")} must be one of ${SYNTH_QUANTS.join(", ")} (got ${quant})`);
  }
  const { embd, ff, heads, kvHeads } = options;
  if (embd % heads !== 0) throw usage("heads", `${label("embd")} (${embd}) must be a multiple of ${label("heads")} (${heads})`);
  if (heads % kvHeads !== 0) throw usage("kvHeads", `${label("heads")} (${heads}) must be a multiple of ${label("kvHeads")} (${kvHeads})`);
  if ((embd / heads) % 2 !== 0) throw usage("heads", `head dimension ${label("embd")}/${label("heads")} (${embd / heads}) must be even for rope`);
  // Matrix rows are embd long except ffn_down's, which is ff long; both must fill whole blocks.
  const block = BLOCK_VALUES[quant];
  if (embd % block !== 0) throw usage("embd", `${label("embd")} (${embd}) must be a multiple of ${block} for ${quant}`);
  if (ff % block !== 0) throw usage("ff", `${label("ff")} (${ff}) must be a multiple of ${block} for ${quant}`);
  if (embd * ff > MAX_TENSOR_ELEMENTS) throw usage("ff", `${label("embd")} x ${label("ff")} (${embd * ff}) exceeds ${MAX_TENSOR_ELEMENTS} weights per tensor`);
  if (embd * embd > MAX_TENSOR_ELEMENTS) throw usage("embd", `${label("embd")} squared (${embd * embd}) exceeds ${MAX_TENSOR_ELEMENTS} weights per tensor`);
  if (options.contextLength > 0xffffffff) throw usage("contextLength", `${label("contextLength")} must fit in 32 bits`);
  if (options.layers > MAX_LAYERS) throw usage("layers", `${label("layers")} must be at most ${MAX_LAYERS}`);
}

/** Acklam's inverse normal CDF (relative error < 1.2e-9); only used to build the table. */
function inverseNormalCdf(p: number): number {
  const a = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1, 2.506628277459239];
  const b = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
  const c = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
  const [a0, a1, a2, a3, a4, a5] = a as [number, number, number, number, number, number];
  const [b0, b1, b2, b3, b4] = b as [number, number, number, number, number];
  const [c0, c1, c2, c3, c4, c5] = c as [number, number, number, number, number, number];
  const [d0, d1, d2, d3] = d as [number, number, number, number];
  const tail = (q: number): number => (((((c0 * q + c1) * q + c2) * q + c3) * q + c4) * q + c5) / ((((d0 * q + d1) * q + d2) * q + d3) * q + 1);
  const pLow = 0.02425;
  if (p < pLow) return tail(Math.sqrt(-2 * Math.log(p)));
  if (p > 1 - pLow) return -tail(Math.sqrt(-2 * Math.log(1 - p)));
  const q = p - 0.5;
  const r = q * q;
  return ((((((a0 * r + a1) * r + a2) * r + a3) * r + a4) * r + a5) * q) / (((((b0 * r + b1) * r + b2) * r + b3) * r + b4) * r + 1);
}

/** Standard normal quantiles at the midpoints of 65536 equal-probability bins. */
const NORMAL_TABLE = (() => {
  const table = new Float32Array(65536);
  for (let i = 0; i < table.length; i++) table[i] = inverseNormalCdf((i + 0.5) / table.length);
  return table;
})();

/** PRNG state threaded through tensors so the whole file is one deterministic stream. */
interface RandomStream {
  state: number;
}

/**
 * Fills `target` with normal(mean, std) samples: one mulberry32 draw (inlined: a closure call
 * per draw was measurable at a billion weights) gives two 16-bit table lookups.
 */
function fillNormal(target: Float32Array, stream: RandomStream, mean: number, std: number): void {
  const table = NORMAL_TABLE;
  const length = target.length;
  let state = stream.state;
  for (let i = 0; i < length; i += 2) {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), state | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    t = (t ^ (t >>> 14)) >>> 0;
    target[i] = mean + std * table[t & 0xffff]!;
    if (i + 1 < length) target[i + 1] = mean + std * table[t >>> 16]!;
  }
  stream.state = state;
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
  elements: number;
  mean: number;
  std: number;
}

function planTensors(shape: SynthShape, quant: SynthQuant, vocabSize: number): TensorPlan[] {
  const { embd, ff, heads, kvHeads, layers } = shape;
  const headDim = embd / heads;
  const matrixType = MATRIX_TYPE[quant];
  const plans: TensorPlan[] = [];
  const matrix = (name: string, rows: number, cols: number, std: number): void => {
    const elements = rows * cols;
    const byteLength = encodedBytes(matrixType, elements);
    plans.push({ name, dims: [cols, rows], type: matrixType, byteLength, elements, mean: 0, std });
  };
  // Norm weights stay F32, as in every llama.cpp quantization: they are tiny and precision-sensitive.
  const vector = (name: string, length: number): void => {
    plans.push({ name, dims: [length], type: GgmlType.F32, byteLength: length * 4, elements: length, mean: 1, std: 0.1 });
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

function encodedBytes(type: GgmlType, elements: number): number {
  switch (type) {
    case GgmlType.F32: return elements * 4;
    case GgmlType.F16: return elements * 2;
    case GgmlType.Q8_0: return (elements / QK) * (2 + QK);
    case GgmlType.Q4_0: return (elements / QK) * (2 + QK / 2);
    case GgmlType.Q4_K: return (elements / Q4_K_BLOCK_SIZE) * Q4_K_BLOCK_BYTES;
  }
}

function buildMetadata(options: SynthOptions, vocab: ReturnType<typeof buildByteVocab>): Map<string, GgufValue> {
  const u32 = (value: number): GgufValue => ({ type: GgufValueType.UINT32, value });
  const f32 = (value: number): GgufValue => ({ type: GgufValueType.FLOAT32, value });
  const str = (value: string): GgufValue => ({ type: GgufValueType.STRING, value });
  const metadata = new Map<string, GgufValue>([
    ["general.architecture", str("llama")],
    ["general.name", str(options.name ?? `hearth-synthetic-${options.embd}x${options.layers}-${options.quant}`)],
    ["general.file_type", u32(FILE_TYPE[options.quant])],
    ["general.quantization_version", u32(2)],
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
  const chatTemplate = options.chatTemplate === undefined ? SYNTH_CHAT_TEMPLATE : options.chatTemplate;
  if (chatTemplate !== null) metadata.set("tokenizer.chat_template", str(chatTemplate));
  return metadata;
}

/** output.weight is [vocab rows x embd]; a zero row gives that token a logit of exactly 0. */
function zeroNonTextRows(outputWeight: Float32Array, tokenTypes: readonly number[], embd: number): void {
  tokenTypes.forEach((type, token) => {
    if (type !== TOKEN_TYPE_NORMAL) outputWeight.fill(0, token * embd, (token + 1) * embd);
  });
}

export interface SynthResult {
  parameterCount: number;
  tensorCount: number;
  fileBytes: number;
}

export interface SynthWriteOptions {
  /** Called after each tensor is written (bytes written so far, final size). */
  onProgress?: (writtenBytes: number, totalBytes: number) => void;
}

/** Writes the model atomically to `filePath`; throws HEARTH_CLI_USAGE for an impossible shape. */
export async function writeSyntheticModel(filePath: string, options: SynthOptions, writeOptions: SynthWriteOptions = {}): Promise<SynthResult> {
  validateSynthOptions(options);
  const vocab = buildByteVocab();
  const metadata = buildMetadata(options, vocab);
  const plans = planTensors(options, options.quant, vocab.tokens.length);
  const stream: RandomStream = { state: options.seed | 0 };
  let largestElements = 0;
  let largestBytes = 0;
  for (const plan of plans) {
    largestElements = Math.max(largestElements, plan.elements);
    largestBytes = Math.max(largestBytes, plan.byteLength);
  }
  // One pair of buffers for the whole file; the writer is done with each tensor before the next.
  const values = new Float32Array(largestElements);
  const encoded = new Uint8Array(largestBytes);
  let parameterCount = 0;
  let fileBytes = 0;
  await writeGgufFile(
    filePath,
    metadata,
    plans,
    (_tensor, index) => {
      const plan = plans[index]!;
      const view = values.subarray(0, plan.elements);
      fillNormal(view, stream, plan.mean, plan.std);
      if (options.textOnlyOutput === true && plan.name === "output.weight") zeroNonTextRows(view, vocab.types, options.embd);
      parameterCount += plan.elements;
      if (plan.type === GgmlType.F32) return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
      return encodeTensor(plan.type, view, encoded.subarray(0, plan.byteLength));
    },
    {
      onProgress: (written, total) => {
        fileBytes = written;
        writeOptions.onProgress?.(written, total);
      },
    },
  );
  return { parameterCount, tensorCount: plans.length, fileBytes };
}
