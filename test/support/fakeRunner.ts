/**
 * A stand-in runner child program for tests at the process boundary: forked by the real
 * RunnerProcess (as `runnerEntryPath`) in place of daemon/runner/runnerMain.ts, it speaks the
 * real IPC protocol (protocol/runnerIpc.ts) without node-llama-cpp, so the daemon side
 * (RunnerProcess, ModelHost, LocalEngine) runs for real and fast. Runs from its compiled form,
 * dist/test/support/fakeRunner.js (test/support/fakeRunnerEntry.ts finds it).
 *
 * The model path says how loading goes (it is never read):
 *   ".../fail-load..."       answers `loadFailed` (HEARTH_MODEL_LOAD_FAILED) and exits 1
 *   ".../slow-load-<ms>..."  answers `ready` after <ms> milliseconds
 *   anything else            `ready` at once
 *
 * The job's text (a completion's prompt, a chat's last message) says how a generation goes:
 *   "crash"        one delta, then the process exits with code 3
 *   "hang"         nothing until cancelled (then `failed` HEARTH_CANCELLED) or shut down
 *   "slow <ms>"    three deltas <ms> apart, then done
 *   "fail <CODE>"  `failed` with that catalogue code
 *   anything else  deltas "echo", " <word>" for each word of the text, then done
 * A finished generation's text is its deltas joined ("echo hello there", "echo slow 50"), and
 * its `usage.promptTokens` is this process's pid, so a test can tell which runner served it.
 * Embeddings are one vector [length, pid] per input.
 *
 * `cancel` stops a running job (`failed` HEARTH_CANCELLED), `shutdown` cancels every job and
 * exits 0, and a closed IPC channel exits at once, like the real runner.
 */

import { isHearthErrorCode } from "../../protocol/errors.js";
import type { DaemonToRunner, RunnerLoadOptions, RunnerModelInfo, RunnerToDaemon } from "../../protocol/runnerIpc.js";
import { isDaemonToRunner } from "../../protocol/runnerIpc.js";
import type { GenerationResult } from "../../protocol/inference.js";

type JobMessage = Extract<DaemonToRunner, { type: "chat" | "completion" }>;

interface Running {
  stop(): void;
}

const running = new Map<string, Running>();
let loaded: RunnerLoadOptions | undefined;

function send(message: RunnerToDaemon): void {
  if (process.connected) process.send!(message);
}

function info(options: RunnerLoadOptions): RunnerModelInfo {
  return {
    modelId: options.modelId,
    trainContextSize: 4096,
    contextSize: options.contextSize,
    parallelSlots: options.parallelSlots,
    embeddingSize: 2,
    layers: 1,
    gpuLayers: 0,
    chatWrapper: "fake",
    supportsFunctions: false,
    loadMs: 0,
  };
}

function load(options: RunnerLoadOptions): void {
  if (loaded !== undefined) return;
  loaded = options;
  if (options.modelPath.includes("fail-load")) {
    send({ type: "loadFailed", error: { code: "HEARTH_MODEL_LOAD_FAILED", message: `fake runner: cannot load ${options.modelPath}` } });
    setTimeout(() => process.exit(1), 50);
    return;
  }
  const slow = /slow-load-(\d+)/.exec(options.modelPath);
  setTimeout(() => send({ type: "ready", info: info(options) }), slow === null ? 0 : Number(slow[1]));
}

function textOf(message: JobMessage): string {
  return message.type === "completion" ? message.job.prompt : (message.job.messages.at(-1)?.content ?? "");
}

function result(text: string, completionTokens: number): GenerationResult {
  return { text, reasoning: "", toolCalls: [], finishReason: "stop", usage: { promptTokens: process.pid, completionTokens, reasoningTokens: 0 }, cachedPromptTokens: 0 };
}

function generate(message: JobMessage): void {
  const { id } = message;
  const text = textOf(message);
  const [command = "", argument = ""] = text.split(" ");
  const timers: NodeJS.Timeout[] = [];
  const finish = (reply: RunnerToDaemon): void => {
    if (!running.delete(id)) return;
    for (const timer of timers) clearTimeout(timer);
    send(reply);
  };
  running.set(id, { stop: () => finish({ type: "failed", id, error: { code: "HEARTH_CANCELLED", message: "cancelled in the fake runner" } }) });
  const delta = (piece: string, index: number): void => {
    send({ type: "tokens", id, tokens: [index] });
    send({ type: "delta", id, delta: { part: "answer", text: piece } });
  };

  switch (command) {
    case "crash":
      delta("echo", 0);
      setTimeout(() => process.exit(3), 20);
      return;
    case "hang":
      return;
    case "fail":
      finish({ type: "failed", id, error: { code: isHearthErrorCode(argument) ? argument : "HEARTH_INTERNAL", message: `fake runner failed with ${argument}` } });
      return;
    case "slow": {
      const pieces = ["echo", " slow", ` ${argument}`];
      pieces.forEach((piece, index) => timers.push(setTimeout(() => delta(piece, index), Number(argument) * index)));
      timers.push(setTimeout(() => finish({ type: "generationDone", id, result: result(pieces.join(""), pieces.length) }), Number(argument) * pieces.length));
      return;
    }
    default: {
      const pieces = ["echo", ...text.split(" ").filter((word) => word !== "").map((word) => ` ${word}`)];
      pieces.forEach((piece, index) => delta(piece, index));
      finish({ type: "generationDone", id, result: result(pieces.join(""), pieces.length) });
    }
  }
}

function handle(message: DaemonToRunner): void {
  switch (message.type) {
    case "load":
      load(message.options);
      return;
    case "chat":
    case "completion":
      generate(message);
      return;
    case "embedding":
      send({ type: "embeddingDone", id: message.id, result: { vectors: message.job.inputs.map((input) => [input.length, process.pid]), promptTokens: message.job.inputs.length } });
      return;
    case "cancel":
      running.get(message.id)?.stop();
      return;
    case "shutdown":
      for (const job of [...running.values()]) job.stop();
      // Let the cancellations reach the daemon before the channel closes.
      setTimeout(() => process.exit(0), 20);
      return;
  }
}

if (!process.send) {
  process.stderr.write("fake runner: must be forked with an IPC channel\n");
  process.exit(2);
}
process.on("disconnect", () => process.exit(0));
process.on("message", (message: unknown) => {
  if (isDaemonToRunner(message)) handle(message);
});
