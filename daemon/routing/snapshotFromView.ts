/**
 * The scheduler's picture of the cluster (scheduler/clusterSnapshot.ts) built from what the
 * cluster views already show: this node's NodeView plus its models' aliases, and every
 * peer's last report. Only peers whose link is up are reachable; a peer seen under several
 * table entries (a static address merged late) counts once, by its up entry if it has one.
 * A node's memory budget is the one it publishes; a peer too old to publish one counts with
 * its free RAM minus the default headroom.
 *
 * Pure: no I/O.
 */

import type { ClusterSnapshot, SnapshotNode } from "../../scheduler/clusterSnapshot.js";
import type { ClusterView, PeerView, ResourcesView } from "../../protocol/api/cluster.js";
import { DEFAULT_RPC } from "../config/defaults.js";

export interface LocalModelAliases {
  id: string;
  aliases: readonly string[];
}

export function snapshotFromView(view: ClusterView, localModels: readonly LocalModelAliases[]): ClusterSnapshot {
  const { local } = view;
  const aliasesById = new Map(localModels.map((model) => [model.id, [...model.aliases]]));
  const nodes: SnapshotNode[] = [
    {
      nodeId: local.nodeId,
      local: true,
      reachable: true,
      models: local.models.map((model) => ({ id: model.id, aliases: aliasesById.get(model.id) ?? [], sha256: model.sha256, sizeBytes: model.sizeBytes })),
      loadedModels: [...local.loadedModels],
      queueDepth: local.queueDepth,
      speedScores: { ...local.speedScores },
      rttMs: null,
      memoryBudgetBytes: budgetOf(local.resources),
    },
  ];
  for (const peer of bestEntryPerNode(view.peers, local.nodeId)) {
    nodes.push({
      nodeId: peer.nodeId,
      local: false,
      reachable: peer.state === "up",
      models: (peer.models ?? []).map((model) => ({ id: model.id, aliases: [], sha256: model.sha256, sizeBytes: model.sizeBytes })),
      loadedModels: [...(peer.loadedModels ?? [])],
      queueDepth: peer.queueDepth ?? 0,
      speedScores: { ...(peer.speedScores ?? {}) },
      rttMs: peer.rttMs,
      memoryBudgetBytes: peer.resources === null ? null : budgetOf(peer.resources),
    });
  }
  return { localNodeId: local.nodeId, nodes };
}

function budgetOf(resources: ResourcesView): number {
  return resources.memoryBudgetBytes ?? Math.max(0, resources.ramFreeBytes - DEFAULT_RPC.memoryHeadroomBytes);
}

type IdentifiedPeer = PeerView & { nodeId: string };

function bestEntryPerNode(peers: readonly PeerView[], localNodeId: string): IdentifiedPeer[] {
  const byNode = new Map<string, IdentifiedPeer>();
  for (const peer of peers) {
    if (peer.nodeId === null || peer.nodeId === localNodeId) continue;
    const known = byNode.get(peer.nodeId);
    // An up entry wins; otherwise the one that has reported its state.
    if (known === undefined || (known.state !== "up" && (peer.state === "up" || (known.models === null && peer.models !== null)))) {
      byNode.set(peer.nodeId, peer as IdentifiedPeer);
    }
  }
  return [...byNode.values()];
}
