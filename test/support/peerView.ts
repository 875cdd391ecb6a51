/**
 * A peer as the peer table shows it (protocol/api/cluster.ts PeerView) to the router and to
 * model sharing: linked, idle, 1 ms away, heard from 10 ms ago, holding `models`. It reports no
 * resources, so it never takes layers of a split.
 */

import type { ModelPresentView, PeerView } from "../../protocol/api/cluster.js";

export function upPeerView(nodeId: string, models: ModelPresentView[], overrides: Partial<PeerView> = {}): PeerView {
  return {
    nodeId,
    fingerprint: "1".repeat(64),
    addresses: ["10.0.0.2:4328"],
    protocolVersion: "1.0",
    softwareVersion: "test",
    resources: null,
    models,
    loadedModels: [],
    queueDepth: 0,
    speedScores: {},
    state: "up",
    rttMs: 1,
    lastHeartbeatAgoMs: 10,
    lastError: null,
    source: "static",
    ...overrides,
  };
}
