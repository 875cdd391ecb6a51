/**
 * The live peer table: every peer this node has heard of this run, what state its link is in,
 * and what it last reported about itself.
 *
 * Events go in (discovery sightings, links up and down, handshake failures, state snapshots,
 * link metrics) and a snapshot of PeerViews comes out; the daemon (ClusterService) feeds it
 * from the discovery services and the PeerLinkManager. It owns no sockets or timers, and the
 * clock is injected, so unit tests drive it event by event.
 *
 * A peer is known by its node id once anyone has told us (an mDNS hint or a finished
 * handshake). A static `--peer host:port` is known only by its address until a handshake
 * reveals who answers there; the two entries are then merged. States:
 *   - connecting: seen, not linked yet, no failure so far;
 *   - up: an authenticated link is up;
 *   - down: the link went down, or the last attempt failed (lastError says why);
 *   - incompatible: refused for another protocol major version.
 * Inbound handshakes that fail before the peer has proved who it is cannot be tied to a peer
 * (only an IP is known); they are kept in a short list of their own for `hearth doctor`.
 */

import type { HearthErrorCode } from "../../protocol/errors.js";
import type { PeerStateMessage } from "../../protocol/peer/messages.js";
import type { DiscoveredPeer } from "../discovery/PeerDiscovery.js";
import { formatHostPort } from "./wire.js";
import type { PeerErrorView, PeerLinkState, PeerSource, PeerView } from "../../protocol/api/cluster.js";
import { reportedStateOf, type ReportedState } from "../../protocol/api/reportedState.js";

/** Peers kept at once; beyond it the longest-down peer without a node id goes first, then any longest-down one. */
export const DEFAULT_MAX_PEERS = 256;
/** Inbound handshake failures remembered for `hearth doctor`, newest first. */
export const DEFAULT_MAX_INBOUND_FAILURES = 32;

export interface PeerTableOptions {
  /** Wall-clock milliseconds. Default: Date.now. */
  now?: () => number;
  maxPeers?: number;
  maxInboundFailures?: number;
}

export interface LinkUpInfo {
  nodeId: string;
  /** The pinned certificate fingerprint, lower-case hex. */
  fingerprint: string;
  softwareVersion: string;
  /** The negotiated protocol version, `major.minor`. */
  protocolVersion: string;
  /** `host:port` this node dialled, when it was the initiator of the link. */
  dialedAddress?: string | undefined;
}

export interface HandshakeFailure {
  direction: "inbound" | "outbound";
  /** `host:port` dialled, or the remote IP of an inbound attempt. */
  address: string;
  nodeId: string | undefined;
  code: HearthErrorCode;
  reason: string;
}

export interface LinkMetrics {
  rttMs: number | undefined;
  /** Wall-clock time of the last heartbeat or ack received. */
  lastHeartbeatAt: number | undefined;
}

export interface InboundFailure {
  address: string;
  code: HearthErrorCode;
  reason: string;
  /** Wall-clock time of the latest failure from this address with this code. */
  at: number;
  count: number;
}

interface Entry {
  key: string;
  nodeId: string | null;
  fingerprint: string | null;
  addresses: string[];
  protocolVersion: string | null;
  softwareVersion: string | null;
  reported: ReportedState | null;
  state: PeerLinkState;
  rttMs: number | null;
  lastHeartbeatAt: number | null;
  lastError: PeerErrorView | null;
  source: PeerSource;
  /** Last time the state changed (for choosing what to evict). */
  changedAt: number;
}

const nodeKey = (nodeId: string): string => `node:${nodeId}`;
const addressKey = (address: string): string => `addr:${address}`;

/** Which source names a peer best: configuration and discovery say more than "it called us". */
const SOURCE_RANK: Record<PeerSource, number> = { static: 0, mdns: 1, inbound: 2 };

export class PeerTable {
  readonly #now: () => number;
  readonly #maxPeers: number;
  readonly #maxInboundFailures: number;
  readonly #entries = new Map<string, Entry>();
  /** `host:port` -> key of the entry that owns the address. */
  readonly #addressOwners = new Map<string, string>();
  #inboundFailures: InboundFailure[] = [];

  constructor(options: PeerTableOptions = {}) {
    this.#now = options.now ?? Date.now;
    this.#maxPeers = options.maxPeers ?? DEFAULT_MAX_PEERS;
    this.#maxInboundFailures = options.maxInboundFailures ?? DEFAULT_MAX_INBOUND_FAILURES;
  }

  get size(): number {
    return this.#entries.size;
  }

  // ---- events ----------------------------------------------------------------------------

  /** A discovery sighting: an mDNS advert (node id known) or a static entry (address only). */
  discovered(peer: DiscoveredPeer): void {
    const addresses = peer.addresses.map((address) => formatHostPort(address.host, address.port));
    if (peer.source === "mdns") {
      const entry = this.#entryForNode(peer.nodeId, "mdns");
      entry.fingerprint ??= peer.fingerprint;
      // The advertised version is a hint; a finished handshake's negotiated version wins.
      if (entry.state !== "up") entry.protocolVersion = `${peer.protocolVersion.major}.${peer.protocolVersion.minor}`;
      for (const address of addresses) this.#claimAddress(entry, address);
      return;
    }
    for (const address of addresses) {
      if (this.#addressOwners.has(address)) continue;
      const entry = this.#create(addressKey(address), null, "static");
      this.#claimAddress(entry, address);
    }
  }

  /** A static address turned out to lead to `nodeId` (the link manager learned it dialling). */
  addressResolved(address: string, nodeId: string): void {
    const ownerKey = this.#addressOwners.get(address);
    if (ownerKey === nodeKey(nodeId)) return;
    const owner = ownerKey === undefined ? undefined : this.#entries.get(ownerKey);
    const entry = this.#entryForNode(nodeId, owner?.source ?? "static");
    if (owner !== undefined && owner.nodeId === null) this.#mergeInto(owner, entry);
    else this.#claimAddress(entry, address);
  }

  linkUp(info: LinkUpInfo): void {
    const dialed = info.dialedAddress;
    const existing = this.#entries.get(nodeKey(info.nodeId));
    const entry = existing ?? this.#entryForNode(info.nodeId, dialed === undefined ? "inbound" : "static");
    if (dialed !== undefined) this.addressResolved(dialed, info.nodeId);
    entry.fingerprint = info.fingerprint;
    entry.softwareVersion = info.softwareVersion;
    entry.protocolVersion = info.protocolVersion;
    entry.lastError = null;
    this.#setState(entry, "up");
  }

  linkDown(nodeId: string, error: PeerErrorView): void {
    const entry = this.#entries.get(nodeKey(nodeId));
    if (entry === undefined) return;
    entry.lastError = { ...error };
    this.#setState(entry, "down");
  }

  /** A handshake that failed or a dial that did not get that far. */
  handshakeFailed(failure: HandshakeFailure): void {
    const entry = this.#entryForFailure(failure);
    if (entry === undefined) {
      if (failure.direction === "inbound") this.#recordInboundFailure(failure);
      return;
    }
    if (failure.code === "HEARTH_PEER_INCOMPATIBLE") {
      entry.lastError = { code: failure.code, message: failure.reason };
      this.#setState(entry, "incompatible");
      return;
    }
    // A spare dial to a peer that is already linked (e.g. the other side of a simultaneous
    // dial) says nothing about that peer.
    if (entry.state === "up") return;
    entry.lastError = { code: failure.code, message: failure.reason };
    this.#setState(entry, "down");
  }

  stateReported(nodeId: string, state: PeerStateMessage): void {
    const entry = this.#entries.get(nodeKey(nodeId));
    // Snapshots come only over an up link, so the entry exists; ignore anything else.
    if (entry === undefined) return;
    // No seq comparison here: the link already drops stale snapshots, and a restarted peer
    // starts counting again from 1.
    entry.reported = reportedStateOf(state);
  }

  linkMetrics(nodeId: string, metrics: LinkMetrics): void {
    const entry = this.#entries.get(nodeKey(nodeId));
    if (entry === undefined) return;
    if (metrics.rttMs !== undefined) entry.rttMs = metrics.rttMs;
    if (metrics.lastHeartbeatAt !== undefined) entry.lastHeartbeatAt = metrics.lastHeartbeatAt;
  }

  /** Drops an address (e.g. a static entry that turned out to be this node); an entry left with nothing is dropped. */
  forgetAddress(address: string): void {
    const ownerKey = this.#addressOwners.get(address);
    if (ownerKey === undefined) return;
    this.#addressOwners.delete(address);
    const owner = this.#entries.get(ownerKey);
    if (owner === undefined) return;
    owner.addresses = owner.addresses.filter((candidate) => candidate !== address);
    if (owner.nodeId === null && owner.addresses.length === 0) this.#entries.delete(owner.key);
  }

  // ---- snapshots -------------------------------------------------------------------------

  snapshot(): PeerView[] {
    const now = this.#now();
    const views = [...this.#entries.values()].map((entry): PeerView => {
      const reported = entry.reported;
      return {
        nodeId: entry.nodeId,
        fingerprint: entry.fingerprint,
        addresses: [...entry.addresses],
        protocolVersion: entry.protocolVersion,
        softwareVersion: entry.softwareVersion,
        resources: reported === null ? null : { ...reported.resources, gpus: reported.resources.gpus.map((gpu) => ({ ...gpu })) },
        models: reported === null ? null : reported.models.map((model) => ({ ...model })),
        loadedModels: reported === null ? null : [...reported.loadedModels],
        queueDepth: reported === null ? null : reported.queueDepth,
        speedScores: reported === null ? null : { ...reported.speedScores },
        state: entry.state,
        rttMs: entry.rttMs === null ? null : Math.round(entry.rttMs * 1000) / 1000,
        lastHeartbeatAgoMs: entry.lastHeartbeatAt === null ? null : Math.max(0, now - entry.lastHeartbeatAt),
        lastError: entry.lastError === null ? null : { ...entry.lastError },
        source: entry.source,
      };
    });
    // Stable order for tables and diffs: known nodes by id, then bare addresses.
    return views.sort((a, b) => sortKey(a).localeCompare(sortKey(b)));
  }

  /** Inbound handshakes that failed before the peer proved who it is, newest first. */
  inboundFailures(): InboundFailure[] {
    return this.#inboundFailures.map((failure) => ({ ...failure }));
  }

  // ---- internals -------------------------------------------------------------------------

  #entryForNode(nodeId: string, source: PeerSource): Entry {
    const key = nodeKey(nodeId);
    const existing = this.#entries.get(key);
    if (existing !== undefined) {
      if (SOURCE_RANK[source] < SOURCE_RANK[existing.source] && source !== "inbound") existing.source = source;
      return existing;
    }
    return this.#create(key, nodeId, source);
  }

  #entryForFailure(failure: HandshakeFailure): Entry | undefined {
    if (failure.nodeId !== undefined) {
      const byNode = this.#entries.get(nodeKey(failure.nodeId));
      if (byNode !== undefined) return byNode;
    }
    if (failure.direction !== "outbound") return undefined;
    const ownerKey = this.#addressOwners.get(failure.address);
    return ownerKey === undefined ? undefined : this.#entries.get(ownerKey);
  }

  #create(key: string, nodeId: string | null, source: PeerSource): Entry {
    const entry: Entry = {
      key,
      nodeId,
      fingerprint: null,
      addresses: [],
      protocolVersion: null,
      softwareVersion: null,
      reported: null,
      state: "connecting",
      rttMs: null,
      lastHeartbeatAt: null,
      lastError: null,
      source,
      changedAt: this.#now(),
    };
    this.#entries.set(key, entry);
    this.#evictBeyondLimit(entry);
    return entry;
  }

  #claimAddress(entry: Entry, address: string): void {
    const previousKey = this.#addressOwners.get(address);
    if (previousKey === entry.key) return;
    const previous = previousKey === undefined ? undefined : this.#entries.get(previousKey);
    if (previous !== undefined) {
      previous.addresses = previous.addresses.filter((candidate) => candidate !== address);
      // An address-only entry is nothing without its address.
      if (previous.nodeId === null && previous.addresses.length === 0) this.#entries.delete(previous.key);
    }
    this.#addressOwners.set(address, entry.key);
    if (!entry.addresses.includes(address)) entry.addresses.push(address);
  }

  /** Folds an address-only entry into the entry of the node found there. */
  #mergeInto(from: Entry, into: Entry): void {
    for (const address of from.addresses) {
      this.#addressOwners.set(address, into.key);
      if (!into.addresses.includes(address)) into.addresses.push(address);
    }
    if (SOURCE_RANK[from.source] < SOURCE_RANK[into.source]) into.source = from.source;
    if (into.lastError === null && into.state !== "up") into.lastError = from.lastError;
    this.#entries.delete(from.key);
  }

  #setState(entry: Entry, state: PeerLinkState): void {
    if (entry.state === state) return;
    entry.state = state;
    entry.changedAt = this.#now();
  }

  #recordInboundFailure(failure: HandshakeFailure): void {
    const now = this.#now();
    const index = this.#inboundFailures.findIndex((known) => known.address === failure.address && known.code === failure.code);
    const previous = index >= 0 ? this.#inboundFailures.splice(index, 1)[0] : undefined;
    this.#inboundFailures.unshift({ address: failure.address, code: failure.code, reason: failure.reason, at: now, count: (previous?.count ?? 0) + 1 });
    this.#inboundFailures = this.#inboundFailures.slice(0, this.#maxInboundFailures);
  }

  #evictBeyondLimit(keep: Entry): void {
    while (this.#entries.size > this.#maxPeers) {
      const candidates = [...this.#entries.values()].filter((entry) => entry !== keep && entry.state !== "up");
      if (candidates.length === 0) return;
      // Bare addresses first, then the peer that has been in its state longest.
      candidates.sort((a, b) => Number(a.nodeId !== null) - Number(b.nodeId !== null) || a.changedAt - b.changedAt);
      const victim = candidates[0]!;
      this.#entries.delete(victim.key);
      for (const address of victim.addresses) if (this.#addressOwners.get(address) === victim.key) this.#addressOwners.delete(address);
    }
  }
}

function sortKey(view: PeerView): string {
  return view.nodeId === null ? `1${view.addresses[0] ?? ""}` : `0${view.nodeId}`;
}
