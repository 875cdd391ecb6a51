/**
 * The peer fabric: this node's links to the other members of its cluster, and what it knows
 * of them.
 *
 * It composes, for a node that belongs to a cluster:
 *   - the PeerLinkManager (authenticated links, answering peers from the route table),
 *   - discovery: mDNS (unless `peer.mdns = false`) and the static `--peer` entries, whose
 *     sightings become dial targets (daemon/discovery/),
 *   - the PeerTable (daemon/cluster/PeerTable.ts), fed from both: every peer seen this run,
 *     its link state and its last published state.
 * A standalone node has a fabric too, with no listener, no discovery and no links: requests
 * and streams to peers fail with HEARTH_PEER_UNAVAILABLE, and its peer list is empty.
 *
 * Outgoing traffic is `request()` and `openStream()`; incoming traffic reaches the handlers of
 * the route table it was built with. `publishState()` sends this node's state to every peer.
 * Events: `peerDown` when a peer loses its last link.
 *
 * No peer can take the daemon down through here: every event handler catches and logs, and a
 * bad peer costs only its own link (the manager's rule). Stopping is two steps, so the daemon
 * can drain between them: stopDiscovery() (mDNS goodbye), stopLinks() (1001 to every peer).
 */

import { EventEmitter } from "node:events";
import type { Logger } from "pino";
import type { HearthError } from "../../protocol/errors.js";
import { errors } from "../../protocol/errors.js";
import { shortNodeId } from "../../protocol/peer/identity.js";
import type { ProtocolVersion } from "../../protocol/peer/version.js";
import { PeerTable, type InboundFailure } from "./PeerTable.js";
import type { PeerView } from "../../protocol/api/cluster.js";
import type { HearthConfig } from "../config/defaults.js";
import { DEFAULT_PEER_PORT } from "../config/defaults.js";
import { listInterfaces, localAddressSet } from "../discovery/interfaces.js";
import { MdnsDiscovery, type MdnsDiscoveryStatus } from "../discovery/MdnsDiscovery.js";
import type { DiscoveredPeer, PeerDiscovery } from "../discovery/PeerDiscovery.js";
import { StaticPeers } from "../discovery/StaticPeers.js";
import type { ClusterMembership } from "../identity/ClusterMembership.js";
import { listenError } from "../lifecycle/listenError.js";
import type { NodeIdentity } from "../identity/NodeIdentity.js";
import type { RequestOptions } from "./linkRequests.js";
import type { OpenStreamOptions } from "./linkStreams.js";
import type { PeerLink } from "./PeerLink.js";
import { PeerLinkManager, type DialTargetStatus, type HandshakeFailedEvent, type LocalPeerState, type PeerDownEvent } from "./PeerLinkManager.js";
import type { PeerRouteTable } from "./PeerRouteTable.js";
import type { PeerStream } from "./PeerStream.js";
import { formatHostPort } from "./wire.js";

/** The handshake's reason when a static entry turns out to be this node (protocol/peer/handshake.ts). */
const SELF_DIAL_REASON = "the peer is this node itself";
const WILDCARD_HOSTS: ReadonlySet<string> = new Set(["0.0.0.0", "::", ""]);

export interface PeerFabricInit {
  config: HearthConfig;
  identity: NodeIdentity;
  /** Undefined: standalone, no peer links. */
  membership: ClusterMembership | undefined;
  routes: PeerRouteTable;
  logger: Logger;
  softwareVersion: string;
  protocolVersion: ProtocolVersion;
}

export interface PeerFabricEvents {
  peerDown: [event: PeerDownEvent];
}

/** What outgoing peer traffic needs (routing, model sharing, RPC tunnels). */
export interface PeerLinks {
  request(nodeId: string, method: string, payload: unknown, options?: RequestOptions): Promise<unknown>;
  openStream(nodeId: string, purpose: string, options?: OpenStreamOptions): Promise<PeerStream>;
}

/** What `hearth doctor` learns of the links (`GET /hearth/v1/cluster/diagnostics`). */
export interface FabricDiagnostics {
  listener: { host: string; port: number } | null;
  mdns: { enabled: boolean; status: MdnsDiscoveryStatus | null };
  staticPeers: string[];
  dialTargets: DialTargetStatus[];
  inboundFailures: InboundFailure[];
  /** Remote addresses the listener's failed-attempt limiter tracks, and handshakes running. */
  listenerLimiter: { trackedAddresses: number; pendingHandshakes: number } | null;
}

export class PeerFabric extends EventEmitter<PeerFabricEvents> implements PeerLinks {
  readonly #init: PeerFabricInit;
  readonly #logger: Logger;
  readonly #table = new PeerTable();
  readonly #manager: PeerLinkManager | undefined;
  #mdns: MdnsDiscovery | undefined;
  #discoveries: PeerDiscovery[] = [];
  /** node id -> `host:port` targets its mDNS adverts gave us, to stop dialling them when it is lost. */
  readonly #mdnsTargets = new Map<string, Set<string>>();
  readonly #staticTargets = new Set<string>();

  constructor(init: PeerFabricInit) {
    super();
    this.#init = init;
    this.#logger = init.logger.child({ component: "cluster" });
    this.#manager =
      init.membership === undefined
        ? undefined
        : new PeerLinkManager({
            identity: init.identity,
            membership: init.membership,
            config: init.config.peer,
            logger: init.logger,
            softwareVersion: init.softwareVersion,
            protocolVersion: init.protocolVersion,
            routes: init.routes,
          });
  }

  get isMember(): boolean {
    return this.#manager !== undefined;
  }

  /** The links themselves, for tests and tools that inspect them; undefined when standalone. */
  get manager(): PeerLinkManager | undefined {
    return this.#manager;
  }

  /**
   * For a member: listens for peers, then starts discovery. Rejects (HEARTH_CONFIG_INVALID
   * naming peer.port / peer.bind) when the listener cannot bind. A standalone node does nothing.
   */
  async start(): Promise<void> {
    const manager = this.#manager;
    const { config, membership, identity } = this.#init;
    if (manager === undefined || membership === undefined) return;
    this.#wireManager(manager);
    let bound: { host: string; port: number };
    try {
      bound = await manager.start();
    } catch (error) {
      throw listenError(error, config.peer.host, config.peer.port, { what: "for peers ", portFlag: "--peer-port", portParam: "peer.port", bindFlag: "--peer-bind", bindParam: "peer.bind" });
    }
    this.#logger.info(
      { nodeId: identity.nodeId, clusterId: membership.clusterId, peerAddress: formatHostPort(bound.host, bound.port), mdns: config.peer.mdns, staticPeers: config.peer.staticPeers.length },
      "cluster member: peer links enabled",
    );
    await this.#startDiscovery(bound.port);
  }

  /** Shutdown step: mDNS goodbye; no new peers are dialled after this. */
  async stopDiscovery(): Promise<void> {
    const discoveries = this.#discoveries;
    this.#discoveries = [];
    await Promise.all(discoveries.map((discovery) => discovery.stop()));
  }

  /** Shutdown step: every peer link closes with 1001, then the listener. */
  async stopLinks(): Promise<void> {
    await this.#manager?.stop();
  }

  request(nodeId: string, method: string, payload: unknown, options?: RequestOptions): Promise<unknown> {
    if (this.#manager === undefined) return Promise.reject(standalone());
    return this.#manager.request(nodeId, method, payload, options);
  }

  openStream(nodeId: string, purpose: string, options?: OpenStreamOptions): Promise<PeerStream> {
    if (this.#manager === undefined) return Promise.reject(standalone());
    return this.#manager.openStream(nodeId, purpose, options);
  }

  /** Sends this node's state to every peer (and to each new one); nothing when standalone. */
  publishState(state: LocalPeerState): void {
    this.#manager?.publishState(state);
  }

  /** Every peer seen this run, with each up link's current RTT and heartbeat time. */
  peers(): PeerView[] {
    const manager = this.#manager;
    if (manager !== undefined) {
      this.#guard("resolving dial targets", () => {
        for (const target of manager.dialTargets()) {
          if (target.nodeId !== undefined) this.#table.addressResolved(formatHostPort(target.target.host, target.target.port), target.nodeId);
        }
        for (const link of manager.links()) {
          const nodeId = link.peerNodeId;
          if (nodeId !== undefined) this.#table.linkMetrics(nodeId, { rttMs: link.rttMs, lastHeartbeatAt: link.lastHeartbeatAt });
        }
      });
    }
    return this.#table.snapshot();
  }

  /** `host:port` where peers can reach this node's listener (empty when standalone). */
  listenerAddresses(): string[] {
    const bound = this.#manager?.listeningAddress;
    if (bound === undefined) return [];
    if (!WILDCARD_HOSTS.has(bound.host)) return [formatHostPort(bound.host, bound.port)];
    // A wildcard bind answers on every address; list the ones a peer could use.
    const interfaces = listInterfaces().filter((entry) => !entry.linkLocal && entry.kind !== "container" && entry.kind !== "vm-bridge");
    const reachable = interfaces.filter((entry) => entry.kind !== "loopback");
    const chosen = (reachable.length > 0 ? reachable : interfaces).filter((entry) => bound.host !== "0.0.0.0" || entry.family === "IPv4");
    return chosen.map((entry) => formatHostPort(entry.address, bound.port));
  }

  diagnostics(): FabricDiagnostics {
    const manager = this.#manager;
    const server = manager?.server;
    return {
      listener: manager?.listeningAddress ?? null,
      mdns: { enabled: this.isMember && this.#init.config.peer.mdns, status: this.#mdns?.status() ?? null },
      staticPeers: [...this.#init.config.peer.staticPeers],
      dialTargets: manager?.dialTargets() ?? [],
      inboundFailures: this.#table.inboundFailures(),
      listenerLimiter: server === undefined ? null : { trackedAddresses: server.limiter.trackedAddresses, pendingHandshakes: server.pendingHandshakes },
    };
  }

  // ---- internals -------------------------------------------------------------------------

  #wireManager(manager: PeerLinkManager): void {
    manager.on("up", (link: PeerLink) =>
      this.#guard("peer up", () => {
        const peer = link.peer;
        if (peer === undefined) return;
        this.#table.linkUp({
          nodeId: peer.peerNodeId,
          fingerprint: peer.peerFingerprintHex,
          softwareVersion: peer.peerSoftwareVersion,
          protocolVersion: `${peer.protocol.major}.${peer.protocol.minor}`,
          dialedAddress: link.role === "initiator" ? link.remoteAddress : undefined,
        });
        const state = link.peerState;
        if (state !== undefined) this.#table.stateReported(peer.peerNodeId, state);
        this.#logger.info({ peer: shortNodeId(peer.peerNodeId), address: link.remoteAddress, role: link.role }, "peer up");
      }),
    );
    manager.on("down", (event: PeerDownEvent) =>
      this.#guard("peer down", () => {
        this.#table.linkDown(event.nodeId, { code: event.close.errorCode, message: event.close.reason });
        this.emit("peerDown", event);
      }),
    );
    manager.on("state", (nodeId, state) => this.#guard("peer state", () => this.#table.stateReported(nodeId, state)));
    manager.on("handshakeFailed", (event: HandshakeFailedEvent) =>
      this.#guard("handshake failure", () => {
        if (event.direction === "outbound" && event.reason === SELF_DIAL_REASON) {
          this.#forgetSelfTarget(event.address);
          return;
        }
        this.#table.handshakeFailed(event);
      }),
    );
  }

  async #startDiscovery(port: number): Promise<void> {
    const { config, identity, logger } = this.#init;
    const discoveries: PeerDiscovery[] = [new StaticPeers({ logger }, { peers: config.peer.staticPeers, defaultPort: DEFAULT_PEER_PORT, param: "peer.static_peers" })];
    if (config.peer.mdns) {
      this.#mdns = new MdnsDiscovery({ logger, identity }, { port, protocolVersion: this.#init.protocolVersion });
      discoveries.push(this.#mdns);
    }
    for (const discovery of discoveries) {
      discovery.on("peerSeen", (peer) => this.#guard("peer seen", () => this.#onPeerSeen(peer)));
      discovery.on("peerLost", (nodeId) => this.#guard("peer lost", () => this.#onPeerLost(nodeId)));
    }
    this.#discoveries = discoveries;
    await Promise.all(discoveries.map((discovery) => discovery.start()));
  }

  #onPeerSeen(peer: DiscoveredPeer): void {
    const manager = this.#manager;
    if (manager === undefined || peer.nodeId === this.#init.identity.nodeId) return;
    const targets = peer.addresses.filter((address) => !(peer.source === "static" && this.#isOwnListener(address.host, address.port)));
    if (targets.length === 0) return;
    this.#table.discovered({ ...peer, addresses: targets });
    if (peer.source === "static") {
      for (const address of targets) {
        this.#staticTargets.add(formatHostPort(address.host, address.port));
        manager.connect({ host: address.host, port: address.port });
      }
      return;
    }
    const current = new Set(targets.map((address) => formatHostPort(address.host, address.port)));
    const previous = this.#mdnsTargets.get(peer.nodeId) ?? new Set<string>();
    for (const address of targets) manager.connect({ host: address.host, port: address.port, nodeId: peer.nodeId });
    for (const key of previous) if (!current.has(key)) this.#stopDialling(key, previous);
    this.#mdnsTargets.set(peer.nodeId, current);
  }

  #onPeerLost(nodeId: string): void {
    const previous = this.#mdnsTargets.get(nodeId);
    if (previous === undefined) return;
    // An up link stays up (it has its own heartbeats); only redialling an unadvertised peer stops.
    for (const key of previous) this.#stopDialling(key, previous);
    this.#mdnsTargets.delete(nodeId);
  }

  #stopDialling(key: string, targets: Set<string>): void {
    targets.delete(key);
    if (this.#staticTargets.has(key)) return;
    const target = this.#manager?.dialTargets().find((status) => formatHostPort(status.target.host, status.target.port) === key);
    if (target !== undefined) this.#manager?.disconnect(target.target);
  }

  /** A static entry that names this node's own listener (same list on every node) is skipped. */
  #isOwnListener(host: string, port: number): boolean {
    const bound = this.#manager?.listeningAddress;
    if (bound === undefined || bound.port !== port) return false;
    if (host === "localhost") return true;
    const local = localAddressSet(listInterfaces());
    return local.has(host) || host === bound.host;
  }

  #forgetSelfTarget(address: string): void {
    const target = this.#manager?.dialTargets().find((status) => formatHostPort(status.target.host, status.target.port) === address);
    if (target !== undefined) this.#manager?.disconnect(target.target);
    this.#staticTargets.delete(address);
    this.#table.forgetAddress(address);
    this.#logger.info({ address }, "static peer entry is this node itself; not dialling it");
  }

  #guard(what: string, action: () => void): void {
    try {
      action();
    } catch (error) {
      this.#logger.error({ err: error, event: what }, "cluster event handler failed");
    }
  }
}

function standalone(): HearthError {
  return errors.peerUnavailable("this node belongs to no cluster");
}
