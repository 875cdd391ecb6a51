/**
 * POST /v1/embeddings request body: schema and EmbeddingJob conversion.
 *
 * `input` is a non-empty string or a non-empty array of non-empty strings, at most
 * `maxInputs` of them (limits.maxEmbeddingInputs). Token-id inputs are rejected: Hearth
 * tokenizes itself. `encoding_format` is "float" (default) or "base64". `dimensions` cannot
 * truncate a vector here, so it is only accepted when it equals the model's own size; the
 * handler checks that once the model is known.
 *
 * Pure: no I/O.
 */

import { z } from "zod";
import { errors } from "../errors.js";
import type { EmbeddingJob } from "../inference.js";
import { modelField } from "./common.js";
import { hearthExtensionField, hearthExtensionOf, type HearthExtension } from "./hearthExtension.js";
import { addIssue, describeValue, parseWith } from "./validation.js";

export type EmbeddingEncoding = "float" | "base64";

const EMPTY_INPUT = "must not be empty: an empty string has no embedding";

const inputField = z.unknown().transform((value, ctx): string[] => {
  if (typeof value === "string") {
    if (value === "") {
      addIssue(ctx, EMPTY_INPUT);
      return z.NEVER;
    }
    return [value];
  }
  if (value === undefined) {
    ctx.addIssue({ code: "invalid_type", expected: "string", input: value, path: [] });
    return z.NEVER;
  }
  if (!Array.isArray(value)) {
    addIssue(ctx, `expected a string or an array of strings, got ${describeValue(value)}`);
    return z.NEVER;
  }
  if (value.length === 0) {
    addIssue(ctx, "must have at least 1 item(s)");
    return z.NEVER;
  }
  if (value.every((item) => typeof item === "number" || Array.isArray(item))) {
    addIssue(ctx, "token-id inputs are not supported; send strings");
    return z.NEVER;
  }
  for (const [index, item] of value.entries()) {
    if (typeof item !== "string") {
      addIssue(ctx, `expected a string, got ${describeValue(item)}`, [index]);
      return z.NEVER;
    }
    if (item === "") {
      addIssue(ctx, EMPTY_INPUT, [index]);
      return z.NEVER;
    }
  }
  return value as string[];
});

export const embeddingRequestSchema = z.object({
  model: modelField,
  input: inputField,
  encoding_format: z.enum(["float", "base64"]).nullish(),
  dimensions: z.number().int().min(1).nullish(),
  hearth: hearthExtensionField,
});

export interface ParsedEmbeddingRequest {
  job: EmbeddingJob;
  encodingFormat: EmbeddingEncoding;
  /** What the client asked for; must match the model's embedding size. */
  dimensions?: number;
  /** Hearth's extension (hearthExtension.ts), when the body has one. */
  hearth?: HearthExtension;
}

/** Validates an embeddings body and converts it; throws HEARTH_INVALID_REQUEST. */
export function parseEmbeddingRequest(body: unknown, limits: { maxInputs: number }): ParsedEmbeddingRequest {
  const request = parseWith(embeddingRequestSchema, body);
  if (request.input.length > limits.maxInputs) {
    throw errors.invalidRequest(`Invalid value for 'input': must have at most ${limits.maxInputs} item(s), got ${request.input.length}.`,
      { param: "input" },
    );
  }
  const parsed: ParsedEmbeddingRequest = {
    job: { kind: "embedding", model: request.model, inputs: request.input },
    encodingFormat: request.encoding_format ?? "float",
  };
  if (request.dimensions !== undefined && request.dimensions !== null) parsed.dimensions = request.dimensions;
  const hearth = hearthExtensionOf(request.hearth);
  if (hearth !== undefined) parsed.hearth = hearth;
  return parsed;
}

/** Rejects a `dimensions` the model cannot produce (Hearth never truncates vectors). */
export function checkDimensions(requested: number | undefined, actual: number | undefined): void {
  if (requested === undefined || actual === undefined || requested === actual) return;
  throw errors.invalidRequest(`Invalid value for 'dimensions': this model produces ${actual}-dimensional embeddings and Hearth does not truncate them; omit 'dimensions' or send ${actual}.`,
    { param: "dimensions" },
  );
}
