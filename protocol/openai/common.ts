/**
 * Request fields shared by /v1/chat/completions and /v1/completions, and the bounds Hearth
 * enforces on them.
 *
 * Optional fields accept `null` as "not set", because OpenAI does and many clients send
 * explicit nulls. Fields Hearth does not know are dropped, so newer client fields never
 * fail a request; fields it knows are checked strictly.
 *
 * Pure: no I/O.
 */

import { z } from "zod";
import type { SamplingOptions } from "../inference.js";
import { addIssue, describeValue } from "./validation.js";

/**
 * Largest `max_tokens` accepted. This is a sanity bound that rejects absurd values (1e12)
 * cleanly; the real bound is the model's context window, which the engine enforces.
 */
export const MAX_TOKENS_CEILING = 1_000_000;

/** OpenAI allows at most four stop sequences. */
export const MAX_STOP_SEQUENCES = 4;

/** OpenAI's default temperature for both chat and completions. */
export const DEFAULT_TEMPERATURE = 1;

export const modelField = z.string().min(1);

export const maxTokensField = z.number().int().min(1).max(MAX_TOKENS_CEILING).nullish();

export const temperatureField = z.number().min(0).max(2).nullish();

export const topPField = z.number().gt(0).max(1).nullish();

export const seedField = z.number().int().nullish();

/** Accepted and range-checked; passed to the engine, which may map them onto its repeat penalty. */
export const penaltyField = z.number().min(-2).max(2).nullish();

export const streamField = z.boolean().nullish();

export const streamOptionsField = z.object({ include_usage: z.boolean().nullish() }).nullish();

export const nField = z
  .number()
  .int()
  .refine((n) => n === 1, "Hearth returns one choice per request, so n must be 1")
  .nullish();

/**
 * `stop`: a string or an array of up to four strings, normalised to an array. Empty strings
 * are dropped: they would stop generation before it starts, which no client means.
 */
function stopSequences(value: unknown, ctx: z.core.$RefinementCtx): string[] {
  if (value === undefined || value === null) return [];
  if (typeof value === "string") return value === "" ? [] : [value];
  if (!Array.isArray(value)) {
    addIssue(ctx, `expected a string or an array of strings, got ${describeValue(value)}`);
    return z.NEVER;
  }
  if (value.length > MAX_STOP_SEQUENCES) {
    addIssue(ctx, `must have at most ${MAX_STOP_SEQUENCES} item(s)`);
    return z.NEVER;
  }
  const stops: string[] = [];
  for (const [index, item] of value.entries()) {
    if (typeof item !== "string") {
      addIssue(ctx, `expected a string, got ${describeValue(item)}`, [index]);
      return z.NEVER;
    }
    if (item !== "") stops.push(item);
  }
  return stops;
}

export const stopField = z.unknown().optional().transform(stopSequences);

/** A field Hearth cannot honour: absent, null or `false` is fine, anything else is rejected. */
export function unsupportedFlag(what: string) {
  return z
    .boolean()
    .refine((value) => !value, `${what} is not supported by Hearth`)
    .nullish();
}

/** The sampling-related fields both generation endpoints share. */
export const samplingFields = {
  temperature: temperatureField,
  top_p: topPField,
  seed: seedField,
  stop: stopField,
  frequency_penalty: penaltyField,
  presence_penalty: penaltyField,
  n: nField,
  stream: streamField,
  stream_options: streamOptionsField,
};

export interface ParsedSamplingFields {
  temperature?: number | null | undefined;
  top_p?: number | null | undefined;
  seed?: number | null | undefined;
  stop: string[];
  frequency_penalty?: number | null | undefined;
  presence_penalty?: number | null | undefined;
}

export function toSamplingOptions(fields: ParsedSamplingFields, maxTokens: number | null | undefined): SamplingOptions {
  const sampling: SamplingOptions = {
    temperature: fields.temperature ?? DEFAULT_TEMPERATURE,
    stop: fields.stop,
  };
  if (maxTokens !== undefined && maxTokens !== null) sampling.maxTokens = maxTokens;
  if (fields.top_p !== undefined && fields.top_p !== null) sampling.topP = fields.top_p;
  if (fields.seed !== undefined && fields.seed !== null) sampling.seed = fields.seed;
  if (fields.frequency_penalty !== undefined && fields.frequency_penalty !== null && fields.frequency_penalty !== 0) {
    sampling.frequencyPenalty = fields.frequency_penalty;
  }
  if (fields.presence_penalty !== undefined && fields.presence_penalty !== null && fields.presence_penalty !== 0) {
    sampling.presencePenalty = fields.presence_penalty;
  }
  return sampling;
}

/** How a generation request wants its answer delivered. */
export interface DeliveryOptions {
  stream: boolean;
  /** `stream_options.include_usage`: a final chunk with usage and no choices. */
  includeUsage: boolean;
}

export function toDeliveryOptions(fields: {
  stream?: boolean | null | undefined;
  stream_options?: { include_usage?: boolean | null | undefined } | null | undefined;
}): DeliveryOptions {
  const stream = fields.stream === true;
  return { stream, includeUsage: stream && fields.stream_options?.include_usage === true };
}
