/**
 * GET /hearth/v1/status: what this daemon is and what it has loaded, for `hearth status`:
 * version, uptime, the address it listens on and its loaded models; inside a daemon also a
 * short cluster summary, the model transfers from peers in progress and the live split
 * placements.
 *
 * Pure: no I/O.
 */

import { z } from "zod";
import { placementViewSchema } from "./placement.js";
import { transferViewSchema } from "./pulls.js";

/** One loaded model as the engine reports it (`EngineStats.loaded`). */
export const loadedModelStatsSchema = z.object({
  modelId: z.string(),
  /** A whole-model runner, or the host runner of a split placement (daemon/split/). */
  placement: z.enum(["whole", "split"]),
  /** Absent until the runner process exists. */
  pid: z.number().optional(),
  state: z.enum(["loading", "ready", "stopping"]),
  running: z.number(),
  queued: z.number(),
  lastUsedAt: z.number(),
  /** Epoch ms at which the runner stops if no request comes (keep-alive); null: kept loaded until asked. */
  expiresAt: z.number().nullable().optional(),
});

/** `hearth status`'s line about the cluster. */
export const clusterSummarySchema = z.object({
  /** Null when this node belongs to no cluster (standalone). */
  clusterId: z.string().nullable(),
  nodeId: z.string(),
  peers: z.object({ total: z.number(), up: z.number() }),
});

export const statusSchema = z.object({
  version: z.string(),
  uptimeSeconds: z.number(),
  listen: z.object({ host: z.string(), port: z.number() }),
  models: z.array(loadedModelStatsSchema),
  /** The parts below are there when the API runs inside a daemon (not in an API-only test). */
  cluster: clusterSummarySchema.optional(),
  transfers: z.array(transferViewSchema).optional(),
  placements: z.array(placementViewSchema).optional(),
});

export type LoadedModelStats = z.infer<typeof loadedModelStatsSchema>;
export type ClusterSummary = z.infer<typeof clusterSummarySchema>;
export type Status = z.infer<typeof statusSchema>;
