/**
 * A live split placement as the API shows it: `placements` in GET /hearth/v1/status and
 * GET /hearth/v1/cluster, and `live` in GET /hearth/v1/plan. Built by the split engine
 * (daemon/split/SplitPlacement.ts `view()`); `hearth status` and `hearth plan` print it.
 *
 * Like every schema in protocol/api/, objects strip unknown fields instead of refusing them:
 * a newer daemon may add fields, and an older CLI simply does not look at them.
 *
 * Pure: no I/O.
 */

import { z } from "zod";

export const placementStageViewSchema = z.object({
  nodeId: z.string(),
  /** First repeating layer (blk.N) on this node, and how many it holds. */
  firstLayer: z.number(),
  layerCount: z.number(),
  holdsInput: z.boolean(),
  holdsOutput: z.boolean(),
  memoryBytes: z.number(),
});

export const placementViewSchema = z.object({
  modelId: z.string(),
  sha256: z.string().nullable(),
  /** "loading" until its runner is up; "idle" between requests until keep-alive releases it. */
  state: z.enum(["loading", "ready", "idle", "retired"]),
  forced: z.boolean(),
  split: z.boolean(),
  predictedTokensPerSecond: z.number(),
  reason: z.string(),
  stages: z.array(placementStageViewSchema),
  /** How many times it replaced a placement that lost a node. */
  recoveries: z.number(),
  createdAt: z.number(),
});

export type PlacementStageView = z.infer<typeof placementStageViewSchema>;
export type PlacementView = z.infer<typeof placementViewSchema>;
