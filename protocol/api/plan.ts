/**
 * GET /hearth/v1/plan?model=ID: how this node would place a model now, without loading
 * anything (`hearth plan`): the planner's inputs, its result (whole, split by layers, or a
 * refusal with its numbers), the decision a request for the model would get, and the live
 * placement if there is one. docs/api.md ("Plans") and docs/splitting.md explain the fields.
 *
 * The planner (scheduler/splitPlan.ts) returns these shapes; scheduler/ sits above
 * protocol/, so this file describes their JSON and the daemon's handler types its answer
 * with PlanReport, which makes the compiler check that every plan the scheduler can return
 * fits it.
 *
 * Pure: no I/O.
 */

import { z } from "zod";
import { placementViewSchema } from "./placement.js";

/** One node as the planner saw it. */
export const planNodeViewSchema = z.object({
  nodeId: z.string(),
  /** The node that would run the runner: the one planning, holding the model file. */
  isHost: z.boolean(),
  /** Bytes this node may use for the model (weights, KV cache, buffers). */
  memoryBudgetBytes: z.number(),
  /** Round trip to the host; 0 for the host itself. */
  rttMs: z.number(),
  tokensPerSecond: z.number(),
});

export const planStageSchema = z.object({
  nodeId: z.string(),
  /** First repeating layer (blk.N) this stage holds. */
  firstLayer: z.number(),
  layerCount: z.number(),
  /** Weights, KV cache and buffers this stage needs on its node. */
  memoryBytes: z.number(),
  holdsInput: z.boolean(),
  holdsOutput: z.boolean(),
  /** Predicted time this stage adds to each token: its compute and, for a peer, its network hop. */
  computeMsPerToken: z.number(),
  networkMsPerToken: z.number(),
});

export const wholeModelPlanSchema = z.object({
  ok: z.literal(true),
  split: z.literal(false),
  node: z.string(),
  forced: z.boolean(),
  reason: z.string(),
  expectedMemoryBytes: z.number(),
  predictedTokensPerSecond: z.number(),
});

export const layerSplitPlanSchema = z.object({
  ok: z.literal(true),
  split: z.literal(true),
  forced: z.boolean(),
  /** Host first; the last stage holds the output layer. */
  stages: z.array(planStageSchema),
  /** What the runner passes llama.cpp so it places exactly these stages. */
  llama: z.object({ gpuLayers: z.number(), reportedMiB: z.array(z.number()) }),
  predictedTokensPerSecond: z.number(),
  reason: z.string(),
  leftOut: z.array(z.object({ nodeId: z.string(), why: z.string() })),
});

export const planRefusalSchema = z.object({
  ok: z.literal(false),
  code: z.literal("HEARTH_PLAN_DOES_NOT_FIT"),
  /** The least memory any placement needs (the whole model on one node); for a forced placement, its total. */
  requiredBytes: z.number(),
  /** The nodes' budgets together. */
  availableBytes: z.number(),
  perNode: z.array(
    z.object({
      nodeId: z.string(),
      budgetBytes: z.number(),
      /** What the forced placement asked of this node; null when not forced or not used. */
      neededBytes: z.number().nullable(),
      /** Layers of average size the node could hold beyond its fixed share. */
      maxLayers: z.number(),
    }),
  ),
  message: z.string(),
});

export const planResultSchema = z.discriminatedUnion("ok", [z.discriminatedUnion("split", [wholeModelPlanSchema, layerSplitPlanSchema]), planRefusalSchema]);

/** A placement decision as responses (`hearth.placement` of an answer, protocol/openai/hearthExtension.ts) and plans show it. */
export const placementSummarySchema = z.object({
  kind: z.enum(["local", "remote", "split", "refused"]),
  /** The node that runs it (a split's host); null when refused. */
  nodeId: z.string().nullable(),
  /** The decision's reasons, most general first. */
  reasons: z.array(z.string()),
});

export const planReportSchema = z.object({
  model: z.string(),
  sha256: z.string().nullable(),
  hostNodeId: z.string(),
  nodes: z.array(planNodeViewSchema),
  plan: planResultSchema,
  /** What a request for the model would get now, and why. */
  decision: placementSummarySchema,
  live: placementViewSchema.nullable(),
});

export type PlanNodeView = z.infer<typeof planNodeViewSchema>;
export type PlanStageView = z.infer<typeof planStageSchema>;
export type PlanResult = z.infer<typeof planResultSchema>;
export type PlacementSummary = z.infer<typeof placementSummarySchema>;
export type PlanReport = z.infer<typeof planReportSchema>;
