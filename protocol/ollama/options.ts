/**
 * Ollama's `options` object and the fields every Ollama endpoint shares, mapped onto the
 * internal SamplingOptions.
 *
 *   temperature     0..2, default 0.8 (Ollama's)      top_p   (0, 1], default 0.9 (Ollama's)
 *   top_k           0..1e6 (0: no limit), default 40   seed    integer; negative: random
 *   num_predict     > 0: at most that many tokens; 0, -1, -2 (or any value <= 0): no limit
 *   stop            a string or up to 16 strings        repeat_penalty  (0, 100]; 1: none
 *   frequency_penalty, presence_penalty  -2..2
 *   num_ctx         accepted; see NUM_CTX below
 * Other keys (min_p, mirostat, num_gpu, num_thread, ...) are ignored, as Ollama ignores keys
 * it does not know; a known key with a wrong type or value is HEARTH_INVALID_REQUEST.
 *
 * Pure: no I/O.
 */

import { z } from "zod";
import type { SamplingOptions } from "../inference.js";
import { MAX_TOKENS_CEILING } from "../openai/common.js";
import { addIssue, describeValue } from "../openai/validation.js";

/** Ollama's sampling defaults where a request leaves them out (its `api.DefaultOptions`). */
export const OLLAMA_DEFAULTS = { temperature: 0.8, topP: 0.9, topK: 40 } as const;

/** Stop sequences one request may carry (the peer wire's bound, so a job can run on any node). */
export const MAX_STOP_SEQUENCES = 16;
const MAX_TOP_K = 1_000_000;
const MAX_REPEAT_PENALTY = 100;

function stopSequences(value: unknown, ctx: z.core.$RefinementCtx): string[] {
  if (value === undefined || value === null) return [];
  const items = typeof value === "string" ? [value] : value;
  if (!Array.isArray(items)) {
    addIssue(ctx, `expected an array of strings, got ${describeValue(value)}`);
    return z.NEVER;
  }
  if (items.length > MAX_STOP_SEQUENCES) {
    addIssue(ctx, `must have at most ${MAX_STOP_SEQUENCES} item(s)`);
    return z.NEVER;
  }
  for (const [index, item] of items.entries()) {
    if (typeof item !== "string") {
      addIssue(ctx, `expected a string, got ${describeValue(item)}`, [index]);
      return z.NEVER;
    }
  }
  return (items as string[]).filter((item) => item !== "");
}

const penalty = z.number().min(-2).max(2).nullish();

/**
 * NUM_CTX: Hearth gives every request the context of `limits.context_size` and cannot change
 * it per request, so `num_ctx` is accepted (a positive integer) but does not resize it. It never
 * truncates: a prompt that does not fit is 400 HEARTH_CONTEXT_OVERFLOW naming the context size.
 */
export const optionsSchema = z
  .object({
    temperature: z.number().min(0).max(2).nullish(),
    top_p: z.number().gt(0).max(1).nullish(),
    top_k: z.number().int().min(0).max(MAX_TOP_K).nullish(),
    seed: z.number().int().nullish(),
    num_predict: z.number().int().max(MAX_TOKENS_CEILING).nullish(),
    stop: z.unknown().optional().transform(stopSequences),
    num_ctx: z.number().int().min(1).nullish(),
    repeat_penalty: z.number().gt(0).max(MAX_REPEAT_PENALTY).nullish(),
    frequency_penalty: penalty,
    presence_penalty: penalty,
  })
  .nullish();

export type OllamaOptions = z.output<typeof optionsSchema>;

/** The internal sampling of a request with these options, Ollama's defaults filling the gaps. */
export function toSampling(options: OllamaOptions): SamplingOptions {
  const sampling: SamplingOptions = {
    temperature: options?.temperature ?? OLLAMA_DEFAULTS.temperature,
    topP: options?.top_p ?? OLLAMA_DEFAULTS.topP,
    stop: options?.stop ?? [],
  };
  const topK = options?.top_k ?? OLLAMA_DEFAULTS.topK;
  if (topK > 0) sampling.topK = topK;
  const seed = options?.seed;
  if (seed !== undefined && seed !== null && seed >= 0) sampling.seed = seed;
  const numPredict = options?.num_predict;
  if (numPredict !== undefined && numPredict !== null && numPredict > 0) sampling.maxTokens = numPredict;
  const repeat = options?.repeat_penalty;
  if (repeat !== undefined && repeat !== null && repeat !== 1) sampling.repeatPenalty = repeat;
  const frequency = options?.frequency_penalty;
  if (frequency !== undefined && frequency !== null && frequency !== 0) sampling.frequencyPenalty = frequency;
  const presence = options?.presence_penalty;
  if (presence !== undefined && presence !== null && presence !== 0) sampling.presencePenalty = presence;
  return sampling;
}

/** `model`, or the older `name` some clients (and Ollama's own for pull, push, delete) send. */
export const modelNameFields = {
  model: z.string().nullish(),
  name: z.string().nullish(),
};

export const streamField = z.boolean().nullish();

/** Ollama streams unless told not to. */
export function streams(stream: boolean | null | undefined): boolean {
  return stream !== false;
}
