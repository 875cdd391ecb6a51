/**
 * POST /api/pull: fetches a model from a peer that holds it (model sharing, daemon/sharing/),
 * since Hearth has no registry, reporting progress in Ollama's shape (protocol/ollama/pull.ts).
 *
 * The name is resolved cluster-wide first (`tiny:latest` is `tiny`), and the file is asked for
 * by its sha256 when the cluster knows it, so the right file comes whatever a peer calls it. A
 * name no node has is 404 "model 'x' not found" before anything is streamed; a model already
 * here answers success at once. The transfer runs in the daemon: a client that goes away stops
 * following it, not the transfer (`hearth status` still shows it). Streamed by default;
 * `stream: false` answers `{"status": "success"}` once the file is verified and installed.
 */

import type { TransferView } from "../../../../protocol/api/pulls.js";
import { errors, HearthError, isHearthErrorCode, type HearthErrorCode } from "../../../../protocol/errors.js";
import { nameCandidates } from "../../../../protocol/ollama/names.js";
import { parsePullRequest, PULLING_MANIFEST, pullingProgress, SUCCESS, VERIFYING, type OllamaProgress } from "../../../../protocol/ollama/pull.js";
import type { InferenceEngine } from "../../../engine/types.js";
import type { ModelSharingSource } from "../../../sharing/ModelSharing.js";
import { abortOnClientDisconnect } from "../../clientDisconnect.js";
import type { RequestContext } from "../../context.js";
import { errorResponse, logAndConvert } from "../../errorResponder.js";
import { sendJson } from "../../responses.js";
import { openStream } from "../../streamWriters.js";
import { notFound } from "./modelNames.js";
import { readOllamaBody } from "./requestBody.js";

/** How often a followed transfer is looked at for progress. */
const PROGRESS_INTERVAL_MS = 250;

export async function handleOllamaPull(context: RequestContext): Promise<void> {
  const { services, res } = context;
  const sharing = services.sharing;
  if (sharing === undefined) throw errors.notFound("pulling needs model sharing, which this API runs without");
  const { model, stream } = parsePullRequest(await readOllamaBody(context));
  const started = await sharing.pull(await pullTarget(services.engine, model));
  const cancel = abortOnClientDisconnect(res);

  if (!stream) {
    if (!started.present) await finished(sharing, started.transfer.sha256, cancel.signal);
    sendJson(res, 200, SUCCESS);
    return;
  }
  const writer = openStream(res, { kind: "ndjson" }, services.config.limits.sseKeepAliveMs);
  const send = (progress: OllamaProgress): void => writer.send({ data: progress });
  try {
    send(PULLING_MANIFEST);
    if (!started.present) {
      let last: string | undefined;
      const final = await finished(sharing, started.transfer.sha256, cancel.signal, (view) => {
        if (view.state !== "transferring" && view.bytesDone === 0) return;
        const progress = pullingProgress(view);
        const key = `${progress.total}/${progress.completed}`;
        if (key !== last) send(progress);
        last = key;
      });
      // The last progress line says the whole file arrived, however quickly it came.
      if (last !== `${final.totalBytes}/${final.totalBytes}`) send(pullingProgress({ ...final, bytesDone: final.totalBytes }));
      send(VERIFYING);
    }
    send(SUCCESS);
    writer.done();
  } catch (error) {
    const failure = logAndConvert(error, context.log);
    writer.fail({ data: errorResponse(failure, context.family).body });
  } finally {
    writer.dispose();
  }
}

/** What to ask model sharing for: the sha256 of the file the name means, or the name itself. */
async function pullTarget(engine: InferenceEngine, model: string): Promise<string> {
  for (const candidate of nameCandidates(model)) {
    try {
      const info = await engine.resolveModel(candidate);
      return info.cluster?.sha256 ?? candidate;
    } catch (error) {
      if (!(error instanceof HearthError && error.code === "HEARTH_MODEL_NOT_FOUND")) throw error;
    }
  }
  throw notFound(model);
}

/** Follows a transfer until it is done (resolving to its last view) or failed (throwing its error). */
async function finished(sharing: ModelSharingSource, sha256: string, signal: AbortSignal, onProgress?: (view: TransferView) => void): Promise<TransferView> {
  for (;;) {
    if (signal.aborted) throw errors.cancelled("stopped following the model transfer; it goes on in the daemon");
    const view = sharing.transfer(sha256);
    if (view === undefined) throw errors.modelTransferFailed(`the transfer of sha256 ${sha256} is no longer known to this node`);
    if (view.state === "failed") {
      const error = view.error;
      const code: HearthErrorCode = error !== null && isHearthErrorCode(error.code) ? error.code : "HEARTH_MODEL_TRANSFER_FAILED";
      throw errors.withCode(code, error?.message ?? "the model transfer failed", { param: "model" });
    }
    onProgress?.(view);
    if (view.state === "done") return view;
    await new Promise((resolve) => setTimeout(resolve, PROGRESS_INTERVAL_MS));
  }
}
