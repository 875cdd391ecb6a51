// Per-request keep-alive and expiry of one model's host (daemon/engine/ModelHost.ts, Ollama's
// `keep_alive`), with the real RunnerProcess and the fake runner child of modelHost.test.ts.

import { setTimeout as sleep } from "node:timers/promises";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { DEFAULT_LIMITS, DEFAULT_RUNNER } from "../../daemon/config/defaults.js";
import { ModelHost, type SubmitOptions, type UnloadReason } from "../../daemon/engine/ModelHost.js";
import { errors } from "../../protocol/errors.js";
import type { GenerationResult } from "../../protocol/inference.js";
import { fakeRunnerEntry } from "../support/fakeRunnerEntry.js";
import { processAlive, waitFor } from "../support/wait.js";

const logger = pino({ level: "silent" });
const hosts: ModelHost[] = [];

afterEach(async () => {
  await Promise.all(hosts.splice(0).map((host) => host.shutdown(errors.shuttingDown())));
});

function newHost(keepAliveMs: number): { host: ModelHost; unloaded: UnloadReason[] } {
  const unloaded: UnloadReason[] = [];
  const host = new ModelHost({
    descriptor: { id: "fake", aliases: [], path: "/models/fake.gguf", sizeBytes: 1, createdAt: 0 },
    limits: { ...DEFAULT_LIMITS, parallelSlots: 1, queueDepth: 4, keepAliveMs },
    runner: { ...DEFAULT_RUNNER, loadTimeoutMs: 10_000, stopTimeoutMs: 2_000 },
    logger,
    runnerEntryPath: fakeRunnerEntry(),
    events: { loaded: () => undefined, unloaded: (reason) => unloaded.push(reason), loadFailed: () => undefined, idle: () => undefined },
  });
  hosts.push(host);
  return { host, unloaded };
}

function generate(host: ModelHost, prompt: string, options: SubmitOptions = {}): Promise<GenerationResult> {
  return host.submit(
    ({ runner, signal }) => runner.generate({ kind: "completion", model: "fake", prompt, sampling: { temperature: 0, stop: [] }, echo: false }, { signal }),
    new AbortController().signal,
    options,
  );
}

const pidOf = (result: GenerationResult): number => result.usage.promptTokens;

describe("ModelHost per-request keep-alive", () => {
  it("a request's keep-alive of 0 unloads the model right after it", async () => {
    const { host, unloaded } = newHost(60_000);
    const result = await generate(host, "a", { keepAliveMs: 0 });
    await waitFor(() => unloaded.length === 1, 5_000, "the unload after the request");
    expect(unloaded).toEqual(["keep-alive"]);
    expect(processAlive(pidOf(result))).toBe(false);
    expect(host.stats()).toBeUndefined();
  });

  it("a keep-alive of Infinity keeps the model past the configured one, with no expiry; the next request without one goes back to the configured keep-alive", async () => {
    const { host, unloaded } = newHost(80);
    const first = await generate(host, "a", { keepAliveMs: Number.POSITIVE_INFINITY });
    expect(host.stats()?.expiresAt).toBeNull();
    await sleep(300);
    expect(unloaded).toEqual([]);
    expect(processAlive(pidOf(first))).toBe(true);

    const before = Date.now();
    await generate(host, "b");
    const expiresAt = host.stats()?.expiresAt;
    expect(expiresAt).toBeGreaterThanOrEqual(before + 80);
    expect(expiresAt).toBeLessThanOrEqual(Date.now() + 80);
    await waitFor(() => unloaded.length === 1, 5_000, "the configured keep-alive");
  });

  it("a keep-alive longer than a timer holds counts as forever", async () => {
    const { host } = newHost(80);
    await generate(host, "a", { keepAliveMs: 2 ** 31 });
    expect(host.stats()?.expiresAt).toBeNull();
  });

  it("stats show when an idle model expires", async () => {
    const { host } = newHost(60_000);
    const before = Date.now();
    await generate(host, "a", { keepAliveMs: 5_000 });
    const expiresAt = host.stats()!.expiresAt!;
    expect(expiresAt).toBeGreaterThanOrEqual(before + 5_000);
    expect(expiresAt).toBeLessThanOrEqual(Date.now() + 5_000);
  });
});

describe("ModelHost expire", () => {
  it("unloads an idle model at once", async () => {
    const { host, unloaded } = newHost(60_000);
    const result = await generate(host, "a");
    await host.expire();
    expect(unloaded).toEqual(["keep-alive"]);
    expect(processAlive(pidOf(result))).toBe(false);
    expect(host.stats()).toBeUndefined();
  });

  it("unloads a busy model once its running work ends, whatever keep-alive that work asked for", async () => {
    const { host, unloaded } = newHost(60_000);
    const slow = generate(host, "slow 200", { keepAliveMs: Number.POSITIVE_INFINITY });
    await waitFor(() => host.stats()?.running === 1, 5_000, "the job to run");
    await host.expire();
    expect(unloaded).toEqual([]);
    await slow;
    await waitFor(() => unloaded.length === 1, 5_000, "the unload after the running job");
  });

  it("is cancelled by a request submitted after it", async () => {
    const { host, unloaded } = newHost(60_000);
    const slow = generate(host, "slow 200");
    await waitFor(() => host.stats()?.running === 1, 5_000, "the job to run");
    await host.expire();
    const next = generate(host, "next");
    await Promise.all([slow, next]);
    await sleep(200);
    expect(unloaded).toEqual([]);
    expect(host.stats()?.state).toBe("ready");
  });
});
