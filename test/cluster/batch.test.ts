/**
 * Batch jobs across three real daemons, each in its own network namespace, all holding the
 * tiny model, one parallel slot each and greedy decoding: a job submitted to n1 is spread over
 * every node and its output has exactly one line per item, in input order, each equal to the
 * item run alone, also when an executing node is SIGKILLed mid-job and when the coordinating
 * daemon itself is SIGKILLed and restarted; a cancelled job stops on every node.
 *
 * The tests share one network and run in order; each starts by checking the mesh is whole.
 */

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClusterNet, type ClusterNode, type ClusterView } from "../support/clusterNet.js";
import type { JobView } from "../../protocol/api/jobs.js";
import type { BatchOutputLine } from "../../protocol/batch/batchOutput.js";
import { jobOutput as output, submitJob as submit, waitJob as waitJobOn } from "../support/batchJobs.js";

const ITEMS = 200;
const MAX_TOKENS = 6;
const MESH_WITHIN_MS = 20_000;
const HASHES_WITHIN_MS = 30_000;
const JOB_WITHIN_MS = 120_000;
/** "Within a few seconds" of the cancel, nothing of the job runs or waits anywhere. */
const CANCEL_STOPS_WITHIN_MS = 5_000;

const NODE_CONFIG = `
[runner]
threads = 1
[limits]
context_size = 512
[jobs]
in_flight_per_node = 2
refresh_interval = "1s"
`;

let net: ClusterNet;
let n1: ClusterNode;
let n2: ClusterNode;
let n3: ClusterNode;
const lines = Array.from({ length: ITEMS }, (_, i) =>
  JSON.stringify({ custom_id: `item-${i}`, method: "POST", url: "/v1/completions", body: { model: "tiny", prompt: `Entry ${i}: the`, max_tokens: MAX_TOKENS, temperature: 0 } }),
);
/** Each item's text when sent alone to /v1/completions. */
const reference: string[] = [];

beforeAll(async () => {
  net = await ClusterNet.create({ nodes: Array.from({ length: 3 }, () => ({ configToml: NODE_CONFIG, args: ["--parallel", "1"] })), prefix: "hjb" });
  [n1, n2, n3] = [net.node(1), net.node(2), net.node(3)];
  await net.startAll();
  await waitReady();
  // Load the model on every node first, so the split is not decided by who loads fastest.
  for (const node of net.nodes) {
    const warm = await n1.http("POST", "/v1/completions", { model: "tiny", prompt: "warm", max_tokens: 1, hearth: { node: node.nodeId } }, 60_000);
    expect(warm.status, JSON.stringify(warm.body)).toBe(200);
  }
  for (const line of lines) {
    const { body } = JSON.parse(line) as { body: unknown };
    const answer = await n1.http("POST", "/v1/completions", body, 30_000);
    expect(answer.status).toBe(200);
    reference.push((answer.body as { choices: { text: string }[] }).choices[0]!.text);
  }
});

afterAll(async () => {
  await net?.destroy();
});

/** The mesh is whole and every node knows every node's model hash (placement matches models by sha256). */
async function waitReady(): Promise<void> {
  await net.waitForMesh(net.nodes, { timeoutMs: MESH_WITHIN_MS });
  await net.waitFor(
    net.nodes,
    (views: ClusterView[]) => views.every((view) => view.peers.filter((peer) => peer.state === "up").every((peer) => peer.models?.every((model) => model.sha256 !== null) === true)),
    { timeoutMs: HASHES_WITHIN_MS, what: "every peer's model hash in every table" },
  );
}

function waitJob(node: ClusterNode, id: string, predicate: (view: JobView) => boolean, what: string): Promise<JobView> {
  return waitJobOn(node, id, predicate, what, JOB_WITHIN_MS, () => net.logTails(20));
}

/** Exactly one line per item, in input order, each a success equal to the item run alone. */
function expectExactOutput(result: BatchOutputLine[]): void {
  expect(result).toHaveLength(ITEMS);
  expect(result.map((line) => line.custom_id)).toEqual(lines.map((_, i) => `item-${i}`));
  expect(new Set(result.map((line) => line.custom_id)).size).toBe(ITEMS);
  const failures = result.filter((line) => line.error !== null);
  expect(failures.map((line) => `${line.custom_id}: ${line.error?.code} ${line.error?.message}`)).toEqual([]);
  const mismatches = result.flatMap((line, i) => ((line.response?.body as { choices: { text: string }[] } | undefined)?.choices[0]?.text === reference[i] ? [] : [`item-${i} on ${line.hearth.node}`]));
  expect(mismatches).toEqual([]);
}

function nodesUsed(result: BatchOutputLine[]): Set<string> {
  return new Set(result.map((line) => line.hearth.node).filter((node): node is string => node !== null));
}

async function idleEverywhere(nodes: readonly ClusterNode[]): Promise<boolean> {
  const statuses = await Promise.all(nodes.map((node) => node.http("GET", "/hearth/v1/status", undefined, 5_000)));
  return statuses.every((status) => (status.body as { models: { running: number; queued: number }[] }).models.every((model) => model.running === 0 && model.queued === 0));
}

describe("a 200-item batch across three nodes", () => {
  it("runs on every node and outputs exactly 200 lines in input order, each equal to the item run alone", async () => {
    const id = await submit(n1, lines);
    const finished = await waitJob(n1, id, (view) => view.status === "completed", "the job to complete");
    expect(finished.request_counts).toEqual({ total: ITEMS, completed: ITEMS, failed: 0 });
    const result = await output(n1, id);
    expectExactOutput(result);
    const used = nodesUsed(result);
    console.log(`200 items: ${[...used].map((node) => `${node.slice(0, 7)}=${result.filter((line) => line.hearth.node === node).length}`).join(" ")}`);
    expect(used).toEqual(new Set([n1.nodeId, n2.nodeId, n3.nodeId]));
  });

  it("loses and duplicates nothing when an executing node is SIGKILLed mid-job", async () => {
    await waitReady();
    const id = await submit(n1, lines);
    const before = await waitJob(n1, id, (view) => view.progress.done >= 40 && view.nodes.some((node) => node.node_id === n3.nodeId && node.done > 0), "n3 to have run some items");
    expect(before.status).toBe("running");
    await n3.kill("SIGKILL");
    const finished = await waitJob(n1, id, (view) => view.status === "completed", "the job to complete without n3");
    expect(finished.request_counts).toEqual({ total: ITEMS, completed: ITEMS, failed: 0 });
    const result = await output(n1, id);
    expectExactOutput(result);
    // n3 did part of the job before it died; the coordinator dropped it and handed its items to the survivors.
    expect(nodesUsed(result).has(n3.nodeId)).toBe(true);
    expect(n1.logLines().some((line) => line.msg === "node leaves the job; its items go to the others" && line["node"] === n3.nodeId && line["job"] === id)).toBe(true);
    await n3.start();
  });

  it("resumes after the coordinating daemon is SIGKILLed and restarted, with nothing lost or duplicated", async () => {
    await waitReady();
    const id = await submit(n1, lines);
    const before = await waitJob(n1, id, (view) => view.progress.done >= 40, "40 items done");
    expect(before.progress.done).toBeLessThan(ITEMS);
    await n1.kill("SIGKILL");
    await n1.start();
    const finished = await waitJob(n1, id, (view) => view.status === "completed", "the resumed job to complete");
    expect(finished.request_counts).toEqual({ total: ITEMS, completed: ITEMS, failed: 0 });
    expectExactOutput(await output(n1, id));
    expect(n1.logLines().some((line) => line.msg === "resuming a job left unfinished" && line["job"] === id)).toBe(true);
  });

  it("a cancelled job stops on every node within a few seconds, and its output still has every line once", async () => {
    await waitReady();
    const slow = lines.map((line) => {
      const parsed = JSON.parse(line) as { body: Record<string, unknown> };
      return JSON.stringify({ ...parsed, body: { ...parsed.body, max_tokens: 96 } });
    });
    const id = await submit(n1, slow);
    await waitJob(n1, id, (view) => view.progress.done >= 10 && view.nodes.filter((node) => node.in_flight > 0).length >= 2, "the job to be running on several nodes");
    const cancelledAt = performance.now();
    const answer = await n1.http("POST", `/hearth/v1/jobs/${id}/cancel`, {}, 10_000);
    expect(answer.status).toBe(200);
    expect((answer.body as JobView).status).toBe("cancelled");
    const deadline = cancelledAt + CANCEL_STOPS_WITHIN_MS;
    let idle = false;
    while (!idle && performance.now() < deadline) {
      idle = await idleEverywhere(net.nodes);
      if (!idle) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(idle, `a node still runs or queues work ${CANCEL_STOPS_WITHIN_MS} ms after the cancel`).toBe(true);
    console.log(`cancelled job idle everywhere ${Math.round(performance.now() - cancelledAt)} ms after the cancel`);
    const result = await output(n1, id);
    expect(result.map((line) => line.custom_id)).toEqual(lines.map((_, i) => `item-${i}`));
    expect(result.every((line) => line.error === null || line.error.code === "HEARTH_CANCELLED")).toBe(true);
    expect(result.some((line) => line.error?.code === "HEARTH_CANCELLED")).toBe(true);
  });
});
