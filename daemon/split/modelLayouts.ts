/**
 * The planner's picture of a local model file (scheduler/modelLayout.ts) read from its GGUF
 * header, with the context settings its runner would use; cached per file and modification
 * time, since a header read is file I/O and plans are made per request.
 */

import fs from "node:fs";
import { errors } from "../../protocol/errors.js";
import { modelLayoutFromGguf, type ModelLayout } from "../../scheduler/modelLayout.js";
import type { LimitsConfig, RunnerConfig } from "../config/defaults.js";
import { describeGguf, readGgufHeader } from "../gguf/reader.js";

export class ModelLayouts {
  readonly #limits: LimitsConfig;
  readonly #runner: RunnerConfig;
  readonly #cache = new Map<string, { mtimeMs: number; layout: ModelLayout }>();

  constructor(limits: LimitsConfig, runner: RunnerConfig) {
    this.#limits = limits;
    this.#runner = runner;
  }

  async layoutOf(modelPath: string, modelId: string): Promise<ModelLayout> {
    const { mtimeMs } = await fs.promises.stat(modelPath);
    const cached = this.#cache.get(modelPath);
    if (cached?.mtimeMs === mtimeMs) return cached.layout;
    let layout: ModelLayout;
    try {
      const description = describeGguf(await readGgufHeader(modelPath));
      layout = modelLayoutFromGguf(description, {
        // The runner caps the context at the model's training context (daemon/runner/RunnerModel.ts).
        contextSize: Math.min(this.#limits.contextSize, description.contextLength ?? this.#limits.contextSize),
        sequences: this.#limits.parallelSlots,
        batchSize: this.#runner.batchSize,
      });
    } catch (error) {
      throw errors.modelLoadFailed(`Cannot plan model "${modelId}": its GGUF header does not describe a layered model (${(error as Error).message}).`, { cause: error });
    }
    this.#cache.set(modelPath, { mtimeMs, layout });
    return layout;
  }
}
