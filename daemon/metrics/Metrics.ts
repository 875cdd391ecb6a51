/**
 * The daemon's Prometheus metrics: what /metrics serves.
 *
 * Counters and histograms are recorded by the HTTP layer as requests finish; gauges
 * (queue depth, running requests, loaded models) are read from the engine at scrape time
 * through a stats provider, so they can never drift from the engine's own state.
 * Model labels are canonical model ids (never the raw `model` a client sent), which keeps
 * the number of series bounded by the models on disk.
 */

import type { EngineStats } from "../engine/types.js";
import type { GenerationResult } from "../../protocol/inference.js";
import { Counter, Histogram, renderGauge } from "./instruments.js";

/** Seconds; spans a warm tiny model (tens of ms) to a cold load of a large one. */
export const TIME_TO_FIRST_TOKEN_BUCKETS = [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

/** Tokens per second; spans a big model split over a LAN to a tiny model on a GPU. */
export const TOKENS_PER_SECOND_BUCKETS = [1, 2, 5, 10, 20, 35, 50, 75, 100, 200, 500, 1000, 2000];

export type StatsProvider = () => EngineStats;

export interface GenerationObservation {
  /** Canonical model id. */
  model: string;
  result: Pick<GenerationResult, "usage" | "cachedPromptTokens" | "timeToFirstTokenMs">;
  /** Wall time the HTTP layer measured from handing the job to the engine until it finished. */
  wallMs: number;
}

export class Metrics {
  readonly httpRequests = new Counter("hearth_http_requests_total", "HTTP requests answered, by endpoint and status code.", ["endpoint", "status"]);
  readonly promptTokens = new Counter("hearth_prompt_tokens_total", "Prompt tokens processed (including cached ones).", ["model"]);
  readonly completionTokens = new Counter("hearth_completion_tokens_total", "Tokens generated.", ["model"]);
  readonly cachedPromptTokens = new Counter(
    "hearth_cached_prompt_tokens_total",
    "Prompt tokens served from a reused KV cache prefix instead of being evaluated.",
    ["model"],
  );
  readonly timeToFirstToken = new Histogram(
    "hearth_time_to_first_token_seconds",
    "Time from job start to the first generated token.",
    ["model"],
    TIME_TO_FIRST_TOKEN_BUCKETS,
  );
  readonly tokensPerSecond = new Histogram(
    "hearth_generation_tokens_per_second",
    "Decode speed of one generation: tokens after the first over the time after the first.",
    ["model"],
    TOKENS_PER_SECOND_BUCKETS,
  );

  private readonly statsProvider: StatsProvider | undefined;

  constructor(options: { stats?: StatsProvider } = {}) {
    this.statsProvider = options.stats;
  }

  recordHttpRequest(endpoint: string, status: number): void {
    this.httpRequests.inc({ endpoint, status: String(status) });
  }

  recordGeneration({ model, result, wallMs }: GenerationObservation): void {
    const labels = { model };
    this.promptTokens.inc(labels, result.usage.promptTokens);
    this.completionTokens.inc(labels, result.usage.completionTokens);
    this.cachedPromptTokens.inc(labels, result.cachedPromptTokens);
    const ttftMs = result.timeToFirstTokenMs;
    if (ttftMs !== undefined) this.timeToFirstToken.observe(labels, ttftMs / 1000);
    const rate = decodeTokensPerSecond(result.usage.completionTokens, wallMs, ttftMs);
    if (rate !== undefined) this.tokensPerSecond.observe(labels, rate);
  }

  recordEmbedding(model: string, promptTokens: number): void {
    this.promptTokens.inc({ model }, promptTokens);
  }

  render(): string {
    const loaded = this.readStats()?.loaded ?? [];
    const lines = [
      ...this.httpRequests.render(),
      ...this.promptTokens.render(),
      ...this.completionTokens.render(),
      ...this.cachedPromptTokens.render(),
      ...this.timeToFirstToken.render(),
      ...this.tokensPerSecond.render(),
      ...renderGauge(
        "hearth_queue_depth",
        "Requests waiting for a slot, per loaded model.",
        loaded.map((entry) => ({ labels: { model: entry.modelId }, value: entry.queued })),
      ),
      ...renderGauge(
        "hearth_requests_running",
        "Requests being served, per loaded model.",
        loaded.map((entry) => ({ labels: { model: entry.modelId }, value: entry.running })),
      ),
      ...renderGauge("hearth_models_loaded", "Models with a runner process (loading, ready or stopping).", [{ labels: {}, value: loaded.length }]),
    ];
    return `${lines.join("\n")}\n`;
  }

  private readStats(): EngineStats | undefined {
    try {
      return this.statsProvider?.();
    } catch {
      // A scrape must still answer with the counters even if the engine cannot report.
      return undefined;
    }
  }
}

/**
 * Decode speed: the first token's latency belongs to time-to-first-token, so the rate counts
 * the tokens after it over the time after it. Undefined when there is nothing to measure.
 */
export function decodeTokensPerSecond(completionTokens: number, wallMs: number, timeToFirstTokenMs: number | undefined): number | undefined {
  if (timeToFirstTokenMs === undefined) {
    return completionTokens > 0 && wallMs > 0 ? completionTokens / (wallMs / 1000) : undefined;
  }
  const decodeMs = wallMs - timeToFirstTokenMs;
  if (completionTokens < 2 || decodeMs <= 0) return undefined;
  return (completionTokens - 1) / (decodeMs / 1000);
}
