import { describe, expect, it } from "vitest";
import type { ClusterView, PeerView, ResourcesView } from "../../protocol/api/cluster.js";
import { DEFAULT_RPC } from "../../daemon/config/defaults.js";
import { snapshotFromView } from "../../daemon/routing/snapshotFromView.js";
import { UNKNOWN_RTT_MS, UNKNOWN_SPEED_TOKENS_PER_SECOND, planNodes, resolvePlacementNodes, type PlannedModel } from "../../scheduler/planNodes.js";
import type { PlanNode } from "../../scheduler/splitPlan.js";
import { parsePlacement } from "../../protocol/openai/hearthExtension.js";
import { HearthError } from "../../protocol/errors.js";

const SHA = "a".repeat(64);
const GIB = 1024 ** 3;

function resources(extra: Partial<ResourcesView> = {}): ResourcesView {
  return { cpuCores: 2, ramTotalBytes: 16 * GIB, ramFreeBytes: 8 * GIB, gpus: [], gpuBackend: null, vramTotalBytes: 0, vramFreeBytes: 0, ...extra };
}

function peer(nodeId: string, extra: Partial<PeerView> = {}): PeerView {
  return {
    nodeId,
    fingerprint: null,
    addresses: [],
    protocolVersion: "1.0",
    softwareVersion: "x",
    resources: resources({ memoryBudgetBytes: 2 * GIB }),
    models: [{ id: "their-name", sizeBytes: 1, sha256: SHA }],
    loadedModels: [],
    queueDepth: 0,
    speedScores: { "their-name": 40 },
    state: "up",
    rttMs: 3,
    lastHeartbeatAgoMs: 0,
    lastError: null,
    source: "mdns",
    ...extra,
  };
}

function view(peers: PeerView[], localScores: Record<string, number> = { tiny: 20 }): ClusterView {
  return {
    cluster: { clusterId: "c" },
    local: {
      nodeId: "HOST",
      fingerprint: "f",
      addresses: [],
      protocolVersion: "1.0",
      softwareVersion: "x",
      resources: resources({ memoryBudgetBytes: GIB }),
      models: [{ id: "tiny", sizeBytes: 1, sha256: SHA }],
      loadedModels: [],
      queueDepth: 0,
      speedScores: localScores,
    },
    peers,
  };
}

/** The router's path: the cluster view becomes one snapshot, the snapshot the planner's nodes. */
function planNodesFromView(clusterView: ClusterView, model: PlannedModel, options: { excludeNodeIds?: readonly string[] } = {}): PlanNode[] {
  return planNodes(snapshotFromView(clusterView, []), model, options);
}

describe("plan inputs from the cluster view", () => {
  it("makes this node the host and takes each up peer's published budget, score (matched by sha256) and RTT", () => {
    const nodes = planNodesFromView(view([peer("P1")]), { id: "tiny", sha256: SHA });
    expect(nodes).toEqual([
      { nodeId: "HOST", isHost: true, memoryBudgetBytes: GIB, speed: { tokensPerSecond: 20 }, rttMs: 0 },
      { nodeId: "P1", isHost: false, memoryBudgetBytes: 2 * GIB, speed: { tokensPerSecond: 40 }, rttMs: 3 },
    ]);
  });

  it("leaves out peers that are down, unreported, duplicated, excluded, or this node itself", () => {
    const nodes = planNodesFromView(
      view([peer("DOWN", { state: "down" }), peer("NEW", { resources: null }), peer("P1"), peer("P1", { rttMs: 99 }), peer("HOST"), peer("GONE")]),
      { id: "tiny", sha256: SHA },
      { excludeNodeIds: ["GONE"] },
    );
    expect(nodes.map((node) => node.nodeId)).toEqual(["HOST", "P1"]);
    expect(nodes[1]!.rttMs).toBe(3);
  });

  it("gives nodes without a score the mean of the known ones, and all nodes 1 tok/s when none is known", () => {
    const mixed = planNodesFromView(view([peer("P1"), peer("P2", { speedScores: {} })]), { id: "tiny", sha256: SHA });
    expect(mixed.map((node) => node.speed.tokensPerSecond)).toEqual([20, 40, 30]);
    const none = planNodesFromView(view([peer("P1", { speedScores: {} })], {}), { id: "tiny", sha256: null });
    expect(none.map((node) => node.speed.tokensPerSecond)).toEqual([UNKNOWN_SPEED_TOKENS_PER_SECOND, UNKNOWN_SPEED_TOKENS_PER_SECOND]);
  });

  it("falls back to free RAM minus the default headroom for a peer that publishes no budget, and a default RTT", () => {
    const nodes = planNodesFromView(view([peer("OLD", { resources: resources(), rttMs: null })]), { id: "tiny", sha256: SHA });
    expect(nodes[1]).toMatchObject({ memoryBudgetBytes: 8 * GIB - DEFAULT_RPC.memoryHeadroomBytes, rttMs: UNKNOWN_RTT_MS });
  });

  it("resolves forced node prefixes to full ids, leaving unknown or ambiguous ones for the planner to refuse", () => {
    const nodes = planNodesFromView(view([peer("ABCDEF-GHIJ"), peer("ABCXYZ-KLMN")]), { id: "tiny", sha256: SHA });
    expect(resolvePlacementNodes(["HOST", "abcdefghij", "ABC", "ZZZZZZ"], nodes)).toEqual(["HOST", "ABCDEF-GHIJ", "ABC", "ZZZZZZ"]);
  });
});

describe("hearth.placement validation", () => {
  const param = (value: unknown): string | null => {
    try {
      parsePlacement(value, "hearth.placement");
      return null;
    } catch (error) {
      expect(error).toBeInstanceOf(HearthError);
      expect((error as HearthError).code).toBe("HEARTH_INVALID_REQUEST");
      return (error as HearthError).param ?? "";
    }
  };

  it("accepts nodes with layer counts and canonicalises node ids", () => {
    expect(parsePlacement({ nodes: ["abcdefg", "HIJKLMN"], layers: [0, 8] }, "p")).toEqual({ nodes: ["ABCDEFG", "HIJKLMN"], layers: [0, 8] });
    expect(parsePlacement(null, "p")).toBeUndefined();
  });

  it("rejects malformed placements naming the field", () => {
    expect(param("x")).toBe("hearth.placement");
    expect(param({ nodes: ["ABCDEFG"], layers: [1], extra: 1 })).toBe("hearth.placement");
    expect(param({ nodes: [], layers: [] })).toBe("hearth.placement.nodes");
    expect(param({ nodes: Array(9).fill("ABCDEFG"), layers: Array(9).fill(1) })).toBe("hearth.placement.nodes");
    expect(param({ nodes: ["ABCDEFG"], layers: [1, 2] })).toBe("hearth.placement.layers");
    expect(param({ nodes: ["ABCDEFG"], layers: [1.5] })).toBe("hearth.placement.layers[0]");
    expect(param({ nodes: ["ABCDEFG"], layers: [-1] })).toBe("hearth.placement.layers[0]");
    expect(param({ nodes: [7], layers: [1] })).toBe("hearth.placement.nodes[0]");
    expect(param({ nodes: ["no!"], layers: [1] })).toBe("hearth.placement.nodes[0]");
  });
});
