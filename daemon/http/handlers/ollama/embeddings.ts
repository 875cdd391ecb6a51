/**
 * POST /api/embed and POST /api/embeddings (protocol/ollama/embeddings.ts), run by the router
 * like /v1/embeddings: /api/embeddings answers the same vectors, /api/embed the same scaled to
 * length 1. No input loads the model instead.
 */

import { checkDimensions } from "../../../../protocol/openai/embeddingRequest.js";
import type { EmbeddingResult } from "../../../../protocol/inference.js";
import { buildEmbedAnswer, buildEmbeddingsAnswer, parseEmbeddingsRequest, parseEmbedRequest, type OllamaEmbedRequest } from "../../../../protocol/ollama/embeddings.js";
import { abortOnClientDisconnect } from "../../clientDisconnect.js";
import type { RequestContext } from "../../context.js";
import { requestRouting, setNodeHeader } from "../../nodeRouting.js";
import { sendJson } from "../../responses.js";
import { loadOrUnload } from "./modelLoading.js";
import { resolveOllamaModel } from "./modelNames.js";
import { readOllamaBody } from "./requestBody.js";
import { OllamaRequestEngine } from "./requestEngine.js";

export async function handleOllamaEmbed(context: RequestContext): Promise<void> {
  const request = parseEmbedRequest(await readOllamaBody(context), { maxInputs: context.services.config.limits.maxEmbeddingInputs });
  const engine = new OllamaRequestEngine(context.services.engine, request.keepAliveMs);
  const result = await embed(context, engine, request);
  // A request with no input only loads the model, so all its time is loading; Hearth does not
  // measure the load that precedes an embedding.
  const totalMs = engine.elapsedMs();
  sendJson(context.res, 200, buildEmbedAnswer(request.job.model, result, { totalMs, loadMs: request.job.inputs.length === 0 ? totalMs : 0 }));
}

export async function handleOllamaEmbeddings(context: RequestContext): Promise<void> {
  const request = parseEmbeddingsRequest(await readOllamaBody(context));
  const engine = new OllamaRequestEngine(context.services.engine, request.keepAliveMs);
  sendJson(context.res, 200, buildEmbeddingsAnswer(await embed(context, engine, request)));
}

async function embed(context: RequestContext, engine: OllamaRequestEngine, request: OllamaEmbedRequest): Promise<Pick<EmbeddingResult, "vectors" | "promptTokens">> {
  const { services, res } = context;
  if (request.job.inputs.length === 0) {
    await loadOrUnload(context, request.job.model, request.keepAliveMs);
    return { vectors: [], promptTokens: 0 };
  }
  const { route, onNode } = requestRouting(context, undefined);
  const resolved = await resolveOllamaModel(engine, request.job.model);
  checkDimensions(request.dimensions, resolved.info.embeddingLength);
  const cancel = abortOnClientDisconnect(res);
  const result = await engine.embed({ ...request.job, model: resolved.name }, { signal: cancel.signal, model: resolved.info, route, onNode });
  setNodeHeader(res, result.nodeId);
  checkDimensions(request.dimensions, result.vectors[0]?.length);
  services.metrics.recordEmbedding(resolved.info.id, result.promptTokens);
  return result;
}
