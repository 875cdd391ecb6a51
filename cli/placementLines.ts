/**
 * Human lines for layer placements: a live placement (GET /hearth/v1/status `placements`)
 * and a plan (GET /hearth/v1/plan), shared by `hearth status` and `hearth plan`.
 */

import type { PlacementView } from "../protocol/api/placement.js";
import type { PlanStageView } from "../protocol/api/plan.js";

/** What a stage line shows; live placements and plans both have it. */
type StageFacts = Pick<PlanStageView, "nodeId" | "firstLayer" | "layerCount" | "memoryBytes" | "holdsOutput">;

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function shortId(id: string): string {
  return id.split("-")[0]!;
}

/** "ABCDEFG layers 0-3 (12.0 MiB)" per stage. */
export function stageLines(stages: readonly StageFacts[]): string[] {
  return stages.map((stage) => {
    const range = stage.layerCount === 0 ? "no layers (input only)" : `layers ${stage.firstLayer}-${stage.firstLayer + stage.layerCount - 1}`;
    return `${shortId(stage.nodeId)}  ${range}${stage.holdsOutput ? " + output" : ""}  (${mib(stage.memoryBytes)})`;
  });
}

/** One block per live placement: "tiny: split over 2 nodes, ready" then its stages. */
export function placementLines(placements: readonly PlacementView[]): string[] {
  return placements.flatMap((placement) => {
    const what = placement.split ? `split over ${placement.stages.length} nodes` : "whole on this node";
    const head = `placement ${placement.modelId}: ${what}, ${placement.state}${placement.forced ? " (forced)" : ""}`;
    return [head, ...stageLines(placement.stages).map((line) => `  ${line}`)];
  });
}
