/**
 * How batch jobs look on a terminal: the one-line progress bar of `hearth submit`, the rows of
 * `hearth jobs` and the detail of `hearth jobs show`. Input is the daemon's job view
 * (JobView of protocol/api/jobs.ts, GET /hearth/v1/jobs/{id}).
 */

import { isValidJobId, type JobView } from "../protocol/api/jobs.js";
import { errors } from "../protocol/errors.js";
import { shortNodeId } from "../protocol/peer/identity.js";

const BAR_WIDTH = 24;

/** Job ids are checked before they go into a URL, so a typo is a usage error (exit 2), not a 404. */
export function checkJobId(id: string): string {
  if (!isValidJobId(id)) throw errors.cliUsage(`not a job id: ${JSON.stringify(id)} (job ids look like job_ followed by 24 hex digits; see: hearth jobs)`, { param: "id" });
  return id;
}

export function formatEta(seconds: number | null): string {
  if (seconds === null) return "ETA -";
  if (seconds < 60) return `ETA ${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `ETA ${minutes}m${String(seconds % 60).padStart(2, "0")}s`;
  return `ETA ${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, "0")}m`;
}

function rate(value: number): string {
  return `${value.toFixed(value >= 10 ? 0 : 1)}/s`;
}

/** `[#####-----] 120/200  60%  8.2/s  ETA 10s  |  3f2a1b 4.1/s  9c8d7e 4.1/s` */
export function formatProgressLine(view: JobView): string {
  const { done, total } = view.progress;
  const fraction = total > 0 ? done / total : 0;
  const filled = Math.round(fraction * BAR_WIDTH);
  const bar = `${"#".repeat(filled)}${"-".repeat(BAR_WIDTH - filled)}`;
  const nodes = view.nodes
    .filter((node) => node.in_flight > 0 || node.items_per_second > 0)
    .map((node) => `${shortNodeId(node.node_id)} ${rate(node.items_per_second)}`)
    .join("  ");
  const head = `[${bar}] ${done}/${total} ${(fraction * 100).toFixed(0).padStart(3)}%  ${rate(view.progress.items_per_second)}  ${formatEta(view.progress.eta_seconds)}`;
  return nodes === "" ? head : `${head}  |  ${nodes}`;
}

export function jobRow(view: JobView): string[] {
  return [
    view.id,
    view.status,
    view.model,
    `${view.progress.done}/${view.progress.total}`,
    String(view.request_counts.failed),
    new Date(view.created_at * 1000).toISOString().replace(/\.\d+Z$/, "Z"),
  ];
}

export const JOB_TABLE_HEADER = ["ID", "STATUS", "MODEL", "DONE", "FAILED", "CREATED"];

export function formatJobDetail(view: JobView): string {
  const time = (seconds: number | null) => (seconds === null ? "-" : new Date(seconds * 1000).toISOString().replace(/\.\d+Z$/, "Z"));
  const lines = [
    `job       ${view.id}`,
    `status    ${view.status}`,
    `model     ${view.model}`,
    `items     ${view.progress.done}/${view.progress.total} done: ${view.request_counts.completed} ok, ${view.request_counts.failed} failed${view.invalid_lines > 0 ? ` (${view.invalid_lines} invalid lines kept)` : ""}`,
    `pace      ${rate(view.progress.items_per_second)}, ${formatEta(view.progress.eta_seconds)}`,
    `created   ${time(view.created_at)}`,
    `started   ${time(view.started_at)}`,
    `finished  ${time(view.finished_at)}`,
  ];
  if (view.nodes.length > 0) {
    lines.push("nodes");
    for (const node of view.nodes) lines.push(`  ${node.node_id}  ${node.done} done, ${node.in_flight} in flight, ${rate(node.items_per_second)}`);
  }
  return `${lines.join("\n")}\n`;
}
