/**
 * The rules that make a greedy answer independent of where and beside what it was computed.
 *
 * llama.cpp's CPU matrix kernels round differently for a batch of one row (a dot product per
 * output) than for a batch of two or more (tiled GEMM), while batches of two or more rows give
 * bit-equal results however a prompt is cut into them, provided flash attention is off (its
 * CPU kernel rounds differently for every cut). So an answer is reproducible when flash
 * attention is off, every prompt token is evaluated in a chunk of at least two tokens, every
 * generated token is decoded alone, and no other sequence shares its batch. "exact" batching keeps to that; "throughput" lets
 * llama.cpp decode the parallel slots together and reuse any cached prefix, which is faster
 * under concurrent load and may change the last bits of the logits, and with them near-tied
 * greedy choices.
 */

import type { DecodeBatching } from "../protocol/runnerIpc.js";

/**
 * How many of a sequence's `pending` tokens go into the next batch of at most `batchSize`:
 * all of them when they fit, else a full batch, one fewer when a full batch would leave a
 * lone token behind.
 */
export function exactChunkLength(pending: number, batchSize: number): number {
  if (pending <= batchSize) return pending;
  if (batchSize < 3) return batchSize;
  return pending - batchSize === 1 ? batchSize - 1 : batchSize;
}

export interface CachedPrefix {
  /** Leading tokens the slot's sequence shares with the new prompt. */
  shared: number;
  /**
   * Leading tokens of the sequence that were evaluated as a prompt (in chunks of two or
   * more); what follows them was generated one token at a time.
   */
  batched: number;
  /** Tokens of the new prompt. */
  promptLength: number;
}

/**
 * Prompt tokens a job may keep from a slot's cache. The last prompt token is always evaluated
 * again, since its logits give the first new token. Under exact batching the kept prefix
 * also stops where generated tokens begin, and leaves at least two prompt tokens to
 * evaluate, so the kept part and the evaluated rest are computed as a fresh evaluation of
 * the whole prompt would compute them.
 */
export function reusablePrefix(cached: CachedPrefix, batching: DecodeBatching): number {
  const beforeLastToken = Math.min(cached.shared, cached.promptLength - 1);
  if (batching === "throughput") return Math.max(0, beforeLastToken);
  return Math.max(0, Math.min(beforeLastToken, cached.batched, cached.promptLength - 2));
}
