/**
 * The expiry table behind MdnsDiscovery: which peers were heard, at which addresses, and when.
 *
 * Goodbyes are not guaranteed (a killed process or a cut cable sends none), so every address of
 * a peer carries the time it was last heard, and a peer is lost when none was heard for
 * `expiryMs`. Peers are keyed by node id; an address is a (host, port) pair, so a peer that
 * moves or gains an interface is updated rather than duplicated. The table is bounded: a LAN
 * flooding us with invented services cannot grow it past `maxPeers` x `maxAddressesPerPeer`.
 *
 * Pure: the caller passes the time (a monotonic clock in the service, a counter in tests).
 */

import type { ProtocolVersion } from "../../protocol/peer/version.js";
import type { PeerTxtHint } from "./mdnsTxt.js";
import type { MdnsDiscoveredPeer, PeerAddress } from "./PeerDiscovery.js";

/** Instance names one node id may be known under (ours uses one: the node id). */
const MAX_INSTANCE_NAMES_PER_PEER = 4;

export interface PeerSightingsLimits {
  /** A peer none of whose addresses was heard for this long is lost. */
  expiryMs: number;
  /** Peers tracked at once; sightings of further node ids are refused until one is lost. */
  maxPeers: number;
  /** Addresses tracked per peer; further addresses are refused until one expires. */
  maxAddressesPerPeer: number;
}

export interface Sighting {
  /** The mDNS instance name it was heard under (a goodbye names the instance). */
  instance: string;
  hint: PeerTxtHint;
  /** Best first (see peerAddresses.ts). */
  addresses: readonly PeerAddress[];
}

/**
 * - new: first sighting of this node id (announce it);
 * - changed: its address set or protocol version changed (announce again);
 * - refreshed: nothing new, only the expiry clock was reset;
 * - refused: the table is full, or the sighting carried no address.
 */
export type SightingOutcome = "new" | "changed" | "refreshed" | "refused";

interface Endpoint {
  address: PeerAddress;
  lastSeen: number;
}

interface Entry {
  nodeId: string;
  fingerprint: string;
  protocolVersion: ProtocolVersion;
  instances: Set<string>;
  /** Keyed by `host|port`, in order of preference: latest sighting's order first. */
  endpoints: Map<string, Endpoint>;
}

export interface ExpiryResult {
  /** Node ids none of whose addresses is left. */
  lost: string[];
  /** Peers that lost some addresses but not all, as they now are. */
  changed: MdnsDiscoveredPeer[];
}

const endpointKey = (address: PeerAddress): string => `${address.host}|${address.port}`;

function sameVersion(a: ProtocolVersion, b: ProtocolVersion): boolean {
  return a.major === b.major && a.minor === b.minor;
}

export class PeerSightings {
  readonly #limits: PeerSightingsLimits;
  readonly #peers = new Map<string, Entry>();
  readonly #instances = new Map<string, string>();

  constructor(limits: PeerSightingsLimits) {
    this.#limits = limits;
  }

  get size(): number {
    return this.#peers.size;
  }

  observe(sighting: Sighting, now: number): SightingOutcome {
    const { hint } = sighting;
    if (sighting.addresses.length === 0) return "refused";
    let entry = this.#peers.get(hint.nodeId);
    const isNew = entry === undefined;
    if (entry === undefined) {
      if (this.#peers.size >= this.#limits.maxPeers) return "refused";
      entry = { nodeId: hint.nodeId, fingerprint: hint.fingerprint, protocolVersion: hint.protocolVersion, instances: new Set(), endpoints: new Map() };
      this.#peers.set(hint.nodeId, entry);
    }
    // An instance name keeps its first owner, and a peer keeps a bounded number of names.
    const instanceFree = this.#instances.get(sighting.instance) === undefined;
    if (instanceFree && entry.instances.size < MAX_INSTANCE_NAMES_PER_PEER) {
      entry.instances.add(sighting.instance);
      this.#instances.set(sighting.instance, hint.nodeId);
    }

    let changed = false;
    if (!sameVersion(entry.protocolVersion, hint.protocolVersion)) {
      entry.protocolVersion = hint.protocolVersion;
      changed = true;
    }
    // Rebuild in the latest sighting's order, keeping older addresses (until they expire) after it.
    const reordered = new Map<string, Endpoint>();
    let added = 0;
    for (const address of sighting.addresses) {
      const key = endpointKey(address);
      if (reordered.has(key)) continue;
      if (!entry.endpoints.has(key)) {
        if (entry.endpoints.size + added >= this.#limits.maxAddressesPerPeer) continue;
        added++;
        changed = true;
      }
      reordered.set(key, { address: { host: address.host, port: address.port }, lastSeen: now });
    }
    for (const [key, endpoint] of entry.endpoints) if (!reordered.has(key)) reordered.set(key, endpoint);
    entry.endpoints = reordered;

    if (isNew) {
      if (entry.endpoints.size === 0) {
        this.#forget(entry);
        return "refused";
      }
      return "new";
    }
    return changed ? "changed" : "refreshed";
  }

  /** A goodbye for `instance`: forgets the peer it belonged to and returns its node id. */
  goodbye(instance: string): string | undefined {
    const nodeId = this.#instances.get(instance);
    const entry = nodeId === undefined ? undefined : this.#peers.get(nodeId);
    if (entry === undefined) return undefined;
    this.#forget(entry);
    return entry.nodeId;
  }

  /** Drops addresses not heard for `expiryMs`; a peer left with none is lost. */
  expire(now: number): ExpiryResult {
    const result: ExpiryResult = { lost: [], changed: [] };
    for (const entry of [...this.#peers.values()]) {
      let dropped = false;
      for (const [key, endpoint] of entry.endpoints) {
        if (now - endpoint.lastSeen > this.#limits.expiryMs) {
          entry.endpoints.delete(key);
          dropped = true;
        }
      }
      if (entry.endpoints.size === 0) {
        this.#forget(entry);
        result.lost.push(entry.nodeId);
      } else if (dropped) {
        result.changed.push(this.#view(entry));
      }
    }
    return result;
  }

  peer(nodeId: string): MdnsDiscoveredPeer | undefined {
    const entry = this.#peers.get(nodeId);
    return entry === undefined ? undefined : this.#view(entry);
  }

  peers(): MdnsDiscoveredPeer[] {
    return [...this.#peers.values()].map((entry) => this.#view(entry));
  }

  clear(): void {
    this.#peers.clear();
    this.#instances.clear();
  }

  #forget(entry: Entry): void {
    this.#peers.delete(entry.nodeId);
    for (const instance of entry.instances) this.#instances.delete(instance);
  }

  #view(entry: Entry): MdnsDiscoveredPeer {
    return {
      source: "mdns",
      nodeId: entry.nodeId,
      fingerprint: entry.fingerprint,
      protocolVersion: { ...entry.protocolVersion },
      addresses: [...entry.endpoints.values()].map((endpoint) => ({ ...endpoint.address })),
    };
  }
}
