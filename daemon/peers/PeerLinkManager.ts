/**
 * All of this node's peer links: the listener, the dialler, and one live link per peer.
 *
 *   - `start()` listens; `connect(target)` keeps dialling an address (with backoff + jitter)
 *     until a link to it is up, and again whenever that link goes down;
 *   - links are kept by node id; when two links to one peer are up at once, the duplicate rule
 *     (duplicateLinks.ts) decides which survives, and the other is closed with 4409;
 *   - `up` / `down` events fire when a peer gains its first link or loses its last one;
 *     `handshakeFailed` fires for every refused or failed handshake (for logs, the peer table
 *     and `hearth doctor`: wrong cluster, incompatible version, unreachable);
 *   - the route table (PeerRouteTable.ts) answers requests and streams on every link;
 *   - `publishState()` sends this node's state snapshot to every peer, and to each new one;
 *   - `stop()` stops dialling, closes every link with 1001 and then the listener.
 * A peer that misbehaves or disappears costs only its own link.
 *
 * Lifecycle as js-libp2p services: construct with components, then start()/stop().
 */

import { EventEmitter } from "node:events";
import type { Logger } from "pino";
import type { PeerConfig } from "../config/defaults.js";
import { errors, HearthError } from "../../protocol/errors.js";
import type { HearthErrorCode } from "../../protocol/errors.js";
import { shortNodeId } from "../../protocol/peer/identity.js";
import type { PeerStateMessage } from "../../protocol/peer/messages.js";
import type { ClusterCredentials } from "../../protocol/peer/joinToken.js";
import type { ProtocolVersion } from "../../protocol/peer/version.js";
import { hearthVersion } from "../lifecycle/version.js";
import { backoffDelay } from "./backoff.js";
import { dialPeer } from "./dialPeer.js";
import { resolveDuplicateLink } from "./duplicateLinks.js";
import type { RequestHandler, RequestOptions } from "./linkRequests.js";
import type { OpenStreamOptions, StreamHandler } from "./linkStreams.js";
import { PeerLink } from "./PeerLink.js";
import type { PeerLinkClose } from "./PeerLink.js";
import { PeerLinkServer } from "./PeerLinkServer.js";
import { PeerRouteTable } from "./PeerRouteTable.js";
import type { AcceptedConnection } from "./PeerLinkServer.js";
import type { PeerStream } from "./PeerStream.js";
import type { WebSocket } from "ws";
import { formatHostPort } from "./wire.js";

/** What the manager needs of the node identity (daemon/identity/NodeIdentity.ts). */
export interface LocalIdentity {
  readonly nodeId: string;
  readonly fingerprint: Uint8Array;
  tlsCredentials(): { key: string; cert: string };
}

export interface PeerLinkManagerInit {
  identity: LocalIdentity;
  /** The cluster this node belongs to (daemon/identity/ClusterMembership.ts). */
  membership: ClusterCredentials;
  config: PeerConfig;
  logger: Logger;
  /** Defaults to this package's version. */
  softwareVersion?: string;
  capabilities?: readonly string[];
  /** The version announced in every hello. Default: PROTOCOL_VERSION (tests announce others). */
  protocolVersion?: ProtocolVersion;
  /** What peers can reach on the links; defaults to an empty table. */
  routes?: PeerRouteTable;
  /** Injected randomness for backoff jitter (tests). */
  random?: () => number;
}

export interface DialTarget {
  host: string;
  port: number;
  /** The node expected there (an mDNS hint): any other node is refused. Omit for static peers. */
  nodeId?: string;
}

export interface PeerDownEvent {
  nodeId: string;
  /** Why the last link ended. */
  close: PeerLinkClose;
}

export interface HandshakeFailedEvent {
  direction: "inbound" | "outbound";
  /** `host:port` dialled, or the remote IP of an inbound attempt. */
  address: string;
  /** Known when dialling a target with a node id hint. */
  nodeId: string | undefined;
  code: HearthErrorCode;
  reason: string;
}

export interface PeerLinkManagerEvents {
  up: [link: PeerLink];
  down: [event: PeerDownEvent];
  state: [nodeId: string, state: PeerStateMessage];
  handshakeFailed: [event: HandshakeFailedEvent];
}

/** Snapshot content without the wire's `type` and `seq`, which the manager fills in. */
export type LocalPeerState = Omit<PeerStateMessage, "type" | "seq">;

interface DialEntry {
  key: string;
  target: DialTarget;
  /** Expected or learned node id. */
  nodeId: string | undefined;
  failures: number;
  timer: NodeJS.Timeout | undefined;
  dialing: boolean;
  removed: boolean;
  lastFailure: { code: HearthErrorCode; reason: string; at: number } | undefined;
}

export interface DialTargetStatus {
  target: DialTarget;
  nodeId: string | undefined;
  linked: boolean;
  failures: number;
  lastFailure: { code: HearthErrorCode; reason: string; at: number } | undefined;
}

/** Inbound handshake failures that are no fault of the remote address. */
const BLAMELESS_FAILURES: ReadonlySet<HearthErrorCode> = new Set<HearthErrorCode>(["HEARTH_SHUTTING_DOWN", "HEARTH_PEER_INCOMPATIBLE", "HEARTH_INTERNAL"]);

export class PeerLinkManager extends EventEmitter<PeerLinkManagerEvents> {
  readonly nodeId: string;
  readonly #init: PeerLinkManagerInit;
  readonly #config: PeerConfig;
  readonly #logger: Logger;
  readonly #softwareVersion: string;
  readonly #random: () => number;
  /** Up links per peer, oldest first; the newest is the one used. */
  readonly #links = new Map<string, PeerLink[]>();
  /** Links still in their handshake. */
  readonly #pending = new Set<PeerLink>();
  readonly #dialTargets = new Map<string, DialEntry>();
  readonly routes: PeerRouteTable;
  #server: PeerLinkServer | undefined;
  #localState: PeerStateMessage | undefined;
  #stateSeq = 0;
  #state: "new" | "started" | "stopping" | "stopped" = "new";

  constructor(init: PeerLinkManagerInit) {
    super();
    this.#init = init;
    this.#config = init.config;
    this.nodeId = init.identity.nodeId;
    this.#logger = init.logger.child({ component: "peers" });
    this.#softwareVersion = init.softwareVersion ?? hearthVersion();
    this.#random = init.random ?? Math.random;
    this.routes = init.routes ?? new PeerRouteTable();
  }

  // ---- lifecycle -------------------------------------------------------------------------

  /** Starts the listener on PeerConfig's host and port (0: any free port). */
  async start(): Promise<{ host: string; port: number }> {
    if (this.#state !== "new") throw errors.internal("PeerLinkManager.start() called twice");
    this.#state = "started";
    const server = new PeerLinkServer({
      tls: this.#init.identity.tlsCredentials(),
      config: this.#config,
      logger: this.#logger,
      onConnection: (connection) => this.#onInbound(connection),
    });
    this.#server = server;
    const address = await server.listen(this.#config.host, this.#config.port);
    this.#logger.info({ nodeId: this.nodeId, address: formatHostPort(address.address, address.port) }, "listening for peers");
    for (const entry of this.#dialTargets.values()) this.#schedule(entry, 0);
    return { host: address.address, port: address.port };
  }

  /** Stops dialling, closes every link with 1001 (HEARTH_SHUTTING_DOWN), then the listener. */
  async stop(): Promise<void> {
    if (this.#state === "stopping" || this.#state === "stopped") return;
    this.#state = "stopping";
    for (const entry of this.#dialTargets.values()) clearTimeout(entry.timer);
    const links = [...this.#pending, ...[...this.#links.values()].flat()];
    const grace = this.#config.closeGraceMs;
    await Promise.all(links.map((link) => link.close("HEARTH_SHUTTING_DOWN", "this node is shutting down")));
    await this.#server?.close(grace);
    this.#state = "stopped";
  }

  get listeningAddress(): { host: string; port: number } | undefined {
    const address = this.#server?.address();
    return address === undefined ? undefined : { host: address.address, port: address.port };
  }

  /** The listener, with its failed-attempt limiter and handshake count (for `hearth doctor` and tests). */
  get server(): PeerLinkServer | undefined {
    return this.#server;
  }

  // ---- handlers --------------------------------------------------------------------------

  /** Adds one request route to the table (tests and tools; the daemon fills its table in one place). */
  handleRequest(method: string, handler: RequestHandler): void {
    this.routes.handleRequest(method, handler);
  }

  handleStream(purpose: string, handler: StreamHandler): void {
    this.routes.handleStream(purpose, handler);
  }

  // ---- links -----------------------------------------------------------------------------

  /** The link used for `nodeId` (the newest up link), if any. */
  link(nodeId: string): PeerLink | undefined {
    const links = this.#links.get(nodeId);
    return links?.[links.length - 1];
  }

  /** One link per connected peer. */
  links(): PeerLink[] {
    return [...this.#links.values()].map((links) => links[links.length - 1]!);
  }

  /** Up links to `nodeId`: 1 normally; 2 only for a moment while a duplicate is resolved. */
  linkCount(nodeId: string): number {
    return this.#links.get(nodeId)?.length ?? 0;
  }

  connectedNodeIds(): string[] {
    return [...this.#links.keys()];
  }

  request(nodeId: string, method: string, payload: unknown, options?: RequestOptions): Promise<unknown> {
    const link = this.link(nodeId);
    if (link === undefined) return Promise.reject(errors.peerUnavailable(`no link to ${nodeId} is up`));
    return link.request(method, payload, options);
  }

  openStream(nodeId: string, purpose: string, options?: OpenStreamOptions): Promise<PeerStream> {
    const link = this.link(nodeId);
    if (link === undefined) return Promise.reject(errors.peerUnavailable(`no link to ${nodeId} is up`));
    return link.openStream(purpose, options);
  }

  /** Sends this node's state to every peer now, and to every peer that connects later. */
  publishState(state: LocalPeerState): void {
    this.#localState = { ...state, type: "peerState", seq: ++this.#stateSeq };
    for (const link of this.links()) link.sendPeerState(this.#localState);
  }

  // ---- dialling --------------------------------------------------------------------------

  /** Keeps a link to `target` up: dials now (once started) and after every loss. Idempotent. */
  connect(target: DialTarget): void {
    if (target.nodeId === this.nodeId) return;
    const key = formatHostPort(target.host, target.port);
    const existing = this.#dialTargets.get(key);
    if (existing !== undefined) {
      if (target.nodeId !== undefined) existing.nodeId = target.nodeId;
      existing.target = target;
      return;
    }
    const entry: DialEntry = { key, target, nodeId: target.nodeId, failures: 0, timer: undefined, dialing: false, removed: false, lastFailure: undefined };
    this.#dialTargets.set(key, entry);
    if (this.#state === "started") this.#schedule(entry, 0);
  }

  /** Stops dialling `host:port` (an existing link stays up until it ends by itself). */
  disconnect(target: Pick<DialTarget, "host" | "port">): void {
    const key = formatHostPort(target.host, target.port);
    const entry = this.#dialTargets.get(key);
    if (entry === undefined) return;
    entry.removed = true;
    clearTimeout(entry.timer);
    this.#dialTargets.delete(key);
  }

  dialTargets(): DialTargetStatus[] {
    return [...this.#dialTargets.values()].map((entry) => ({
      target: entry.target,
      nodeId: entry.nodeId,
      linked: entry.nodeId !== undefined && this.#links.has(entry.nodeId),
      failures: entry.failures,
      lastFailure: entry.lastFailure,
    }));
  }

  #schedule(entry: DialEntry, delayMs: number): void {
    if (entry.removed || this.#state !== "started" || entry.dialing) return;
    clearTimeout(entry.timer);
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      void this.#dial(entry);
    }, delayMs);
    entry.timer.unref();
  }

  async #dial(entry: DialEntry): Promise<void> {
    if (entry.removed || this.#state !== "started" || entry.dialing) return;
    if (entry.nodeId !== undefined && this.#links.has(entry.nodeId)) return;
    entry.dialing = true;
    const { host, port } = entry.target;
    let link: PeerLink | undefined;
    try {
      const dialed = await dialPeer(host, port, {
        tls: this.#init.identity.tlsCredentials(),
        maxFrameBytes: this.#config.maxFrameBytes,
        timeoutMs: this.#config.dialTimeoutMs,
      });
      if (this.#state !== "started") {
        dialed.socket.terminate();
        return;
      }
      link = this.#createLink(dialed.socket, "initiator", dialed.remoteAddress, dialed.remoteFingerprint, entry.target.nodeId);
      const done = await link.ready;
      entry.nodeId = done.peerNodeId;
      entry.failures = 0;
      entry.lastFailure = undefined;
    } catch (error) {
      const failure = HearthError.from(error, "HEARTH_PEER_UNAVAILABLE");
      entry.failures++;
      entry.lastFailure = { code: failure.code, reason: failure.message, at: Date.now() };
      // A PeerLink reports its own handshake failures (event + log); report only what came before it.
      if (link === undefined) {
        this.#logger.debug({ address: entry.key, code: failure.code, reason: failure.message, failures: entry.failures }, "dial failed");
        this.emit("handshakeFailed", { direction: "outbound", address: entry.key, nodeId: entry.target.nodeId, code: failure.code, reason: failure.message });
      }
      entry.dialing = false;
      this.#schedule(entry, this.#backoff(entry.failures));
      return;
    }
    entry.dialing = false;
  }

  #backoff(failures: number): number {
    return backoffDelay(
      failures,
      { initialMs: this.#config.dialBackoffInitialMs, maxMs: this.#config.dialBackoffMaxMs, jitter: this.#config.dialBackoffJitter },
      this.#random,
    );
  }

  /** After a peer's last link ends, dial every target that leads to it again. */
  #redialTargetsOf(nodeId: string): void {
    for (const entry of this.#dialTargets.values()) {
      if (entry.nodeId === nodeId) this.#schedule(entry, this.#backoff(Math.max(1, entry.failures)));
    }
  }

  // ---- link bookkeeping ------------------------------------------------------------------

  #onInbound(connection: AcceptedConnection): void {
    if (this.#state !== "started") {
      connection.slot.released();
      connection.socket.close(1001, "HEARTH_SHUTTING_DOWN");
      return;
    }
    const link = this.#createLink(connection.socket, "responder", connection.remoteAddress, connection.remoteFingerprint, undefined);
    link.ready.then(
      () => connection.slot.succeeded(),
      (error: unknown) => {
        const code = error instanceof HearthError ? error.code : "HEARTH_INTERNAL";
        if (BLAMELESS_FAILURES.has(code)) connection.slot.released();
        else connection.slot.failed();
      },
    );
  }

  #createLink(socket: WebSocket, role: "initiator" | "responder", address: string, remoteFingerprint: Uint8Array, expectedPeerNodeId: string | undefined): PeerLink {
    const link = new PeerLink({
      socket,
      role,
      remoteAddress: address,
      remoteFingerprint,
      localFingerprint: this.#init.identity.fingerprint,
      clusterSecret: this.#init.membership.secret,
      softwareVersion: this.#softwareVersion,
      capabilities: this.#init.capabilities ?? [],
      expectedPeerNodeId,
      ...(this.#init.protocolVersion === undefined ? {} : { protocolVersion: this.#init.protocolVersion }),
      config: this.#config,
      handlers: this.routes,
      logger: this.#logger,
    });
    this.#pending.add(link);
    link.on("up", () => this.#onLinkUp(link));
    link.on("state", (state) => {
      const nodeId = link.peerNodeId;
      if (nodeId !== undefined && this.link(nodeId) === link) this.emit("state", nodeId, state);
    });
    link.on("close", (info) => this.#onLinkClose(link, info, expectedPeerNodeId));
    return link;
  }

  #onLinkUp(link: PeerLink): void {
    this.#pending.delete(link);
    const nodeId = link.peerNodeId!;
    if (this.#state !== "started") {
      void link.close();
      return;
    }
    const existing = [...(this.#links.get(nodeId) ?? [])];
    const losers: PeerLink[] = [];
    for (const other of existing) {
      const verdict = resolveDuplicateLink(this.nodeId, nodeId, other, link);
      if (verdict === "keepExisting") {
        // Not registered yet, so its close changes nothing here.
        void link.close("HEARTH_PEER_DUPLICATE_LINK", "a link to this peer is already up");
        return;
      }
      if (verdict === "keepIncoming") losers.push(other);
    }
    // Register the winner before closing the losers, so the peer never looks down in between.
    this.#links.set(nodeId, [...existing, link]);
    for (const loser of losers) void loser.close("HEARTH_PEER_DUPLICATE_LINK", "replaced by a newer link to this peer");
    if (this.#localState !== undefined) link.sendPeerState(this.#localState);
    for (const entry of this.#dialTargets.values()) {
      if (entry.nodeId === nodeId) {
        clearTimeout(entry.timer);
        entry.timer = undefined;
      }
    }
    if (existing.length === 0) this.emit("up", link);
  }

  #onLinkClose(link: PeerLink, info: PeerLinkClose, expectedPeerNodeId: string | undefined): void {
    if (this.#pending.delete(link)) {
      this.emit("handshakeFailed", {
        direction: link.role === "initiator" ? "outbound" : "inbound",
        address: link.remoteAddress,
        nodeId: link.peerNodeId ?? expectedPeerNodeId,
        code: info.errorCode,
        reason: info.reason,
      });
      return;
    }
    const nodeId = link.peerNodeId;
    if (nodeId === undefined) return;
    const links = this.#links.get(nodeId);
    if (links === undefined || !links.includes(link)) return;
    const remaining = links.filter((candidate) => candidate !== link);
    if (remaining.length > 0) {
      this.#links.set(nodeId, remaining);
      return;
    }
    this.#links.delete(nodeId);
    this.#logger.info({ peer: shortNodeId(nodeId), code: info.code, errorCode: info.errorCode, reason: info.reason }, "peer down");
    this.emit("down", { nodeId, close: info });
    if (this.#state === "started") this.#redialTargetsOf(nodeId);
  }
}
