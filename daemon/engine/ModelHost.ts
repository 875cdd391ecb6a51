/**
 * One model on this machine: its request queue, its runner process and its lifecycle.
 *
 *   first request  -> admit (or 429 when the queue is full) -> load a runner (requests that
 *                     arrive meanwhile share the one load) -> run up to `parallelSlots` jobs
 *   runner crash   -> its in-flight jobs fail HEARTH_RUNNER_CRASHED; the next job loads anew
 *   load failure   -> everything waiting fails HEARTH_MODEL_LOAD_FAILED; nothing lingers
 *   idle keepAlive -> the runner is stopped; the host tells its owner it can be forgotten
 *
 * A slot stays taken until the runner is done with its job, even when the client already
 * got its HEARTH_CANCELLED, so the runner is never sent more jobs than it has sequences.
 */

import type { Logger } from "pino";
import type { LoadedModelStats } from "../../protocol/api/status.js";
import { errors, HearthError } from "../../protocol/errors.js";
import type { RunnerLoadOptions, RunnerModelInfo } from "../../protocol/runnerIpc.js";
import { RequestQueue } from "../../scheduler/requestQueue.js";
import type { LimitsConfig, RunnerConfig } from "../config/defaults.js";
import { RunnerProcess, type RunnerExit } from "./RunnerProcess.js";
import type { ModelDescriptor } from "./types.js";

export type UnloadReason = "keep-alive" | "crash" | "shutdown";

/** What a host tells its owner (daemon/engine/LocalEngine.ts). Observers must not throw. */
export interface ModelHostEvents {
  loaded(info: RunnerModelInfo & { pid: number | undefined }): void;
  unloaded(reason: UnloadReason): void;
  loadFailed(error: HearthError): void;
  /** The host has no runner and no work left; its owner may drop it. */
  idle(): void;
}

/**
 * A split placement's runner (daemon/split/): environment for the RPC shim and load settings
 * that override the single-node ones (numeric gpuLayers, RPC devices only).
 */
export interface PlacementSettings {
  env: Record<string, string>;
  load: Partial<RunnerLoadOptions>;
}

export interface ModelHostOptions {
  descriptor: ModelDescriptor;
  limits: LimitsConfig;
  runner: RunnerConfig;
  logger: Logger;
  runnerEntryPath?: string;
  events: ModelHostEvents;
  /** Absent for a whole-model host. */
  placement?: PlacementSettings;
  /** Environment every runner gets; the placement's own comes on top. */
  runnerEnv?: Record<string, string>;
}

/** What a job gets to run with. */
export interface JobEnvironment {
  runner: RunnerProcess;
  /** Aborts when the client goes away or the engine shuts down. */
  signal: AbortSignal;
  /** False once the caller has its answer (e.g. cancelled); late deltas must be dropped then. */
  isLive: () => boolean;
}

/** What one request asks of the host beyond its job. */
export interface SubmitOptions {
  /**
   * How long the runner stays loaded once idle after this request (Ollama's `keep_alive`):
   * 0 stops it right away, Infinity never. Absent: `limits.keep_alive`.
   */
  keepAliveMs?: number;
}

/** Node's timers hold at most this many milliseconds (about 24.8 days); a longer keep-alive is forever. */
const MAX_TIMER_MS = 2 ** 31 - 1;

interface Ticket {
  execute(environment: JobEnvironment): Promise<unknown>;
  keepAliveMs: number | undefined;
  controller: AbortController;
  settled: boolean;
  resolve(value: unknown): void;
  reject(error: HearthError): void;
  detach(): void;
}

export class ModelHost {
  readonly descriptor: ModelDescriptor;
  readonly #options: ModelHostOptions;
  readonly #logger: Logger;
  readonly #queue: RequestQueue<Ticket>;
  #runner: RunnerProcess | undefined;
  #loading: Promise<RunnerProcess> | undefined;
  #stoppingRunner: RunnerProcess | undefined;
  #stopping: Promise<void> | undefined;
  #keepAliveTimer: NodeJS.Timeout | undefined;
  /** The keep-alive that applies when the host next goes idle: the last finished request's. */
  #keepAliveMs: number;
  /** Epoch ms at which the idle runner stops; null: never; undefined: not idle (no timer). */
  #expiresAt: number | null | undefined;
  /** Set by expire(): unload once idle, whatever the requests running now asked for. */
  #expireRequested = false;
  #lastUsedAt = Date.now();
  #closed = false;
  #idleWaiters: (() => void)[] = [];

  constructor(options: ModelHostOptions) {
    this.#options = options;
    this.descriptor = options.descriptor;
    this.#logger = options.logger.child({ component: "engine", model: options.descriptor.id });
    this.#queue = new RequestQueue({ slots: options.limits.parallelSlots, depth: options.limits.queueDepth });
    this.#keepAliveMs = options.limits.keepAliveMs;
  }

  /**
   * Runs `execute` in a slot of this model's runner, loading it if needed. Rejects
   * HEARTH_QUEUE_FULL when the queue is full, HEARTH_CANCELLED when `signal` aborts first.
   */
  submit<T>(execute: (environment: JobEnvironment) => Promise<T>, signal: AbortSignal, options: SubmitOptions = {}): Promise<T> {
    if (this.#closed) return Promise.reject(errors.shuttingDown());
    if (signal.aborted) return Promise.reject(errors.cancelled());
    return new Promise<T>((resolve, reject) => {
      const onAbort = (): void => this.#abortTicket(ticket, errors.cancelled());
      const ticket: Ticket = {
        execute,
        keepAliveMs: options.keepAliveMs,
        controller: new AbortController(),
        settled: false,
        resolve: (value) => resolve(value as T),
        reject,
        detach: () => signal.removeEventListener("abort", onAbort),
      };
      const admission = this.#queue.admit(ticket);
      if (admission === "rejected") {
        const { running, queued } = this.#queue;
        reject(
          errors.queueFull(`Model "${this.descriptor.id}" is busy: ${running} requests running and ${queued} waiting. Retry later.`, {
            retryAfterSeconds: this.#options.limits.retryAfterSeconds,
          }),
        );
        return;
      }
      this.#clearKeepAlive();
      // New work wants the model: an earlier expire() no longer applies.
      this.#expireRequested = false;
      signal.addEventListener("abort", onAbort, { once: true });
      if (admission === "running") void this.#start(ticket);
    });
  }

  /** Whether this host runs a split placement's runner. */
  get split(): boolean {
    return this.#options.placement !== undefined;
  }

  /** Undefined when nothing is loaded, loading or waiting. */
  stats(): LoadedModelStats | undefined {
    const runner = this.#runner ?? this.#stoppingRunner;
    let state: LoadedModelStats["state"];
    if (this.#stoppingRunner && !this.#runner) state = "stopping";
    else if (this.#runner?.state === "ready") state = "ready";
    else if (this.#loading || !this.#queue.idle) state = "loading";
    else return undefined;
    return {
      modelId: this.descriptor.id,
      placement: this.split ? "split" : "whole",
      pid: runner?.pid,
      state,
      running: this.#queue.running,
      queued: this.#queue.queued,
      lastUsedAt: this.#lastUsedAt,
      expiresAt: this.#expiresAt !== undefined ? this.#expiresAt : expiryOf(Date.now(), this.#expireRequested ? 0 : this.#keepAliveMs),
    };
  }

  /**
   * Stops the runner as soon as nothing runs or waits (now, if that is already so), whatever
   * keep-alive the requests running now asked for; a request submitted later cancels this.
   * Resolves once an idle runner has stopped.
   */
  async expire(): Promise<void> {
    this.#expireRequested = true;
    this.#keepAliveMs = 0;
    const runner = this.#runner;
    if (!this.#queue.idle || runner === undefined || this.#loading) return;
    this.#clearKeepAlive();
    await this.#unload(runner, "keep-alive");
  }

  /** Resolves when no request is running or waiting. */
  whenIdle(): Promise<void> {
    if (this.#queue.idle) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /**
   * Shutdown: refuses new requests, fails every waiting and running one with `error`
   * (running jobs are cancelled in the runner), and stops the runner.
   */
  async shutdown(error: HearthError): Promise<void> {
    this.#closed = true;
    this.#clearKeepAlive();
    for (const ticket of this.#queue.drainWaiting()) this.#settle(ticket, error);
    for (const ticket of this.#queue.runningItems()) this.#abortTicket(ticket, error);
    await this.#loading?.catch(() => undefined);
    const runner = this.#runner;
    if (runner) await this.#unload(runner, "shutdown");
    await this.#stopping;
  }

  // ---- request flow -------------------------------------------------------------------

  async #start(ticket: Ticket): Promise<void> {
    let runner: RunnerProcess;
    try {
      runner = await this.#ensureRunner();
    } catch (error) {
      const failure = HearthError.from(error, "HEARTH_MODEL_LOAD_FAILED");
      // Everyone waiting for this model would hit the same failure; tell them now.
      for (const waiting of this.#queue.drainWaiting()) this.#settle(waiting, failure);
      this.#settle(ticket, failure);
      this.#release(ticket);
      return;
    }
    if (ticket.settled) {
      // Cancelled while the model loaded.
      this.#release(ticket);
      return;
    }
    try {
      const value = await ticket.execute({ runner, signal: ticket.controller.signal, isLive: () => !ticket.settled });
      this.#settle(ticket, undefined, value);
    } catch (error) {
      this.#settle(ticket, HearthError.from(error));
    } finally {
      this.#release(ticket);
    }
  }

  #abortTicket(ticket: Ticket, error: HearthError): void {
    if (ticket.settled) return;
    if (this.#queue.remove(ticket)) {
      this.#settle(ticket, error);
      this.#afterRelease();
      return;
    }
    // Running: answer the caller now; the slot frees when the runner confirms the cancel.
    this.#settle(ticket, error);
    ticket.controller.abort();
  }

  #settle(ticket: Ticket, error: HearthError | undefined, value?: unknown): void {
    if (ticket.settled) return;
    ticket.settled = true;
    ticket.detach();
    if (error) ticket.reject(error);
    else ticket.resolve(value);
  }

  #release(ticket: Ticket): void {
    this.#lastUsedAt = Date.now();
    this.#keepAliveMs = this.#expireRequested ? 0 : (ticket.keepAliveMs ?? this.#options.limits.keepAliveMs);
    const promoted = this.#queue.release(ticket);
    if (promoted) void this.#start(promoted);
    this.#afterRelease();
  }

  #afterRelease(): void {
    if (!this.#queue.idle) return;
    for (const resolve of this.#idleWaiters.splice(0)) resolve();
    if (this.#closed) return;
    if (this.#runner) this.#scheduleKeepAlive();
    else if (!this.#loading && !this.#stopping) this.#emit("idle");
  }

  // ---- runner lifecycle ---------------------------------------------------------------

  #ensureRunner(): Promise<RunnerProcess> {
    if (this.#runner?.state === "ready") return Promise.resolve(this.#runner);
    this.#loading ??= this.#load().finally(() => {
      this.#loading = undefined;
    });
    return this.#loading;
  }

  async #load(): Promise<RunnerProcess> {
    // A runner still stopping (keep-alive) frees its memory before the next one loads.
    await this.#stopping;
    if (this.#closed) throw errors.shuttingDown();
    const { descriptor, limits, runner: config } = this.#options;
    const runner = new RunnerProcess({
      load: {
        modelPath: descriptor.path,
        modelId: descriptor.id,
        contextSize: limits.contextSize,
        parallelSlots: limits.parallelSlots,
        threads: config.threads,
        gpuLayers: config.gpuLayers,
        batchSize: config.batchSize,
        batching: config.batching,
        embeddings: true,
        ...this.#options.placement?.load,
      },
      ...(this.#options.placement === undefined && this.#options.runnerEnv === undefined ? {} : { env: { ...this.#options.runnerEnv, ...this.#options.placement?.env } }),
      loadTimeoutMs: config.loadTimeoutMs,
      stopTimeoutMs: config.stopTimeoutMs,
      logger: this.#options.logger,
      ...(this.#options.runnerEntryPath === undefined ? {} : { entryPath: this.#options.runnerEntryPath }),
    });
    this.#runner = runner;
    let info: RunnerModelInfo;
    try {
      info = await runner.start();
    } catch (error) {
      // start() killed it; wait until it is really gone so no process outlives the failure.
      await runner.exited;
      if (this.#runner === runner) this.#runner = undefined;
      const failure = HearthError.from(error, "HEARTH_MODEL_LOAD_FAILED");
      this.#logger.error({ err: failure }, "model load failed");
      this.#emit("loadFailed", failure);
      throw failure;
    }
    void runner.exited.then((exit) => this.#onRunnerExit(runner, exit));
    if (this.#closed) {
      if (this.#runner === runner) this.#runner = undefined;
      await runner.stop();
      throw errors.shuttingDown();
    }
    this.#emit("loaded", { ...info, pid: runner.pid });
    return runner;
  }

  #onRunnerExit(runner: RunnerProcess, exit: RunnerExit): void {
    if (!exit.expected) {
      this.#logger.warn({ code: exit.code, signal: exit.signal, runnerPid: runner.pid }, "runner died; the next request starts a new one");
      this.#emit("unloaded", "crash");
    }
    // Its jobs already failed through RunnerProcess, and may have started a new runner.
    if (this.#runner !== runner) return;
    this.#runner = undefined;
    this.#clearKeepAlive();
    if (this.#queue.idle && !this.#loading && !this.#stopping && !this.#closed) this.#emit("idle");
  }

  #scheduleKeepAlive(): void {
    this.#clearKeepAlive();
    const runner = this.#runner;
    if (!runner) return;
    const keepAliveMs = this.#keepAliveMs;
    this.#expiresAt = expiryOf(Date.now(), keepAliveMs);
    if (this.#expiresAt === null) return;
    this.#keepAliveTimer = setTimeout(() => {
      this.#keepAliveTimer = undefined;
      if (this.#queue.idle && this.#runner === runner) void this.#unload(runner, "keep-alive");
    }, keepAliveMs);
    // Idle models must not keep the process alive on their own.
    this.#keepAliveTimer.unref();
  }

  #clearKeepAlive(): void {
    if (this.#keepAliveTimer) clearTimeout(this.#keepAliveTimer);
    this.#keepAliveTimer = undefined;
    this.#expiresAt = undefined;
  }

  #unload(runner: RunnerProcess, reason: UnloadReason): Promise<void> {
    if (this.#runner === runner) this.#runner = undefined;
    this.#stoppingRunner = runner;
    this.#logger.info({ reason, runnerPid: runner.pid }, "unloading model");
    const stopping = runner.stop().finally(() => {
      if (this.#stoppingRunner === runner) this.#stoppingRunner = undefined;
      if (this.#stopping === stopping) this.#stopping = undefined;
      this.#emit("unloaded", reason);
      if (this.#queue.idle && !this.#runner && !this.#loading && !this.#closed) this.#emit("idle");
    });
    this.#stopping = stopping;
    return stopping;
  }

  #emit<E extends keyof ModelHostEvents>(event: E, ...args: Parameters<ModelHostEvents[E]>): void {
    try {
      (this.#options.events[event] as (...values: Parameters<ModelHostEvents[E]>) => void)(...args);
    } catch (error) {
      this.#logger.warn({ err: error, event }, "a model host observer threw");
    }
  }
}

/** When a runner idle from `now` stops under `keepAliveMs`; null when never (Infinity, or longer than a timer holds). */
function expiryOf(now: number, keepAliveMs: number): number | null {
  return Number.isFinite(keepAliveMs) && keepAliveMs <= MAX_TIMER_MS ? now + Math.max(0, keepAliveMs) : null;
}
