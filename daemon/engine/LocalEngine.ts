/**
 * The inference engine of this machine, and the one owner of every loaded model here: model
 * ids in, generations and embeddings out, every model in a runner child process of its own
 * (never inside the daemon).
 *
 * It holds one ModelHost (queue, runner, keep-alive) per whole model, created on first use and
 * forgotten once idle and unloaded, and the hosts of the split placements this node runs
 * (daemon/split/ asks for them with openPlacementHost and retires them). Because every host is
 * here, queue depth, `/metrics`, `hearth status` and the shutdown drain see every loaded model.
 *
 * Model ids and aliases are resolved through the catalog, which alone knows file paths; a
 * request never names a file. Callers that resolved the model already pass its descriptor.
 *
 * Events (for the state published to peers): `modelLoaded`, `modelUnloaded`, `loadFailed`.
 *
 * Shutdown (stop): refuse new work, let running and queued requests on every host finish for
 * up to drainTimeoutMs, fail the rest with HEARTH_SHUTTING_DOWN, then stop every runner.
 */

import { EventEmitter } from "node:events";
import type { Logger } from "pino";
import type { LoadedModelStats } from "../../protocol/api/status.js";
import { errors, type HearthError } from "../../protocol/errors.js";
import type { EmbeddingJob, EmbeddingResult, GenerationJob, GenerationResult } from "../../protocol/inference.js";
import type { RunnerModelInfo } from "../../protocol/runnerIpc.js";
import type { LimitsConfig, RunnerConfig } from "../config/defaults.js";
import { settlesWithin } from "../lifecycle/settlesWithin.js";
import { ModelHost, type PlacementSettings, type SubmitOptions, type UnloadReason } from "./ModelHost.js";
import type { JobOptions } from "./RunnerProcess.js";
import type { EngineStats, LocalInferenceEngine, LocalJobOptions, ModelCatalog, ModelDescriptor } from "./types.js";

export type { UnloadReason } from "./ModelHost.js";

export interface LocalEngineOptions {
  catalog: ModelCatalog;
  limits: LimitsConfig;
  runner: RunnerConfig;
  logger: Logger;
  /** The runner's entry script; defaults to the built daemon/runner/runnerMain.js. */
  runnerEntryPath?: string;
  /** Environment every runner gets (kernelEnvironment.ts); a placement's own comes on top. */
  runnerEnv?: Record<string, string>;
}

export interface LocalEngineEvents {
  modelLoaded: [info: RunnerModelInfo & { pid: number | undefined }];
  modelUnloaded: [modelId: string, reason: UnloadReason];
  loadFailed: [modelId: string, error: HearthError];
}

/** Where a local job runs: the model's whole-model host (from `descriptor` or the job's name), or a split placement's host. */
export interface LocalRunOptions extends LocalJobOptions {
  host?: ModelHost;
}

export interface PlacementHostInit {
  descriptor: ModelDescriptor;
  placement: PlacementSettings;
  /** The runner died under it; its devices (peers' workers) must not be used again. */
  onCrash(): void;
  /** Keep-alive unloaded it, or its load failed: nothing runs on it any more. */
  onIdle(): void;
}

export class LocalEngine extends EventEmitter<LocalEngineEvents> implements LocalInferenceEngine {
  readonly #options: LocalEngineOptions;
  readonly #logger: Logger;
  /** Whole-model hosts by model id, and placement hosts by a key of their own. */
  readonly #hosts = new Map<string, ModelHost>();
  #nextPlacement = 1;
  #stopping: Promise<void> | undefined;

  constructor(options: LocalEngineOptions) {
    super();
    this.#options = options;
    this.#logger = options.logger.child({ component: "engine" });
  }

  listModels(): Promise<ModelDescriptor[]> {
    return this.#options.catalog.list();
  }

  resolveModel(idOrAlias: string): Promise<ModelDescriptor> {
    return this.#options.catalog.resolve(idOrAlias);
  }

  async generate(job: GenerationJob, options: LocalRunOptions): Promise<GenerationResult> {
    const host = options.host ?? this.#wholeHost(await this.#descriptorFor(job.model, options.descriptor));
    const { onDelta, onTokens, resume } = options;
    return host.submit(({ runner, signal, isLive }) => {
      const jobOptions: JobOptions = { signal };
      // Output that arrives after the caller got its answer (e.g. cancelled) is dropped.
      if (onDelta) {
        jobOptions.onDelta = (delta) => {
          if (isLive()) onDelta(delta);
        };
      }
      if (onTokens) {
        jobOptions.onTokens = (tokens) => {
          if (isLive()) onTokens(tokens);
        };
      }
      if (resume) jobOptions.resume = resume;
      return runner.generate(job, jobOptions);
    }, options.signal, submitOptions(options.keepAliveMs));
  }

  async embed(job: EmbeddingJob, options: Pick<LocalRunOptions, "signal" | "descriptor" | "host" | "keepAliveMs">): Promise<EmbeddingResult> {
    const { maxEmbeddingInputs } = this.#options.limits;
    if (job.inputs.length === 0) throw errors.invalidRequest("input must not be empty.", { param: "input" });
    if (job.inputs.length > maxEmbeddingInputs) {
      throw errors.invalidRequest(`input has ${job.inputs.length} items; at most ${maxEmbeddingInputs} are accepted.`, { param: "input" });
    }
    const host = options.host ?? this.#wholeHost(await this.#descriptorFor(job.model, options.descriptor));
    return host.submit(({ runner, signal }) => runner.embed(job, { signal }), options.signal, submitOptions(options.keepAliveMs));
  }

  /**
   * Loads `descriptor` whole (if it is not loaded yet) without running anything, and keeps it
   * for `keepAliveMs` (limits.keep_alive when absent). Resolves once it is ready.
   */
  async load(descriptor: ModelDescriptor, options: { signal: AbortSignal; keepAliveMs?: number }): Promise<void> {
    const host = this.#wholeHost(await this.#descriptorFor(descriptor.id, descriptor));
    await host.submit(() => Promise.resolve(), options.signal, submitOptions(options.keepAliveMs));
  }

  /**
   * Stops the whole-model runner of `modelId` as soon as it is idle (at once when it is);
   * resolves once an idle runner has stopped. Split placements are the split engine's.
   */
  async unload(modelId: string): Promise<void> {
    await this.#hosts.get(modelId)?.expire();
  }

  /**
   * A host for a split placement's runner (daemon/split/SplitEngine.ts), owned here like every
   * other: counted in stats, drained and stopped with the rest. The split engine retires it.
   */
  openPlacementHost(init: PlacementHostInit): ModelHost {
    if (this.#stopping) throw errors.shuttingDown();
    const key = `${init.descriptor.id}\u0000placement ${this.#nextPlacement++}`;
    const host = this.#createHost(key, init.descriptor, init.placement, {
      onUnloaded: (reason) => {
        if (reason === "crash") init.onCrash();
      },
      onIdle: () => init.onIdle(),
    });
    this.#hosts.set(key, host);
    return host;
  }

  /** Stops a placement host (failing what still runs on it with `error`) and forgets it. */
  async retireHost(host: ModelHost, error: HearthError): Promise<void> {
    for (const [key, known] of this.#hosts) if (known === host) this.#hosts.delete(key);
    await host.shutdown(error);
  }

  /** Every host with something loaded, loading or waiting, whole and split alike. */
  stats(): EngineStats {
    const loaded: LoadedModelStats[] = [];
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

  async #descriptorFor(idOrAlias: string, resolved: ModelDescriptor | undefined): Promise<ModelDescriptor> {
    if (this.#stopping) throw errors.shuttingDown();
    const descriptor = resolved ?? (await this.#options.catalog.resolve(idOrAlias));
    if (this.#stopping) throw errors.shuttingDown();
    return descriptor;
  }

  /**
   * The whole-model host for `descriptor`, created on first use. Synchronous on purpose:
   * callers submit in the same tick, so a host cannot be forgotten as idle between lookup and
   * submission.
   */
  #wholeHost(descriptor: ModelDescriptor): ModelHost {
    const key = descriptor.id;
    let host = this.#hosts.get(key);
    if (!host) {
      const created = this.#createHost(key, descriptor, undefined, {
        onIdle: () => {
          if (this.#hosts.get(key) === created) this.#hosts.delete(key);
        },
      });
      host = created;
      this.#hosts.set(key, host);
    }
    return host;
  }

  #createHost(key: string, descriptor: ModelDescriptor, placement: PlacementSettings | undefined, owner: { onUnloaded?: (reason: UnloadReason) => void; onIdle: () => void }): ModelHost {
    const host: ModelHost = new ModelHost({
      descriptor,
      limits: this.#options.limits,
      runner: this.#options.runner,
      logger: this.#options.logger,
      ...(this.#options.runnerEntryPath === undefined ? {} : { runnerEntryPath: this.#options.runnerEntryPath }),
      ...(placement === undefined ? {} : { placement }),
      ...(this.#options.runnerEnv === undefined ? {} : { runnerEnv: this.#options.runnerEnv }),
      events: {
        loaded: (info) => this.emit("modelLoaded", info),
        unloaded: (reason) => {
          owner.onUnloaded?.(reason);
          this.emit("modelUnloaded", descriptor.id, reason);
        },
        loadFailed: (error) => this.emit("loadFailed", descriptor.id, error),
        idle: () => {
          if (placement !== undefined) this.#hosts.delete(key);
          owner.onIdle();
        },
      },
    });
    return host;
  }
}

function submitOptions(keepAliveMs: number | undefined): SubmitOptions {
  return keepAliveMs === undefined ? {} : { keepAliveMs };
}
