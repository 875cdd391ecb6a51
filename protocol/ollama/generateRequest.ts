/**
 * POST /api/generate request body: its schema and its conversion to an internal job.
 *
 * Ollama renders a generate prompt with the model's template unless `raw` is set, so:
 *   - default: a ChatJob of one user turn (`prompt`), after a system turn when `system` is
 *     given; `format` and `think` apply as in /api/chat, and thoughts come back as `thinking`;
 *   - `raw: true`: a CompletionJob of the prompt as it is (no template); `system` is ignored,
 *     as Ollama ignores it there; `format` is refused (a text completion has no response format);
 *   - `suffix` (non-empty): a fill-in-the-middle CompletionJob (prompt before, suffix after);
 *     a model without infill tokens refuses it (400, param `suffix`); `format` is refused;
 *   - `template` (non-empty) is refused: Hearth renders prompts with the model's own template
 *     and cannot run Ollama's Go templates; `context` (token ids of an earlier answer, which
 *     Hearth does not return) is refused unless empty; `images` are refused;
 *   - no `prompt` (and no suffix): a load of the model, or with `keep_alive: 0` an unload.
 *
 * Pure: no I/O.
 */

import { z } from "zod";
import { errors } from "../errors.js";
import type { ChatJob, ChatMessage, CompletionJob } from "../inference.js";
import { parseWith } from "../openai/validation.js";
import { formatField, imagesField, logprobsField, requiredModel, thinkField, topLogprobsField } from "./common.js";
import { parseKeepAlive } from "./keepAlive.js";
import { modelNameFields, optionsSchema, streamField, streams, toSampling } from "./options.js";

export const generateRequestSchema = z.object({
  ...modelNameFields,
  prompt: z.string().nullish(),
  suffix: z.string().nullish(),
  system: z.string().nullish(),
  template: z
    .string()
    .nullish()
    .refine((template) => template === undefined || template === null || template === "", "a custom template is not supported: Hearth renders prompts with the model's own chat template (use raw to send a prompt as it is)"),
  context: z
    .array(z.number())
    .nullish()
    .refine((context) => context === undefined || context === null || context.length === 0, "context (token ids of an earlier answer) is not supported; send the conversation to /api/chat"),
  raw: z.boolean().nullish(),
  format: formatField,
  images: imagesField,
  options: optionsSchema,
  stream: streamField,
  keep_alive: z.unknown().optional(),
  think: thinkField,
  logprobs: logprobsField,
  top_logprobs: topLogprobsField,
});

/** A generate request: a generation (through the chat template or raw), or a load or unload of the model. */
export type OllamaGenerateRequest =
  | { kind: "generate"; job: ChatJob | CompletionJob; stream: boolean; keepAliveMs?: number }
  | { kind: "load"; model: string; keepAliveMs?: number };

/** Validates an /api/generate body and converts it; throws HEARTH_INVALID_REQUEST. */
export function parseGenerateRequest(body: unknown): OllamaGenerateRequest {
  const request = parseWith(generateRequestSchema, body);
  const model = requiredModel(request);
  const keepAliveMs = parseKeepAlive(request.keep_alive);
  const keepAlive = keepAliveMs === undefined ? {} : { keepAliveMs };
  const prompt = request.prompt ?? "";
  const suffix = request.suffix ?? "";
  if (prompt === "" && suffix === "") return { kind: "load", model, ...keepAlive };
  const sampling = toSampling(request.options);
  const stream = streams(request.stream);
  const textOnly = (why: string): void => {
    if (request.format.type !== "text") throw errors.invalidRequest(`format cannot be used with ${why}: it needs the model's chat template; leave it out, or send the prompt without ${why}`, { param: "format" });
  };
  if (suffix !== "") {
    textOnly("suffix");
    const job: CompletionJob = { kind: "completion", model, prompt, suffix, sampling, echo: false };
    return { kind: "generate", job, stream, ...keepAlive };
  }
  if (request.raw === true) {
    textOnly("raw");
    const job: CompletionJob = { kind: "completion", model, prompt, sampling, echo: false };
    return { kind: "generate", job, stream, ...keepAlive };
  }
  const messages: ChatMessage[] = [];
  if (request.system !== undefined && request.system !== null && request.system !== "") messages.push({ role: "system", content: request.system });
  messages.push({ role: "user", content: prompt });
  const job: ChatJob = { kind: "chat", model, messages, sampling, responseFormat: request.format, tools: [], toolChoice: "none", thinking: request.think };
  return { kind: "generate", job, stream, ...keepAlive };
}
