/**
 * POST /api/embed and the older POST /api/embeddings: request schemas, EmbeddingJob
 * conversion and answers.
 *
 *   /api/embed       {model, input: string | string[] (at most limits.max_embedding_inputs), truncate?, dimensions?, keep_alive?, options?}
 *                    -> {model, embeddings: [[unit vector]], total_duration, load_duration, prompt_eval_count}
 *   /api/embeddings  {model, prompt, keep_alive?, options?} -> {embedding: [...]}
 *
 * /api/embed answers unit vectors (each scaled to Euclidean length 1), as Ollama does, so a
 * client may take a dot product for the cosine; /api/embeddings answers the model's vectors
 * as they are, as Ollama's older endpoint does and as /v1/embeddings does. No input (absent,
 * "", or []) is a load of the model and answers no vectors, as Ollama does; an empty string
 * inside a list is refused. `truncate` is accepted, but Hearth does not cut inputs: one longer
 * than the context is 400 HEARTH_CONTEXT_OVERFLOW whatever `truncate` says. `dimensions` is only
 * accepted when it equals the model's embedding size (checked by the handler). `options` is
 * validated like a generation's and otherwise unused.
 *
 * Pure: no I/O.
 */

import { z } from "zod";
import { errors } from "../errors.js";
import type { EmbeddingJob, EmbeddingResult } from "../inference.js";
import { addIssue, describeValue, parseWith } from "../openai/validation.js";
import { requiredModel } from "./common.js";
import { parseKeepAlive } from "./keepAlive.js";
import { modelNameFields, optionsSchema } from "./options.js";

const inputField = z.unknown().optional().transform((value, ctx): string[] => {
  // An empty string is no input at all, as in Ollama; only an empty item of a list is refused.
  if (value === undefined || value === null || value === "") return [];
  const items = typeof value === "string" ? [value] : value;
  if (!Array.isArray(items)) {
    addIssue(ctx, `expected a string or an array of strings, got ${describeValue(value)}`);
    return z.NEVER;
  }
  for (const [index, item] of items.entries()) {
    if (typeof item !== "string") {
      addIssue(ctx, `expected a string, got ${describeValue(item)}`, typeof value === "string" ? [] : [index]);
      return z.NEVER;
    }
    if (item === "") {
      addIssue(ctx, "must not be empty: an empty string has no embedding", typeof value === "string" ? [] : [index]);
      return z.NEVER;
    }
  }
  return items as string[];
});

export const embedRequestSchema = z.object({
  ...modelNameFields,
  input: inputField,
  truncate: z.boolean().nullish(),
  dimensions: z.number().int().min(1).nullish(),
  keep_alive: z.unknown().optional(),
  options: optionsSchema,
});

export const embeddingsRequestSchema = z.object({
  ...modelNameFields,
  prompt: z.string().nullish(),
  keep_alive: z.unknown().optional(),
  options: optionsSchema,
});

export interface OllamaEmbedRequest {
  /** No inputs: only load the model. */
  job: EmbeddingJob;
  dimensions?: number;
  keepAliveMs?: number;
}

/** Validates an /api/embed body, at most `maxInputs` inputs (limits.maxEmbeddingInputs); throws HEARTH_INVALID_REQUEST. */
export function parseEmbedRequest(body: unknown, limits: { maxInputs: number }): OllamaEmbedRequest {
  const request = parseWith(embedRequestSchema, body);
  const model = requiredModel(request);
  if (request.input.length > limits.maxInputs) {
    throw errors.invalidRequest(`Invalid value for 'input': must have at most ${limits.maxInputs} item(s), got ${request.input.length}.`, { param: "input" });
  }
  const parsed: OllamaEmbedRequest = { job: { kind: "embedding", model, inputs: request.input } };
  if (request.dimensions !== undefined && request.dimensions !== null) parsed.dimensions = request.dimensions;
  const keepAliveMs = parseKeepAlive(request.keep_alive);
  if (keepAliveMs !== undefined) parsed.keepAliveMs = keepAliveMs;
  return parsed;
}

export function parseEmbeddingsRequest(body: unknown): OllamaEmbedRequest {
  const request = parseWith(embeddingsRequestSchema, body);
  const model = requiredModel(request);
  const prompt = request.prompt ?? "";
  const parsed: OllamaEmbedRequest = { job: { kind: "embedding", model, inputs: prompt === "" ? [] : [prompt] } };
  const keepAliveMs = parseKeepAlive(request.keep_alive);
  if (keepAliveMs !== undefined) parsed.keepAliveMs = keepAliveMs;
  return parsed;
}

export interface OllamaEmbedAnswer {
  model: string;
  embeddings: number[][];
  total_duration: number;
  load_duration: number;
  prompt_eval_count: number;
}

/** `vector` scaled to length 1; a zero vector stays zero (Ollama's rule). */
export function unitVector(vector: readonly number[]): number[] {
  let sum = 0;
  for (const value of vector) sum += value * value;
  if (sum === 0) return vector.map(() => 0);
  const length = Math.sqrt(sum);
  return vector.map((value) => value / length);
}

export function buildEmbedAnswer(model: string, result: Pick<EmbeddingResult, "vectors" | "promptTokens">, timings: { totalMs: number; loadMs: number }): OllamaEmbedAnswer {
  return {
    model,
    embeddings: result.vectors.map(unitVector),
    total_duration: Math.round(timings.totalMs * 1_000_000),
    load_duration: Math.round(timings.loadMs * 1_000_000),
    prompt_eval_count: result.promptTokens,
  };
}

export function buildEmbeddingsAnswer(result: Pick<EmbeddingResult, "vectors">): { embedding: number[] } {
  return { embedding: result.vectors[0] ?? [] };
}
