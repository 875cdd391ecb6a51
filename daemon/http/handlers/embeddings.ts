/**
 * POST /v1/embeddings, run on whichever node the router picks (or the pinned one).
 */

import { checkDimensions, parseEmbeddingRequest } from "../../../protocol/openai/embeddingRequest.js";
import { buildEmbeddingResponse } from "../../../protocol/openai/embeddingResponse.js";
import { abortOnClientDisconnect } from "../clientDisconnect.js";
import type { RequestContext } from "../context.js";
import { readJsonBody } from "../requestBody.js";
import { requestRouting, setNodeHeader } from "../nodeRouting.js";
import { sendJson } from "../responses.js";

export async function handleEmbeddings(context: RequestContext): Promise<void> {
  const { req, res, services } = context;
  const body = await readJsonBody(req, { maxBytes: services.config.limits.maxBodyBytes });
  const request = parseEmbeddingRequest(body, { maxInputs: services.config.limits.maxEmbeddingInputs });
  const { route, onNode } = requestRouting(context, request.hearth);
  const model = await services.engine.resolveModel(request.job.model);
  checkDimensions(request.dimensions, model.embeddingLength);
  const cancel = abortOnClientDisconnect(res);
  const result = await services.engine.embed(request.job, { signal: cancel.signal, model, route, onNode });
  setNodeHeader(res, result.nodeId);
  checkDimensions(request.dimensions, result.vectors[0]?.length);
  services.metrics.recordEmbedding(model.id, result.promptTokens);
  sendJson(res, 200, buildEmbeddingResponse(request.job.model, result, request.encodingFormat));
}
