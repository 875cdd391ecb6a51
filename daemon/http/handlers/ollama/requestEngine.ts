/**
 * The engine as one Ollama request uses it: the daemon's engine, plus the request's
 * `keep_alive`, plus the clock Ollama's counters are read from. It sees the first streamed
 * piece arrive (it listens for pieces even when the client does not stream), which splits the
 * request's time into waiting and loading, reading the prompt (the runner's time to first
 * token) and generating the rest.
 */

import { performance } from "node:perf_hooks";
import type { EmbeddingJob, EmbeddingResult, GenerationJob, GenerationResult } from "../../../../protocol/inference.js";
import type { OllamaTimings } from "../../../../protocol/ollama/generationResponse.js";
import type { EmbedOptions, EngineStats, GenerateOptions, InferenceEngine, ModelInfo } from "../../../engine/types.js";

export class OllamaRequestEngine implements InferenceEngine {
  readonly #engine: InferenceEngine;
  readonly #keepAlive: { keepAliveMs?: number };
  readonly #startedAt = performance.now();
  #firstPieceAt: number | undefined;

  constructor(engine: InferenceEngine, keepAliveMs: number | undefined) {
    this.#engine = engine;
    this.#keepAlive = keepAliveMs === undefined ? {} : { keepAliveMs };
  }

  listModels(): Promise<ModelInfo[]> {
    return this.#engine.listModels();
  }

  resolveModel(idOrAlias: string): Promise<ModelInfo> {
    return this.#engine.resolveModel(idOrAlias);
  }

  stats(): EngineStats {
    return this.#engine.stats();
  }

  generate(job: GenerationJob, options: GenerateOptions): Promise<GenerationResult> {
    const onDelta = options.onDelta;
    return this.#engine.generate(job, {
      ...options,
      ...this.#keepAlive,
      onDelta: (delta) => {
        this.#firstPieceAt ??= performance.now();
        onDelta?.(delta);
      },
    });
  }

  embed(job: EmbeddingJob, options: EmbedOptions): Promise<EmbeddingResult> {
    return this.#engine.embed(job, { ...options, ...this.#keepAlive });
  }

  /** Milliseconds since the request began. */
  elapsedMs(): number {
    return performance.now() - this.#startedAt;
  }

  timings(result: Pick<GenerationResult, "timeToFirstTokenMs">): OllamaTimings {
    const now = performance.now();
    const totalMs = now - this.#startedAt;
    const firstAt = this.#firstPieceAt ?? now;
    const promptEvalMs = Math.min(result.timeToFirstTokenMs ?? 0, firstAt - this.#startedAt);
    return { totalMs, loadMs: Math.max(0, firstAt - this.#startedAt - promptEvalMs), promptEvalMs, evalMs: now - firstAt };
  }
}

/** RFC 3339, as Ollama's `created_at`. */
export function nowIso(): string {
  return new Date().toISOString();
}
