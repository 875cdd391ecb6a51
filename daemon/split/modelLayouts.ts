/**
 * The planner's picture of a local model file (scheduler/modelLayout.ts): its GGUF facts, as
 * the model index read them (daemon/models/ModelRegistry.ts, once per file version), with the
 * context settings its runner would use.
 */

import { errors } from "../../protocol/errors.js";
import { modelLayoutFromGguf, type ModelLayout } from "../../scheduler/modelLayout.js";
import type { LimitsConfig, RunnerConfig } from "../config/defaults.js";
import type { ModelDescriptor } from "../engine/types.js";
import type { GgufDescription } from "../gguf/reader.js";

export interface ModelLayoutsInit {
  limits: LimitsConfig;
  runner: RunnerConfig;
  describe: (model: ModelDescriptor) => Promise<GgufDescription>;
}

export class ModelLayouts {
  readonly #init: ModelLayoutsInit;

  constructor(init: ModelLayoutsInit) {
    this.#init = init;
  }

  /** Rejects HEARTH_MODEL_LOAD_FAILED when the header does not describe a layered model. */
  async layoutOf(model: ModelDescriptor): Promise<ModelLayout> {
    const { limits, runner } = this.#init;
    try {
      const description = await this.#init.describe(model);
      return modelLayoutFromGguf(description, {
        // The runner caps the context at the model's training context (daemon/runner/RunnerModel.ts).
        contextSize: Math.min(limits.contextSize, description.contextLength ?? limits.contextSize),
        sequences: limits.parallelSlots,
        batchSize: runner.batchSize,
        flashAttention: runner.batching !== "exact",
      });
    } catch (error) {
      throw errors.modelLoadFailed(`Cannot plan model "${model.id}": its GGUF header does not describe a layered model (${(error as Error).message}).`, { cause: error });
    }
  }
}
