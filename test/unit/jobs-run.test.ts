// How a job run uses the dispatcher (daemon/jobs/JobRun.ts), with a real job store and a
// scripted executor standing in for the cluster router: failures with node-failure codes are
// re-queued elsewhere up to max_attempts, a lost node is dropped and its in-flight items
// aborted and handed on, item-level errors become error lines at once, nodes that appear later
// get work, and cancel aborts everything in flight. The real router is exercised by
// test/integration/jobs.test.ts and test/cluster/batch.test.ts; these failure codes cannot be
// produced on demand there.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DEFAULT_JOBS, type JobsConfig } from "../../daemon/config/defaults.js";
import { newJobId } from "../../daemon/jobs/jobId.js";
import { JobRun, type BatchNode, type JobExecutor, type JobRoute } from "../../daemon/jobs/JobRun.js";
import { JobStore, type StoredJob } from "../../daemon/jobs/JobStore.js";
import { buildJobView } from "../../daemon/jobs/jobView.js";
import { parseBatchInput, type BatchItem } from "../../protocol/batch/batchInput.js";
import { errors, HearthError, type HearthErrorCode } from "../../protocol/errors.js";
import type { CompletionJob, GenerationJob, GenerationResult } from "../../protocol/inference.js";
import type { SnapshotNode } from "../../scheduler/clusterSnapshot.js";
import { batchNodes, decide } from "../../scheduler/decision.js";
import { waitFor } from "../support/wait.js";

const logger = pino({ level: "silent" });
const CONFIG: JobsConfig = { ...DEFAULT_JOBS, inFlightPerNode: 2, maxAttempts: 3, refreshIntervalMs: 20 };
let root: string;

beforeEach(async () => {
  root = await fs.promises.mkdtemp(path.join(os.tmpdir(), "hearth-jobrun-"));
});
afterEach(async () => {
  await fs.promises.rm(root, { recursive: true, force: true });
});

function snapshotNode(nodeId: string): SnapshotNode {
  return { nodeId, local: nodeId === "A", reachable: true, models: [{ id: "tiny", aliases: [], sha256: "f".repeat(64), sizeBytes: 1 }], loadedModels: ["tiny"], queueDepth: 0, speedScores: {}, rttMs: null, memoryBudgetBytes: null };
}

type Behaviour = (call: { node: string; prompt: string; signal: AbortSignal; attempt: number }) => Promise<string>;

class ScriptedExecutor implements JobExecutor {
  nodes: string[] = ["A", "B"];
  readonly calls: { node: string; prompt: string }[] = [];
  readonly aborted: string[] = [];
  constructor(private readonly behaviour: Behaviour) {}

  /** The router's answer: the real decision over a snapshot of the scripted nodes. */
  batchNodes(model: string): Promise<BatchNode[]> {
    return Promise.resolve(batchNodes(decide({ snapshot: { localNodeId: "A", nodes: this.nodes.map(snapshotNode) }, request: { model } }), "A"));
  }

  async generate(job: GenerationJob, options: { signal: AbortSignal; route?: JobRoute }): Promise<GenerationResult> {
    const node = options.route?.pinnedNodeId ?? "?";
    expect(options.route?.retry).toBe(false);
    const prompt = (job as CompletionJob).prompt;
    this.calls.push({ node, prompt });
    options.signal.addEventListener("abort", () => this.aborted.push(`${node}:${prompt}`), { once: true });
    const attempt = this.calls.filter((call) => call.prompt === prompt).length;
    const text = await this.behaviour({ node, prompt, signal: options.signal, attempt });
    return { text, reasoning: "", toolCalls: [], finishReason: "length", usage: { promptTokens: 1, completionTokens: 1, reasoningTokens: 0 }, cachedPromptTokens: 0, nodeId: node };
  }

  embed(): Promise<never> {
    return Promise.reject(new Error("no embeddings here"));
  }
}

const tick = (ms = 1): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves after `ms`, or rejects with HEARTH_CANCELLED when aborted first (as the router does). */
function work(signal: AbortSignal, ms: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => resolve(text), ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(new HearthError("HEARTH_CANCELLED"));
    });
  });
}

async function makeRun(count: number, executor: JobExecutor): Promise<{ run: JobRun; job: StoredJob }> {
  const text = Array.from({ length: count }, (_, i) => JSON.stringify({ custom_id: `c${i}`, method: "POST", url: "/v1/completions", body: { model: "tiny", prompt: `p${i}` } })).join("\n");
  const parsed = parseBatchInput(text, { skipInvalid: false, maxItems: 1000, maxEmbeddingInputs: 4 });
  const store = new JobStore({ directory: root, logger });
  const job = await store.create({
    input: Buffer.from(text),
    meta: { id: newJobId(), status: "queued", model: "tiny", createdAt: Date.now(), startedAt: null, finishedAt: null, total: count, invalid: 0, parse: { model: null, skipInvalid: false, maxEmbeddingInputs: 4, maxItems: 1000 } },
    records: [],
  });
  const items = new Map<number, BatchItem>(parsed.items.map((item) => [item.index, item]));
  return { run: new JobRun({ job, loadItems: () => Promise.resolve(items), executor, config: CONFIG, logger }), job };
}

function codes(job: StoredJob): (string | null)[] {
  return job.outputLines().map((line) => line.error?.code ?? null);
}

describe("JobRun", () => {
  it("runs every item exactly once over both nodes, pinned and without router retries, and completes the job", async () => {
    const executor = new ScriptedExecutor(({ node, prompt, signal }) => work(signal, node === "A" ? 1 : 3, `${node}:${prompt}`));
    const { run, job } = await makeRun(40, executor);
    await run.run();
    expect(job.meta.status).toBe("completed");
    expect(executor.calls).toHaveLength(40);
    expect(new Set(executor.calls.map((call) => call.prompt)).size).toBe(40);
    const lines = job.outputLines();
    expect(lines.map((line) => line.custom_id)).toEqual(Array.from({ length: 40 }, (_, i) => `c${i}`));
    expect(new Set(lines.map((line) => line.hearth.node))).toEqual(new Set(["A", "B"]));
    for (const line of lines) expect((line.response?.body as { choices: { text: string }[] }).choices[0]?.text).toBe(`${line.hearth.node}:p${line.hearth.line - 1}`);
    const view = buildJobView(job, undefined);
    expect(view).toMatchObject({ status: "completed", request_counts: { total: 40, completed: 40, failed: 0 }, progress: { done: 40, total: 40, eta_seconds: 0 } });
    expect(view.nodes.map((node) => node.node_id)).toEqual(["A", "B"]);
    expect(view.nodes.reduce((sum, node) => sum + node.done, 0)).toBe(40);
    // Finished: the pace shown is the average over the run.
    expect(view.progress.items_per_second).toBeGreaterThan(0);
  });

  it("drops a node whose link is lost, aborts its other in-flight items and hands them to the rest; nothing fails", async () => {
    let bCalls = 0;
    const executor: ScriptedExecutor = new ScriptedExecutor(async ({ node, prompt, signal }) => {
      if (node !== "B") return work(signal, 1, `A:${prompt}`);
      bCalls++;
      if (bCalls === 1) {
        await tick(5);
        // The link closed: the router fails the item, and the cluster stops listing B.
        executor.nodes = ["A"];
        throw new HearthError("HEARTH_PEER_UNAVAILABLE", "the link to B closed");
      }
      return work(signal, 10_000, "B never finishes");
    });
    const { run, job } = await makeRun(40, executor);
    await run.run();
    expect(job.meta.status).toBe("completed");
    expect(bCalls).toBe(2);
    expect(codes(job).every((code) => code === null)).toBe(true);
    expect(job.outputLines().every((line) => line.hearth.node === "A")).toBe(true);
    // B's other in-flight item was aborted at once, not left to time out.
    expect(executor.aborted.filter((entry) => entry.startsWith("B:"))).toHaveLength(1);
  });

  it("re-queues a runner failure on another node, and after max_attempts writes an error line with the code", async () => {
    const executor = new ScriptedExecutor(({ node, prompt, signal }) => {
      if (prompt === "p3") return Promise.reject(errors.runnerCrashed("runner crashed"));
      if (prompt === "p5" && node === "A") return Promise.reject(errors.runnerCrashed("runner crashed on A"));
      return work(signal, 1, `${node}:${prompt}`);
    });
    const { run, job } = await makeRun(10, executor);
    await run.run();
    const lines = job.outputLines();
    expect(lines[3]?.error).toEqual({ code: "HEARTH_RUNNER_CRASHED", message: "runner crashed (after 3 attempts)" });
    expect(executor.calls.filter((call) => call.prompt === "p3")).toHaveLength(3);
    // p5 failed on A at most once or twice and then succeeded on B.
    expect(lines[5]?.error).toBeNull();
    expect(lines[5]?.hearth.node).toBe("B");
    expect(codes(job).filter((code) => code !== null)).toEqual(["HEARTH_RUNNER_CRASHED"]);
  });

  it("a full queue re-queues the item without spending an attempt and rests that node for its retry-after", async () => {
    const executor = new ScriptedExecutor(({ node, prompt, signal, attempt }) => {
      if (prompt === "p0" && attempt <= 5) return Promise.reject(new HearthError("HEARTH_QUEUE_FULL", "full", { retryAfterSeconds: 0.01 }));
      return work(signal, 1, `${node}:${prompt}`);
    });
    executor.nodes = ["A"];
    const { run, job } = await makeRun(3, executor);
    await run.run();
    expect(codes(job)).toEqual([null, null, null]);
    expect(executor.calls.filter((call) => call.prompt === "p0")).toHaveLength(6);
  });

  it("an item-level error is an error line at once, never retried", async () => {
    const failures: HearthErrorCode[] = ["HEARTH_CONTEXT_OVERFLOW", "HEARTH_UNSUPPORTED_SCHEMA"];
    const executor = new ScriptedExecutor(({ prompt, node, signal }) => {
      if (prompt === "p1") return Promise.reject(new HearthError(failures[0]!, "prompt too long"));
      if (prompt === "p2") return Promise.reject(new HearthError(failures[1]!, "schema"));
      return work(signal, 1, `${node}:${prompt}`);
    });
    const { run, job } = await makeRun(4, executor);
    await run.run();
    expect(codes(job)).toEqual([null, "HEARTH_CONTEXT_OVERFLOW", "HEARTH_UNSUPPORTED_SCHEMA", null]);
    expect(executor.calls.filter((call) => call.prompt === "p1" || call.prompt === "p2")).toHaveLength(2);
  });

  it("a node that appears while the job runs gets work at the next refresh", async () => {
    const executor = new ScriptedExecutor(({ node, prompt, signal }) => work(signal, node === "A" ? 4 : 1, `${node}:${prompt}`));
    executor.nodes = ["A"];
    const { run, job } = await makeRun(60, executor);
    const running = run.run();
    await tick(30);
    executor.nodes = ["A", "C"];
    await running;
    expect(job.outputLines().some((line) => line.hearth.node === "C")).toBe(true);
    expect(codes(job).every((code) => code === null)).toBe(true);
  });

  it("cancel aborts every in-flight item and ends the job with HEARTH_CANCELLED lines for the rest", async () => {
    const executor = new ScriptedExecutor(({ node, prompt, signal }) => work(signal, prompt === "p0" ? 1 : 10_000, `${node}:${prompt}`));
    const { run, job } = await makeRun(20, executor);
    const running = run.run();
    await waitFor(() => job.doneCount === 1 && executor.calls.length === 5, 5_000, "p0 done and four items in flight", 2);
    const inFlight = executor.calls.length - 1;
    await run.cancel();
    await running;
    expect(job.meta.status).toBe("cancelled");
    expect(executor.aborted).toHaveLength(inFlight);
    expect(codes(job)).toEqual([null, ...Array.from({ length: 19 }, () => "HEARTH_CANCELLED")]);
    expect(job.outputLines().map((line) => line.custom_id)).toEqual(Array.from({ length: 20 }, (_, i) => `c${i}`));
  });

  it("stop (shutdown) aborts in-flight items but writes nothing, so the job resumes later", async () => {
    const executor = new ScriptedExecutor(({ signal }) => work(signal, 10_000, "x"));
    const { run, job } = await makeRun(5, executor);
    const running = run.run();
    await waitFor(() => executor.calls.length === 4, 5_000, "four items in flight", 2);
    await run.stop();
    await running;
    expect(job.meta.status).toBe("running");
    expect(job.doneCount).toBe(0);
    expect(executor.aborted).toHaveLength(4);
  });
});
