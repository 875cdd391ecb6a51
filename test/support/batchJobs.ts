/**
 * Batch jobs of a daemon in a cluster test (docs/api.md "Batch jobs"): submit, watch until a
 * condition holds, and read the output, through one node's namespace. Shared by the cluster
 * tests that run jobs.
 */

import { expect } from "vitest";
import type { JobView } from "../../protocol/api/jobs.js";
import type { BatchOutputLine } from "../../protocol/batch/batchOutput.js";
import type { ClusterNode } from "./clusterNet.js";

const POLL_MS = 100;

/** Submits JSONL input lines as a job on `node`; returns its id. */
export async function submitJob(node: ClusterNode, input: readonly string[]): Promise<string> {
  const answer = await node.http("POST", "/hearth/v1/jobs", { input: input.join("\n") }, 30_000);
  expect(answer.status, JSON.stringify(answer.body)).toBe(200);
  return (answer.body as JobView).id;
}

export async function jobView(node: ClusterNode, id: string): Promise<JobView> {
  const answer = await node.http("GET", `/hearth/v1/jobs/${id}`, undefined, 10_000);
  expect(answer.status, JSON.stringify(answer.body)).toBe(200);
  return answer.body as JobView;
}

/**
 * Polls the job until `predicate` holds; a failed poll (the daemon restarting) is asked again.
 * `diagnostics` is appended to the timeout's error (e.g. the nodes' last log lines).
 */
export async function waitJob(node: ClusterNode, id: string, predicate: (view: JobView) => boolean, what: string, timeoutMs: number, diagnostics: () => string = () => ""): Promise<JobView> {
  const deadline = Date.now() + timeoutMs;
  let last: JobView | undefined;
  while (Date.now() < deadline) {
    try {
      last = await jobView(node, id);
      if (predicate(last)) return last;
    } catch {
      // The daemon is restarting: ask again.
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  throw new Error(`timed out waiting for ${what}; last view ${JSON.stringify(last)}\nlogs:\n${diagnostics()}`);
}

/** The job's output lines, in input order. */
export async function jobOutput(node: ClusterNode, id: string): Promise<BatchOutputLine[]> {
  const answer = await node.http("GET", `/hearth/v1/jobs/${id}/output`, undefined, 30_000);
  expect(answer.status).toBe(200);
  expect(typeof answer.body).toBe("string");
  return (answer.body as string)
    .trimEnd()
    .split("\n")
    .map((line) => JSON.parse(line) as BatchOutputLine);
}
