/**
 * The inference engine of this machine: model ids in, generations and embeddings out, every
 * model in a runner child process of its own (never inside the daemon).
 *
 * Model ids and aliases are resolved through the catalog, which alone knows file paths; a
 * request never names a file. Each resolved model gets one ModelHost (queue, runner,
 * keep-alive), created on first use and forgotten once it is idle and unloaded.
 *
 * Shutdown (stop): refuse new work, let running and queued requests finish for up to
 * drainTimeoutMs, fail the rest with HEARTH_SHUTTING_DOWN, then stop every runner.
 */

import type { Logger } from "pino";
import { errors } from "../../protocol/errors.js";
import type { EmbeddingJob, EmbeddingResult, GenerationJob, GenerationResult } from "../../protocol/inference.js";
import type { LimitsConfig, RunnerConfig } from "../config/defaults.js";
import type { JobOptions } from "../runner/RunnerProcess.js";
import { ModelHost, type EngineHooks } from "./ModelHost.js";
import type { EngineStats, GenerateOptions, LocalInferenceEngine, ModelCatalog, ModelDescriptor } from "./types.js";
import { settlesWithin } from "../lifecycle/settlesWithin.js";

export type { EngineHooks, UnloadReason } from "./ModelHost.js";

export interface LocalEngineOptions {
  catalog: ModelCatalog;
  limits: LimitsConfig;
  runner: RunnerConfig;
  logger: Logger;
  /** The runner's entry script; defaults to the built runnerMain.js next to RunnerProcess. */
  runnerEntryPath?: string;
  hooks?: EngineHooks;
}

export class LocalEngine implements LocalInferenceEngine {
  readonly #options: LocalEngineOptions;
  readonly #logger: Logger;
  readonly #hosts = new Map<string, ModelHost>();
  #stopping: Promise<void> | undefined;

  constructor(options: LocalEngineOptions) {
    this.#options = options;
    this.#logger = options.logger.child({ component: "engine" });
  }

  listModels(): Promise<ModelDescriptor[]> {
    return this.#options.catalog.list();
  }

  resolveModel(idOrAlias: string): Promise<ModelDescriptor> {
    return this.#options.catalog.resolve(idOrAlias);
  }

  async generate(job: GenerationJob, options: GenerateOptions): Promise<GenerationResult> {
    const descriptor = await this.#resolveForWork(job.model);
    const { onDelta } = options;
    return this.#hostFor(descriptor).submit(({ runner, signal, isLive }) => {
      const jobOptions: JobOptions = { signal };
      // Deltas that arrive after the caller got its answer (e.g. cancelled) are dropped.
      if (onDelta) {
        jobOptions.onDelta = (delta) => {
          if (isLive()) onDelta(delta);
        };
      }
      return runner.generate(job, jobOptions);
    }, options.signal);
  }

  async embed(job: EmbeddingJob, options: { signal: AbortSignal }): Promise<EmbeddingResult> {
    const { maxEmbeddingInputs } = this.#options.limits;
    if (job.inputs.length === 0) throw errors.invalidRequest("input must not be empty.", { param: "input" });
    if (job.inputs.length > maxEmbeddingInputs) {
      throw errors.invalidRequest(`input has ${job.inputs.length} items; at most ${maxEmbeddingInputs} are accepted.`, { param: "input" });
    }
    const descriptor = await this.#resolveForWork(job.model);
    return this.#hostFor(descriptor).submit(({ runner, signal }) => runner.embed(job, { signal }), options.signal);
  }

  stats(): EngineStats {
    const loaded = [];
    for (const host of this.#hosts.values()) {
      const stats = host.stats();
      if (stats) loaded.push(stats);
    }
    return { loaded };
  }

  /** Drains for up to drainTimeoutMs, fails the rest with HEARTH_SHUTTING_DOWN, stops runners. */
  stop(options: { drainTimeoutMs: number }): Promise<void> {
    this.#stopping ??= this.#stop(options.drainTimeoutMs);
    return this.#stopping;
  }

  async #stop(drainTimeoutMs: number): Promise<void> {
    const hosts = [...this.#hosts.values()];
    this.#logger.info({ models: hosts.length, drainTimeoutMs }, "engine stopping");
    const drained = await settlesWithin(Promise.all(hosts.map((host) => host.whenIdle())), drainTimeoutMs);
    if (!drained) this.#logger.warn("drain timeout reached; aborting the remaining requests");
    const error = errors.shuttingDown();
    await Promise.all(hosts.map((host) => host.shutdown(error)));
    this.#hosts.clear();
    this.#logger.info("engine stopped");
  }

  async #resolveForWork(idOrAlias: string): Promise<ModelDescriptor> {
    if (this.#stopping) throw errors.shuttingDown();
    const descriptor = await this.#options.catalog.resolve(idOrAlias);
    if (this.#stopping) throw errors.shuttingDown();
    return descriptor;
  }

  /**
   * The host for `descriptor`, created on first use. Synchronous on purpose: callers submit
   * in the same tick, so a host cannot be forgotten as idle between lookup and submission.
   */
  #hostFor(descriptor: ModelDescriptor): ModelHost {
    let host = this.#hosts.get(descriptor.id);
    if (!host) {
      host = new ModelHost({
        descriptor,
        limits: this.#options.limits,
        runner: this.#options.runner,
        logger: this.#options.logger,
        ...(this.#options.runnerEntryPath === undefined ? {} : { runnerEntryPath: this.#options.runnerEntryPath }),
        ...(this.#options.hooks === undefined ? {} : { hooks: this.#options.hooks }),
        onIdle: (idle) => {
          if (this.#hosts.get(idle.descriptor.id) === idle) this.#hosts.delete(idle.descriptor.id);
        },
      });
      this.#hosts.set(descriptor.id, host);
    }
    return host;
  }
}
