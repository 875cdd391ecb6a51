/**
 * The model layout the scheduler tests plan with: round numbers, so a test can say in MiB what
 * fits where. The decision, the split planner and the API's plan report see the same model.
 */

import type { ModelLayout } from "../../scheduler/modelLayout.js";

const MIB = 1024 * 1024;

/** 8 layers of 100 MiB, 10 MiB KV each, 50 MiB input and output, 20 MiB buffers: 1000 MiB whole. */
export function modelLayout(overrides: Partial<ModelLayout> = {}): ModelLayout {
  return {
    layerWeightBytes: Array.from({ length: 8 }, () => 100 * MIB),
    kvBytesPerLayer: 10 * MIB,
    inputBytes: 50 * MIB,
    outputBytes: 50 * MIB,
    computeBytesPerNode: 20 * MIB,
    embeddingLength: 2048,
    vocabularySize: 32000,
    ...overrides,
  };
}
