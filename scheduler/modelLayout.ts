/**
 * The memory model of split planning: what a model occupies, layer by layer, once loaded
 * with a given context. Built from GGUF facts (daemon/gguf/reader.ts `describeGguf`) by
 * `modelLayoutFromGguf`; the planner (splitPlan.ts) only ever sees the resulting
 * `ModelLayout`, so its arithmetic can be tested with hand-made layouts.
 *
 * Where llama.cpp puts things (llama-model.cpp `load_tensors`, node-llama-cpp 3.22):
 * - the input layer (`token_embd`, and anything else outside `blk.N`) always stays on the
 *   host's CPU ("there is very little benefit to offloading the input layer");
 * - repeating layer N (`blk.N.*`) and its KV cache live on the device that holds layer N;
 * - the output layer (`output`, `output_norm`; `token_embd` again when the output is tied to
 *   it) lives on the device holding pseudo-layer n_layer, which is the last device used;
 * - every device that computes anything allocates a compute buffer.
 *
 * Pure: no I/O.
 */

export interface ModelLayout {
  /** Weight bytes of each repeating layer `blk.N`, indexed by N. */
  layerWeightBytes: readonly number[];
  /** KV cache bytes of one layer at the planned context (see `kvCacheBytesPerLayer`). */
  kvBytesPerLayer: number;
  /** Tensors that stay on the host whatever the split: the token embedding and other non-block tensors. */
  inputBytes: number;
  /** Tensors of the output layer, placed on the last device: `output` (or the tied embedding) and `output_norm`. */
  outputBytes: number;
  /** Scratch every participating node allocates for one micro-batch (see `estimateComputeBytes`). */
  computeBytesPerNode: number;
  /** n_embd: one hidden state is embeddingLength float32 values. */
  embeddingLength: number;
  /** n_vocab: one token's logits are vocabularySize float32 values. */
  vocabularySize: number;
}

/**
 * The GGUF facts the layout is computed from. Field names match `GgufDescription`, so a
 * description can be passed as it is.
 */
export interface GgufLayoutFacts {
  layerBytes: readonly number[];
  nonLayerBytes: Readonly<Record<string, number>>;
  embeddingLength: number | undefined;
  feedForwardLength: number | undefined;
  headCount: number | undefined;
  headCountKv: number | undefined;
  vocabularySize: number | undefined;
}

export interface LayoutOptions {
  /** Context window per sequence, in tokens (the runner's context size). */
  contextSize: number;
  /**
   * Parallel sequences (the runner's slots). node-llama-cpp 3.22 allocates contextSize *
   * sequences KV cells in total (see daemon/runner/RunnerModel.ts). Default 1.
   */
  sequences?: number;
  /** Micro-batch size in tokens; node-llama-cpp's default is min(cells, 512). */
  batchSize?: number;
  /** Bytes per KV element: 2 for F16, llama.cpp's and node-llama-cpp's default cache type. */
  kvBytesPerElement?: number;
  /** Whether the runner uses flash attention; exact batching turns it off (scheduler/exactDecoding.ts). Default true. */
  flashAttention?: boolean;
}

export const DEFAULT_KV_BYTES_PER_ELEMENT = 2;
export const DEFAULT_BATCH_SIZE = 512;
const FLOAT32_BYTES = 4;

/** Names whose tensors belong to the output layer; everything else outside the blocks is input. */
const OUTPUT_TENSORS = new Set(["output", "output_norm"]);

export interface KvCacheFacts {
  contextCells: number;
  embeddingLength: number;
  headCount: number;
  /** Defaults to headCount (no grouped-query attention). */
  headCountKv?: number | undefined;
  kvBytesPerElement?: number;
}

/**
 * KV cache bytes of one layer: cells * (n_embd_k_gqa + n_embd_v_gqa) * bytes per element,
 * where n_embd_k_gqa = n_embd_v_gqa = (n_embd / n_head) * n_head_kv. This is llama.cpp's
 * `llama_kv_cache` allocation for standard attention (K and V of the same head size).
 */
export function kvCacheBytesPerLayer(facts: KvCacheFacts): number {
  const headDimension = facts.embeddingLength / facts.headCount;
  const kvWidth = headDimension * (facts.headCountKv ?? facts.headCount);
  return facts.contextCells * 2 * kvWidth * (facts.kvBytesPerElement ?? DEFAULT_KV_BYTES_PER_ELEMENT);
}

export interface ComputeFacts {
  /** Context window per sequence: the attention mask of one micro-batch spans it. */
  contextSize: number;
  batchSize: number;
  embeddingLength: number;
  feedForwardLength: number;
  vocabularySize: number;
  /** Without flash attention a micro-batch's attention scores are materialised: f32, one per head, token and cell. */
  flashAttention?: { headCount: number } | true;
}

/**
 * An estimate of one node's compute buffer with flash attention, which llama.cpp enables by
 * default ("auto") wherever the backend supports it, the CPU included: f32 activations of one
 * micro-batch at the feed-forward peak (4 * n_ff + 2 * n_embd + n_vocab per token) plus the
 * f16 attention mask (context * batch). llama.cpp measures the real buffer by reserving the
 * graph; against it (node-llama-cpp 3.22, CPU, batch 512) this errs 1-4 MiB on the large side:
 * tiny preset 8.2 vs 7.3 MiB at context 4096, small 17.7 vs 16.3, 1b 56.7 vs 53.0.
 *
 * Without flash attention the f32 scores of a micro-batch (batch * context * heads) and one more
 * mask-sized buffer come on top: tiny 44.2 vs 41.5 MiB measured, small 85.7 vs 78.0, 1b 316.7
 * vs 286.0 (same setting).
 */
export function estimateComputeBytes(facts: ComputeFacts): number {
  const activationsPerToken = 4 * facts.feedForwardLength + 2 * facts.embeddingLength + facts.vocabularySize;
  const withFlashAttention = FLOAT32_BYTES * facts.batchSize * activationsPerToken + 2 * facts.batchSize * facts.contextSize;
  if (facts.flashAttention === undefined || facts.flashAttention === true) return withFlashAttention;
  return withFlashAttention + FLOAT32_BYTES * facts.batchSize * facts.contextSize * facts.flashAttention.headCount + 2 * facts.batchSize * facts.contextSize;
}

function requirePositive(name: string, value: number | undefined): number {
  if (value === undefined || !Number.isFinite(value) || value <= 0) throw new RangeError(`the model's ${name} is unknown or not positive (${value})`);
  return value;
}

/**
 * The layout of a GGUF model loaded with `options.contextSize` tokens per sequence and
 * `options.sequences` sequences. Throws RangeError
 * when the file lacks a fact the memory model needs (embedding length, head count, blocks).
 */
export function modelLayoutFromGguf(facts: GgufLayoutFacts, options: LayoutOptions): ModelLayout {
  const embeddingLength = requirePositive("embedding length", facts.embeddingLength);
  const headCount = requirePositive("attention head count", facts.headCount);
  const vocabularySize = requirePositive("vocabulary size", facts.vocabularySize);
  const feedForwardLength = facts.feedForwardLength ?? 4 * embeddingLength;
  const contextSize = requirePositive("context size", options.contextSize);
  const sequences = requirePositive("sequence count", options.sequences ?? 1);
  if (facts.layerBytes.length === 0) throw new RangeError("the model has no repeating layers (blk.N tensors)");
  const contextCells = contextSize * sequences;
  const batchSize = Math.min(options.batchSize ?? DEFAULT_BATCH_SIZE, contextCells);

  let inputBytes = 0;
  let outputBytes = 0;
  for (const [name, bytes] of Object.entries(facts.nonLayerBytes)) {
    if (OUTPUT_TENSORS.has(name)) outputBytes += bytes;
    else inputBytes += bytes;
  }
  // Tied embeddings: llama.cpp loads token_embd a second time as the output matrix, on the output's device.
  if (facts.nonLayerBytes.output === undefined) outputBytes += facts.nonLayerBytes.token_embd ?? 0;

  const kvOptions: KvCacheFacts = { contextCells, embeddingLength, headCount, headCountKv: facts.headCountKv };
  if (options.kvBytesPerElement !== undefined) kvOptions.kvBytesPerElement = options.kvBytesPerElement;
  return {
    layerWeightBytes: [...facts.layerBytes],
    kvBytesPerLayer: kvCacheBytesPerLayer(kvOptions),
    inputBytes,
    outputBytes,
    computeBytesPerNode: estimateComputeBytes({ contextSize, batchSize, embeddingLength, feedForwardLength, vocabularySize, flashAttention: options.flashAttention === false ? { headCount } : true }),
    embeddingLength,
    vocabularySize,
  };
}

/** Weight bytes one generated token reads: every layer plus the output matrix (the input is a row lookup). */
export function decodeWeightBytes(layout: ModelLayout): number {
  return sumOf(layout.layerWeightBytes) + layout.outputBytes;
}

/** Memory of the whole model on one node: what a no-split placement needs. */
export function wholeModelBytes(layout: ModelLayout): number {
  const layers = layout.layerWeightBytes.length;
  return sumOf(layout.layerWeightBytes) + layers * layout.kvBytesPerLayer + layout.inputBytes + layout.outputBytes + layout.computeBytesPerNode;
}

export function sumOf(values: readonly number[]): number {
  let total = 0;
  for (const value of values) total += value;
  return total;
}
