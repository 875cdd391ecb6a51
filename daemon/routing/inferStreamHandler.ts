/**
 * The executing side of remote inference: serves "infer" streams from peers
 * (protocol/peer/inferenceWire.ts) on this node's LocalEngine.
 *
 * Per stream: read and validate the one job frame, find the model (by the id the requester
 * named, checked against the sha256 it meant; else any local file with that sha256; else the
 * LocalModelProvider, which may fetch it from a peer), run the job with deltas written out as
 * they are generated, then one result or error frame and a clean close. The model id only
 * ever goes through the registry's lookup, never near a path.
 *
 * If the stream goes away first (the requester reset it on a client disconnect, or the link
 * dropped) the job's AbortSignal fires: a queued job leaves the queue and a running one is
 * cancelled in its runner. No failure here can reach the daemon: the handler never throws and
 * every error becomes an error frame or a reset.
 */

import type { Logger } from "pino";
import { errors, HearthError } from "../../protocol/errors.js";
import type { GenerationDelta, InferenceJob } from "../../protocol/inference.js";
import { shortNodeId } from "../../protocol/peer/identity.js";
import {
  decodeJobFrame,
  embeddingResultFrame,
  encodeInferFrame,
  errorFrame,
  generationResultFrame,
  INFER_WIRE_LIMITS,
  InferFrameSplitter,
  type InferJobFrame,
  type InferReplyFrame,
} from "../../protocol/peer/inferenceWire.js";
import type { LocalInferenceEngine, ModelDescriptor } from "../engine/types.js";
import type { StreamHandler } from "../peers/linkStreams.js";
import type { PeerStream } from "../peers/PeerStream.js";
import { wireErrorPayload } from "../peers/wire.js";
import type { LocalModelProvider } from "./LocalModelProvider.js";

export interface InferServerDeps {
  engine: LocalInferenceEngine;
  /** The sha256 this node advertises for a local model file, or null when not hashed yet. */
  hashOf(model: ModelDescriptor): string | null;
  /** Fetches a file this node lacks from a peer (model sharing); absent: such a job is refused. */
  modelProvider?: LocalModelProvider;
  logger: Logger;
}

export function createInferStreamHandler(deps: InferServerDeps): StreamHandler {
  const logger = deps.logger.child({ component: "routing" });
  // Accept at once (return synchronously); the job runs after the stream is open.
  return (stream, _meta, context) => {
    void serveStream(stream, context.peerNodeId, deps, logger).catch((error: unknown) => {
      logger.error({ err: error, peer: shortNodeId(context.peerNodeId) }, "remote inference handler failed");
      stream.destroy(errors.internal("internal error while serving a remote job"));
    });
  };
}

async function serveStream(stream: PeerStream, peerNodeId: string, deps: InferServerDeps, logger: Logger): Promise<void> {
  const peer = shortNodeId(peerNodeId);
  const controller = new AbortController();
  let finished = false;
  let jobLabel: Record<string, unknown> = { peer };
  const onGone = (): void => {
    if (finished || controller.signal.aborted) return;
    const reason = stream.errored instanceof HearthError ? stream.errored.code : "closed";
    logger.info({ ...jobLabel, reason }, "remote job cancelled: the requesting node reset the stream or the link dropped");
    controller.abort(errors.cancelled("the requesting node cancelled the job"));
  };
  stream.on("error", onGone);
  stream.on("close", onGone);

  const send = (frame: InferReplyFrame): void => {
    if (stream.destroyed || stream.writableEnded) return;
    let bytes: Buffer;
    try {
      bytes = encodeInferFrame(frame);
    } catch (error) {
      // A result too large for one frame becomes an error the requester can read.
      bytes = encodeInferFrame(errorFrame(wireErrorPayload(error)));
    }
    stream.write(bytes);
  };
  const finish = (frame: InferReplyFrame): void => {
    send(frame);
    finished = true;
    if (!stream.destroyed && !stream.writableEnded) stream.end();
  };

  let request: InferJobFrame;
  try {
    request = await readJobFrame(stream);
  } catch (error) {
    if (stream.destroyed) return;
    const failure = HearthError.from(error, "HEARTH_PEER_FRAME_INVALID");
    logger.warn({ peer, code: failure.code, reason: failure.message }, "refused a remote job");
    finish(errorFrame(wireErrorPayload(failure)));
    return;
  }

  const { job } = request;
  jobLabel = { peer, kind: job.kind, model: job.model, sha256: request.sha256?.slice(0, 12) ?? null };
  logger.debug(jobLabel, "remote job received");
  const startedAt = performance.now();
  try {
    const descriptor = await localModelFor(request, deps, controller.signal);
    const local: InferenceJob = { ...job, model: descriptor.id };
    if (local.kind === "embedding") {
      const result = await deps.engine.embed(local, { signal: controller.signal, descriptor });
      finish(embeddingResultFrame(result.vectors, result.promptTokens));
    } else {
      // Relaying every token costs both nodes CPU; a requester that only wants the result skips it.
      const onDelta = request.deltas === false ? undefined : (delta: GenerationDelta): void => send({ type: "delta", part: delta.part, text: delta.text });
      const result = await deps.engine.generate(local, { signal: controller.signal, descriptor, ...(onDelta === undefined ? {} : { onDelta }) });
      finish(generationResultFrame(result));
    }
    logger.debug({ ...jobLabel, ms: Math.round(performance.now() - startedAt) }, "remote job done");
  } catch (error) {
    if (controller.signal.aborted) return;
    const failure = HearthError.from(error);
    if (failure.code === "HEARTH_INTERNAL") logger.error({ ...jobLabel, err: error }, "remote job failed");
    else logger.debug({ ...jobLabel, code: failure.code, reason: failure.message }, "remote job failed");
    finish(errorFrame(wireErrorPayload(failure)));
  }
}

/** Resolves with the first job frame; anything after it is a protocol violation (the requester half-closes). */
function readJobFrame(stream: PeerStream): Promise<InferJobFrame> {
  return new Promise((resolve, reject) => {
    const splitter = new InferFrameSplitter(INFER_WIRE_LIMITS.maxJobFrameBytes);
    let job: InferJobFrame | undefined;
    const cleanup = (): void => {
      stream.off("data", onData);
      stream.off("end", onEnd);
      stream.off("error", onError);
    };
    const onData = (chunk: Buffer): void => {
      const split = splitter.push(chunk);
      if (!split.ok) {
        cleanup();
        reject(split.error);
        return;
      }
      for (const body of split.bodies) {
        if (job !== undefined) {
          cleanup();
          reject(errors.peerProtocolViolation("more than one frame on an infer stream"));
          return;
        }
        const decoded = decodeJobFrame(body);
        if (!decoded.ok) {
          cleanup();
          reject(decoded.error);
          return;
        }
        job = decoded.frame;
      }
    };
    const onEnd = (): void => {
      cleanup();
      if (job !== undefined && splitter.idle) resolve(job);
      else reject(errors.peerFrameInvalid(job === undefined ? "the infer stream ended before a complete job frame" : "trailing bytes after the job frame"));
    };
    const onError = (error: Error): void => {
      cleanup();
      reject(HearthError.from(error, "HEARTH_CANCELLED"));
    };
    stream.on("data", onData);
    stream.once("end", onEnd);
    stream.once("error", onError);
  });
}

/**
 * The local model to run `request` with. The id the requester named wins when its file is the
 * one meant (same sha256, or a hash not known on one side); else any local file with that
 * sha256; else the model provider fetches it.
 */
async function localModelFor(request: InferJobFrame, deps: InferServerDeps, signal: AbortSignal): Promise<ModelDescriptor> {
  const { sha256, modelName } = request;
  const wanted = request.job.model;
  let named: ModelDescriptor | undefined;
  try {
    named = await deps.engine.resolveModel(wanted);
  } catch (error) {
    if (!(error instanceof HearthError && error.code === "HEARTH_MODEL_NOT_FOUND")) throw error;
  }
  if (named !== undefined) {
    const hash = deps.hashOf(named);
    if (sha256 === null || hash === null || hash === sha256) return named;
  }
  if (sha256 !== null) {
    const same = (await deps.engine.listModels()).find((model) => deps.hashOf(model) === sha256);
    if (same !== undefined) return same;
    const provider = deps.modelProvider;
    if (provider !== undefined) return deps.engine.resolveModel(await provider.ensureLocal({ sha256, modelName, signal }));
  }
  const which = sha256 === null ? JSON.stringify(wanted) : `${JSON.stringify(wanted)} (sha256 ${sha256.slice(0, 12)}…)`;
  throw errors.modelNotFound(`This node has no model ${which}, and model sharing is not available to fetch it.`, { param: "model" });
}
