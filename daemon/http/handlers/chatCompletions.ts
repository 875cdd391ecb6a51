/**
 * POST /v1/chat/completions.
 */

import { parseChatRequest } from "../../../protocol/openai/chatRequest.js";
import { ChatChunkSequence } from "../../../protocol/openai/chatChunks.js";
import { buildChatCompletion } from "../../../protocol/openai/chatResponse.js";
import { newResponseId } from "../../../protocol/openai/ids.js";
import type { RequestContext } from "../context.js";
import { readJsonBody } from "../requestBody.js";
import { serveGeneration, type GenerationFormat } from "./generation.js";

const CHAT_FORMAT: GenerationFormat = {
  newId: () => newResponseId("chatcmpl"),
  buildBody: buildChatCompletion,
  createChunks: (meta, delivery) => new ChatChunkSequence(meta, delivery.includeUsage),
  transport: { kind: "sse", doneMarker: true },
};

export async function handleChatCompletions(context: RequestContext): Promise<void> {
  const body = await readJsonBody(context.req, { maxBytes: context.services.config.limits.maxBodyBytes });
  await serveGeneration(context, parseChatRequest(body), CHAT_FORMAT);
}
