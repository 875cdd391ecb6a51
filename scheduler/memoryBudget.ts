/**
 * What one node offers a model, in bytes: the `[rpc] memory_budget_bytes` it is configured
 * with, or, when that is 0 (the default), the free memory it detects minus
 * `memory_headroom_bytes`. Free VRAM counts on a node with a GPU backend, since that is where
 * its layers go; free RAM otherwise. Published to peers in `peerState` so a host plans with
 * every node's own number.
 *
 * Pure: no I/O.
 */

export interface BudgetSettings {
  memoryBudgetBytes: number;
  memoryHeadroomBytes: number;
}

export interface DetectedMemory {
  ramFreeBytes: number;
  /** Null or undefined without a GPU backend. */
  gpuBackend?: string | null;
  vramFreeBytes: number;
}

export function memoryBudgetBytes(settings: BudgetSettings, detected: DetectedMemory): number {
  if (settings.memoryBudgetBytes > 0) return settings.memoryBudgetBytes;
  const free = detected.gpuBackend ? detected.vramFreeBytes : detected.ramFreeBytes;
  return Math.max(0, free - settings.memoryHeadroomBytes);
}
