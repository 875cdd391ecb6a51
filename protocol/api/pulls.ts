/**
 * Model transfers from peers as the API shows them (daemon/sharing/):
 *
 *   POST /hearth/v1/models/pull            PullResult: already present, or the transfer started or joined
 *   GET  /hearth/v1/models/pulls           TransferList: running, then recently finished
 *   GET  /hearth/v1/models/pulls/{sha256}  TransferAnswer: one of those, to follow it
 *
 * TransferView is also `transfers` in GET /hearth/v1/status. `hearth pull --from-peer` and
 * `hearth status` read them.
 *
 * Pure: no I/O.
 */

import { z } from "zod";
import { SHA256_HEX_PATTERN } from "../peer/modelTransferWire.js";

/** `auto`: a request this node was asked to run needs the model; `pull`: the user's `hearth pull MODEL --from-peer`. */
export const fetchOriginSchema = z.enum(["auto", "pull"]);

export const transferStateSchema = z.enum(["connecting", "transferring", "waiting", "verifying", "done", "failed"]);

/** An error as it is sent in a body (HearthError.toPayload()); the code stays a string so an unknown one still reads. */
export const errorPayloadViewSchema = z.object({
  code: z.string(),
  message: z.string(),
  param: z.string().nullable().optional(),
  retryAfterSeconds: z.number().optional(),
});

export const transferViewSchema = z.object({
  /** Transfers are keyed by it (GET /hearth/v1/models/pulls/{sha256}). */
  sha256: z.string().regex(SHA256_HEX_PATTERN, "must be 64 lower-case hex characters"),
  /** The name it was asked for (a model id, a sha256, or the router's model name). */
  model: z.string(),
  /** The id it has (or will have) in this node's models dir. */
  modelId: z.string(),
  origin: fetchOriginSchema,
  state: transferStateSchema,
  /** The peer it is coming from (null while none is chosen). */
  fromNodeId: z.string().nullable(),
  bytesDone: z.number(),
  totalBytes: z.number(),
  /** Over the last few seconds; 0 when nothing arrives. */
  bytesPerSecond: z.number(),
  /** Times it continued from a partial file (after a link drop, a stall or a restart). */
  resumes: z.number(),
  /** ISO 8601. */
  startedAt: z.string(),
  finishedAt: z.string().nullable(),
  error: errorPayloadViewSchema.nullable(),
});

export const pullResultSchema = z.discriminatedUnion("present", [
  z.object({ present: z.literal(true), modelId: z.string(), sha256: z.string().nullable() }),
  z.object({ present: z.literal(false), joined: z.boolean(), transfer: transferViewSchema }),
]);

export const transferListSchema = z.object({ transfers: z.array(transferViewSchema) });

export const transferAnswerSchema = z.object({ transfer: transferViewSchema });

export type FetchOrigin = z.infer<typeof fetchOriginSchema>;
export type TransferState = z.infer<typeof transferStateSchema>;
export type TransferView = z.infer<typeof transferViewSchema>;
export type PullResult = z.infer<typeof pullResultSchema>;
export type TransferList = z.infer<typeof transferListSchema>;
export type TransferAnswer = z.infer<typeof transferAnswerSchema>;
