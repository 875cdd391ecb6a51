/**
 * How fast this machine generates with each model: tokens per second of a fixed, short, greedy
 * completion, measured once per model file and remembered across restarts
 * (`<dataDir>/cache/speed-scores.json`, keyed by path, size and mtime, and by sha256 once known).
 *
 * Peers weigh placement with it, so a slow machine is not handed work it would drag out.
 * A model is never loaded just to be measured: the measurement runs when the model is already
 * loaded (the engine's load hook, and every state publication after it) and idle, so it neither
 * competes with real requests nor skews its own figure. It goes through the engine like any
 * request, in the runner process. Failures are logged and retried a few times at later chances.
 */

import { EventEmitter } from "node:events";
import type { Logger } from "pino";
import { z } from "zod";
import type { LoadedModelStats } from "../../protocol/api/status.js";
import type { CompletionJob } from "../../protocol/inference.js";
import { PEER_WIRE_LIMITS } from "../../protocol/peer/messages.js";
import type { LocalInferenceEngine, ModelDescriptor } from "../engine/types.js";
import { cacheFilePath, fileVersion, fileVersionKey, readJsonCache, writeJsonCache } from "./jsonCache.js";

export const SPEED_SCORE_CACHE_FILE = "speed-scores.json";
/** Fixed so every machine measures the same work; greedy so the token count is the same each time. */
export const SPEED_PROBE_PROMPT = "Hearth speed probe. Count on: one two three four five six seven eight";
/** Attempts per file version before the model is left unmeasured for this run. */
const MAX_ATTEMPTS = 3;

const scoreEntrySchema = z.object({
  modelId: z.string(),
  tokensPerSecond: z.number().finite().positive().max(PEER_WIRE_LIMITS.maxTokensPerSecond),
  tokens: z.int().positive(),
  measuredAt: z.string(),
});
type ScoreEntry = z.infer<typeof scoreEntrySchema>;

export interface SpeedScoresOptions {
  dataDir: string;
  engine: Pick<LocalInferenceEngine, "generate" | "resolveModel">;
  /** Tokens generated per measurement (PeerConfig.speedProbeTokens). */
  probeTokens: number;
  logger: Logger;
  /** The sha256 of a model's file if already known (ModelHashes), to key the cache by content too. */
  hashOf?: (model: ModelDescriptor) => string | null;
}

/** Tokens per second from one timed generation; undefined when it says nothing. */
export function tokensPerSecond(tokens: number, startedAt: number, firstTokenAt: number | undefined, finishedAt: number): number | undefined {
  // From the first token on, when there are enough to time: prompt evaluation is not generation.
  const useFirstToken = firstTokenAt !== undefined && tokens >= 2 && finishedAt > firstTokenAt;
  const counted = useFirstToken ? tokens - 1 : tokens;
  const seconds = (useFirstToken ? finishedAt - firstTokenAt : finishedAt - startedAt) / 1000;
  if (counted <= 0 || !(seconds > 0)) return undefined;
  const rate = counted / seconds;
  return Number.isFinite(rate) && rate <= PEER_WIRE_LIMITS.maxTokensPerSecond ? Math.round(rate * 100) / 100 : undefined;
}

/** `measured` follows a new measurement, so the node's state can be re-published. */
export interface SpeedScoresEvents {
  measured: [modelId: string, tokensPerSecond: number];
}

export class SpeedScores extends EventEmitter<SpeedScoresEvents> {
  readonly #options: SpeedScoresOptions;
  readonly #logger: Logger;
  readonly #file: string;
  #known = new Map<string, ScoreEntry>();
  #loaded: Promise<void> | undefined;
  /** model id -> current cache key (path|size|mtime), as of the last scoresFor(). */
  readonly #keysById = new Map<string, string>();
  readonly #attempts = new Map<string, number>();
  #measuring: string | undefined;
  #stopped = false;
  readonly #abort = new AbortController();

  constructor(options: SpeedScoresOptions) {
    super();
    this.#options = options;
    this.#logger = options.logger.child({ component: "cluster" });
    this.#file = cacheFilePath(options.dataDir, SPEED_SCORE_CACHE_FILE);
  }

  /** Known scores of `models` (by id); models never measured on this machine are absent. */
  async scoresFor(models: readonly ModelDescriptor[]): Promise<Record<string, number>> {
    await this.#load();
    const scores: Record<string, number> = {};
    for (const model of models) {
      const entry = await this.#entryFor(model);
      if (entry !== undefined) scores[model.id] = entry.tokensPerSecond;
    }
    return scores;
  }

  /**
   * Measures one loaded, idle, not yet measured model from `loaded`, in the background. Call it
   * whenever the set of loaded models may have changed; it does nothing while a measurement runs.
   */
  measureIdle(loaded: readonly LoadedModelStats[]): void {
    if (this.#stopped || this.#measuring !== undefined) return;
    // A split placement is measured by its plan, not by loading the model whole here.
    void this.#measureNext(loaded.filter((model) => model.placement === "whole")).catch((error: unknown) => this.#logger.warn({ err: error }, "speed measurement failed"));
  }

  stop(): void {
    this.#stopped = true;
    this.#abort.abort();
  }

  async #load(): Promise<void> {
    this.#loaded ??= readJsonCache(this.#file, scoreEntrySchema).then((entries) => {
      for (const [key, entry] of this.#known) entries.set(key, entry);
      this.#known = entries;
    });
    await this.#loaded;
  }

  async #entryFor(model: ModelDescriptor): Promise<ScoreEntry | undefined> {
    let key: string;
    try {
      key = fileVersionKey(model.path, await fileVersion(model.path));
    } catch {
      return undefined;
    }
    this.#keysById.set(model.id, key);
    const byFile = this.#known.get(key);
    if (byFile !== undefined) return byFile;
    const sha256 = this.#options.hashOf?.(model) ?? null;
    return sha256 === null ? undefined : this.#known.get(`sha256:${sha256}`);
  }

  async #measureNext(loaded: readonly LoadedModelStats[]): Promise<void> {
    await this.#load();
    for (const stats of loaded) {
      if (this.#stopped || this.#measuring !== undefined) return;
      if (stats.state !== "ready" || stats.running > 0 || stats.queued > 0) continue;
      let model: ModelDescriptor;
      try {
        model = await this.#options.engine.resolveModel(stats.modelId);
      } catch {
        continue;
      }
      if (model.id !== stats.modelId || (await this.#entryFor(model)) !== undefined) continue;
      const key = this.#keysById.get(model.id);
      if (key === undefined || (this.#attempts.get(key) ?? 0) >= MAX_ATTEMPTS) continue;
      this.#attempts.set(key, (this.#attempts.get(key) ?? 0) + 1);
      this.#measuring = model.id;
      try {
        await this.#measure(model, key);
      } finally {
        this.#measuring = undefined;
      }
      return;
    }
  }

  async #measure(model: ModelDescriptor, key: string): Promise<void> {
    const job: CompletionJob = {
      kind: "completion",
      model: model.id,
      prompt: SPEED_PROBE_PROMPT,
      sampling: { maxTokens: this.#options.probeTokens, temperature: 0, stop: [] },
      echo: false,
    };
    const startedAt = performance.now();
    let firstTokenAt: number | undefined;
    let result;
    try {
      result = await this.#options.engine.generate(job, {
        signal: this.#abort.signal,
        onDelta: () => {
          firstTokenAt ??= performance.now();
        },
      });
    } catch (error) {
      if (!this.#stopped) this.#logger.info({ err: error, model: model.id }, "speed measurement did not complete; will retry later");
      return;
    }
    const finishedAt = performance.now();
    const rate = tokensPerSecond(result.usage.completionTokens, startedAt, firstTokenAt, finishedAt);
    if (rate === undefined || this.#stopped) return;
    const entry: ScoreEntry = { modelId: model.id, tokensPerSecond: rate, tokens: result.usage.completionTokens, measuredAt: new Date().toISOString() };
    this.#known.set(key, entry);
    const sha256 = this.#options.hashOf?.(model) ?? null;
    if (sha256 !== null) this.#known.set(`sha256:${sha256}`, entry);
    this.#logger.info({ model: model.id, tokensPerSecond: rate, tokens: entry.tokens }, "speed measured");
    await writeJsonCache(this.#file, this.#known).catch((error: unknown) => this.#logger.warn({ err: error, file: this.#file }, "could not save the speed score cache"));
    this.emit("measured", model.id, rate);
  }
}
