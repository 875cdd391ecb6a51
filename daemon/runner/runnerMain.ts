/**
 * Entry point of a runner child process (forked by daemon/engine/RunnerProcess.ts;
 * docs/architecture.md, "Processes", says why models never load inside the daemon).
 *
 * Lifecycle: the first message is `load`; the runner answers `ready` or `loadFailed` (and
 * then exits). Jobs run concurrently up to the number of slots; each ends with exactly one
 * `generationDone`/`embeddingDone`/`failed`. `cancel` aborts a job, `shutdown` disposes the
 * model and exits 0. When the IPC channel closes (the daemon died) the runner exits at once,
 * so no orphan keeps a model in memory.
 */

import { format } from "node:util";
import { type ErrorPayload, errors, HearthError } from "../../protocol/errors.js";
import type { DaemonToRunner, RunnerLoadOptions } from "../../protocol/runnerIpc.js";
import { isDaemonToRunner } from "../../protocol/runnerIpc.js";
import { runChatJob } from "./chatJob.js";
import { runCompletionJob } from "./completionJob.js";
import type { JobContext } from "./generation.js";
import { createParentChannel } from "./parentChannel.js";
import { RunnerModel } from "./RunnerModel.js";

/** Exit code when the runner is started without an IPC channel (not by a daemon). */
const EXIT_NOT_FORKED = 2;
/** Exit code after a failed load or an internal fault. */
const EXIT_FAILURE = 1;
/** How long a dying runner waits for its last message to reach the daemon. */
const LAST_WORDS_TIMEOUT_MS = 500;

interface RunningJob {
  controller: AbortController;
  done: Promise<void>;
}

if (!process.send) {
  process.stderr.write("hearth runner: must be started by the Hearth daemon (no IPC channel)\n");
  process.exit(EXIT_NOT_FORKED);
}

const channel = createParentChannel();

// Libraries may print; stdout belongs to nobody here, so their output becomes log messages.
for (const [method, level] of [
  ["log", "info"],
  ["info", "info"],
  ["debug", "debug"],
  ["warn", "warn"],
  ["error", "error"],
] as const) {
  console[method] = (...args: unknown[]) => channel.log(level, format(...args));
}
const jobs = new Map<string, RunningJob>();
let runnerModel: RunnerModel | undefined;
let phase: "waiting" | "loading" | "ready" | "shutting-down" = "waiting";

process.on("disconnect", () => {
  // The daemon is gone; nobody is left to answer. Exit without disposing: the OS frees it all.
  process.exit(0);
});

process.on("uncaughtException", (error) => die(`runner crashed: ${error.stack ?? error.message}`));
process.on("unhandledRejection", (reason) => die(`runner crashed on an unhandled rejection: ${reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)}`));

/** Reports a fault and exits non-zero, so the daemon fails the affected requests cleanly. */
function die(message: string): void {
  setTimeout(() => process.exit(EXIT_FAILURE), LAST_WORDS_TIMEOUT_MS).unref();
  void channel.flush({ type: "log", level: "fatal", message }).then(() => process.exit(EXIT_FAILURE));
}

process.on("message", (message: unknown) => {
  if (!isDaemonToRunner(message)) {
    channel.log("warn", "ignored a malformed message from the daemon");
    return;
  }
  handle(message);
});

function handle(message: DaemonToRunner): void {
  switch (message.type) {
    case "load":
      void load(message.options);
      return;
    case "chat":
    case "completion":
    case "embedding":
      startJob(message);
      return;
    case "cancel":
      jobs.get(message.id)?.controller.abort();
      return;
    case "shutdown":
      void shutdown();
      return;
  }
}

async function load(options: RunnerLoadOptions): Promise<void> {
  if (phase !== "waiting") {
    channel.log("warn", `ignored a second load request (runner is ${phase})`);
    return;
  }
  phase = "loading";
  try {
    runnerModel = await RunnerModel.load(options, channel.log);
    phase = "ready";
    channel.send({ type: "ready", info: runnerModel.info });
  } catch (error) {
    // A runner without a model has no use: exit once the daemon has the reason.
    setTimeout(() => process.exit(EXIT_FAILURE), LAST_WORDS_TIMEOUT_MS).unref();
    await channel.flush({ type: "loadFailed", error: HearthError.from(error, "HEARTH_MODEL_LOAD_FAILED").toPayload() });
    process.exit(EXIT_FAILURE);
  }
}

type JobMessage = Extract<DaemonToRunner, { type: "chat" | "completion" | "embedding" }>;

function startJob(message: JobMessage): void {
  const { id } = message;
  if (jobs.has(id)) {
    channel.log("warn", "ignored a job whose id is already running", { job: id });
    return;
  }
  const model = runnerModel;
  if (!model || phase !== "ready") {
    const error = phase === "shutting-down" ? errors.shuttingDown() : errors.internal(`The runner cannot take jobs while ${phase}.`);
    channel.send({ type: "failed", id, error: error.toPayload() });
    return;
  }
  const controller = new AbortController();
  const done = runJob(model, message, controller).finally(() => jobs.delete(id));
  jobs.set(id, { controller, done });
}

async function runJob(model: RunnerModel, message: JobMessage, controller: AbortController): Promise<void> {
  const { id } = message;
  const context: JobContext = {
    signal: controller.signal,
    startedAt: Date.now(),
    onDelta: (delta) => channel.send({ type: "delta", id, delta }),
    onTokens: (tokens) => channel.send({ type: "tokens", id, tokens }),
  };
  try {
    if (message.type === "embedding") {
      if (!model.embedder) throw errors.modelNotCapable("This runner was started without embeddings.", { param: "model" });
      const result = await model.embedder.embed(message.job, controller.signal);
      channel.send({ type: "embeddingDone", id, result });
    } else {
      const result = message.type === "chat" ? await runChatJob(model, message.job, context, message.resume) : await runCompletionJob(model, message.job, context, message.resume);
      channel.send({ type: "generationDone", id, result });
    }
  } catch (error) {
    channel.send({ type: "failed", id, error: toFailure(error, controller.signal) });
  }
}

function toFailure(error: unknown, signal: AbortSignal): ErrorPayload {
  if (error instanceof HearthError) return error.toPayload();
  // node-llama-cpp throws the signal's reason (or its own AbortError) when a job is cancelled.
  if (signal.aborted) return errors.cancelled("The request was cancelled.").toPayload();
  channel.log("error", `job failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  return HearthError.from(error).toPayload();
}

async function shutdown(): Promise<void> {
  if (phase === "shutting-down") return;
  phase = "shutting-down";
  // Jobs stop within a token of being aborted; the model must not be freed under them.
  for (const job of jobs.values()) job.controller.abort();
  await Promise.allSettled([...jobs.values()].map((job) => job.done));
  try {
    await runnerModel?.dispose();
  } catch (error) {
    channel.log("warn", `disposing the model failed: ${error instanceof Error ? error.message : String(error)}`);
  }
  // IPC keeps order, so once this is out the jobs' final messages are too.
  setTimeout(() => process.exit(0), LAST_WORDS_TIMEOUT_MS).unref();
  await channel.flush({ type: "log", level: "debug", message: "runner stopped" });
  process.exit(0);
}
