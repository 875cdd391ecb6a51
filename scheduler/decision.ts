/**
 * The one decision of where a request runs: on this node, on a peer, or split by layers over
 * several nodes with this one as the host. Routing (daemon/routing/RoutingEngine.ts), batch
 * dispatch (daemon/jobs/JobRun.ts, through the router) and split recovery
 * (daemon/split/SplitEngine.ts) all ask this function, and `hearth plan` and the `hearth`
 * response extension print the reasons it gives.
 *
 *   run here          -> (a generation continued after a lost node) planned over the nodes
 *                        left: split with this node as host, whole here, or refused
 *   forced placement  -> planned as given (budgets still apply) on the node holding the file;
 *                        a single node listed runs it whole, pinned and never moved
 *   pinned            -> that node, whole (placement.ts resolves the pin)
 *   live split        -> the split placement of the model already on this node
 *   no file here, or no peer that could hold layers -> whole on the best node (placement.ts)
 *   otherwise         -> splitPlan.ts: whole where it fits (never on a node whose budget cannot
 *                        hold it), split when it fits nowhere whole or a split is clearly
 *                        faster, or refused with required vs available memory
 *
 * Pure: no I/O. The caller resolves the model once and collects one snapshot; the decision
 * is a function of them and the request's pins.
 */

import { HearthError, type HearthErrorCode } from "../protocol/errors.js";
import type { ClusterSnapshot } from "./clusterSnapshot.js";
import type { ModelLayout } from "./modelLayout.js";
import { placeRequest, type Candidate } from "./placement.js";
import { planNodes, resolvePlacementNodes, splitPeers } from "./planNodes.js";
import { planSplit, type LayerSplitPlan, type PlanRefusal, type SplitPlanOptions } from "./splitPlan.js";

/** The request field a forced placement comes from (protocol/openai/hearthExtension.ts). */
export const FORCED_PLACEMENT_PARAM = "hearth.placement";

export interface DecisionRequest {
  /** The client's name for the model: an id, an alias, a peer's id or a sha256. */
  model: string;
  /** A full node id or a unique prefix: run there, whole, or fail. */
  pinnedNodeId?: string;
  /** Nodes that must not run this attempt (a retry after one of them failed). */
  excludeNodeIds?: readonly string[];
  /** A layer split the request forces: nodes (ids or unique prefixes) in stage order, layers per node. */
  forcedPlacement?: { nodes: readonly string[]; layers: readonly number[] };
  /**
   * The request must run on this node, whole or as a split's host: a generation continued
   * after a node it ran on was lost, whose state is here. A whole-model plan for another node
   * comes back as a `remote` decision the caller cannot take.
   */
  runHere?: boolean;
}

/** This node's file for the requested model: what a split would run. */
export interface LocalModelFacts {
  /** This node's id for the file. */
  id: string;
  sha256: string | null;
  /** Its layout at the context the runner would use (modelLayout.ts); absent when its header does not describe one. */
  layout?: ModelLayout;
  /** Why there is no layout: such a model runs only whole. */
  layoutProblem?: string;
}

type PlannableModel = LocalModelFacts & { layout: ModelLayout };

function plannable(local: LocalModelFacts | undefined): local is PlannableModel {
  return local?.layout !== undefined;
}

export interface DecisionInput {
  snapshot: ClusterSnapshot;
  request: DecisionRequest;
  /** Absent when this node has no file for the model. */
  local?: LocalModelFacts;
  /** The plan of the split placement of this model live on this node, if one is. */
  livePlan?: LayerSplitPlan;
  planOptions?: Partial<SplitPlanOptions>;
}

/** Run the request whole on one node. */
export interface WholeDecision {
  kind: "local" | "remote";
  nodeId: string;
  /** The executing node's id for the model (the requested name when it lacks the file). */
  modelId: string;
  sha256: string | null;
  /** The executing node lacks the file and must fetch it first (only when pinned). */
  mustFetch: boolean;
  /** Whether the router may place the request once more elsewhere if this node fails first. */
  retry: boolean;
  /** Every reachable node holding the model that this decision allows, best first (batch jobs spread over them). */
  candidates: Candidate[];
  reasons: string[];
}

/** Run it split, this node hosting the runner. */
export interface SplitDecision {
  kind: "split";
  plan: LayerSplitPlan;
  /** The plan is the live placement's (nothing to load). */
  live: boolean;
  reasons: string[];
}

export interface RefusedDecision {
  kind: "refused";
  code: HearthErrorCode;
  message: string;
  param: string | null;
  /** For HEARTH_PLAN_DOES_NOT_FIT: the planner's numbers. */
  refusal?: PlanRefusal;
  reasons: string[];
}

export type Decision = WholeDecision | SplitDecision | RefusedDecision;

export function decide(input: DecisionInput): Decision {
  const { request } = input;
  if (request.runHere === true) return decideHere(input);
  if (request.forcedPlacement !== undefined) return decideForced(input, request.forcedPlacement);
  if (request.pinnedNodeId !== undefined) return placeWhole(input, { extraExcluded: [], retry: true, reasons: [] });
  if (input.livePlan !== undefined) {
    return { kind: "split", plan: input.livePlan, live: true, reasons: [`a split placement of ${input.livePlan.stages.length} stages is live on this node (${input.livePlan.reason})`] };
  }
  const { local } = input;
  if (!plannable(local) || splitPeers(input.snapshot).length === 0) return placeWhole(input, { extraExcluded: [], retry: true, reasons: [] });

  const nodes = planNodes(input.snapshot, local, { excludeNodeIds: request.excludeNodeIds ?? [] });
  const plan = planSplit({ layout: local.layout, nodes, modelName: local.id, ...(input.planOptions === undefined ? {} : { options: input.planOptions }) });
  if (!plan.ok) return { kind: "refused", code: plan.code, message: plan.message, param: null, refusal: plan, reasons: [plan.message] };
  if (plan.split) return { kind: "split", plan, live: false, reasons: [plan.reason] };
  // It fits whole somewhere: route it as usual, but never onto a node whose budget cannot hold it.
  const tooSmall = nodes.filter((node) => node.memoryBudgetBytes < plan.expectedMemoryBytes).map((node) => node.nodeId);
  return placeWhole(input, { extraExcluded: tooSmall, retry: true, reasons: [plan.reason] });
}

/** The nodes a batch job spreads its items over: every holder for a whole model, the host for a split. */
export function batchNodes(decision: Decision, localNodeId: string): Array<{ nodeId: string; speed: number | null; pinned: boolean }> {
  switch (decision.kind) {
    case "local":
    case "remote":
      return decision.candidates.map((candidate) => ({ nodeId: candidate.nodeId, speed: candidate.speed, pinned: true }));
    case "split":
      // Items run through the router unpinned, so each reaches the split placement.
      return [{ nodeId: localNodeId, speed: decision.plan.predictedTokensPerSecond, pinned: false }];
    case "refused":
      return [];
  }
}

function decideHere(input: DecisionInput): Decision {
  const { local, snapshot, request } = input;
  if (local === undefined) return refused("HEARTH_MODEL_NOT_FOUND", `This node has no file for ${request.model.slice(0, 200)}.`, "model");
  if (!plannable(local)) return refused("HEARTH_MODEL_LOAD_FAILED", local.layoutProblem ?? `Cannot plan model "${local.id}".`, null);
  const nodes = planNodes(snapshot, local, { excludeNodeIds: request.excludeNodeIds ?? [] });
  const plan = planSplit({ layout: local.layout, nodes, modelName: local.id, ...(input.planOptions === undefined ? {} : { options: input.planOptions }) });
  if (!plan.ok) return { kind: "refused", code: plan.code, message: plan.message, param: null, refusal: plan, reasons: [plan.message] };
  if (plan.split) return { kind: "split", plan, live: false, reasons: [plan.reason] };
  return {
    kind: plan.node === snapshot.localNodeId ? "local" : "remote",
    nodeId: plan.node,
    modelId: local.id,
    sha256: local.sha256,
    mustFetch: false,
    retry: false,
    candidates: [],
    reasons: [plan.reason],
  };
}

function decideForced(input: DecisionInput, forced: NonNullable<DecisionRequest["forcedPlacement"]>): Decision {
  const { local } = input;
  const model = input.request.model.slice(0, 200);
  if (local === undefined) {
    return refused(
      "HEARTH_INVALID_REQUEST",
      `A forced placement runs on the node holding the model file, and this node has no model ${JSON.stringify(model)}; send the request to a node that has it.`,
      FORCED_PLACEMENT_PARAM,
    );
  }
  if (!plannable(local)) return refused("HEARTH_MODEL_LOAD_FAILED", local.layoutProblem ?? `Cannot plan model "${local.id}".`, FORCED_PLACEMENT_PARAM);
  const nodes = planNodes(input.snapshot, local);
  let plan;
  try {
    plan = planSplit({
      layout: local.layout,
      nodes,
      modelName: local.id,
      forced: { nodes: resolvePlacementNodes(forced.nodes, nodes), layers: forced.layers },
      forcedParam: FORCED_PLACEMENT_PARAM,
      ...(input.planOptions === undefined ? {} : { options: input.planOptions }),
    });
  } catch (error) {
    // The planner refuses a placement it cannot apply with a typed error; anything else is a bug.
    if (error instanceof HearthError) return refused(error.code, error.message, error.param);
    throw error;
  }
  if (!plan.ok) return { kind: "refused", code: plan.code, message: plan.message, param: null, refusal: plan, reasons: [plan.message] };
  if (plan.split) return { kind: "split", plan, live: false, reasons: [plan.reason] };
  // One node listed alone runs the whole model there, pinned and never moved.
  return placeWhole({ ...input, request: { model: input.request.model, pinnedNodeId: plan.node } }, { extraExcluded: [], retry: false, reasons: [`${plan.reason}: whole on one node`] });
}

function placeWhole(input: DecisionInput, options: { extraExcluded: readonly string[]; retry: boolean; reasons: string[] }): Decision {
  const { snapshot, request } = input;
  const excluded = [...(request.excludeNodeIds ?? []), ...options.extraExcluded];
  const placement = placeRequest(snapshot, {
    model: request.model,
    ...(request.pinnedNodeId === undefined ? {} : { pinnedNodeId: request.pinnedNodeId }),
    ...(excluded.length === 0 ? {} : { excludeNodeIds: excluded }),
  });
  if (!placement.ok) return refused(placement.code, placement.message, placement.code === "HEARTH_MODEL_NOT_FOUND" ? "model" : null, options.reasons);
  const holds = placement.candidates.some((candidate) => candidate.nodeId === placement.nodeId);
  // A node left out (too small for the model, or failed this request) is no candidate either.
  const left = new Set(excluded);
  return {
    kind: placement.nodeId === snapshot.localNodeId ? "local" : "remote",
    nodeId: placement.nodeId,
    modelId: placement.modelId,
    sha256: placement.sha256,
    mustFetch: !holds,
    retry: options.retry,
    candidates: placement.candidates.filter((candidate) => !left.has(candidate.nodeId)),
    reasons: [...options.reasons, placement.reason],
  };
}

function refused(code: HearthErrorCode, message: string, param: string | null, reasons: readonly string[] = []): RefusedDecision {
  return { kind: "refused", code, message, param, reasons: [...reasons, message] };
}
