/**
 * RunnerProcess and the runner child (built runnerMain.js) as processes: load, logs, jobs,
 * cancel, stop, crashes, timeouts, and what happens when the daemon itself dies.
 *
 * A few tests start small stand-in runner scripts instead of the real one. They exercise
 * daemon-side behaviour the real runner never shows on purpose (ignoring shutdown, sending
 * corrupt messages, dying mid-job with a given code); everything else uses the real runner.
 */

import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type * as RunnerProcessModule from "../../daemon/engine/RunnerProcess.js";
import type { CompletionJob } from "../../protocol/inference.js";
import type { RunnerLoadOptions } from "../../protocol/runnerIpc.js";
import { captureLogs } from "../support/logs.js";
import { ensureTinyModel } from "../support/models.js";
import { processAlive, waitFor } from "../support/wait.js";

const DIST = path.resolve(import.meta.dirname, "..", "..", "dist");
const RUNNER_MAIN = path.join(DIST, "daemon/runner/runnerMain.js");
const { RunnerProcess } = (await import(path.join(DIST, "daemon/engine/RunnerProcess.js"))) as typeof RunnerProcessModule;
type RunnerProcess = RunnerProcessModule.RunnerProcess;

const { logger, entries: logEntries } = captureLogs("debug");

let workDir: string;
let modelPath: string;
const runners: RunnerProcess[] = [];

function loadOptions(overrides: Partial<RunnerLoadOptions> = {}): RunnerLoadOptions {
  return { modelPath, modelId: "tiny", contextSize: 512, parallelSlots: 2, threads: 1, gpuLayers: 0, batchSize: 128, batching: "exact", embeddings: true, ...overrides };
}

function newRunner(overrides: { load?: Partial<RunnerLoadOptions>; loadTimeoutMs?: number; stopTimeoutMs?: number; entryPath?: string } = {}): RunnerProcess {
  const runner = new RunnerProcess({
    load: loadOptions(overrides.load),
    loadTimeoutMs: overrides.loadTimeoutMs ?? 60_000,
    stopTimeoutMs: overrides.stopTimeoutMs ?? 5_000,
    logger,
    ...(overrides.entryPath === undefined ? {} : { entryPath: overrides.entryPath }),
  });
  runners.push(runner);
  return runner;
}

function completion(prompt: string, maxTokens: number): CompletionJob {
  return { kind: "completion", model: "tiny", prompt, sampling: { temperature: 0, stop: [], maxTokens }, echo: false };
}

/** A stand-in runner: `body` runs with `send` and gets every message as `message`. */
async function standInRunner(name: string, body: string): Promise<string> {
  const file = path.join(workDir, `${name}.mjs`);
  await fs.writeFile(file, `const send = (m) => process.send(m);\nprocess.on("message", (message) => {\n${body}\n});\n`);
  return file;
}

async function expectHearthError(promise: Promise<unknown>, code: string): Promise<Record<string, unknown>> {
  const error = (await promise.then(
    () => {
      throw new Error(`expected ${code}, but the call succeeded`);
    },
    (reason: unknown) => reason,
  )) as Record<string, unknown>;
  expect(error).toMatchObject({ name: "HearthError", code });
  return error;
}

beforeAll(async () => {
  workDir = await fs.mkdtemp(path.join(os.tmpdir(), "hearth-runner-"));
  modelPath = await ensureTinyModel();
});

afterAll(async () => {
  for (const runner of runners) runner.kill();
  await Promise.all(runners.map((runner) => runner.exited));
  if (workDir) await fs.rm(workDir, { recursive: true, force: true });
});

describe("runner child process", () => {
  it("refuses to run without a daemon (no IPC channel) and prints nothing to stdout", async () => {
    const child = spawn(process.execPath, [RUNNER_MAIN], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
    expect(code).toBe(2);
    expect(stdout).toBe("");
  });

  it("loads the model and reports its shape; stop() ends it with exit code 0", async () => {
    const runner = newRunner({ load: { contextSize: 100_000 } });
    const info = await runner.start();
    expect(info).toMatchObject({ modelId: "tiny", parallelSlots: 2, embeddingSize: 128, gpuLayers: 0, trainContextSize: 4096 });
    // contextSize is capped at the model's training context.
    expect(info.contextSize).toBe(4096);
    expect(info.chatWrapper.length).toBeGreaterThan(0);
    expect(runner.state).toBe("ready");
    const pid = runner.pid!;
    expect(processAlive(pid)).toBe(true);
    await Promise.all([runner.stop(), runner.stop()]);
    expect(await runner.exited).toEqual({ code: 0, signal: null, expected: true });
    expect(processAlive(pid)).toBe(false);
    expect(runner.state).toBe("exited");
    await expectHearthError(runner.generate(completion("late", 1)), "HEARTH_RUNNER_NOT_READY");
  });

  it("exits on its own when the daemon dies, leaving no orphan", async () => {
    const daemonScript = path.join(workDir, "daemon.mjs");
    await fs.writeFile(
      daemonScript,
      [
        `import { pino } from ${JSON.stringify(pathToFileURL(createRequire(import.meta.url).resolve("pino")).href)};`,
        `import { RunnerProcess } from ${JSON.stringify(pathToFileURL(path.join(DIST, "daemon/engine/RunnerProcess.js")).href)};`,
        `const runner = new RunnerProcess({ load: ${JSON.stringify(loadOptions())}, loadTimeoutMs: 60000, stopTimeoutMs: 5000, logger: pino({ level: "silent" }) });`,
        "await runner.start();",
        "process.stdout.write(`${runner.pid}\\n`);",
        "setInterval(() => {}, 1000);",
      ].join("\n"),
    );
    const daemon = spawn(process.execPath, [daemonScript], { stdio: ["ignore", "pipe", "inherit"] });
    const runnerPid = await new Promise<number>((resolve, reject) => {
      let buffered = "";
      daemon.stdout.on("data", (chunk: Buffer) => {
        buffered += chunk.toString();
        if (buffered.includes("\n")) resolve(Number(buffered.trim()));
      });
      daemon.on("exit", () => reject(new Error("the stand-in daemon exited early")));
    });
    expect(processAlive(runnerPid)).toBe(true);
    daemon.kill("SIGKILL");
    await waitFor(() => !processAlive(runnerPid), 10_000, "the orphaned runner to exit");
  });

  it("forwards the runner's logs to the daemon logger with component runner and the model id", async () => {
    const logStart = logEntries.length;
    const runner = newRunner({ load: { modelPath: path.join(workDir, "missing.gguf"), modelId: "ghost" } });
    const error = await expectHearthError(runner.start(), "HEARTH_MODEL_LOAD_FAILED");
    expect(String(error["message"])).toContain("ghost");
    const exit = await runner.exited;
    expect(exit.expected).toBe(true);
    expect(processAlive(runner.pid!)).toBe(false);
    // Forwarding the runner's log lines is the behaviour under test, so the captured log is asserted.
    const runnerLogs = logEntries.slice(logStart).filter((entry) => entry.component === "runner");
    expect(runnerLogs.length).toBeGreaterThan(0);
    expect(runnerLogs.every((entry) => entry.model === "ghost")).toBe(true);
  });

  it("kills a runner that misses the load timeout", async () => {
    const runner = newRunner({ loadTimeoutMs: 50 });
    const error = await expectHearthError(runner.start(), "HEARTH_MODEL_LOAD_FAILED");
    expect(String(error["message"])).toContain("within 50 ms");
    expect(await runner.exited).toMatchObject({ signal: "SIGKILL", expected: true });
  });

  it("fails the load with the exit code when the runner dies while loading", async () => {
    const entryPath = await standInRunner("dies", "process.exit(3);");
    const runner = newRunner({ entryPath });
    const error = await expectHearthError(runner.start(), "HEARTH_MODEL_LOAD_FAILED");
    expect(String(error["message"])).toContain("exited with code 3");
  });
});

describe("jobs on a runner", () => {
  it("cancelling a job rejects HEARTH_CANCELLED once the runner stopped it, and the runner keeps serving", async () => {
    const runner = newRunner({ load: { parallelSlots: 1 } });
    await runner.start();
    const controller = new AbortController();
    let deltas = 0;
    const job = runner.generate(completion("Go on and on:", 400), {
      signal: controller.signal,
      onDelta: () => {
        if (++deltas === 2) controller.abort();
      },
    });
    await expectHearthError(job, "HEARTH_CANCELLED");
    expect(runner.inFlight).toBe(0);
    const next = await runner.generate(completion("Again", 4));
    // node-llama-cpp may sample past max_tokens to finish a multi-byte character (the
    // tiny model emits byte tokens); it never stops short.
    expect(next.usage.completionTokens).toBeGreaterThanOrEqual(4);
    expect(next.finishReason).toBe("length");
    const embedded = await runner.embed({ kind: "embedding", model: "tiny", inputs: ["one", "two"] });
    expect(embedded.vectors.map((vector) => vector.length)).toEqual([128, 128]);
    await runner.stop();
  });

  it("a runner that dies mid-job fails it with HEARTH_RUNNER_CRASHED naming the exit code", async () => {
    const entryPath = await standInRunner(
      "dies-mid-job",
      `if (message.type === "load") send({ type: "ready", info: { modelId: "tiny", trainContextSize: 8, contextSize: 8, parallelSlots: 1, embeddingSize: 1, layers: 1, gpuLayers: 0, chatWrapper: "x", supportsFunctions: false, loadMs: 0 } });
       else if (message.type === "completion") { send({ type: "delta", id: message.id, delta: { text: "a" } }); setTimeout(() => process.exit(7), 20); }`,
    );
    const runner = newRunner({ entryPath });
    await runner.start();
    const deltas: string[] = [];
    const error = await expectHearthError(runner.generate(completion("x", 4), { onDelta: (delta) => deltas.push(delta.text) }), "HEARTH_RUNNER_CRASHED");
    expect(String(error["message"])).toContain("exited with code 7");
    expect(deltas).toEqual(["a"]);
    expect(await runner.exited).toMatchObject({ code: 7, expected: false });
  });

  it("ignores malformed messages and rejects a malformed result with HEARTH_INTERNAL instead of crashing", async () => {
    const entryPath = await standInRunner(
      "garbage",
      `if (message.type === "load") {
         send("not an object"); send({ type: "bogus" }); send({ type: "generationDone" }); send({ type: "delta", id: 5 });
         send({ type: "ready", info: { modelId: "tiny", trainContextSize: 8, contextSize: 8, parallelSlots: 1, embeddingSize: 1, layers: 1, gpuLayers: 0, chatWrapper: "x", supportsFunctions: false, loadMs: 0 } });
       } else if (message.type === "completion") send({ type: "generationDone", id: message.id, result: { text: 42 } });
       else if (message.type === "embedding") send({ type: "failed", id: message.id, error: "nope" });
       else if (message.type === "shutdown") process.exit(0);`,
    );
    const runner = newRunner({ entryPath });
    await runner.start();
    await expectHearthError(runner.generate(completion("x", 1)), "HEARTH_INTERNAL");
    await expectHearthError(runner.embed({ kind: "embedding", model: "tiny", inputs: ["x"] }), "HEARTH_INTERNAL");
    expect(runner.state).toBe("ready");
    await runner.stop();
    expect((await runner.exited).code).toBe(0);
  });

  it("stop() kills a runner that ignores shutdown after stopTimeoutMs", async () => {
    const entryPath = await standInRunner(
      "stubborn",
      `if (message.type === "load") send({ type: "ready", info: { modelId: "tiny", trainContextSize: 8, contextSize: 8, parallelSlots: 1, embeddingSize: 1, layers: 1, gpuLayers: 0, chatWrapper: "x", supportsFunctions: false, loadMs: 0 } });`,
    );
    const runner = newRunner({ entryPath, stopTimeoutMs: 200 });
    await runner.start();
    const started = Date.now();
    await runner.stop();
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    expect(await runner.exited).toEqual({ code: null, signal: "SIGKILL", expected: true });
  });
});
