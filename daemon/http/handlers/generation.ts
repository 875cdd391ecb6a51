/**
 * Runs one generation (chat or text completion) for an HTTP request and delivers it either
 * as one JSON body or as an SSE stream, cancelling it if the client disconnects, and
 * recording its usage and speed in the metrics.
 *
 * The model is resolved (cluster-wide) before anything is queued so an unknown model is a
 * plain 404 even for a streamed request. The router decides which node runs it; a pin comes
 * from the request (nodeRouting.ts) and the `x-hearth-node` response header names the node.
 */

import { performance } from "node:perf_hooks";
import type { GenerationJob, GenerationResult } from "../../../protocol/inference.js";
import type { DeliveryOptions } from "../../../protocol/openai/common.js";
import { hearthResponseField, type HearthExtension } from "../../../protocol/openai/hearthExtension.js";
import { newResponseId, unixSeconds, type ResponseIdPrefix } from "../../../protocol/openai/ids.js";
import type { ChunkSequence, ResponseMeta } from "../../../protocol/openai/responseMeta.js";
import { abortOnClientDisconnect } from "../clientDisconnect.js";
import type { RequestContext } from "../context.js";
import { errorResponse, logAndConvert } from "../errorResponder.js";
import { requestRouting, setNodeHeader } from "../nodeRouting.js";
import { sendJson } from "../responses.js";
import { SseWriter } from "../SseWriter.js";

export interface GenerationFormat {
  idPrefix: ResponseIdPrefix;
  buildBody(meta: ResponseMeta, result: GenerationResult): object;
  createChunks(meta: ResponseMeta, includeUsage: boolean): ChunkSequence;
}

export async function serveGeneration(
  context: RequestContext,
  request: { job: GenerationJob; delivery: DeliveryOptions; hearth?: HearthExtension },
  format: GenerationFormat,
): Promise<void> {
  const { res, services, log } = context;
  const { job, delivery } = request;
  const { route, onNode } = requestRouting(context, request.hearth);
  const model = await services.engine.resolveModel(job.model);
  const meta: ResponseMeta = { id: newResponseId(format.idPrefix), created: unixSeconds(), model: job.model };
  const cancel = abortOnClientDisconnect(res);
  const startedAt = performance.now();
  const recordMetrics = (result: GenerationResult): void => {
    services.metrics.recordGeneration({ model: model.id, result, wallMs: performance.now() - startedAt });
  };

  if (!delivery.stream) {
    const result = await services.engine.generate(job, { signal: cancel.signal, model, route, onNode });
    setNodeHeader(res, result.nodeId);
    recordMetrics(result);
    sendJson(res, 200, { ...format.buildBody(meta, result), ...hearthResponseField(result) });
    return;
  }

  const sse = new SseWriter(res, services.config.limits.sseKeepAliveMs);
  const chunks = format.createChunks(meta, delivery.includeUsage);
  sse.startKeepAlive();
  try {
    const result = await services.engine.generate(job, {
      signal: cancel.signal,
      model,
      route,
      onNode,
      onDelta: (delta) => {
        for (const chunk of chunks.delta(delta.text)) sse.send(chunk);
      },
    });
    recordMetrics(result);
    const finishing = chunks.finish(result);
    // The last chunk says where the request ran, as a non-streamed body does.
    finishing.forEach((chunk, index) => sse.send(index === finishing.length - 1 ? { ...chunk, ...hearthResponseField(result) } : chunk));
    sse.done();
  } catch (error) {
    // Before the first byte the caller still answers with a real status code.
    if (!sse.started) throw error;
    sse.fail(errorResponse(logAndConvert(error, log)).body);
  } finally {
    sse.dispose();
  }
}
