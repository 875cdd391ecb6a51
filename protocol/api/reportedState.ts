/**
 * How a peer's wire snapshot (protocol/peer/messages.ts `peerState`) becomes the NodeView
 * fields a PeerView shows (GET /hearth/v1/cluster), so the peer protocol and the HTTP view
 * meet in one place.
 *
 * Pure: no I/O.
 */

import type { PeerStateMessage } from "../peer/messages.js";
import type { GpuView, NodeView } from "./cluster.js";

/** The NodeView fields a peer reports in its `peerState` snapshots. */
export type ReportedState = Pick<NodeView, "resources" | "models" | "loadedModels" | "queueDepth" | "speedScores">;

/** Spreads a backend's VRAM over its devices; the remainder goes to the first device. */
function gpusOf(gpu: PeerStateMessage["gpu"]): GpuView[] {
  const count = gpu.devices.length;
  if (count === 0) return [];
  const share = (total: number, index: number): number => Math.floor(total / count) + (index === 0 ? total % count : 0);
  return gpu.devices.map((device, index) => ({ name: device.name, vramTotalBytes: share(gpu.vramTotalBytes, index), vramFreeBytes: share(gpu.vramFreeBytes, index) }));
}

export function reportedStateOf(state: Omit<PeerStateMessage, "type" | "seq">): ReportedState {
  return {
    resources: {
      cpuCores: state.cpuCores,
      ramTotalBytes: state.ramTotalBytes,
      ramFreeBytes: state.ramFreeBytes,
      gpus: gpusOf(state.gpu),
      gpuBackend: state.gpu.backend,
      vramTotalBytes: state.gpu.vramTotalBytes,
      vramFreeBytes: state.gpu.vramFreeBytes,
      ...(state.memoryBudgetBytes === undefined ? {} : { memoryBudgetBytes: state.memoryBudgetBytes }),
    },
    models: state.modelsPresent.map((model) => ({ id: model.id, sizeBytes: model.sizeBytes, sha256: model.sha256 })),
    loadedModels: state.modelsLoaded.map((model) => model.id),
    queueDepth: state.queueDepth,
    speedScores: Object.fromEntries(state.speedScores.map((score) => [score.modelId, score.tokensPerSecond])),
  };
}
