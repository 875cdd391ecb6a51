/**
 * Human lines for layer placements: a live placement (GET /hearth/v1/status `placements`)
 * and a plan (GET /hearth/v1/plan), shared by `hearth status` and `hearth plan`. Input comes
 * from the daemon over HTTP, so every field is checked before use.
 */

interface StageLike {
  nodeId?: unknown;
  firstLayer?: unknown;
  layerCount?: unknown;
  memoryBytes?: unknown;
  holdsOutput?: unknown;
}

function mib(bytes: unknown): string {
  return typeof bytes === "number" ? `${(bytes / 1024 / 1024).toFixed(1)} MiB` : "?";
}

function shortId(id: unknown): string {
  return typeof id === "string" ? id.split("-")[0]! : "?";
}

/** "ABCDEFG layers 0-3 (12.0 MiB)" per stage. */
export function stageLines(stages: unknown): string[] {
  if (!Array.isArray(stages)) return [];
  return stages.map((entry: unknown) => {
    const stage = (entry ?? {}) as StageLike;
    const first = typeof stage.firstLayer === "number" ? stage.firstLayer : 0;
    const count = typeof stage.layerCount === "number" ? stage.layerCount : 0;
    const range = count === 0 ? "no layers (input only)" : `layers ${first}-${first + count - 1}`;
    return `${shortId(stage.nodeId)}  ${range}${stage.holdsOutput === true ? " + output" : ""}  (${mib(stage.memoryBytes)})`;
  });
}

/** One block per live placement: "tiny: split over 2 nodes, ready" then its stages. */
export function placementLines(placements: unknown): string[] {
  if (!Array.isArray(placements)) return [];
  return placements.flatMap((entry: unknown) => {
    const placement = (entry ?? {}) as { modelId?: unknown; split?: unknown; state?: unknown; forced?: unknown; stages?: unknown };
    const stages = Array.isArray(placement.stages) ? placement.stages.length : 0;
    const what = placement.split === true ? `split over ${stages} nodes` : "whole on this node";
    const head = `placement ${String(placement.modelId)}: ${what}, ${String(placement.state)}${placement.forced === true ? " (forced)" : ""}`;
    return [head, ...stageLines(placement.stages).map((line) => `  ${line}`)];
  });
}
