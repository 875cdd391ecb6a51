/**
 * Cluster snapshot nodes (scheduler/clusterSnapshot.ts) for the placement and decision tests:
 * a node that holds the llama model and is idle, reachable and 1 ms away unless a test says
 * otherwise.
 */

import type { SnapshotModel, SnapshotNode } from "../../scheduler/clusterSnapshot.js";

const MIB = 1024 * 1024;

export const LLAMA_SHA = "a".repeat(64);

/** A model file as a node reports it; 1000 MiB, the size of test/support/modelLayout.ts's model. */
export function snapshotModel(id: string, sha256: string | null = LLAMA_SHA, aliases: string[] = []): SnapshotModel {
  return { id, aliases, sha256, sizeBytes: 1000 * MIB };
}

/** A peer holding llama, with nothing loaded or queued, no speed measured and no memory budget reported. */
export function snapshotNode(nodeId: string, overrides: Partial<SnapshotNode> = {}): SnapshotNode {
  return {
    nodeId,
    local: false,
    reachable: true,
    models: [snapshotModel("llama")],
    loadedModels: [],
    queueDepth: 0,
    speedScores: {},
    rttMs: 1,
    memoryBudgetBytes: null,
    ...overrides,
  };
}
