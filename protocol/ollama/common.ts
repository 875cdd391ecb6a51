/**
 * Fields and rules every Ollama request shares: the model name (`model`, or the older `name`),
 * `format`, `think`, `images` and the log-probability flags Hearth cannot honour.
 *
 * Pure: no I/O.
 */

import { z } from "zod";
import { errors } from "../errors.js";
import type { ResponseFormat, ThinkingMode } from "../inference.js";
import { addIssue, describeValue } from "../openai/validation.js";

/** The model a request names; Ollama's wording when it names none. */
export function requiredModel(request: { model?: string | null | undefined; name?: string | null | undefined }): string {
  const model = request.model ?? request.name;
  if (typeof model !== "string" || model === "") throw errors.invalidRequest("model is required", { param: "model" });
  return model;
}

/**
 * `format`: "json" for any JSON object, a JSON schema (an object) for that schema, "" or
 * absent for text. The schema is enforced with a grammar, as for OpenAI's response_format.
 */
export const formatField = z
  .unknown()
  .optional()
  .transform((value, ctx): ResponseFormat => {
    if (value === undefined || value === null || value === "") return { type: "text" };
    if (value === "json") return { type: "json_object" };
    if (typeof value === "object" && !Array.isArray(value)) return { type: "json_schema", name: "response", schema: value as Record<string, unknown> };
    addIssue(ctx, `expected "json" or a JSON schema object, got ${describeValue(value)}`);
    return z.NEVER;
  });

/**
 * `think`: false turns thinking off; true, "low", "medium" or "high" let the model think (a
 * chat template offers on or off, not degrees), as does leaving it out.
 */
export const thinkField = z
  .union([z.boolean(), z.enum(["low", "medium", "high"])])
  .nullish()
  .transform((value): ThinkingMode => (value === false ? "off" : "auto"));

/** Hearth's models read text only: images are refused, an empty list is fine. */
export const imagesField = z
  .array(z.unknown())
  .nullish()
  .refine((images) => images === undefined || images === null || images.length === 0, "images are not supported: Hearth's models read text only");

export const logprobsField = z
  .boolean()
  .refine((value) => !value, "logprobs are not supported by Hearth")
  .nullish();

export const topLogprobsField = z
  .number()
  .int()
  .refine((n) => n === 0, "top_logprobs are not supported by Hearth")
  .nullish();
