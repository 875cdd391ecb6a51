/**
 * Runs one generation (chat or text completion) for an HTTP request of any API family and
 * delivers it either as one JSON body or as a stream, cancelling it if the client disconnects,
 * and recording its usage and speed in the metrics.
 *
 * Every family comes through here with its GenerationFormat (ids, body, frames, transport,
 * error frame): the internal job and the one routing decision behind it are the same for all.
 *
 * The model is resolved (cluster-wide) before anything is queued so an unknown model is a
 * plain 404 even for a streamed request. The router decides which node runs it; a pin comes
 * from the request (nodeRouting.ts) and the `x-hearth-node` response header names the node.
 */

import { performance } from "node:perf_hooks";
import type { HearthError } from "../../../protocol/errors.js";
import type { ChunkSequence, ResponseMeta, StreamFrame } from "../../../protocol/generationStream.js";
import type { GenerationJob, GenerationResult } from "../../../protocol/inference.js";
import type { DeliveryOptions } from "../../../protocol/openai/common.js";
import { hearthResponseField, type HearthExtension } from "../../../protocol/openai/hearthExtension.js";
import { unixSeconds } from "../../../protocol/openai/ids.js";
import { abortOnClientDisconnect } from "../clientDisconnect.js";
import type { RequestContext } from "../context.js";
import { errorResponse, logAndConvert } from "../errorResponder.js";
import { requestRouting, setNodeHeader } from "../nodeRouting.js";
import { sendJson } from "../responses.js";
import { openStream, type StreamTransport } from "../streamWriters.js";

export interface GenerationFormat {
  /** A fresh response id in the family's form. */
  newId(): string;
  buildBody(meta: ResponseMeta, result: GenerationResult): object;
  createChunks(meta: ResponseMeta, delivery: DeliveryOptions): ChunkSequence;
  transport: StreamTransport;
  /** The frame that ends a stream which failed after it began; the family's error body by default. */
  errorFrame?(error: HearthError, body: object): StreamFrame;
  /** Called with every finished generation before it is answered (the Responses API stores it). */
  completed?(meta: ResponseMeta, result: GenerationResult): Promise<void> | void;
}

export interface GenerationRequest {
  job: GenerationJob;
  delivery: DeliveryOptions;
  hearth?: HearthExtension;
}

export async function serveGeneration(context: RequestContext, request: GenerationRequest, format: GenerationFormat): Promise<void> {
  const { res, services, log } = context;
  const { job, delivery } = request;
  const { route, onNode } = requestRouting(context, request.hearth);
  const model = await services.engine.resolveModel(job.model);
  const meta: ResponseMeta = { id: format.newId(), created: unixSeconds(), model: job.model };
  const cancel = abortOnClientDisconnect(res);
  const startedAt = performance.now();
  const finished = async (result: GenerationResult): Promise<void> => {
    services.metrics.recordGeneration({ model: model.id, result, wallMs: performance.now() - startedAt });
    await format.completed?.(meta, result);
  };

  if (!delivery.stream) {
    const result = await services.engine.generate(job, { signal: cancel.signal, model, route, onNode });
    setNodeHeader(res, result.nodeId);
    await finished(result);
    sendJson(res, 200, { ...format.buildBody(meta, result), ...hearthResponseField(result) });
    return;
  }

  const stream = openStream(res, format.transport, services.config.limits.sseKeepAliveMs);
  const chunks = format.createChunks(meta, delivery);
  stream.startKeepAlive();
  try {
    const result = await services.engine.generate(job, {
      signal: cancel.signal,
      model,
      route,
      onNode,
      onDelta: (delta) => {
        for (const frame of chunks.delta(delta)) stream.send(frame);
      },
    });
    await finished(result);
    const finishing = chunks.finish(result);
    // The last frame says where the request ran, as a non-streamed body does.
    finishing.forEach((frame, index) => stream.send(index === finishing.length - 1 ? { ...frame, data: { ...frame.data, ...hearthResponseField(result) } } : frame));
    stream.done();
  } catch (error) {
    // Before the first byte the caller still answers with a real status code.
    if (!stream.started) throw error;
    const failure = logAndConvert(error, log);
    const body = errorResponse(failure, context.family).body;
    stream.fail(format.errorFrame?.(failure, body) ?? { data: body });
  } finally {
    stream.dispose();
  }
}
