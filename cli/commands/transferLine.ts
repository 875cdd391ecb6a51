/**
 * One line describing a model transfer from a peer (TransferView of daemon/sharing/), shared by
 * `hearth pull --from-peer` and `hearth status`. Tolerates missing fields: it reads JSON.
 */

import { formatBytes } from "../output.js";

export interface TransferLike {
  sha256: string;
  model: string;
  modelId: string;
  state: string;
  fromNodeId: string | null;
  bytesDone: number;
  totalBytes: number;
  bytesPerSecond: number;
  resumes: number;
  error: { code: string; message: string } | null;
}

export function formatTransferLine(transfer: Partial<TransferLike>): string {
  const done = typeof transfer.bytesDone === "number" ? transfer.bytesDone : 0;
  const total = typeof transfer.totalBytes === "number" ? transfer.totalBytes : 0;
  const percent = total > 0 ? `${((100 * Math.min(done, total)) / total).toFixed(1)}%` : "?%";
  const rate = typeof transfer.bytesPerSecond === "number" && transfer.bytesPerSecond > 0 ? `, ${formatBytes(transfer.bytesPerSecond)}/s` : "";
  const eta = typeof transfer.bytesPerSecond === "number" && transfer.bytesPerSecond > 0 && total > done ? `, ~${Math.ceil((total - done) / transfer.bytesPerSecond)} s left` : "";
  const from = typeof transfer.fromNodeId === "string" ? ` from ${transfer.fromNodeId.slice(0, 7)}` : "";
  const resumes = typeof transfer.resumes === "number" && transfer.resumes > 0 ? `, resumed ${transfer.resumes}x` : "";
  return `${transfer.modelId ?? transfer.model ?? "?"} ${transfer.state ?? "?"}${from}: ${percent} ${formatBytes(done)} / ${formatBytes(total)}${rate}${eta}${resumes}`;
}
