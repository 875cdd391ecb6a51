/**
 * POST /v1/completions (legacy text completions) request body: schema and CompletionJob
 * conversion.
 *
 * Hearth serves one prompt per request: `prompt` is a string or an array holding exactly
 * one string; token-id prompts, `n` other than 1, `best_of` above 1 and `logprobs` are
 * rejected naming the field. `max_tokens` defaults to 16, as in OpenAI.
 *
 * Pure: no I/O.
 */

import { z } from "zod";
import type { CompletionJob } from "../inference.js";
import { maxTokensField, modelField, samplingFields, toDeliveryOptions, toSamplingOptions, type DeliveryOptions } from "./common.js";
import { hearthExtensionField, hearthExtensionOf, type HearthExtension } from "./hearthExtension.js";
import { addIssue, describeValue, parseWith } from "./validation.js";

/** OpenAI's default `max_tokens` for text completions. */
export const DEFAULT_COMPLETION_MAX_TOKENS = 16;

const promptField = z.unknown().transform((value, ctx): string => {
  if (typeof value === "string") return value;
  if (value === undefined) {
    ctx.addIssue({ code: "invalid_type", expected: "string", input: value, path: [] });
    return z.NEVER;
  }
  if (Array.isArray(value)) {
    if (value.length > 0 && value.every((item) => typeof item === "number" || Array.isArray(item))) {
      addIssue(ctx, "token-id prompts are not supported; send the prompt as a string");
      return z.NEVER;
    }
    if (value.length !== 1) {
      addIssue(ctx, `batched prompts are not supported; send an array of exactly one string (got ${value.length} items)`);
      return z.NEVER;
    }
    const [only] = value as unknown[];
    if (typeof only !== "string") {
      addIssue(ctx, `expected a string, got ${describeValue(only)}`, [0]);
      return z.NEVER;
    }
    return only;
  }
  addIssue(ctx, `expected a string or an array of one string, got ${describeValue(value)}`);
  return z.NEVER;
});

export const completionRequestSchema = z.object({
  model: modelField,
  prompt: promptField,
  max_tokens: maxTokensField,
  ...samplingFields,
  echo: z.boolean().nullish(),
  best_of: z
    .number()
    .int()
    .refine((n) => n === 1, "best_of above 1 is not supported by Hearth")
    .nullish(),
  logprobs: z
    .number()
    .int()
    .refine((n) => n === 0, "logprobs are not supported by Hearth")
    .nullish(),
  // Fill-in-the-middle: the runner refuses it for a model without infill tokens.
  suffix: z.string().nullish(),
  hearth: hearthExtensionField,
});

export interface ParsedCompletionRequest {
  job: CompletionJob;
  delivery: DeliveryOptions;
  /** Hearth's extension (hearthExtension.ts), when the body has one. */
  hearth?: HearthExtension;
}

/** Validates a completions body and converts it; throws HEARTH_INVALID_REQUEST. */
export function parseCompletionRequest(body: unknown): ParsedCompletionRequest {
  const request = parseWith(completionRequestSchema, body);
  const job: CompletionJob = {
    kind: "completion",
    model: request.model,
    prompt: request.prompt,
    sampling: toSamplingOptions(request, request.max_tokens ?? DEFAULT_COMPLETION_MAX_TOKENS),
    echo: request.echo === true,
  };
  if (typeof request.suffix === "string" && request.suffix !== "") job.suffix = request.suffix;
  const parsed: ParsedCompletionRequest = { job, delivery: toDeliveryOptions(request) };
  const hearth = hearthExtensionOf(request.hearth);
  if (hearth !== undefined) parsed.hearth = hearth;
  return parsed;
}
