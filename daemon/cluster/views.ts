/**
 * The JSON shapes of the cluster as `GET /hearth/v1/cluster` returns it and `hearth peers`
 * prints it: one NodeView for this node, one PeerView per peer seen this run. They are the
 * contract between the daemon, the CLI and the multi-host tests (docs/api.md), so fields are
 * only ever added.
 *
 * Also here: how a peer's wire snapshot (protocol/peer/messages.ts `peerState`) becomes the
 * NodeView fields, and back, so both directions stay in one place.
 *
 * Pure: no I/O.
 */

import type { PeerStateMessage } from "../../protocol/peer/messages.js";
import type { MdnsDiscoveryStatus } from "../discovery/MdnsDiscovery.js";
import type { GpuProbeState } from "../hardware/ResourceProbe.js";
import type { InboundFailure } from "../peers/PeerTable.js";

export interface GpuView {
  name: string;
  /**
   * node-llama-cpp reports VRAM per backend, not per device; with several devices the
   * backend's total is divided evenly among them (see ResourcesView for the exact totals).
   */
  vramTotalBytes: number;
  vramFreeBytes: number;
}

export interface ResourcesView {
  cpuCores: number;
  ramTotalBytes: number;
  ramFreeBytes: number;
  gpus: GpuView[];
  /** node-llama-cpp's GPU backend ("cuda", "vulkan", "metal"), null without a GPU. */
  gpuBackend: string | null;
  /** The backend's VRAM as node-llama-cpp reports it (0 without a GPU). */
  vramTotalBytes: number;
  vramFreeBytes: number;
  /** What the node offers a model or its layers of a split (`[rpc] memory_budget_bytes`); absent when not reported. */
  memoryBudgetBytes?: number;
}

export interface ModelPresentView {
  id: string;
  sizeBytes: number;
  /** Null until the file has been hashed (once, in the background). */
  sha256: string | null;
}

export interface NodeView {
  nodeId: string;
  /** SHA-256 of the node's TLS certificate, lower-case hex. */
  fingerprint: string;
  /** `host:port` of the peer listener. */
  addresses: string[];
  /** `major.minor`. */
  protocolVersion: string;
  softwareVersion: string;
  resources: ResourcesView;
  models: ModelPresentView[];
  loadedModels: string[];
  /** Requests running or waiting, over all loaded models. */
  queueDepth: number;
  /** Generation tokens/s per model id, measured once per model file on that machine. */
  speedScores: Record<string, number>;
}

export type PeerLinkState = "connecting" | "up" | "down" | "incompatible";
export type PeerSource = "mdns" | "static" | "inbound";

export interface PeerErrorView {
  code: string;
  message: string;
}

/** A peer as last reported: identity fields are null until known, state fields until its first snapshot. */
export interface PeerView {
  /** Null for a static address whose node has not completed a handshake yet. */
  nodeId: string | null;
  fingerprint: string | null;
  addresses: string[];
  protocolVersion: string | null;
  softwareVersion: string | null;
  resources: ResourcesView | null;
  models: ModelPresentView[] | null;
  loadedModels: string[] | null;
  queueDepth: number | null;
  speedScores: Record<string, number> | null;
  state: PeerLinkState;
  /** Smoothed heartbeat round trip of the current (or last) link. */
  rttMs: number | null;
  lastHeartbeatAgoMs: number | null;
  lastError: PeerErrorView | null;
  /** How this node first learned of the peer. */
  source: PeerSource;
}

export interface DialTargetDiagnostics {
  address: string;
  nodeId: string | null;
  linked: boolean;
  failures: number;
  lastFailure: { code: string; reason: string; agoMs: number } | null;
}

/** What `hearth doctor` needs beyond the ClusterView (`GET /hearth/v1/cluster/diagnostics`). */
export interface ClusterDiagnostics {
  nodeId: string;
  clusterId: string | null;
  listener: { host: string; port: number } | null;
  mdns: { enabled: boolean; status: MdnsDiscoveryStatus | null };
  staticPeers: string[];
  dialTargets: DialTargetDiagnostics[];
  inboundFailures: (Omit<InboundFailure, "at"> & { agoMs: number })[];
  /** Remote addresses the listener's failed-attempt limiter tracks, and handshakes running. */
  listenerLimiter: { trackedAddresses: number; pendingHandshakes: number } | null;
  hardware: { gpuProbe: GpuProbeState; failure: string | null };
  hashing: { pending: number };
}

/** `hearth status`'s line about the cluster. */
export interface ClusterSummary {
  clusterId: string | null;
  nodeId: string;
  peers: { total: number; up: number };
}

export interface ClusterView {
  /** Null when this node belongs to no cluster (standalone). */
  cluster: { clusterId: string } | null;
  local: NodeView;
  peers: PeerView[];
}

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
