/**
 * GET /hearth/v1/cluster: this node (NodeView) and every peer it has seen this run
 * (PeerView), plus the split placements it hosts. `hearth peers`, `hearth doctor`, the
 * router (which reads the same view) and the multi-host tests rely on it (docs/api.md,
 * "Cluster"), so fields are only ever added.
 *
 * Pure: no I/O.
 */

import { z } from "zod";
import { placementViewSchema } from "./placement.js";

export const gpuViewSchema = z.object({
  name: z.string(),
  /**
   * node-llama-cpp reports VRAM per backend, not per device; with several devices the
   * backend's total is divided evenly among them (see ResourcesView for the exact totals).
   */
  vramTotalBytes: z.number(),
  vramFreeBytes: z.number(),
});

export const resourcesViewSchema = z.object({
  cpuCores: z.number(),
  ramTotalBytes: z.number(),
  ramFreeBytes: z.number(),
  gpus: z.array(gpuViewSchema),
  /** node-llama-cpp's GPU backend ("cuda", "vulkan", "metal"), null without a GPU. */
  gpuBackend: z.string().nullable(),
  /** The backend's VRAM as node-llama-cpp reports it (0 without a GPU). */
  vramTotalBytes: z.number(),
  vramFreeBytes: z.number(),
  /** What the node offers a model or its layers of a split (`[rpc] memory_budget_bytes`); absent when not reported. */
  memoryBudgetBytes: z.number().optional(),
});

export const modelPresentViewSchema = z.object({
  id: z.string(),
  sizeBytes: z.number(),
  /** Null until the file has been hashed (once, in the background). */
  sha256: z.string().nullable(),
});

export const nodeViewSchema = z.object({
  nodeId: z.string(),
  /** SHA-256 of the node's TLS certificate, lower-case hex. */
  fingerprint: z.string(),
  /** `host:port` of the peer listener. */
  addresses: z.array(z.string()),
  /** `major.minor`. */
  protocolVersion: z.string(),
  softwareVersion: z.string(),
  resources: resourcesViewSchema,
  models: z.array(modelPresentViewSchema),
  loadedModels: z.array(z.string()),
  /** Requests running or waiting, over all loaded models. */
  queueDepth: z.number(),
  /** Generation tokens/s per model id, measured once per model file on that machine. */
  speedScores: z.record(z.string(), z.number()),
});

export const peerLinkStateSchema = z.enum(["connecting", "up", "down", "incompatible"]);
export const peerSourceSchema = z.enum(["mdns", "static", "inbound"]);

export const peerErrorViewSchema = z.object({
  code: z.string(),
  message: z.string(),
});

/** A peer as last reported: identity fields are null until known, state fields until its first snapshot. */
export const peerViewSchema = z.object({
  /** Null for a static address whose node has not completed a handshake yet. */
  nodeId: z.string().nullable(),
  fingerprint: z.string().nullable(),
  addresses: z.array(z.string()),
  protocolVersion: z.string().nullable(),
  softwareVersion: z.string().nullable(),
  resources: resourcesViewSchema.nullable(),
  models: z.array(modelPresentViewSchema).nullable(),
  loadedModels: z.array(z.string()).nullable(),
  queueDepth: z.number().nullable(),
  speedScores: z.record(z.string(), z.number()).nullable(),
  state: peerLinkStateSchema,
  /** Smoothed heartbeat round trip of the current (or last) link. */
  rttMs: z.number().nullable(),
  lastHeartbeatAgoMs: z.number().nullable(),
  lastError: peerErrorViewSchema.nullable(),
  /** How this node first learned of the peer. */
  source: peerSourceSchema,
});

/** The cluster as this node sees it; the router plans from the same view. */
export const clusterViewSchema = z.object({
  /** Null when this node belongs to no cluster (standalone). */
  cluster: z.object({ clusterId: z.string() }).nullable(),
  local: nodeViewSchema,
  peers: z.array(peerViewSchema),
});

/** The answer of GET /hearth/v1/cluster: the view, and the split placements this node hosts when it runs a split engine. */
export const clusterResponseSchema = clusterViewSchema.extend({
  placements: z.array(placementViewSchema).optional(),
});

export type GpuView = z.infer<typeof gpuViewSchema>;
export type ResourcesView = z.infer<typeof resourcesViewSchema>;
export type ModelPresentView = z.infer<typeof modelPresentViewSchema>;
export type NodeView = z.infer<typeof nodeViewSchema>;
export type PeerLinkState = z.infer<typeof peerLinkStateSchema>;
export type PeerSource = z.infer<typeof peerSourceSchema>;
export type PeerErrorView = z.infer<typeof peerErrorViewSchema>;
export type PeerView = z.infer<typeof peerViewSchema>;
export type ClusterView = z.infer<typeof clusterViewSchema>;
export type ClusterResponse = z.infer<typeof clusterResponseSchema>;
