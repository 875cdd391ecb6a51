/**
 * POST /api/pull: Ollama's request and its progress lines, for a model fetched from a peer
 * (daemon/sharing/) rather than a registry.
 *
 *   {status: "pulling manifest"}
 *   {status: "pulling <12 hex>", digest: "sha256:<hex>", total, completed}   as bytes arrive
 *   {status: "verifying sha256 digest"}
 *   {status: "success"}
 *
 * `insecure` is accepted and means nothing here (peers are authenticated by the cluster).
 *
 * Pure: no I/O.
 */

import { z } from "zod";
import type { TransferView } from "../api/pulls.js";
import { parseWith } from "../openai/validation.js";
import { requiredModel } from "./common.js";
import { modelNameFields, streamField, streams } from "./options.js";

export const pullRequestSchema = z.object({
  ...modelNameFields,
  insecure: z.boolean().nullish(),
  stream: streamField,
});

export function parsePullRequest(body: unknown): { model: string; stream: boolean } {
  const request = parseWith(pullRequestSchema, body);
  return { model: requiredModel(request), stream: streams(request.stream) };
}

export interface OllamaProgress {
  status: string;
  digest?: string;
  total?: number;
  completed?: number;
}

export const PULLING_MANIFEST: OllamaProgress = { status: "pulling manifest" };
export const VERIFYING: OllamaProgress = { status: "verifying sha256 digest" };
export const SUCCESS: OllamaProgress = { status: "success" };

/** Ollama names a layer by the first 12 hex digits of its digest. */
const SHORT_DIGEST = 12;

export function pullingProgress(transfer: Pick<TransferView, "sha256" | "totalBytes" | "bytesDone">): OllamaProgress {
  return {
    status: `pulling ${transfer.sha256.slice(0, SHORT_DIGEST)}`,
    digest: `sha256:${transfer.sha256}`,
    total: transfer.totalBytes,
    completed: Math.min(transfer.bytesDone, transfer.totalBytes),
  };
}
