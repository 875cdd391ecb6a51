// The one decision of where a request runs (scheduler/decision.ts decide) and the nodes a batch
// job spreads over (batchNodes), branch by branch, over hand-made cluster snapshots and model
// layouts. Every decision is checked whole, and its reasons must name the criterion that
// decided it.

import { describe, expect, it } from "vitest";
import type { ClusterSnapshot, SnapshotNode } from "../../scheduler/clusterSnapshot.js";
import { batchNodes, decide, FORCED_PLACEMENT_PARAM, type Decision, type DecisionInput, type LocalModelFacts, type RefusedDecision, type SplitDecision, type WholeDecision } from "../../scheduler/decision.js";
import { planSplit } from "../../scheduler/splitPlan.js";
import { modelLayout } from "../support/modelLayout.js";
import { LLAMA_SHA, snapshotNode } from "../support/clusterSnapshot.js";
import { nodeIdFrom } from "../support/nodeIds.js";

const MIB = 1024 * 1024;

const A = nodeIdFrom("AAAAAAA");
const B = nodeIdFrom("BBBBBBB");
const C = nodeIdFrom("CCCCCCC");

const LAYOUT = modelLayout();

const LOCAL: LocalModelFacts = { id: "llama", sha256: LLAMA_SHA, layout: LAYOUT };
const UNPLANNABLE: LocalModelFacts = { id: "llama", sha256: LLAMA_SHA, layoutProblem: "its GGUF header has no head count" };

/** This node (A, holding the model) with a budget in MiB, and peers. */
function cluster(hostBudgetMiB: number, ...peers: SnapshotNode[]): ClusterSnapshot {
  return clusterWith({ memoryBudgetBytes: hostBudgetMiB * MIB }, ...peers);
}

function clusterWith(host: Partial<SnapshotNode>, ...peers: SnapshotNode[]): ClusterSnapshot {
  return { localNodeId: A, nodes: [snapshotNode(A, { local: true, rttMs: null, ...host }), ...peers] };
}

/** A peer that has reported a budget, so it can hold layers of a split. */
const budgeted = (nodeId: string, budgetMiB: number, overrides: Partial<SnapshotNode> = {}): SnapshotNode => snapshotNode(nodeId, { memoryBudgetBytes: budgetMiB * MIB, ...overrides });

function whole(decision: Decision): WholeDecision {
  if (decision.kind !== "local" && decision.kind !== "remote") throw new Error(`expected a whole-model decision, got ${JSON.stringify(decision)}`);
  return decision;
}
function split(decision: Decision): SplitDecision {
  if (decision.kind !== "split") throw new Error(`expected a split, got ${JSON.stringify(decision)}`);
  return decision;
}
function refused(decision: Decision): RefusedDecision {
  if (decision.kind !== "refused") throw new Error(`expected a refusal, got ${JSON.stringify(decision)}`);
  return decision;
}
const stages = (decision: SplitDecision): [string, number][] => decision.plan.stages.map((stage) => [stage.nodeId, stage.layerCount]);

function run(input: Omit<DecisionInput, "request"> & { request?: Partial<DecisionInput["request"]> }): Decision {
  return decide({ ...input, request: { model: "llama", ...input.request } });
}

describe("decide: a forced placement", () => {
  it("is refused with HEARTH_INVALID_REQUEST on hearth.placement when this node has no file for the model", () => {
    const decision = refused(run({ snapshot: cluster(2000, budgeted(B, 2000)), request: { forcedPlacement: { nodes: [A, B], layers: [4, 4] } } }));
    expect(decision).toMatchObject({ code: "HEARTH_INVALID_REQUEST", param: FORCED_PLACEMENT_PARAM });
    expect(decision.message).toBe('A forced placement runs on the node holding the model file, and this node has no model "llama"; send the request to a node that has it.');
    expect(decision.reasons).toEqual([decision.message]);
  });

  it("is refused with HEARTH_MODEL_LOAD_FAILED naming the layout problem when the file here cannot be planned", () => {
    const decision = refused(run({ snapshot: cluster(2000, budgeted(B, 2000)), local: UNPLANNABLE, request: { forcedPlacement: { nodes: [A, B], layers: [4, 4] } } }));
    expect(decision).toMatchObject({ code: "HEARTH_MODEL_LOAD_FAILED", param: FORCED_PLACEMENT_PARAM, message: "its GGUF header has no head count" });
  });

  it("over two nodes is that split, forced, even where the model would fit whole here", () => {
    const decision = split(run({ snapshot: cluster(2000, budgeted(B, 2000)), local: LOCAL, request: { forcedPlacement: { nodes: [A, B], layers: [3, 5] } } }));
    expect(stages(decision)).toEqual([
      [A, 3],
      [B, 5],
    ]);
    expect(decision.live).toBe(false);
    expect(decision.plan.forced).toBe(true);
    expect(decision.reasons).toEqual(["forced by the request"]);
  });

  it("names its nodes by unique prefix, in any case and without dashes", () => {
    const decision = split(run({ snapshot: cluster(2000, budgeted(B, 2000)), local: LOCAL, request: { forcedPlacement: { nodes: ["aaaaaaa", "bbbbbbbq"], layers: [4, 4] } } }));
    expect(stages(decision)).toEqual([
      [A, 4],
      [B, 4],
    ]);
  });

  it("on one node alone runs the whole model there, pinned and never moved (retry false)", () => {
    const decision = whole(run({ snapshot: cluster(2000, budgeted(B, 2000)), local: LOCAL, request: { forcedPlacement: { nodes: [B], layers: [8] } } }));
    expect(decision).toEqual({
      kind: "remote",
      nodeId: B,
      modelId: "llama",
      sha256: LLAMA_SHA,
      mustFetch: false,
      retry: false,
      candidates: [expect.objectContaining({ nodeId: A }), expect.objectContaining({ nodeId: B })],
      reasons: ["forced by the request: whole on one node", "pinned to BBBBBBB (on disk, not loaded)"],
    });
  });

  it("that the planner cannot apply is refused with the planner's code and param", () => {
    const sum = refused(run({ snapshot: cluster(2000, budgeted(B, 2000)), local: LOCAL, request: { forcedPlacement: { nodes: [A, B], layers: [3, 4] } } }));
    expect(sum).toMatchObject({ code: "HEARTH_INVALID_REQUEST", param: FORCED_PLACEMENT_PARAM, message: "invalid forced placement: layer counts add up to 7, but the model has 8 layers" });
    const unknown = refused(run({ snapshot: cluster(2000, budgeted(B, 2000)), local: LOCAL, request: { forcedPlacement: { nodes: [A, C], layers: [4, 4] } } }));
    expect(unknown).toMatchObject({ code: "HEARTH_INVALID_REQUEST", param: FORCED_PLACEMENT_PARAM, message: `invalid forced placement: node "${C}" is not an available node of the cluster` });
    const hostSecond = refused(run({ snapshot: cluster(2000, budgeted(B, 2000)), local: LOCAL, request: { forcedPlacement: { nodes: [B, A], layers: [4, 4] } } }));
    expect(hostSecond).toMatchObject({ code: "HEARTH_INVALID_REQUEST", param: FORCED_PLACEMENT_PARAM, message: `invalid forced placement: the host ${A} runs the first layers, so it must be listed first` });
  });

  it("that does not fit the budgets is refused HEARTH_PLAN_DOES_NOT_FIT with the planner's numbers", () => {
    const decision = refused(run({ snapshot: cluster(2000, budgeted(B, 300)), local: LOCAL, request: { forcedPlacement: { nodes: [A, B], layers: [2, 6] } } }));
    expect(decision.code).toBe("HEARTH_PLAN_DOES_NOT_FIT");
    expect(decision.param).toBeNull();
    // B holds 6 layers of 110 MiB, its buffers and the output layer: 730 MiB in 300.
    expect(decision.message).toBe(`The forced placement of llama does not fit: ${B} needs 730.00 MiB but its budget is 300.00 MiB.`);
    expect(decision.refusal).toMatchObject({ ok: false, code: "HEARTH_PLAN_DOES_NOT_FIT", requiredBytes: (290 + 730) * MIB, availableBytes: 2300 * MIB });
    expect(decision.reasons).toEqual([decision.message]);
  });
});

describe("decide: a pinned request", () => {
  it("runs whole on the pinned node (a unique prefix names it) without planning the split the model would need", () => {
    // Whole, the model fits neither node; a split would be planned if it were not pinned. The
    // decision leaves retry on: the router itself never moves a pinned request.
    const decision = whole(run({ snapshot: cluster(600, budgeted(B, 600)), local: LOCAL, request: { pinnedNodeId: "bbbbbb" } }));
    expect(decision).toMatchObject({ kind: "remote", nodeId: B, modelId: "llama", sha256: LLAMA_SHA, mustFetch: false, retry: true });
    expect(decision.reasons).toEqual(["pinned to BBBBBBB (on disk, not loaded)"]);
  });

  it("to a node that lacks the file runs there under the requested name and the holders' sha256, which it must fetch", () => {
    const decision = whole(run({ snapshot: cluster(2000, snapshotNode(C, { models: [] })), local: LOCAL, request: { pinnedNodeId: C } }));
    expect(decision).toMatchObject({ kind: "remote", nodeId: C, modelId: "llama", sha256: LLAMA_SHA, mustFetch: true });
    expect(decision.reasons).toEqual(["pinned to CCCCCCC, which lacks llama; it must fetch it from AAAAAAA"]);
  });

  it("to an unreachable node is refused HEARTH_PEER_UNAVAILABLE", () => {
    const decision = refused(run({ snapshot: cluster(2000, snapshotNode(B, { reachable: false })), local: LOCAL, request: { pinnedNodeId: B } }));
    expect(decision).toMatchObject({ code: "HEARTH_PEER_UNAVAILABLE", param: null, message: `The pinned node ${B} is not reachable right now.` });
  });
});

describe("decide: a live split placement", () => {
  it("is reused as it is, even for a model that would now fit whole here", () => {
    const livePlan = planSplit({ layout: LAYOUT, nodes: [{ nodeId: A, isHost: true, memoryBudgetBytes: 600 * MIB, speed: { tokensPerSecond: 1 }, rttMs: 0 }, { nodeId: B, isHost: false, memoryBudgetBytes: 600 * MIB, speed: { tokensPerSecond: 1 }, rttMs: 1 }], modelName: "llama" });
    if (!livePlan.ok || !livePlan.split) throw new Error("the live plan must be a split");
    const decision = split(run({ snapshot: cluster(4000, budgeted(B, 4000)), local: LOCAL, livePlan }));
    expect(decision.plan).toBe(livePlan);
    expect(decision.live).toBe(true);
    expect(decision.reasons).toEqual([`a split placement of 2 stages is live on this node (${livePlan.reason})`]);
  });
});

describe("decide: whole on the best node without planning", () => {
  it("when this node has no file for the model: the best holder, even with peers that could hold layers, with the placement's reason", () => {
    const snapshot = clusterWith({ models: [], memoryBudgetBytes: 2000 * MIB }, budgeted(B, 2000, { loadedModels: ["llama"] }), budgeted(C, 2000, { models: [{ id: "llama-c", aliases: [], sha256: LLAMA_SHA, sizeBytes: 1 }] }));
    const decision = whole(run({ snapshot }));
    expect(decision).toMatchObject({ kind: "remote", nodeId: B, modelId: "llama", sha256: LLAMA_SHA, mustFetch: false, retry: true });
    expect(decision.reasons).toEqual(["loaded on BBBBBBB; CCCCCCC only has it on disk"]);
    // C names the same file its own way; it is addressed by its own id.
    const onC = whole(run({ snapshot, request: { excludeNodeIds: [B] } }));
    expect(onC).toMatchObject({ kind: "remote", nodeId: C, modelId: "llama-c", sha256: LLAMA_SHA });
  });

  it("when no peer could hold layers (none has reported a budget): placement alone decides, even for a model too big for this node", () => {
    const decision = whole(run({ snapshot: cluster(100, snapshotNode(B)), local: LOCAL }));
    expect(decision).toMatchObject({ kind: "local", nodeId: A, modelId: "llama", retry: true, mustFetch: false });
    expect(decision.reasons).toEqual(["tie with BBBBBBB (on disk, queue 0, speed not measured); AAAAAAA is this node"]);
  });

  it("when the file here has no layout: placement alone decides", () => {
    const decision = whole(run({ snapshot: cluster(100, budgeted(B, 100, { queueDepth: 3 })), local: UNPLANNABLE }));
    expect(decision).toMatchObject({ kind: "local", nodeId: A });
    expect(decision.reasons).toEqual(["shortest expected wait on AAAAAAA (queue 0, speed not measured) vs BBBBBBB (queue 3, speed not measured)"]);
  });

  it("an unknown model is HEARTH_MODEL_NOT_FOUND on param model", () => {
    const decision = refused(run({ snapshot: cluster(2000, snapshotNode(B)), request: { model: "ghost" } }));
    expect(decision).toMatchObject({ code: "HEARTH_MODEL_NOT_FOUND", param: "model", message: "No node in the cluster has a model named ghost." });
  });
});

describe("decide: planned", () => {
  it("a model that fits nowhere, whole or split, is refused HEARTH_PLAN_DOES_NOT_FIT with required and available memory", () => {
    const decision = refused(run({ snapshot: cluster(300, budgeted(B, 300)), local: LOCAL }));
    expect(decision.code).toBe("HEARTH_PLAN_DOES_NOT_FIT");
    expect(decision.param).toBeNull();
    expect(decision.refusal).toMatchObject({ requiredBytes: 1000 * MIB, availableBytes: 600 * MIB });
    expect(decision.message).toMatch(/^Llama does not fit in the cluster: it needs at least 1000\.00 MiB .* but the nodes offer 600\.00 MiB in total: /);
    expect(decision.reasons).toEqual([decision.message]);
  });

  it("a model no single node can hold is split over this node and the peer, and the reason says so", () => {
    const decision = split(run({ snapshot: cluster(600, budgeted(B, 600)), local: LOCAL }));
    // Each stage holds at most 4 layers of 110 MiB besides its 70 MiB of buffers and input or output.
    expect(stages(decision)).toEqual([
      [A, 4],
      [B, 4],
    ]);
    expect(decision.live).toBe(false);
    expect(decision.plan.forced).toBe(false);
    expect(decision.reasons).toHaveLength(1);
    expect(decision.reasons[0]).toMatch(/^no single node can hold llama \(1000\.00 MiB\); split over 2 nodes, predicted \d+\.\d\d tok\/s$/);
  });

  it("a model that fits whole here runs here, never on a peer whose budget cannot hold it, even one that has it loaded", () => {
    // Placement alone would pick B (loaded beats on disk), but B's 600 MiB cannot hold 1000 MiB.
    const decision = whole(run({ snapshot: cluster(2000, budgeted(B, 600, { loadedModels: ["llama"] })), local: LOCAL }));
    expect(decision).toMatchObject({ kind: "local", nodeId: A, modelId: "llama", sha256: LLAMA_SHA, retry: true, mustFetch: false });
    expect(decision.reasons).toHaveLength(2);
    expect(decision.reasons[0]).toMatch(/^Llama fits whole on this node \(1000\.00 MiB of its 1\.95 GiB budget\); the best split predicts [\d.]+ tok\/s, not the 1\.1x gain over [\d.]+ tok\/s that justifies splitting$/);
    expect(decision.reasons[1]).toBe("AAAAAAA is the only reachable node with llama (on disk)");
  });

  it("a model that fits whole only on a peer runs there, and the reason says it does not fit here", () => {
    const decision = whole(run({ snapshot: cluster(300, budgeted(B, 2000)), local: LOCAL }));
    expect(decision).toMatchObject({ kind: "remote", nodeId: B, retry: true });
    expect(decision.reasons[0]).toMatch(new RegExp(`^Llama fits whole on node ${B} \\(1000\\.00 MiB of its 1\\.95 GiB budget\\); it does not fit on this node; `));
    expect(decision.reasons[1]).toBe("BBBBBBB is the only reachable node with llama (on disk)");
  });

  it("excluded nodes (a retry) are left out of the plan as well as the placement", () => {
    const excluded = split(run({ snapshot: cluster(600, budgeted(B, 600), budgeted(C, 600)), local: LOCAL, request: { excludeNodeIds: [B] } }));
    expect(stages(excluded)).toEqual([
      [A, 4],
      [C, 4],
    ]);
    const both = refused(run({ snapshot: cluster(600, budgeted(B, 600), budgeted(C, 600)), local: LOCAL, request: { excludeNodeIds: [B, C] } }));
    expect(both.code).toBe("HEARTH_PLAN_DOES_NOT_FIT");
    const wholeElsewhere = whole(run({ snapshot: cluster(2000, budgeted(B, 2000, { loadedModels: ["llama"] })), local: LOCAL, request: { excludeNodeIds: [B] } }));
    expect(wholeElsewhere).toMatchObject({ kind: "local", nodeId: A });
  });

  it("with every holder excluded and nothing to plan, the request is refused HEARTH_PEER_UNAVAILABLE", () => {
    const decision = refused(run({ snapshot: clusterWith({ models: [] }, snapshotNode(B)), request: { excludeNodeIds: [B] } }));
    expect(decision).toMatchObject({ code: "HEARTH_PEER_UNAVAILABLE", param: null, message: "No node other than the excluded BBBBBBB has the model llama." });
  });
});

describe("decide: run here (a generation continued after a lost node)", () => {
  it("without a file here is refused HEARTH_MODEL_NOT_FOUND", () => {
    const decision = refused(run({ snapshot: cluster(2000), request: { runHere: true } }));
    expect(decision).toMatchObject({ code: "HEARTH_MODEL_NOT_FOUND", param: "model", message: "This node has no file for llama." });
  });

  it("with a file that cannot be planned is refused HEARTH_MODEL_LOAD_FAILED", () => {
    const decision = refused(run({ snapshot: cluster(2000), local: UNPLANNABLE, request: { runHere: true } }));
    expect(decision).toMatchObject({ code: "HEARTH_MODEL_LOAD_FAILED", param: null, message: "its GGUF header has no head count" });
  });

  it("splits with this node as the host when no node holds the model whole", () => {
    const decision = split(run({ snapshot: cluster(600, budgeted(B, 600)), local: LOCAL, request: { runHere: true } }));
    expect(stages(decision)).toEqual([
      [A, 4],
      [B, 4],
    ]);
    expect(decision.live).toBe(false);
  });

  it("runs whole here when it fits here: local, never retried, no candidates", () => {
    const decision = run({ snapshot: cluster(2000, budgeted(B, 600)), local: LOCAL, request: { runHere: true } });
    expect(decision).toEqual({
      kind: "local",
      nodeId: A,
      modelId: "llama",
      sha256: LLAMA_SHA,
      mustFetch: false,
      retry: false,
      candidates: [],
      reasons: [expect.stringMatching(/^Llama fits whole on this node \(1000\.00 MiB of its 1\.95 GiB budget\)/)],
    });
  });

  it("answers remote when only a peer can hold it whole (a decision the caller cannot take)", () => {
    const decision = whole(run({ snapshot: cluster(300, budgeted(B, 2000)), local: LOCAL, request: { runHere: true } }));
    expect(decision).toMatchObject({ kind: "remote", nodeId: B, modelId: "llama", retry: false, candidates: [] });
    expect(decision.reasons[0]).toMatch(new RegExp(`^Llama fits whole on node ${B} `));
  });

  it("is refused HEARTH_PLAN_DOES_NOT_FIT when the nodes left cannot hold it", () => {
    const decision = refused(run({ snapshot: cluster(300, budgeted(B, 300)), local: LOCAL, request: { runHere: true } }));
    expect(decision.code).toBe("HEARTH_PLAN_DOES_NOT_FIT");
    expect(decision.refusal).toMatchObject({ requiredBytes: 1000 * MIB, availableBytes: 600 * MIB });
  });

  it("leaves the lost (excluded) node out of the new plan", () => {
    const decision = split(run({ snapshot: cluster(600, budgeted(B, 600), budgeted(C, 600)), local: LOCAL, request: { runHere: true, excludeNodeIds: [B] } }));
    expect(stages(decision)).toEqual([
      [A, 4],
      [C, 4],
    ]);
    const alone = refused(run({ snapshot: cluster(600, budgeted(B, 600)), local: LOCAL, request: { runHere: true, excludeNodeIds: [B] } }));
    expect(alone.code).toBe("HEARTH_PLAN_DOES_NOT_FIT");
  });

  it("takes precedence over a pin and a forced placement", () => {
    const decision = run({ snapshot: cluster(2000, budgeted(B, 2000)), local: LOCAL, request: { runHere: true, pinnedNodeId: B, forcedPlacement: { nodes: [B], layers: [8] } } });
    expect(decision).toMatchObject({ kind: "local", nodeId: A, retry: false });
  });
});

describe("batchNodes", () => {
  it("a whole-model decision spreads over every reachable holder, best first, each pinned, with its measured speed", () => {
    const decision = run({
      snapshot: cluster(2000, snapshotNode(B, { loadedModels: ["llama"], speedScores: { llama: 12 } }), snapshotNode(C, { reachable: false })),
      local: LOCAL,
    });
    expect(batchNodes(decision, A)).toEqual([
      { nodeId: B, speed: 12, pinned: true },
      { nodeId: A, speed: null, pinned: true },
    ]);
  });

  it("a whole-model decision leaves out a holder whose budget cannot hold the model, even when it has it loaded", () => {
    const decision = whole(run({ snapshot: cluster(2000, budgeted(B, 600, { loadedModels: ["llama"], speedScores: { llama: 50 } })), local: LOCAL }));
    expect(decision).toMatchObject({ kind: "local", nodeId: A });
    expect(batchNodes(decision, A)).toEqual([{ nodeId: A, speed: null, pinned: true }]);
  });

  it("a split runs on this node, the host, unpinned (items reach the placement through the router), at the plan's speed", () => {
    const decision = split(run({ snapshot: cluster(600, budgeted(B, 600)), local: LOCAL }));
    expect(batchNodes(decision, A)).toEqual([{ nodeId: A, speed: decision.plan.predictedTokensPerSecond, pinned: false }]);
    expect(decision.plan.predictedTokensPerSecond).toBeGreaterThan(0);
  });

  it("a refused decision has no nodes", () => {
    expect(batchNodes(run({ snapshot: cluster(300, budgeted(B, 300)), local: LOCAL }), A)).toEqual([]);
  });

  it("a live split is spread like a new one", () => {
    const livePlan = split(run({ snapshot: cluster(600, budgeted(B, 600)), local: LOCAL })).plan;
    expect(batchNodes(run({ snapshot: cluster(600, budgeted(B, 600)), local: LOCAL, livePlan }), A)).toEqual([{ nodeId: A, speed: livePlan.predictedTokensPerSecond, pinned: false }]);
  });
});
