/**
 * Who can send this node a model file: the peers whose published model lists (their
 * `peerState` snapshots, daemon/cluster/) hold a file with that sha256 and whose link is up.
 * Also how a name the user typed (`hearth pull MODEL --from-peer`) becomes one sha256.
 *
 * Pure: decisions over the peer table as it stands.
 */

import { errors } from "../../protocol/errors.js";
import { isSha256Hex } from "../../protocol/peer/modelTransferWire.js";
import type { PeerView } from "../../protocol/api/cluster.js";

export type PeerModels = Pick<PeerView, "nodeId" | "state" | "models" | "rttMs">;

export interface Holder {
  nodeId: string;
  /** The holder's own id for the file, which the fetched copy is named after. */
  modelId: string;
  sizeBytes: number;
  rttMs: number | null;
}

const MAX_ECHOED_NAME = 200;

/**
 * Reachable holders of `sha256`, best first: the preferred node (the one a transfer already
 * used, so a resume continues where it was), then lower RTT, then node id (deterministic).
 */
export function holdersOf(peers: readonly PeerModels[], sha256: string, options: { exclude?: ReadonlySet<string>; prefer?: string } = {}): Holder[] {
  const holders: Holder[] = [];
  const seen = new Set<string>();
  for (const peer of peers) {
    if (peer.state !== "up" || peer.nodeId === null || seen.has(peer.nodeId) || options.exclude?.has(peer.nodeId) === true) continue;
    const model = peer.models?.find((entry) => entry.sha256 === sha256);
    if (model === undefined) continue;
    seen.add(peer.nodeId);
    holders.push({ nodeId: peer.nodeId, modelId: model.id, sizeBytes: model.sizeBytes, rttMs: peer.rttMs });
  }
  return holders.sort((a, b) => {
    if (a.nodeId === options.prefer) return -1;
    if (b.nodeId === options.prefer) return 1;
    const rtt = (a.rttMs ?? Number.POSITIVE_INFINITY) - (b.rttMs ?? Number.POSITIVE_INFINITY);
    if (rtt !== 0 && !Number.isNaN(rtt)) return rtt;
    return a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0;
  });
}

export interface PullTarget {
  sha256: string;
  /** The name the fetched file gets (the first holder's id for it). */
  modelId: string;
  sizeBytes: number;
}

/**
 * Resolves MODEL, a model id or a sha256, against the reachable peers' model lists. A name that
 * two peers use for different files is ambiguous: the user picks one by sha256.
 */
export function resolvePullTarget(peers: readonly PeerModels[], model: string): PullTarget {
  const shown = JSON.stringify(model.slice(0, MAX_ECHOED_NAME));
  if (isSha256Hex(model)) {
    const [holder] = holdersOf(peers, model);
    if (holder === undefined) throw errors.modelNotFound(`no reachable peer offers a model with sha256 ${model}`, { param: "model" });
    return { sha256: model, modelId: holder.modelId, sizeBytes: holder.sizeBytes };
  }
  const named = peers.filter((peer) => peer.state === "up" && peer.nodeId !== null).flatMap((peer) => (peer.models ?? []).filter((entry) => entry.id === model));
  const hashes = [...new Set(named.map((entry) => entry.sha256).filter((sha): sha is string => sha !== null))].sort();
  if (hashes.length === 0) {
    const pending = named.length > 0 ? " (a peer has it but has not hashed it yet; try again in a moment)" : "";
    throw errors.modelNotFound(`no reachable peer offers a model named ${shown}${pending}`, { param: "model" });
  }
  if (hashes.length > 1) {
    throw errors.invalidRequest(`peers hold different files named ${shown} (sha256 ${hashes.join(", ")}); pull one of them by its sha256`, { param: "model" });
  }
  const sha256 = hashes[0]!;
  const sizeBytes = named.find((entry) => entry.sha256 === sha256)!.sizeBytes;
  return { sha256, modelId: model, sizeBytes };
}
