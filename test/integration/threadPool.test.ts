/**
 * The thread-pool preload (native/hearth-threadpool.cpp) in real runners: with it, the
 * runner's context keeps its ggml worker threads between decodes; without it they are started
 * and joined for every decode. Either way greedy answers are the same tokens.
 */

import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type * as RunnerProcessModule from "../../daemon/engine/RunnerProcess.js";
import type * as NativePartsModule from "../../daemon/native/nativeParts.js";
import type { CompletionJob } from "../../protocol/inference.js";
import { captureLogs } from "../support/logs.js";
import { ensureModel } from "../support/models.js";

const DIST = path.resolve(import.meta.dirname, "..", "..", "dist");
const { RunnerProcess } = (await import(path.join(DIST, "daemon/engine/RunnerProcess.js"))) as typeof RunnerProcessModule;
const { locateNativeParts, threadPoolEnvironment } = (await import(path.join(DIST, "daemon/native/nativeParts.js"))) as typeof NativePartsModule;
type RunnerProcess = RunnerProcessModule.RunnerProcess;

const THREADS = 2;
const runners: RunnerProcess[] = [];
let modelPath: string;

function completion(prompt: string, maxTokens: number): CompletionJob {
  return { kind: "completion", model: "tiny", prompt, sampling: { temperature: 0, stop: [], maxTokens }, echo: false };
}

async function startRunner(env: Record<string, string>): Promise<{ runner: RunnerProcess; logLines: () => string[] }> {
  const { logger, entries } = captureLogs("debug");
  const runner = new RunnerProcess({
    load: { modelPath, modelId: "tiny", contextSize: 512, parallelSlots: 1, threads: THREADS, gpuLayers: 0, batchSize: 128, batching: "exact", embeddings: false },
    env,
    loadTimeoutMs: 60_000,
    stopTimeoutMs: 5_000,
    logger,
  });
  runners.push(runner);
  await runner.start();
  return { runner, logLines: () => entries.map((entry) => String(entry.msg)) };
}

/** Threads of a live process, from /proc (Linux). */
function threadCount(pid: number | undefined): number {
  if (pid === undefined) throw new Error("the runner has no pid");
  return fs.readdirSync(`/proc/${pid}/task`).length;
}

beforeAll(async () => {
  // Text-only output: greedy decoding never stops early on a control token, so all 24 tokens are compared.
  modelPath = await ensureModel({ preset: "tiny", textOnlyOutput: true }, "tiny-text");
});

afterAll(async () => {
  for (const runner of runners) runner.kill();
  await Promise.all(runners.map((runner) => runner.exited));
});

describe("runner thread pool", () => {
  it("keeps one persistent worker thread per extra ggml thread, and gives the same greedy tokens as per-decode threads", async () => {
    const parts = locateNativeParts();
    const pooled = await startRunner({ ...threadPoolEnvironment(parts), HEARTH_THREADPOOL_VERBOSE: "1" });
    const plain = await startRunner({ HEARTH_THREADPOOL_VERBOSE: "1" });

    const job = completion("The hearth keeps the house", 24);
    const pooledResult = await pooled.runner.generate(job);
    const plainResult = await plain.runner.generate(job);
    expect(pooledResult.usage.completionTokens).toBe(24);
    expect(pooledResult.text).toBe(plainResult.text);

    // Loading may create and free a context before the one that serves; exactly one pool stays.
    const poolLines = pooled.logLines().filter((line) => line.startsWith("hearth threadpool:"));
    const attached = poolLines.filter((line) => line === `hearth threadpool: attached a pool of ${THREADS} threads`).length;
    const freed = poolLines.filter((line) => line === "hearth threadpool: freed a pool").length;
    expect(attached + freed).toBe(poolLines.length);
    expect(attached - freed).toBe(1);
    expect(plain.logLines().filter((line) => line.startsWith("hearth threadpool:"))).toEqual([]);
    // Between decodes the pool's worker lives on; ggml's per-decode worker is gone again.
    expect(threadCount(pooled.runner.pid) - threadCount(plain.runner.pid)).toBe(THREADS - 1);
  });
});
