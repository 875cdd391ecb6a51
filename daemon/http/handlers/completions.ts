/**
 * POST /v1/completions (legacy text completions).
 */

import { parseCompletionRequest } from "../../../protocol/openai/completionRequest.js";
import { buildTextCompletion, CompletionChunkSequence } from "../../../protocol/openai/completionResponse.js";
import { newResponseId } from "../../../protocol/openai/ids.js";
import type { RequestContext } from "../context.js";
import { readJsonBody } from "../requestBody.js";
import { serveGeneration, type GenerationFormat } from "./generation.js";

const COMPLETION_FORMAT: GenerationFormat = {
  newId: () => newResponseId("cmpl"),
  buildBody: buildTextCompletion,
  createChunks: (meta, delivery) => new CompletionChunkSequence(meta, delivery.includeUsage),
  transport: { kind: "sse", doneMarker: true },
};

export async function handleCompletions(context: RequestContext): Promise<void> {
  const body = await readJsonBody(context.req, { maxBytes: context.services.config.limits.maxBodyBytes });
  await serveGeneration(context, parseCompletionRequest(body), COMPLETION_FORMAT);
}
