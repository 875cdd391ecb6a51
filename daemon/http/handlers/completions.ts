/**
 * POST /v1/completions (legacy text completions).
 */

import { parseCompletionRequest } from "../../../protocol/openai/completionRequest.js";
import { buildTextCompletion, CompletionChunkSequence } from "../../../protocol/openai/completionResponse.js";
import type { RequestContext } from "../context.js";
import { readJsonBody } from "../requestBody.js";
import { serveGeneration, type GenerationFormat } from "./generation.js";

const COMPLETION_FORMAT: GenerationFormat = {
  idPrefix: "cmpl",
  buildBody: buildTextCompletion,
  createChunks: (meta, includeUsage) => new CompletionChunkSequence(meta, includeUsage),
};

export async function handleCompletions(context: RequestContext): Promise<void> {
  const body = await readJsonBody(context.req, { maxBytes: context.services.config.limits.maxBodyBytes });
  await serveGeneration(context, parseCompletionRequest(body), COMPLETION_FORMAT);
}
