import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { ClusterSnapshot, SnapshotNode } from "../../scheduler/clusterSnapshot.js";
import { candidatesFor, MIN_PIN_PREFIX_LENGTH, placeRequest, resolvePin, resolvePinnedNode, type Placement } from "../../scheduler/placement.js";
import { LLAMA_SHA, snapshotModel, snapshotNode } from "../support/clusterSnapshot.js";
import { nodeIdFrom } from "../support/nodeIds.js";

const A = nodeIdFrom("AAAAAAA");
const B = nodeIdFrom("BBBBBBB");
const C = nodeIdFrom("CCCCCCC");

const SHA_OTHER = "b".repeat(64);

function snapshot(...nodes: SnapshotNode[]): ClusterSnapshot {
  const local = nodes.find((entry) => entry.local);
  return { localNodeId: local?.nodeId ?? nodes[0]!.nodeId, nodes };
}

function expectOk(placement: Placement): Extract<Placement, { ok: true }> {
  if (!placement.ok) throw new Error(`expected a placement, got ${placement.code}: ${placement.message}`);
  return placement;
}

function expectFailure(placement: Placement): Extract<Placement, { ok: false }> {
  if (placement.ok) throw new Error(`expected a failure, got ${placement.nodeId} (${placement.reason})`);
  return placement;
}

const order = (placementOrCandidates: Placement | ReturnType<typeof candidatesFor>): string[] =>
  (Array.isArray(placementOrCandidates) ? placementOrCandidates : placementOrCandidates.candidates).map((candidate) => candidate.nodeId);

describe("placement ranking", () => {
  it("prefers a node with the model loaded over one that only has it on disk, whatever their queues", () => {
    const cluster = snapshot(
      snapshotNode(A, { local: true, rttMs: null, queueDepth: 0, speedScores: { llama: 100 } }),
      snapshotNode(B, { loadedModels: ["llama"], queueDepth: 5, speedScores: { llama: 10 } }),
    );
    const placement = expectOk(placeRequest(cluster, { model: "llama" }));
    expect(placement.nodeId).toBe(B);
    expect(placement.reason).toBe("loaded on BBBBBBB; AAAAAAA only has it on disk");
    expect(order(placement)).toEqual([B, A]);
  });

  it("among loaded nodes picks the shortest expected wait, (queue + 1) / speed", () => {
    // A: 4/10 = 0.4, B: 1/5 = 0.2 — the shallower queue wins although B is slower.
    const cluster = snapshot(
      snapshotNode(A, { loadedModels: ["llama"], queueDepth: 3, speedScores: { llama: 10 } }),
      snapshotNode(B, { loadedModels: ["llama"], queueDepth: 0, speedScores: { llama: 5 } }),
    );
    const placement = expectOk(placeRequest(cluster, { model: "llama" }));
    expect(placement.nodeId).toBe(B);
    expect(placement.reason).toMatch(/^shortest expected wait on BBBBBBB \(queue 0, 5 tok\/s\) vs AAAAAAA \(queue 3, 10 tok\/s\)$/);
  });

  it("a much faster node wins despite a deeper queue", () => {
    // A: 2/100 = 0.02, B: 1/10 = 0.1.
    const cluster = snapshot(snapshotNode(A, { queueDepth: 1, speedScores: { llama: 100 } }), snapshotNode(B, { queueDepth: 0, speedScores: { llama: 10 } }));
    expect(expectOk(placeRequest(cluster, { model: "llama" })).nodeId).toBe(A);
  });

  it("assumes an unmeasured node is as slow as the slowest measured one, and ranks it after a measured node of equal wait", () => {
    const cluster = snapshot(
      snapshotNode(A, { queueDepth: 0, speedScores: {} }),
      snapshotNode(B, { queueDepth: 0, speedScores: { llama: 10 } }),
      snapshotNode(C, { queueDepth: 0, speedScores: { llama: 5 } }),
    );
    // Waits: A 1/5 (assumed), B 1/10, C 1/5 measured -> B, C, A.
    expect(order(candidatesFor(cluster, "llama"))).toEqual([B, C, A]);
    const twoWay = snapshot(snapshotNode(A, { queueDepth: 0 }), snapshotNode(C, { queueDepth: 0, speedScores: { llama: 5 } }));
    const placement = expectOk(placeRequest(twoWay, { model: "llama" }));
    expect(placement.nodeId).toBe(C);
    expect(placement.reason).toBe("same expected wait; CCCCCCC has a measured speed, AAAAAAA does not");
  });

  it("an unmeasured node with a shorter queue beats a measured one with a longer queue", () => {
    // A: 1/10 (assumed from B), B: 3/10.
    const cluster = snapshot(snapshotNode(A, { queueDepth: 0 }), snapshotNode(B, { queueDepth: 2, speedScores: { llama: 10 } }));
    expect(expectOk(placeRequest(cluster, { model: "llama" })).nodeId).toBe(A);
  });

  it("with no speed measured anywhere, queue depth decides", () => {
    const cluster = snapshot(snapshotNode(A, { queueDepth: 2 }), snapshotNode(B, { queueDepth: 1 }), snapshotNode(C, { queueDepth: 3 }));
    expect(order(candidatesFor(cluster, "llama"))).toEqual([B, A, C]);
  });

  it("ignores nonsensical speed scores (zero, negative, not finite) as unmeasured", () => {
    const cluster = snapshot(snapshotNode(A, { speedScores: { llama: 0 } }), snapshotNode(B, { speedScores: { llama: -3 } }), snapshotNode(C, { speedScores: { llama: Number.NaN } }));
    expect(candidatesFor(cluster, "llama").map((candidate) => candidate.speed)).toEqual([null, null, null]);
  });

  it("breaks an equal load by locality: this node first", () => {
    const cluster = snapshot(snapshotNode(A, { rttMs: 0.2 }), snapshotNode(B, { local: true, rttMs: null }));
    const placement = expectOk(placeRequest(cluster, { model: "llama" }));
    expect(placement.nodeId).toBe(B);
    expect(placement.reason).toBe("tie with AAAAAAA (on disk, queue 0, speed not measured); BBBBBBB is this node");
  });

  it("then by the lower round trip, an unknown round trip last", () => {
    const cluster = snapshot(snapshotNode(A, { rttMs: null }), snapshotNode(B, { rttMs: 4.5 }), snapshotNode(C, { rttMs: 1.25 }));
    const placement = expectOk(placeRequest(cluster, { model: "llama" }));
    expect(order(placement)).toEqual([C, B, A]);
    expect(placement.reason).toBe("tie with BBBBBBB (on disk, queue 0, speed not measured); CCCCCCC has the lower round trip (1.3 ms vs 4.5 ms)");
  });

  it("then by node id, so a full tie always resolves the same way", () => {
    const cluster = snapshot(snapshotNode(C), snapshotNode(A), snapshotNode(B));
    const placement = expectOk(placeRequest(cluster, { model: "llama" }));
    expect(order(placement)).toEqual([A, B, C]);
    expect(placement.reason).toMatch(/AAAAAAA wins by node id order/);
  });

  it("explains a single holder as the only choice", () => {
    const cluster = snapshot(snapshotNode(A, { local: true, models: [] }), snapshotNode(B, { loadedModels: ["llama"] }));
    expect(expectOk(placeRequest(cluster, { model: "llama" })).reason).toBe("BBBBBBB is the only reachable node with llama (loaded)");
  });

  it("gives the same decision whatever the order of nodes in the snapshot", () => {
    const nodeArbitrary = fc.record({
      loaded: fc.boolean(),
      queueDepth: fc.nat(4),
      speed: fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined }),
      rttMs: fc.option(fc.integer({ min: 0, max: 3 }), { nil: null }),
      reachable: fc.boolean(),
    });
    fc.assert(
      fc.property(fc.array(nodeArbitrary, { minLength: 1, maxLength: 5 }), fc.nat(4), fc.integer(), (specs, localIndex, seed) => {
        const nodes = specs.map((spec, index) =>
          snapshotNode(nodeIdFrom(`N${String.fromCharCode(65 + index)}`), {
            local: index === localIndex,
            reachable: spec.reachable || index === localIndex,
            loadedModels: spec.loaded ? ["llama"] : [],
            queueDepth: spec.queueDepth,
            speedScores: spec.speed === undefined ? {} : { llama: spec.speed },
            rttMs: index === localIndex ? null : spec.rttMs,
          }),
        );
        const shuffled = [...nodes].sort((a, b) => ((a.nodeId.charCodeAt(1) * 31 + seed) % 7) - ((b.nodeId.charCodeAt(1) * 31 + seed) % 7));
        const first = placeRequest(snapshot(...nodes), { model: "llama" });
        const second = placeRequest(snapshot(...shuffled), { model: "llama" });
        expect(second).toEqual(first);
        if (nodes.every((entry) => !entry.reachable)) {
          expect(expectFailure(first).code).toBe("HEARTH_PEER_UNAVAILABLE");
          return;
        }
        const placed = expectOk(first);
        const chosen = nodes.find((entry) => entry.nodeId === placed.nodeId)!;
        expect(chosen.reachable).toBe(true);
        // Nobody ranked after the winner is loaded when the winner is not.
        if (!chosen.loadedModels.includes("llama")) expect(placed.candidates.every((candidate) => !candidate.loaded)).toBe(true);
      }),
    );
  });
});

describe("placement model resolution", () => {
  it("counts a file with the same sha256 under another id, reporting that node's own id", () => {
    const cluster = snapshot(snapshotNode(A, { local: true, models: [snapshotModel("llama")] }), snapshotNode(B, { models: [snapshotModel("llama-3b-q4")], loadedModels: ["llama-3b-q4"] }));
    const placement = expectOk(placeRequest(cluster, { model: "llama" }));
    expect(placement).toMatchObject({ nodeId: B, modelId: "llama-3b-q4", sha256: LLAMA_SHA });
    expect(candidatesFor(cluster, "llama").map((candidate) => [candidate.nodeId, candidate.modelId])).toEqual([
      [B, "llama-3b-q4"],
      [A, "llama"],
    ]);
  });

  it("does not count a different file with another id", () => {
    const cluster = snapshot(snapshotNode(A, { models: [snapshotModel("llama")] }), snapshotNode(B, { models: [snapshotModel("mistral", SHA_OTHER)] }));
    expect(order(candidatesFor(cluster, "llama"))).toEqual([A]);
  });

  it("resolves an alias of this node but not a peer's alias", () => {
    const cluster = snapshot(
      snapshotNode(A, { local: true, models: [snapshotModel("llama", LLAMA_SHA, ["chat"])] }),
      snapshotNode(B, { models: [snapshotModel("llama-copy")] }),
      snapshotNode(C, { models: [snapshotModel("mistral", SHA_OTHER, ["assistant"])] }),
    );
    expect(order(candidatesFor(cluster, "chat"))).toEqual([A, B]);
    expect(expectFailure(placeRequest(cluster, { model: "assistant" })).code).toBe("HEARTH_MODEL_NOT_FOUND");
  });

  it("accepts the sha256 itself as the model name", () => {
    const cluster = snapshot(snapshotNode(A, { models: [snapshotModel("llama")] }), snapshotNode(B, { models: [snapshotModel("renamed")] }));
    expect(candidatesFor(cluster, LLAMA_SHA).map((candidate) => candidate.modelId)).toEqual(["llama", "renamed"]);
  });

  it("still places an unhashed file on the node that names it, and matches nothing else through it", () => {
    const cluster = snapshot(snapshotNode(A, { local: true, models: [snapshotModel("fresh", null)] }), snapshotNode(B, { models: [snapshotModel("other")] }));
    const placement = expectOk(placeRequest(cluster, { model: "fresh" }));
    expect(placement).toMatchObject({ nodeId: A, modelId: "fresh", sha256: null });
    expect(order(placement)).toEqual([A]);
  });

  it("on a node holding the file under two ids, reports the loaded one", () => {
    const cluster = snapshot(snapshotNode(A, { models: [snapshotModel("llama"), snapshotModel("llama-alt")], loadedModels: ["llama-alt"] }));
    expect(expectOk(placeRequest(cluster, { model: "llama" }))).toMatchObject({ modelId: "llama-alt" });
    const unloaded = snapshot(snapshotNode(A, { models: [snapshotModel("llama-alt"), snapshotModel("llama")] }));
    expect(expectOk(placeRequest(unloaded, { model: "llama" }))).toMatchObject({ modelId: "llama" });
  });

  it("answers HEARTH_MODEL_NOT_FOUND for a model no node knows", () => {
    const cluster = snapshot(snapshotNode(A, { local: true }), snapshotNode(B));
    const failure = expectFailure(placeRequest(cluster, { model: "nonexistent" }));
    expect(failure.code).toBe("HEARTH_MODEL_NOT_FOUND");
    expect(failure.message).toMatch(/nonexistent/);
    expect(failure.candidates).toEqual([]);
    expect(candidatesFor(cluster, "nonexistent")).toEqual([]);
  });

  it("never offers an unreachable node", () => {
    const cluster = snapshot(snapshotNode(A, { local: true, models: [snapshotModel("llama")] }), snapshotNode(B, { reachable: false, loadedModels: ["llama"], speedScores: { llama: 1000 } }));
    const placement = expectOk(placeRequest(cluster, { model: "llama" }));
    expect(placement.nodeId).toBe(A);
    expect(order(placement)).toEqual([A]);
  });

  it("answers HEARTH_PEER_UNAVAILABLE when only unreachable nodes have the model", () => {
    const cluster = snapshot(snapshotNode(A, { local: true, models: [] }), snapshotNode(B, { reachable: false }));
    const failure = expectFailure(placeRequest(cluster, { model: "llama" }));
    expect(failure.code).toBe("HEARTH_PEER_UNAVAILABLE");
    expect(failure.message).toMatch(/not reachable/);
    expect(failure.candidates).toEqual([]);
  });
});

describe("placement exclusions", () => {
  it("skips excluded nodes and takes the next best", () => {
    const cluster = snapshot(snapshotNode(A, { loadedModels: ["llama"] }), snapshotNode(B), snapshotNode(C, { queueDepth: 1 }));
    const placement = expectOk(placeRequest(cluster, { model: "llama", excludeNodeIds: [A] }));
    expect(placement.nodeId).toBe(B);
    expect(order(placement)).toEqual([A, B, C]);
  });

  it("answers HEARTH_PEER_UNAVAILABLE when every holder is excluded", () => {
    const cluster = snapshot(snapshotNode(A, { local: true, models: [] }), snapshotNode(B));
    const failure = expectFailure(placeRequest(cluster, { model: "llama", excludeNodeIds: [B] }));
    expect(failure.code).toBe("HEARTH_PEER_UNAVAILABLE");
    expect(failure.message).toMatch(/excluded BBBBBBB/);
  });
});

describe("placement pinning", () => {
  const cluster = snapshot(
    snapshotNode(A, { local: true, rttMs: null, loadedModels: ["llama"], speedScores: { llama: 50 } }),
    snapshotNode(B, { queueDepth: 4, speedScores: { llama: 1 } }),
    snapshotNode(C, { models: [snapshotModel("mistral", SHA_OTHER)] }),
  );

  it("runs on the pinned node by full id even when another node ranks higher", () => {
    const placement = expectOk(placeRequest(cluster, { model: "llama", pinnedNodeId: B }));
    expect(placement).toMatchObject({ nodeId: B, modelId: "llama", sha256: LLAMA_SHA, reason: "pinned to BBBBBBB (on disk, not loaded)" });
    expect(order(placement)).toEqual([A, B]);
  });

  it("accepts a unique prefix of at least six characters, in any case, with or without dashes", () => {
    expect(expectOk(placeRequest(cluster, { model: "llama", pinnedNodeId: "bbbbbb" })).nodeId).toBe(B);
    expect(expectOk(placeRequest(cluster, { model: "llama", pinnedNodeId: "BBBBBBB-QQ" })).nodeId).toBe(B);
    expect(expectOk(placeRequest(cluster, { model: "llama", pinnedNodeId: B.replaceAll("-", "").toLowerCase() })).nodeId).toBe(B);
  });

  it("refuses a prefix shorter than six characters as unknown", () => {
    expect("BBBBB".length).toBeLessThan(MIN_PIN_PREFIX_LENGTH);
    const failure = expectFailure(placeRequest(cluster, { model: "llama", pinnedNodeId: "BBBBB" }));
    expect(failure.code).toBe("HEARTH_PEER_UNAVAILABLE");
    expect(failure.message).toMatch(/No node in the cluster matches BBBBB/);
  });

  it("refuses an ambiguous prefix, naming the nodes it matches", () => {
    const twins = snapshot(snapshotNode(nodeIdFrom("SAMEPRXA"), { local: true }), snapshotNode(nodeIdFrom("SAMEPRXB")));
    const failure = expectFailure(placeRequest(twins, { model: "llama", pinnedNodeId: "samepr" }));
    expect(failure.code).toBe("HEARTH_PEER_UNAVAILABLE");
    expect(failure.message).toMatch(/ambiguous/);
    expect(failure.message).toContain(nodeIdFrom("SAMEPRXA"));
    expect(failure.message).toContain(nodeIdFrom("SAMEPRXB"));
    expect(resolvePin(twins, "SAMEPR")).toEqual({ kind: "ambiguous", nodeIds: [nodeIdFrom("SAMEPRXA"), nodeIdFrom("SAMEPRXB")] });
    expect(resolvePinnedNode(twins, "SAMEPR")).toBeUndefined();
    expect(resolvePinnedNode(twins, "SAMEPRXB")?.nodeId).toBe(nodeIdFrom("SAMEPRXB"));
  });

  it("refuses a pin that matches no node", () => {
    const failure = expectFailure(placeRequest(cluster, { model: "llama", pinnedNodeId: "ZZZZZZZ" }));
    expect(failure.code).toBe("HEARTH_PEER_UNAVAILABLE");
    expect(resolvePinnedNode(cluster, "ZZZZZZZ")).toBeUndefined();
    expect(resolvePinnedNode(cluster, "")).toBeUndefined();
  });

  it("refuses a pinned node that is not reachable, though it is known", () => {
    const withDown = snapshot(...cluster.nodes, snapshotNode(nodeIdFrom("DOWNNODE"), { reachable: false, loadedModels: ["llama"] }));
    expect(resolvePinnedNode(withDown, "DOWNNO")?.reachable).toBe(false);
    const failure = expectFailure(placeRequest(withDown, { model: "llama", pinnedNodeId: "DOWNNO" }));
    expect(failure.code).toBe("HEARTH_PEER_UNAVAILABLE");
    expect(failure.message).toMatch(/not reachable/);
  });

  it("refuses a pinned node that is also excluded", () => {
    expect(expectFailure(placeRequest(cluster, { model: "llama", pinnedNodeId: B, excludeNodeIds: [B] })).code).toBe("HEARTH_PEER_UNAVAILABLE");
  });

  it("places on a pinned node lacking the model, under the requested name and the holders' sha256, saying it must fetch", () => {
    const placement = expectOk(placeRequest(cluster, { model: "llama", pinnedNodeId: C }));
    expect(placement).toMatchObject({ nodeId: C, modelId: "llama", sha256: LLAMA_SHA });
    expect(placement.reason).toBe("pinned to CCCCCCC, which lacks llama; it must fetch it from AAAAAAA");
  });

  it("still answers HEARTH_MODEL_NOT_FOUND for an unknown model on a pinned node", () => {
    expect(expectFailure(placeRequest(cluster, { model: "nonexistent", pinnedNodeId: A })).code).toBe("HEARTH_MODEL_NOT_FOUND");
  });

  it("refuses a pinned node lacking the model when only unreachable nodes hold it", () => {
    const stranded = snapshot(snapshotNode(A, { local: true, models: [] }), snapshotNode(B, { reachable: false }));
    const failure = expectFailure(placeRequest(stranded, { model: "llama", pinnedNodeId: A }));
    expect(failure.code).toBe("HEARTH_PEER_UNAVAILABLE");
    expect(failure.message).toMatch(/lacks llama/);
  });

  it("says so when the only holder's file is not hashed yet", () => {
    const unhashed = snapshot(snapshotNode(A, { local: true, models: [] }), snapshotNode(B, { models: [snapshotModel("llama", null)] }));
    const placement = expectOk(placeRequest(unhashed, { model: "llama", pinnedNodeId: A }));
    expect(placement).toMatchObject({ nodeId: A, modelId: "llama", sha256: null });
    expect(placement.reason).toMatch(/not hashed yet/);
  });
});
