/**
 * Builds a batch job as the API shows it (JobView of protocol/api/jobs.ts, GET
 * /hearth/v1/jobs/{id}): status, counts in OpenAI's `request_counts` form, and progress:
 * items done, per-node counts and rates, ETA.
 */

import type { JobView } from "../../protocol/api/jobs.js";
import type { RunProgress } from "./JobRun.js";
import type { StoredJob } from "./JobStore.js";

const seconds = (ms: number | null): number | null => (ms === null ? null : Math.floor(ms / 1000));
const round = (value: number): number => Math.round(value * 100) / 100;

export function buildJobView(job: StoredJob, progress: RunProgress | undefined): JobView {
  const { meta } = job;
  let completed = 0;
  const doneByNode = new Map<string, number>();
  for (const record of job.records()) {
    if (record.ok) completed++;
    if (record.node !== null) doneByNode.set(record.node, (doneByNode.get(record.node) ?? 0) + 1);
  }
  const done = job.doneCount;
  const live = new Map((progress?.nodes ?? []).map((node) => [node.nodeId, node]));
  const nodeIds = [...new Set([...doneByNode.keys(), ...live.keys()])].sort();
  // A finished job shows its average pace over the run; a running one its recent pace.
  const runSeconds = meta.startedAt !== null && meta.finishedAt !== null ? Math.max(0.001, (meta.finishedAt - meta.startedAt) / 1000) : null;
  const averageRate = (count: number): number => (runSeconds === null ? 0 : count / runSeconds);
  const ran = [...doneByNode.values()].reduce((sum, count) => sum + count, 0);
  const rate = progress?.itemsPerSecond ?? averageRate(ran);
  const remaining = meta.total - done;
  return {
    id: meta.id,
    object: "hearth.job",
    status: meta.status,
    model: meta.model,
    created_at: Math.floor(meta.createdAt / 1000),
    started_at: seconds(meta.startedAt),
    finished_at: seconds(meta.finishedAt),
    request_counts: { total: meta.total, completed, failed: done - completed },
    progress: {
      done,
      total: meta.total,
      items_per_second: round(rate),
      eta_seconds: remaining === 0 ? 0 : rate > 0 ? Math.ceil(remaining / rate) : null,
    },
    nodes: nodeIds.map((nodeId) => ({
      node_id: nodeId,
      done: doneByNode.get(nodeId) ?? 0,
      in_flight: live.get(nodeId)?.inFlight ?? 0,
      items_per_second: round(live.get(nodeId)?.itemsPerSecond ?? (progress === undefined ? averageRate(doneByNode.get(nodeId) ?? 0) : 0)),
    })),
    skip_invalid: meta.parse.skipInvalid,
    invalid_lines: meta.invalid,
  };
}
