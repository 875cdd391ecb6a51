/**
 * POST /v1/chat/completions.
 */

import { parseChatRequest } from "../../../protocol/openai/chatRequest.js";
import { ChatChunkSequence } from "../../../protocol/openai/chatChunks.js";
import { buildChatCompletion } from "../../../protocol/openai/chatResponse.js";
import type { RequestContext } from "../context.js";
import { readJsonBody } from "../requestBody.js";
import { serveGeneration, type GenerationFormat } from "./generation.js";

const CHAT_FORMAT: GenerationFormat = {
  idPrefix: "chatcmpl",
  buildBody: buildChatCompletion,
  createChunks: (meta, includeUsage) => new ChatChunkSequence(meta, includeUsage),
};

export async function handleChatCompletions(context: RequestContext): Promise<void> {
  const body = await readJsonBody(context.req, { maxBytes: context.services.config.limits.maxBodyBytes });
  await serveGeneration(context, parseChatRequest(body), CHAT_FORMAT);
}
