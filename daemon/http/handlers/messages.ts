/**
 * POST /v1/messages and POST /v1/messages/count_tokens: Anthropic's Messages API, an adapter
 * onto the one chat job (protocol/anthropic/).
 *
 * count_tokens has no tokenizer call of its own to use: the exact count is what a generation
 * of the same conversation reports as its prompt, so it runs that job with a budget of one
 * token through the same path and answers its prompt tokens. The prompt is evaluated once,
 * and the KV cache keeps it for the messages request that usually follows.
 */

import { performance } from "node:perf_hooks";
import { newMessageId } from "../../../protocol/anthropic/ids.js";
import { MessageEventSequence } from "../../../protocol/anthropic/messageEvents.js";
import { buildMessage } from "../../../protocol/anthropic/messageResponse.js";
import { parseCountTokensRequest, parseMessagesRequest } from "../../../protocol/anthropic/messagesRequest.js";
import { abortOnClientDisconnect } from "../clientDisconnect.js";
import type { RequestContext } from "../context.js";
import { requestRouting, setNodeHeader } from "../nodeRouting.js";
import { readJsonBody } from "../requestBody.js";
import { sendJson } from "../responses.js";
import { serveGeneration, type GenerationFormat } from "./generation.js";

const MESSAGE_FORMAT: GenerationFormat = {
  newId: newMessageId,
  buildBody: buildMessage,
  createChunks: (meta) => new MessageEventSequence(meta),
  transport: { kind: "sse", doneMarker: false },
  errorFrame: (_error, body) => ({ event: "error", data: body }),
};

export async function handleMessages(context: RequestContext): Promise<void> {
  const body = await readJsonBody(context.req, { maxBytes: context.services.config.limits.maxBodyBytes });
  await serveGeneration(context, parseMessagesRequest(body), MESSAGE_FORMAT);
}

export async function handleCountTokens(context: RequestContext): Promise<void> {
  const { req, res, services } = context;
  const body = await readJsonBody(req, { maxBytes: services.config.limits.maxBodyBytes });
  const { job, hearth } = parseCountTokensRequest(body);
  const { route, onNode } = requestRouting(context, hearth);
  const model = await services.engine.resolveModel(job.model);
  const cancel = abortOnClientDisconnect(res);
  const startedAt = performance.now();
  const result = await services.engine.generate(job, { signal: cancel.signal, model, route, onNode });
  setNodeHeader(res, result.nodeId);
  services.metrics.recordGeneration({ model: model.id, result, wallMs: performance.now() - startedAt });
  sendJson(res, 200, { input_tokens: result.usage.promptTokens });
}
