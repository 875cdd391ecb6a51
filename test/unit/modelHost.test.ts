// One model's host (daemon/engine/ModelHost.ts) with the real RunnerProcess and a fake runner
// child program at the process boundary (test/support/fakeRunner.ts, speaking the real IPC
// protocol): admission and 429, one load shared by concurrent requests, a crash failing only
// the jobs in flight, a failed load failing everyone waiting, keep-alive, and shutdown.

import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { DEFAULT_LIMITS, DEFAULT_RUNNER, type LimitsConfig, type RunnerConfig } from "../../daemon/config/defaults.js";
import { ModelHost, type ModelHostEvents, type UnloadReason } from "../../daemon/engine/ModelHost.js";
import type { ModelDescriptor } from "../../daemon/engine/types.js";
import { errors, type HearthError } from "../../protocol/errors.js";
import type { CompletionJob, GenerationResult } from "../../protocol/inference.js";
import { fakeRunnerEntry } from "../support/fakeRunnerEntry.js";
import { processAlive, waitFor } from "../support/wait.js";
import { rejectionOf } from "../support/thrown.js";

const logger = pino({ level: "silent" });
const hosts: ModelHost[] = [];

afterEach(async () => {
  await Promise.all(hosts.splice(0).map((host) => host.shutdown(errors.shuttingDown())));
});

interface Recorded {
  loaded: number[];
  unloaded: UnloadReason[];
  loadFailed: HearthError[];
  idle: number;
}

function newHost(options: { path?: string; limits?: Partial<LimitsConfig>; runner?: Partial<RunnerConfig> } = {}): { host: ModelHost; events: Recorded } {
  const descriptor: ModelDescriptor = { id: "fake", aliases: [], path: options.path ?? "/models/fake.gguf", sizeBytes: 1, createdAt: 0 };
  const events: Recorded = { loaded: [], unloaded: [], loadFailed: [], idle: 0 };
  const observers: ModelHostEvents = {
    loaded: (info) => events.loaded.push(info.pid!),
    unloaded: (reason) => events.unloaded.push(reason),
    loadFailed: (error) => events.loadFailed.push(error),
    idle: () => events.idle++,
  };
  const host = new ModelHost({
    descriptor,
    limits: { ...DEFAULT_LIMITS, parallelSlots: 1, queueDepth: 4, ...options.limits },
    runner: { ...DEFAULT_RUNNER, loadTimeoutMs: 10_000, stopTimeoutMs: 2_000, ...options.runner },
    logger,
    runnerEntryPath: fakeRunnerEntry(),
    events: observers,
  });
  hosts.push(host);
  return { host, events };
}

const job = (prompt: string): CompletionJob => ({ kind: "completion", model: "fake", prompt, sampling: { temperature: 0, stop: [] }, echo: false });

/** Submits a completion; `deltas` collects what the runner streamed. */
function generate(host: ModelHost, prompt: string, signal: AbortSignal = new AbortController().signal, deltas: string[] = []): Promise<GenerationResult> {
  return host.submit(({ runner, signal: jobSignal, isLive }) => runner.generate(job(prompt), { signal: jobSignal, onDelta: (delta) => isLive() && deltas.push(delta.text) }), signal);
}

/** The pid of the fake runner that produced a result (it reports it as promptTokens). */
const servedBy = (result: GenerationResult): number => result.usage.promptTokens;

describe("ModelHost admission", () => {
  it("runs parallelSlots jobs, queues queueDepth more in arrival order, and answers the next HEARTH_QUEUE_FULL with retry-after", async () => {
    const { host } = newHost({ limits: { parallelSlots: 1, queueDepth: 2, retryAfterSeconds: 7 } });
    const order: string[] = [];
    const track = (prompt: string): Promise<GenerationResult> => generate(host, prompt).then((result) => (order.push(result.text), result));
    const running = track("slow 100");
    await waitFor(() => host.stats()?.running === 1, 5_000, "the first job to run");
    const first = track("first");
    const second = track("second");
    expect(host.stats()).toMatchObject({ modelId: "fake", placement: "whole", running: 1, queued: 2 });

    const full = await rejectionOf(generate(host, "one too many"));
    expect(full.code).toBe("HEARTH_QUEUE_FULL");
    expect(full.retryAfterSeconds).toBe(7);
    expect(full.message).toBe('Model "fake" is busy: 1 requests running and 2 waiting. Retry later.');

    await Promise.all([running, first, second]);
    expect(order).toEqual(["echo slow 100", "echo first", "echo second"]);
    expect(host.stats()).toMatchObject({ state: "ready", running: 0, queued: 0 });
  });

  it("a request cancelled while queued leaves the queue at once with HEARTH_CANCELLED and never reaches the runner", async () => {
    const { host } = newHost({ limits: { parallelSlots: 1, queueDepth: 2 } });
    const running = generate(host, "slow 100");
    await waitFor(() => host.stats()?.running === 1, 5_000, "the first job to run");
    const controller = new AbortController();
    const deltas: string[] = [];
    const queued = generate(host, "never", controller.signal, deltas);
    expect(host.stats()?.queued).toBe(1);
    controller.abort();
    expect((await rejectionOf(queued)).code).toBe("HEARTH_CANCELLED");
    expect(host.stats()?.queued).toBe(0);
    await running;
    expect(deltas).toEqual([]);
  });

  it("a running request that is cancelled is answered HEARTH_CANCELLED, and its slot frees once the runner stopped it", async () => {
    const { host } = newHost({ limits: { parallelSlots: 1 } });
    const controller = new AbortController();
    const hanging = generate(host, "hang", controller.signal);
    await waitFor(() => host.stats()?.running === 1, 5_000, "the job to run");
    controller.abort();
    expect((await rejectionOf(hanging)).code).toBe("HEARTH_CANCELLED");
    await waitFor(() => host.stats()?.running === 0, 5_000, "the runner to confirm the cancel");
    expect((await generate(host, "next")).text).toBe("echo next");
  });
});

describe("ModelHost runner lifecycle", () => {
  it("requests that arrive while the model loads share one load and one runner", async () => {
    const { host, events } = newHost({ path: "/models/slow-load-300.gguf", limits: { parallelSlots: 3 } });
    const results = await Promise.all([generate(host, "a"), generate(host, "b"), generate(host, "c")]);
    expect(results.map((result) => result.text)).toEqual(["echo a", "echo b", "echo c"]);
    expect(events.loaded).toHaveLength(1);
    expect(new Set(results.map(servedBy))).toEqual(new Set(events.loaded));
    expect(host.stats()?.pid).toBe(events.loaded[0]);
  });

  it("a runner that crashes fails only the jobs in flight on it with HEARTH_RUNNER_CRASHED; a waiting one runs on a new runner", async () => {
    const { host, events } = newHost({ limits: { parallelSlots: 2, queueDepth: 2 } });
    const warm = await generate(host, "warm");
    const firstPid = servedBy(warm);
    const hanging = generate(host, "hang");
    const crashing = generate(host, "crash");
    await waitFor(() => host.stats()?.running === 2, 5_000, "two jobs in flight");
    const waiting = generate(host, "after");
    expect(host.stats()?.queued).toBe(1);

    for (const inFlight of [hanging, crashing]) {
      const error = await rejectionOf(inFlight);
      expect(error.code).toBe("HEARTH_RUNNER_CRASHED");
      expect(error.message).toBe('The runner for model "fake" exited with code 3.');
    }
    const after = await waiting;
    expect(after.text).toBe("echo after");
    expect(servedBy(after)).not.toBe(firstPid);
    expect(events.unloaded).toEqual(["crash"]);
    expect(events.loaded).toEqual([firstPid, servedBy(after)]);
    expect(processAlive(firstPid)).toBe(false);
    // And the next request is served by the new runner too.
    expect(servedBy(await generate(host, "next"))).toBe(servedBy(after));
  });

  it("a model that fails to load fails every waiting request with HEARTH_MODEL_LOAD_FAILED, leaves nothing behind, and is tried again on the next request", async () => {
    const { host, events } = newHost({ path: "/models/fail-load.gguf", limits: { parallelSlots: 1, queueDepth: 4 } });
    const attempts = [generate(host, "a"), generate(host, "b"), generate(host, "c")];
    for (const attempt of attempts) {
      const error = await rejectionOf(attempt);
      expect(error.code).toBe("HEARTH_MODEL_LOAD_FAILED");
      expect(error.message).toBe("fake runner: cannot load /models/fail-load.gguf");
    }
    expect(events.loadFailed.map((error) => error.code)).toEqual(["HEARTH_MODEL_LOAD_FAILED"]);
    expect(events.loaded).toEqual([]);
    expect(host.stats()).toBeUndefined();
    await waitFor(() => events.idle === 1, 2_000, "the host to report itself idle");

    expect((await rejectionOf(generate(host, "again"))).code).toBe("HEARTH_MODEL_LOAD_FAILED");
    expect(events.loadFailed).toHaveLength(2);
  });

  it("a runner that misses the load timeout is killed and the request fails HEARTH_MODEL_LOAD_FAILED naming the timeout", async () => {
    const { host } = newHost({ path: "/models/slow-load-5000.gguf", runner: { loadTimeoutMs: 100 } });
    const error = await rejectionOf(generate(host, "a"));
    expect(error.code).toBe("HEARTH_MODEL_LOAD_FAILED");
    expect(error.message).toBe('Model "fake" could not be loaded: the runner did not load the model within 100 ms.');
  });

  it("an idle model is unloaded after keep-alive, the host reports idle, and the next request loads a new runner", async () => {
    const { host, events } = newHost({ limits: { keepAliveMs: 150 } });
    const first = await generate(host, "a");
    expect(host.stats()?.state).toBe("ready");
    expect(events.idle).toBe(0);
    await waitFor(() => events.idle === 1, 5_000, "the keep-alive unload");
    expect(events.unloaded).toEqual(["keep-alive"]);
    expect(host.stats()).toBeUndefined();
    expect(processAlive(servedBy(first))).toBe(false);

    const second = await generate(host, "b");
    expect(servedBy(second)).not.toBe(servedBy(first));
    expect(events.loaded).toEqual([servedBy(first), servedBy(second)]);
  });

  it("keep-alive never unloads a busy model", async () => {
    const { host, events } = newHost({ limits: { keepAliveMs: 50 } });
    const warm = await generate(host, "warm");
    const slow = await generate(host, "slow 100");
    expect(servedBy(slow)).toBe(servedBy(warm));
    expect(events.unloaded).toEqual([]);
  });

  it("shutdown fails waiting and running work with the error it is given, stops the runner and refuses new work", async () => {
    const { host, events } = newHost({ limits: { parallelSlots: 1, queueDepth: 2 } });
    const warm = await generate(host, "warm");
    const running = generate(host, "hang");
    await waitFor(() => host.stats()?.running === 1, 5_000, "the job to run");
    const waiting = [generate(host, "a"), generate(host, "b")];
    const retired = errors.placementRetired("the placement was retired under the job");

    const outcomes = [running, ...waiting].map((work) => rejectionOf(work));
    await host.shutdown(retired);
    for (const error of await Promise.all(outcomes)) expect(error).toBe(retired);
    expect(events.unloaded).toEqual(["shutdown"]);
    expect(processAlive(servedBy(warm))).toBe(false);
    expect(host.stats()).toBeUndefined();
    expect((await rejectionOf(generate(host, "late"))).code).toBe("HEARTH_SHUTTING_DOWN");
  });
});
