/**
 * The split planner's nodes (splitPlan.ts PlanNode) from one cluster snapshot: this node as the
 * host, and every reachable peer that has reported its resources. Each node's budget is the
 * one in the snapshot (memoryBudget.ts, published by each node). Speed is the node's speed
 * score for this model, matched across nodes by sha256 (peers name files their own way); a
 * node that has not measured it is given the mean of the scores that are known, so unknown
 * speeds neither win nor lose a plan.
 *
 * Pure: no I/O.
 */

import type { ClusterSnapshot, SnapshotNode } from "./clusterSnapshot.js";
import type { PlanNode } from "./splitPlan.js";

/** Used when no node has a speed score for the model: all nodes then count as equally fast. */
export const UNKNOWN_SPEED_TOKENS_PER_SECOND = 1;
/** A peer whose RTT is not measured yet. */
export const UNKNOWN_RTT_MS = 1;

export interface PlannedModel {
  /** This node's id for the model. */
  id: string;
  sha256: string | null;
}

type BudgetedNode = SnapshotNode & { memoryBudgetBytes: number };

/** The peers that can take part in a split now: reachable, and with a reported budget. */
export function splitPeers(snapshot: ClusterSnapshot): BudgetedNode[] {
  return snapshot.nodes.filter((node): node is BudgetedNode => !node.local && node.reachable && node.memoryBudgetBytes !== null);
}

function scoreOf(node: SnapshotNode, model: PlannedModel): number | undefined {
  const valid = (score: number | undefined): number | undefined => (score !== undefined && score > 0 ? score : undefined);
  if (node.local) return valid(node.speedScores[model.id]);
  if (model.sha256 === null) return undefined;
  for (const held of node.models) {
    if (held.sha256 !== model.sha256) continue;
    const score = valid(node.speedScores[held.id]);
    if (score !== undefined) return score;
  }
  return undefined;
}

export function planNodes(snapshot: ClusterSnapshot, model: PlannedModel, options: { excludeNodeIds?: readonly string[] } = {}): PlanNode[] {
  const excluded = new Set(options.excludeNodeIds ?? []);
  const host = snapshot.nodes.find((node) => node.local);
  if (host === undefined) throw new RangeError("the snapshot has no local node");
  const peers = splitPeers(snapshot).filter((peer) => !excluded.has(peer.nodeId));
  const scores = new Map<string, number | undefined>([[host.nodeId, scoreOf(host, model)]]);
  for (const peer of peers) scores.set(peer.nodeId, scoreOf(peer, model));
  const known = [...scores.values()].filter((score): score is number => score !== undefined);
  const fallback = known.length === 0 ? UNKNOWN_SPEED_TOKENS_PER_SECOND : known.reduce((sum, score) => sum + score, 0) / known.length;
  const speedOf = (nodeId: string): { tokensPerSecond: number } => ({ tokensPerSecond: scores.get(nodeId) ?? fallback });

  const nodes: PlanNode[] = [{ nodeId: host.nodeId, isHost: true, memoryBudgetBytes: host.memoryBudgetBytes ?? 0, speed: speedOf(host.nodeId), rttMs: 0 }];
  for (const peer of peers) {
    nodes.push({ nodeId: peer.nodeId, isHost: false, memoryBudgetBytes: peer.memoryBudgetBytes, speed: speedOf(peer.nodeId), rttMs: peer.rttMs ?? UNKNOWN_RTT_MS });
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
