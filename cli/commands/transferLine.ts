/**
 * One line describing a model transfer from a peer (TransferView of protocol/api/pulls.ts),
 * shared by `hearth pull --from-peer` and `hearth status`.
 */

import type { TransferView } from "../../protocol/api/pulls.js";
import { formatBytes } from "../output.js";

export function formatTransferLine(transfer: TransferView): string {
  const { bytesDone: done, totalBytes: total, bytesPerSecond } = transfer;
  const percent = total > 0 ? `${((100 * Math.min(done, total)) / total).toFixed(1)}%` : "?%";
  const rate = bytesPerSecond > 0 ? `, ${formatBytes(bytesPerSecond)}/s` : "";
  const eta = bytesPerSecond > 0 && total > done ? `, ~${Math.ceil((total - done) / bytesPerSecond)} s left` : "";
  const from = transfer.fromNodeId === null ? "" : ` from ${transfer.fromNodeId.slice(0, 7)}`;
  const resumes = transfer.resumes > 0 ? `, resumed ${transfer.resumes}x` : "";
  return `${transfer.modelId} ${transfer.state}${from}: ${percent} ${formatBytes(done)} / ${formatBytes(total)}${rate}${eta}${resumes}`;
}
