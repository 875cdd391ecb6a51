/**
 * GET /hearth/v1/plan and `hearth plan`: the planner's view of one model on this node now,
 * with the decision a request for it would get (scheduler/decision.ts) and the live placement.
 */

import type { PlacementSummary } from "../../protocol/inference.js";
import type { PlanNode, SplitPlanResult } from "../../scheduler/splitPlan.js";
import type { PlacementView } from "../split/SplitPlacement.js";

export interface PlanReport {
  model: string;
  sha256: string | null;
  hostNodeId: string;
  nodes: Array<Pick<PlanNode, "nodeId" | "isHost" | "memoryBudgetBytes" | "rttMs"> & { tokensPerSecond: number }>;
  plan: SplitPlanResult;
  /** What a request for the model would get now, and why. */
  decision: PlacementSummary;
  live: PlacementView | null;
}
