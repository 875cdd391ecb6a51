/**
 * What the scheduler sees of the cluster: one entry per node (this one included) with the
 * facts placement depends on. The daemon builds it from its own engine and the peers'
 * published `peerState` (daemon/routing/); the scheduler's functions are pure over it, so
 * every placement decision can be unit-tested and explained without sockets.
 *
 * Pure: no I/O.
 */

export interface SnapshotModel {
  /** The id this node knows the file by (its file name without `.gguf`). */
  id: string;
  /** Local config aliases; peers do not publish theirs, so this is empty for remote nodes. */
  aliases: string[];
  /** Null until the node has hashed the file. Two nodes with the same sha256 hold the same model. */
  sha256: string | null;
  sizeBytes: number;
}

export interface SnapshotNode {
  nodeId: string;
  /** This node (the one making the decision). */
  local: boolean;
  /** Local, or a peer whose link is up. Unreachable nodes are never chosen. */
  reachable: boolean;
  models: SnapshotModel[];
  /** Ids (in this node's naming) of models loaded in a runner right now. */
  loadedModels: string[];
  /** Requests running or waiting on this node, over all models. */
  queueDepth: number;
  /** Measured generation tokens/s per model id (this node's naming); absent until measured. */
  speedScores: Record<string, number>;
  /** Smoothed heartbeat round trip; null for the local node or when unknown. */
  rttMs: number | null;
  /**
   * Bytes the node offers a model or its layers of a split (scheduler/memoryBudget.ts), as it
   * publishes it; null for a peer that has not reported its resources yet (it cannot take part
   * in a split plan).
   */
  memoryBudgetBytes: number | null;
}

export interface ClusterSnapshot {
  localNodeId: string;
  nodes: SnapshotNode[];
}
