/**
 * Fetching models from peers through the API (daemon/sharing/), for `hearth pull MODEL --from-peer`:
 *
 *   POST /hearth/v1/models/pull {"model": "<model id or sha256>"}
 *        200 {"present": true, "modelId", "sha256"}            already here, nothing to do
 *        202 {"present": false, "joined", "transfer": TransferView}  started, or joined a running one
 *   GET  /hearth/v1/models/pulls            {"transfers": [TransferView]}  running, then recently finished
 *   GET  /hearth/v1/models/pulls/{sha256}   {"transfer": TransferView}      one of those, to follow it
 *
 * The daemon does the transfer; the client only starts and follows it, so an interrupted CLI
 * leaves the transfer running. Paths are never sent. The shapes are in protocol/api/pulls.ts.
 */

import type { TransferAnswer, TransferList } from "../../../protocol/api/pulls.js";
import { errors } from "../../../protocol/errors.js";
import { isSha256Hex } from "../../../protocol/peer/modelTransferWire.js";
import type { ModelSharingSource } from "../../sharing/ModelSharing.js";
import type { RequestContext } from "../context.js";
import { readJsonBody } from "../requestBody.js";
import { sendJson } from "../responses.js";

const MAX_MODEL_NAME_LENGTH = 256;

function sharingOf(context: RequestContext): ModelSharingSource {
  const sharing = context.services.sharing;
  if (sharing === undefined) throw errors.notFound("This API runs without model sharing.");
  return sharing;
}

export async function handlePullModel(context: RequestContext): Promise<void> {
  const sharing = sharingOf(context);
  const body = await readJsonBody(context.req, { maxBytes: context.services.config.limits.maxBodyBytes });
  const model = body["model"];
  if (typeof model !== "string" || model === "" || model.length > MAX_MODEL_NAME_LENGTH) {
    throw errors.invalidRequest(`model must be a model id or a sha256 (a non-empty string of at most ${MAX_MODEL_NAME_LENGTH} characters)`, { param: "model" });
  }
  const result = await sharing.pull(model);
  sendJson(context.res, result.present ? 200 : 202, result);
}

export function handleListPulls(context: RequestContext): Promise<void> {
  const body: TransferList = { transfers: sharingOf(context).recent() };
  sendJson(context.res, 200, body);
  return Promise.resolve();
}

export function handleGetPull(context: RequestContext): Promise<void> {
  const sha256 = context.params["sha256"] ?? "";
  if (!isSha256Hex(sha256)) throw errors.invalidRequest("expected a sha256 (64 lower-case hex characters) in the path", { param: "sha256" });
  const transfer = sharingOf(context).transfer(sha256);
  if (transfer === undefined) throw errors.notFound(`no recent transfer of sha256 ${sha256}`, { param: "sha256" });
  const body: TransferAnswer = { transfer };
  sendJson(context.res, 200, body);
  return Promise.resolve();
}
