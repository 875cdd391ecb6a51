// The pure parts of cluster routing: the snapshot built from the cluster view, the
// cluster-wide model list, the retry rule, and the request pin's validation.

import { describe, expect, it } from "vitest";
import type { ClusterView, NodeView, PeerView } from "../../protocol/api/cluster.js";
import type { ModelDescriptor } from "../../daemon/engine/types.js";
import { clusterModelList, findClusterModel } from "../../daemon/routing/clusterModels.js";
import { MAX_ROUTE_ATTEMPTS, shouldRetryElsewhere, type RetryQuestion } from "../../scheduler/retryPolicy.js";
import { snapshotFromView } from "../../daemon/routing/snapshotFromView.js";
import type { HearthError } from "../../protocol/errors.js";
import { parseNodePin, requestPin } from "../../protocol/openai/hearthExtension.js";
import { placeRequest } from "../../scheduler/placement.js";

const A = "AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA";
const B = "BBBBBBB-BBBBBBB-BBBBBBB-BBBBBBB-BBBBBBB-BBBBBBB-BBBBBBB-BBBBBBB";
const C = "CCCCCCC-CCCCCCC-CCCCCCC-CCCCCCC-CCCCCCC-CCCCCCC-CCCCCCC-CCCCCCC";
const SHA_TINY = "1".repeat(64);
const SHA_TWIN = "2".repeat(64);

const resources = { cpuCores: 4, ramTotalBytes: 1, ramFreeBytes: 1, gpus: [], gpuBackend: null, vramTotalBytes: 0, vramFreeBytes: 0 };

function localView(models: NodeView["models"], loaded: string[] = []): NodeView {
  return { nodeId: A, fingerprint: "f".repeat(64), addresses: [], protocolVersion: "1.0", softwareVersion: "0.1.0", resources, models, loadedModels: loaded, queueDepth: 1, speedScores: { tiny: 50 } };
}

function peer(nodeId: string | null, state: PeerView["state"], models: PeerView["models"], extra: Partial<PeerView> = {}): PeerView {
  return {
    nodeId,
    fingerprint: null,
    addresses: [],
    protocolVersion: "1.0",
    softwareVersion: "0.1.0",
    resources,
    models,
    loadedModels: [],
    queueDepth: 0,
    speedScores: {},
    state,
    rttMs: 2,
    lastHeartbeatAgoMs: 100,
    lastError: null,
    source: "mdns",
    ...extra,
  };
}

function descriptor(id: string, aliases: string[] = []): ModelDescriptor {
  return { id, aliases, path: `/models/${id}.gguf`, sizeBytes: 100, createdAt: 1_700_000_000, architecture: "llama", contextLength: 4096, embeddingLength: 128 };
}

describe("snapshotFromView", () => {
  const view: ClusterView = {
    cluster: { clusterId: "c".repeat(32) },
    local: localView([{ id: "tiny", sizeBytes: 100, sha256: SHA_TINY }], ["tiny"]),
    peers: [
      peer(B, "up", [{ id: "twin", sizeBytes: 200, sha256: SHA_TWIN }], { loadedModels: ["twin"], queueDepth: 3, speedScores: { twin: 20 }, rttMs: 1.5, resources: { ...resources, memoryBudgetBytes: 5_000 } }),
      // The same node under a stale entry (a static address merged late): the up one counts.
      peer(B, "down", null),
      peer(C, "down", [{ id: "tiny", sizeBytes: 100, sha256: SHA_TINY }]),
      peer(null, "connecting", null),
      peer(A, "up", [{ id: "echo", sizeBytes: 1, sha256: null }]),
    ],
  };

  it("puts this node first with its aliases, and every identified peer once, reachable only when up, with the budget each publishes (or free RAM minus the default headroom)", () => {
    const snapshot = snapshotFromView(view, [descriptor("tiny", ["small"])]);
    expect(snapshot.localNodeId).toBe(A);
    expect(snapshot.nodes).toEqual([
      { nodeId: A, local: true, reachable: true, models: [{ id: "tiny", aliases: ["small"], sha256: SHA_TINY, sizeBytes: 100 }], loadedModels: ["tiny"], queueDepth: 1, speedScores: { tiny: 50 }, rttMs: null, memoryBudgetBytes: 0 },
      { nodeId: B, local: false, reachable: true, models: [{ id: "twin", aliases: [], sha256: SHA_TWIN, sizeBytes: 200 }], loadedModels: ["twin"], queueDepth: 3, speedScores: { twin: 20 }, rttMs: 1.5, memoryBudgetBytes: 5_000 },
      { nodeId: C, local: false, reachable: false, models: [{ id: "tiny", aliases: [], sha256: SHA_TINY, sizeBytes: 100 }], loadedModels: [], queueDepth: 0, speedScores: {}, rttMs: 2, memoryBudgetBytes: 0 },
    ]);
  });

  it("feeds placement: a model only a peer holds goes to that peer, an alias resolves locally", () => {
    const snapshot = snapshotFromView(view, [descriptor("tiny", ["small"])]);
    expect(placeRequest(snapshot, { model: "twin" })).toMatchObject({ ok: true, nodeId: B, modelId: "twin" });
    expect(placeRequest(snapshot, { model: "small" })).toMatchObject({ ok: true, nodeId: A, modelId: "tiny" });
  });
});

describe("clusterModelList", () => {
  const view: ClusterView = {
    cluster: null,
    local: localView([
      { id: "tiny", sizeBytes: 100, sha256: SHA_TINY },
      { id: "fresh", sizeBytes: 5, sha256: null },
    ]),
    peers: [
      peer(C, "up", [
        { id: "tiny-copy", sizeBytes: 100, sha256: SHA_TINY },
        { id: "twin", sizeBytes: 200, sha256: SHA_TWIN },
      ]),
      peer(B, "up", [
        { id: "twin", sizeBytes: 200, sha256: SHA_TWIN },
        { id: "fresh", sizeBytes: 5, sha256: null },
      ], { loadedModels: ["twin"] }),
      peer("DDDDDDD-DDDDDDD-DDDDDDD-DDDDDDD-DDDDDDD-DDDDDDD-DDDDDDD-DDDDDDD", "down", [{ id: "gone", sizeBytes: 1, sha256: "3".repeat(64) }]),
    ],
  };
  const locals = [descriptor("tiny", ["small"]), descriptor("fresh")];
  const list = clusterModelList(snapshotFromView(view, locals), locals);

  it("has one entry per file: local facts when this node holds it, peers' otherwise, never a path", () => {
    expect(list.map((model) => model.id)).toEqual(["tiny", "fresh", "twin", "fresh"]);
    const tiny = list[0]!;
    expect(tiny).toMatchObject({ id: "tiny", aliases: ["small"], architecture: "llama", cluster: { sha256: SHA_TINY } });
    expect(tiny.cluster!.nodes).toEqual([
      { nodeId: A, modelId: "tiny", loaded: false },
      { nodeId: C, modelId: "tiny-copy", loaded: false },
    ]);
    const twin = list[2]!;
    expect(twin).toEqual({ id: "twin", aliases: [], sizeBytes: 200, createdAt: 0, cluster: { sha256: SHA_TWIN, nodes: [{ nodeId: B, modelId: "twin", loaded: true }, { nodeId: C, modelId: "twin", loaded: false }] } });
    expect(JSON.stringify(list)).not.toContain("/models/");
    // An unreachable peer's models are not offered.
    expect(list.some((model) => model.id === "gone")).toBe(false);
  });

  it("finds a model by id, local alias, any holder's id or sha256", () => {
    expect(findClusterModel(list, "small")?.id).toBe("tiny");
    expect(findClusterModel(list, "tiny-copy")?.id).toBe("tiny");
    expect(findClusterModel(list, SHA_TWIN)?.id).toBe("twin");
    expect(findClusterModel(list, "nowhere")).toBeUndefined();
  });

  it("names a peer-only model by the id most holders use", () => {
    const three: ClusterView = {
      cluster: null,
      local: localView([]),
      peers: [peer(B, "up", [{ id: "zeta", sizeBytes: 1, sha256: SHA_TWIN }]), peer(C, "up", [{ id: "alpha", sizeBytes: 1, sha256: SHA_TWIN }]), peer("EEEEEEE-EEEEEEE-EEEEEEE-EEEEEEE-EEEEEEE-EEEEEEE-EEEEEEE-EEEEEEE", "up", [{ id: "zeta", sizeBytes: 1, sha256: SHA_TWIN }])],
    };
    expect(clusterModelList(snapshotFromView(three, []), []).map((model) => model.id)).toEqual(["zeta"]);
  });
});

describe("shouldRetryElsewhere", () => {
  const base: RetryQuestion = { code: "HEARTH_PEER_UNAVAILABLE", attempts: 1, deltasSent: false, pinned: false, retry: true, aborted: false };

  it("retries a node failure before the first token, once", () => {
    for (const code of ["HEARTH_PEER_UNAVAILABLE", "HEARTH_PEER_TIMEOUT", "HEARTH_RUNNER_CRASHED", "HEARTH_SHUTTING_DOWN"] as const) {
      expect(shouldRetryElsewhere({ ...base, code })).toBe(true);
    }
    expect(shouldRetryElsewhere({ ...base, attempts: MAX_ROUTE_ATTEMPTS })).toBe(false);
  });

  it("never after a delta, when pinned, with retry off, after an abort, or for a failure of the request itself", () => {
    expect(shouldRetryElsewhere({ ...base, deltasSent: true })).toBe(false);
    expect(shouldRetryElsewhere({ ...base, pinned: true })).toBe(false);
    expect(shouldRetryElsewhere({ ...base, retry: false })).toBe(false);
    expect(shouldRetryElsewhere({ ...base, aborted: true })).toBe(false);
    for (const code of ["HEARTH_CONTEXT_OVERFLOW", "HEARTH_QUEUE_FULL", "HEARTH_MODEL_NOT_FOUND", "HEARTH_CANCELLED", "HEARTH_INVALID_REQUEST"] as const) {
      expect(shouldRetryElsewhere({ ...base, code })).toBe(false);
    }
  });
});

describe("request pins", () => {
  function failure(action: () => unknown): HearthError | undefined {
    try {
      action();
    } catch (error) {
      return error as HearthError;
    }
    return undefined;
  }

  it("accepts a full node id or a prefix of at least 6 characters, in any case, and upper-cases it", () => {
    expect(parseNodePin(B, "x-hearth-node")).toBe(B);
    expect(parseNodePin("bbbbbbb-bbb", "x-hearth-node")).toBe("BBBBBBB-BBB");
    expect(parseNodePin(" mcr7za ", "hearth.node")).toBe("MCR7ZA");
    expect(parseNodePin(undefined, "hearth.node")).toBeUndefined();
    expect(parseNodePin(null, "hearth.node")).toBeUndefined();
  });

  it("refuses malformed pins with HEARTH_INVALID_REQUEST naming where the pin came from", () => {
    for (const bad of ["", "abc", "not a node!", "MCR7ZA1", "-MCR7ZAG", "MCR7ZAG--X", "../etc", "A".repeat(57)]) {
      const error = failure(() => parseNodePin(bad, "x-hearth-node"));
      expect(error?.code, bad).toBe("HEARTH_INVALID_REQUEST");
      expect(error?.param).toBe("x-hearth-node");
    }
  });

  it("takes the header or the body; both must agree (dashes and case aside), and the header may appear once", () => {
    expect(requestPin("bbbbbb", undefined)).toBe("BBBBBB");
    expect(requestPin(undefined, { node: "cccccc" })).toBe("CCCCCC");
    expect(requestPin("BBBBBBB-B", { node: "bbbbbbbb" })).toBe("BBBBBBB-B");
    expect(failure(() => requestPin("BBBBBB", { node: "CCCCCC" }))?.param).toBe("hearth.node");
    expect(failure(() => requestPin(["BBBBBB", "BBBBBB"], undefined))?.code).toBe("HEARTH_INVALID_REQUEST");
    expect(requestPin(undefined, undefined)).toBeUndefined();
  });
});
