/**
 * The split planner's nodes (scheduler/splitPlan.ts PlanNode) from what the cluster service
 * shows: this node as the host, and every peer whose link is up and that has reported its
 * state. Each node's budget is the one it publishes (`resources.memoryBudgetBytes`,
 * daemon/split/memoryBudget.ts); a peer too old to publish one counts with its free RAM minus
 * the default headroom. Speed is the node's speed score for this model, matched across nodes
 * by sha256 (peers name files their own way); a node that has not measured it is given the
 * mean of the scores that are known, so unknown speeds neither win nor lose a plan.
 *
 * Pure: no I/O.
 */

import type { PlanNode } from "../../scheduler/splitPlan.js";
import type { ClusterView, PeerView, ResourcesView } from "../cluster/views.js";
import { DEFAULT_RPC } from "../config/defaults.js";

/** Used when no node has a speed score for the model: all nodes then count as equally fast. */
export const UNKNOWN_SPEED_TOKENS_PER_SECOND = 1;
/** A peer whose RTT is not measured yet. */
export const UNKNOWN_RTT_MS = 1;

export interface PlannedModel {
  /** This node's id for the model. */
  id: string;
  sha256: string | null;
}

type UpPeer = PeerView & { nodeId: string; resources: ResourcesView };

function budgetOf(resources: ResourcesView): number {
  return resources.memoryBudgetBytes ?? Math.max(0, resources.ramFreeBytes - DEFAULT_RPC.memoryHeadroomBytes);
}

/** One entry per peer node that is up and has reported its resources. */
export function upPeers(view: ClusterView): UpPeer[] {
  const byNode = new Map<string, UpPeer>();
  for (const peer of view.peers) {
    if (peer.state !== "up" || peer.nodeId === null || peer.nodeId === view.local.nodeId || peer.resources === null) continue;
    if (!byNode.has(peer.nodeId)) byNode.set(peer.nodeId, peer as UpPeer);
  }
  return [...byNode.values()];
}

function peerScore(peer: PeerView, model: PlannedModel): number | undefined {
  if (model.sha256 === null || peer.models === null || peer.speedScores === null) return undefined;
  for (const held of peer.models) {
    if (held.sha256 !== model.sha256) continue;
    const score = peer.speedScores[held.id];
    if (score !== undefined && score > 0) return score;
  }
  return undefined;
}

export function planNodesFromView(view: ClusterView, model: PlannedModel, options: { excludeNodeIds?: readonly string[] } = {}): PlanNode[] {
  const excluded = new Set(options.excludeNodeIds ?? []);
  const peers = upPeers(view).filter((peer) => !excluded.has(peer.nodeId));
  const localScore = view.local.speedScores[model.id];
  const scores = new Map<string, number | undefined>([[view.local.nodeId, localScore !== undefined && localScore > 0 ? localScore : undefined]]);
  for (const peer of peers) scores.set(peer.nodeId, peerScore(peer, model));
  const known = [...scores.values()].filter((score): score is number => score !== undefined);
  const fallback = known.length === 0 ? UNKNOWN_SPEED_TOKENS_PER_SECOND : known.reduce((sum, score) => sum + score, 0) / known.length;
  const speedOf = (nodeId: string): { tokensPerSecond: number } => ({ tokensPerSecond: scores.get(nodeId) ?? fallback });

  const nodes: PlanNode[] = [
    { nodeId: view.local.nodeId, isHost: true, memoryBudgetBytes: budgetOf(view.local.resources), speed: speedOf(view.local.nodeId), rttMs: 0 },
  ];
  for (const peer of peers) {
    nodes.push({ nodeId: peer.nodeId, isHost: false, memoryBudgetBytes: budgetOf(peer.resources), speed: speedOf(peer.nodeId), rttMs: peer.rttMs ?? UNKNOWN_RTT_MS });
  }
  return nodes;
}

/**
 * A forced placement's node names (full ids or unique prefixes, any dashes) as full ids of
 * `nodes`. A name matching no node, or several, is left as written: the planner then
 * answers HEARTH_INVALID_REQUEST naming it.
 */
export function resolvePlacementNodes(names: readonly string[], nodes: readonly PlanNode[]): string[] {
  const canonical = (id: string): string => id.replace(/-/g, "").toUpperCase();
  return names.map((name) => {
    const wanted = canonical(name);
    const matches = nodes.filter((node) => canonical(node.nodeId).startsWith(wanted));
    return matches.length === 1 ? matches[0]!.nodeId : name;
  });
}
