/**
 * The daemon's handle on one runner child process: fork, load, jobs, stop, and death.
 *
 * The runner holds one model (docs/architecture.md, "Processes", says why it is a separate
 * process: native code can abort() or run out of memory, and the daemon must survive both).
 * The process itself is a ChildProcessHandle (daemon/lifecycle/). Every message from it is
 * validated before use. Each job is tracked by id until its one final message; when the
 * process exits, every job still in flight is rejected with HEARTH_RUNNER_CRASHED naming the
 * exit code or signal, and `exited` resolves.
 *
 * A job's promise settles when the runner is done with the job, not earlier: after a cancel
 * it rejects with HEARTH_CANCELLED once the runner confirms, so callers that count slots
 * know the runner's sequence is really free again.
 */

import { fileURLToPath } from "node:url";
import type { Logger } from "pino";
import { errors, HearthError } from "../../protocol/errors.js";
import type { EmbeddingJob, EmbeddingResult, GenerationDelta, GenerationJob, GenerationResult } from "../../protocol/inference.js";
import type { DaemonToRunner, ResumeState, RunnerLoadOptions, RunnerModelInfo, RunnerToDaemon } from "../../protocol/runnerIpc.js";
import { isRunnerToDaemon, runnerResultOf } from "../../protocol/runnerIpc.js";
import { ChildProcessHandle, describeExit, type ChildExit } from "../lifecycle/ChildProcessHandle.js";

export interface RunnerProcessOptions {
  load: RunnerLoadOptions;
  /** Kill the runner and fail the load when it is not ready by then. */
  loadTimeoutMs: number;
  /** After "shutdown", how long to wait before SIGKILL. */
  stopTimeoutMs: number;
  logger: Logger;
  /** The runner's entry script; defaults to the built daemon/runner/runnerMain.js. */
  entryPath?: string;
  /** Node flags for the child (e.g. --max-old-space-size); defaults to none. */
  execArgv?: string[];
  /**
   * Variables added to the daemon's environment for the child. A split placement's runner gets
   * the RPC shim's here (daemon/native/nativeParts.ts shimEnvironment): they must be set
   * before the runner's first getLlama(), so they cannot come later over IPC.
   */
  env?: Record<string, string>;
}

/** True `expected` when the exit followed stop() (or a load failure), false for a crash. */
export type RunnerExit = ChildExit;

export type RunnerState = "new" | "loading" | "ready" | "stopping" | "exited";

interface PendingJob {
  kind: "generation" | "embedding";
  resolve: (result: GenerationResult | EmbeddingResult) => void;
  reject: (error: HearthError) => void;
  onDelta: ((delta: GenerationDelta) => void) | undefined;
  onTokens: ((tokens: number[]) => void) | undefined;
  cancelSent: boolean;
}

export interface JobOptions {
  /** Aborting sends "cancel"; the promise then rejects HEARTH_CANCELLED when the runner stops. */
  signal?: AbortSignal;
  onDelta?: (delta: GenerationDelta) => void;
  /** Token ids as they are generated (before the text they produce); for exact continuation. */
  onTokens?: (tokens: number[]) => void;
  /** Continue a generation a lost runner started (protocol/runnerIpc.ts ResumeState). */
  resume?: ResumeState;
}

const DEFAULT_ENTRY = fileURLToPath(new URL("../runner/runnerMain.js", import.meta.url));

export class RunnerProcess {
  readonly modelId: string;
  readonly exited: Promise<RunnerExit>;
  readonly #options: RunnerProcessOptions;
  readonly #logger: Logger;
  readonly #jobs = new Map<string, PendingJob>();
  #process: ChildProcessHandle | undefined;
  #state: RunnerState = "new";
  #info: RunnerModelInfo | undefined;
  #nextJobId = 1;
  #resolveExited!: (exit: RunnerExit) => void;
  #stopping: Promise<void> | undefined;
  #onReady: ((info: RunnerModelInfo) => void) | undefined;
  #onLoadFailed: ((error: HearthError) => void) | undefined;

  constructor(options: RunnerProcessOptions) {
    this.#options = options;
    this.modelId = options.load.modelId;
    this.#logger = options.logger.child({ component: "runner", model: options.load.modelId });
    this.exited = new Promise((resolve) => {
      this.#resolveExited = resolve;
    });
  }

  get state(): RunnerState {
    return this.#state;
  }

  get pid(): number | undefined {
    return this.#process?.pid;
  }

  get info(): RunnerModelInfo | undefined {
    return this.#info;
  }

  /** Jobs sent and not yet finished. */
  get inFlight(): number {
    return this.#jobs.size;
  }

  /**
   * Forks the runner and loads the model. Rejects HEARTH_MODEL_LOAD_FAILED when the runner
   * reports a failure, exits, or misses the load timeout; the child is gone by then.
   */
  async start(): Promise<RunnerModelInfo> {
    if (this.#state !== "new") throw new Error("a RunnerProcess starts once");
    this.#state = "loading";
    const entry = this.#options.entryPath ?? DEFAULT_ENTRY;
    const child = new ChildProcessHandle({
      command: { kind: "fork", entry, execArgv: this.#options.execArgv ?? [], serialization: "advanced" },
      ...(this.#options.env === undefined ? {} : { env: { ...process.env, ...this.#options.env } }),
      // The daemon, not the terminal, decides when a runner stops (it drains first). A runner
      // still exits by itself when the IPC channel closes, so a dead daemon leaves no orphan.
      ownProcessGroup: true,
      // The runner talks over IPC only; anything native code prints is kept as logs.
      output: { stdout: true, stderr: true },
      onOutput: (line, stream) => {
        if (line.trim() !== "") this.#logger.warn({ runnerPid: child.pid, stream }, line);
      },
    });
    this.#process = child;
    void child.exited.then((exit) => this.#onExit(exit));
    child.onMessage((message) => this.#onMessage(message));
    this.#logger.debug({ runnerPid: child.pid, entry }, "runner started");
    try {
      const info = await child.whenReady(
        this.#options.loadTimeoutMs,
        () =>
          new Promise<RunnerModelInfo>((resolve, reject) => {
            this.#onReady = resolve;
            this.#onLoadFailed = reject;
            this.#send({ type: "load", options: this.#options.load });
          }),
      );
      this.#state = "ready";
      this.#info = info;
      this.#logger.info({ runnerPid: this.pid, ...info }, "model loaded");
      return info;
    } catch (error) {
      const failure =
        error instanceof HearthError
          ? error
          : loadFailed(this.modelId, loadFailureReason((error as Error).message, this.#options.loadTimeoutMs));
      // A runner that failed to load has nothing to offer; make sure it is gone.
      child.kill();
      throw failure;
    } finally {
      this.#onReady = undefined;
      this.#onLoadFailed = undefined;
    }
  }

  generate(job: GenerationJob, options: JobOptions = {}): Promise<GenerationResult> {
    return this.#run("generation", job, options) as Promise<GenerationResult>;
  }

  embed(job: EmbeddingJob, options: JobOptions = {}): Promise<EmbeddingResult> {
    return this.#run("embedding", job, options) as Promise<EmbeddingResult>;
  }

  /**
   * Asks the runner to dispose its model and exit; SIGKILL after stopTimeoutMs. Jobs still in
   * flight are rejected (the runner cancels them first). Safe to call repeatedly.
   */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  /** Kills the runner at once (SIGKILL). */
  kill(): void {
    this.#process?.kill();
  }

  // ---- internals ---------------------------------------------------------------------

  async #stop(): Promise<void> {
    const child = this.#process;
    if (this.#state === "exited") return;
    if (child === undefined) {
      this.#state = "exited";
      this.#resolveExited({ code: null, signal: null, expected: true });
      return;
    }
    this.#state = "stopping";
    await child.stop(
      this.#options.stopTimeoutMs,
      () => this.#send({ type: "shutdown" }),
      () => this.#logger.warn({ runnerPid: this.pid, timeoutMs: this.#options.stopTimeoutMs }, "runner did not stop in time; killing it"),
    );
    await this.exited;
  }

  #run(kind: PendingJob["kind"], job: GenerationJob | EmbeddingJob, options: JobOptions): Promise<GenerationResult | EmbeddingResult> {
    if (this.#state !== "ready") {
      return Promise.reject(errors.runnerNotReady(`The runner for model "${this.modelId}" is not ready (${this.#state}).`));
    }
    const { signal, onDelta, onTokens, resume } = options;
    if (signal?.aborted) return Promise.reject(errors.cancelled());
    const id = `j${this.#nextJobId++}`;
    return new Promise<GenerationResult | EmbeddingResult>((resolve, reject) => {
      const onAbort = (): void => this.#cancel(id);
      const cleanup = (): void => signal?.removeEventListener("abort", onAbort);
      this.#jobs.set(id, {
        kind,
        onDelta,
        onTokens,
        cancelSent: false,
        resolve: (result) => {
          cleanup();
          resolve(result);
        },
        reject: (error) => {
          cleanup();
          reject(error);
        },
      });
      signal?.addEventListener("abort", onAbort, { once: true });
      const message: DaemonToRunner =
        job.kind === "embedding"
          ? { type: "embedding", id, job }
          : job.kind === "chat"
            ? { type: "chat", id, job, ...(resume === undefined ? {} : { resume }) }
            : { type: "completion", id, job, ...(resume === undefined ? {} : { resume }) };
      this.#send(message);
    });
  }

  #cancel(id: string): void {
    const pending = this.#jobs.get(id);
    if (!pending || pending.cancelSent) return;
    pending.cancelSent = true;
    this.#send({ type: "cancel", id });
  }

  #send(message: DaemonToRunner): void {
    // A failed send means the runner is dying; its exit rejects whatever is in flight.
    this.#process?.send(message, (error) => this.#logger.debug({ err: error, type: message.type }, "could not send to runner"));
  }

  #onMessage(raw: unknown): void {
    if (!isRunnerToDaemon(raw)) {
      this.#logger.warn({ runnerPid: this.pid }, "ignored a malformed message from the runner");
      return;
    }
    const message: RunnerToDaemon = raw;
    switch (message.type) {
      case "log":
        this.#forwardLog(message.level, message.message, message.fields);
        return;
      case "ready":
        if (this.#state !== "loading" || !isModelInfo(message.info)) return;
        this.#onReady?.(message.info);
        return;
      case "loadFailed":
        this.#onLoadFailed?.(loadFailedFromRunner(this.modelId, message.error));
        return;
      case "delta": {
        const pending = this.#jobs.get(message.id);
        if (pending?.onDelta && typeof message.delta?.text === "string") pending.onDelta({ part: message.delta.part === "reasoning" ? "reasoning" : "answer", text: message.delta.text });
        return;
      }
      case "tokens": {
        const pending = this.#jobs.get(message.id);
        if (pending?.onTokens && Array.isArray(message.tokens) && message.tokens.every((token) => Number.isInteger(token))) pending.onTokens(message.tokens);
        return;
      }
      case "generationDone":
      case "embeddingDone": {
        const pending = this.#jobs.get(message.id);
        if (!pending) return;
        this.#jobs.delete(message.id);
        const expected = pending.kind === "generation" ? "generationDone" : "embeddingDone";
        if (message.type !== expected) {
          pending.reject(errors.internal(`The runner answered a ${pending.kind} job with ${message.type}.`));
          return;
        }
        const result = pending.kind === "generation" ? runnerResultOf("generation", message.result) : runnerResultOf("embedding", message.result);
        if (result === undefined) {
          pending.reject(errors.internal(`The runner sent a malformed ${pending.kind} result.`));
          return;
        }
        pending.resolve(result);
        return;
      }
      case "failed": {
        const pending = this.#jobs.get(message.id);
        if (!pending) return;
        this.#jobs.delete(message.id);
        const payload: unknown = message.error;
        const valid = typeof payload === "object" && payload !== null && typeof (payload as { message?: unknown }).message === "string";
        pending.reject(valid ? HearthError.fromPayload(message.error) : errors.internal("The runner reported a malformed error."));
        return;
      }
    }
  }

  #onExit(exit: ChildExit): void {
    if (this.#state === "exited") return;
    this.#state = "exited";
    const how = describeExit(exit);
    if (exit.expected) this.#logger.debug({ runnerPid: this.pid, code: exit.code, signal: exit.signal }, "runner exited");
    else this.#logger.error({ runnerPid: this.pid, code: exit.code, signal: exit.signal, inFlight: this.#jobs.size }, `runner ${how}`);
    const failure = errors.runnerCrashed(`The runner for model "${this.modelId}" ${how}.`);
    for (const pending of this.#jobs.values()) pending.reject(failure);
    this.#jobs.clear();
    this.#resolveExited(exit);
  }

  #forwardLog(level: string, text: string, fields: Record<string, unknown> | undefined): void {
    const bindings = { ...(fields ?? {}), runnerPid: this.pid };
    switch (level) {
      case "trace":
      case "debug":
      case "info":
      case "warn":
      case "error":
      case "fatal":
        this.#logger[level](bindings, String(text));
        return;
      default:
        this.#logger.warn(bindings, String(text));
    }
  }
}

// The IPC validator checks message types and ids; results are checked here, where their
// shape is used, so a corrupted message fails one job instead of crashing the daemon later.
function isModelInfo(value: unknown): value is RunnerModelInfo {
  const info = value as Partial<RunnerModelInfo> | null;
  return typeof info === "object" && info !== null && typeof info.contextSize === "number" && typeof info.parallelSlots === "number";
}

/** ChildProcessHandle.whenReady's sentence, as a load failure's reason. */
function loadFailureReason(reason: string, loadTimeoutMs: number): string {
  if (reason.startsWith("not ready within")) return `the runner did not load the model within ${loadTimeoutMs} ms`;
  if (reason.startsWith("could not start")) return `the runner ${reason}`;
  return `the runner ${reason} while loading`;
}

function loadFailed(modelId: string, reason: string, cause?: unknown): HearthError {
  return errors.modelLoadFailed(`Model "${modelId}" could not be loaded: ${reason}.`, cause === undefined ? {} : { cause });
}

function loadFailedFromRunner(modelId: string, payload: { code: string; message: string }): HearthError {
  // Keep the runner's reason; the code is always a load failure whatever the runner said.
  return errors.modelLoadFailed(String(payload.message || `Model "${modelId}" could not be loaded.`));
}
