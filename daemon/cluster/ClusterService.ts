/**
 * The cluster side of the daemon: who this node is to its peers, who they are, and what they
 * last said about themselves.
 *
 * It composes, for a node that belongs to a cluster:
 *   - the PeerLinkManager (authenticated links, daemon/peers/),
 *   - discovery: mDNS (unless `peer.mdns = false`) and the static `--peer` entries, whose
 *     sightings become dial targets (daemon/discovery/),
 *   - the PeerTable, fed from both,
 *   - this node's state (LocalState) published to every peer on change and every
 *     `statePublishIntervalMs`,
 * and the ClusterView behind `GET /hearth/v1/cluster`, for every node. The background work (the
 * GPU probe, model hashing, speed scores) starts with a member; a standalone node has no
 * listener, no discovery and no links, probes its GPU only once asked for its view, and shows
 * only model hashes already cached.
 *
 * No peer can take the daemon down through here: every event handler catches and logs, and a
 * bad peer costs only its own link (the manager's rule). Shutdown is split so the daemon can
 * interleave it with its own steps: stopDiscovery() (mDNS goodbye), stopLinks() (1001 to every
 * peer), stop() (background work).
 */

import type { Logger } from "pino";
import { errors, HearthError } from "../../protocol/errors.js";
import { shortNodeId } from "../../protocol/peer/identity.js";
import type { ProtocolVersion } from "../../protocol/peer/version.js";
import type { HearthConfig } from "../config/defaults.js";
import { DEFAULT_PEER_PORT } from "../config/defaults.js";
import { listInterfaces, localAddressSet } from "../discovery/interfaces.js";
import { MdnsDiscovery, type MdnsDiscoveryStatus } from "../discovery/MdnsDiscovery.js";
import type { DiscoveredPeer, PeerDiscovery } from "../discovery/PeerDiscovery.js";
import { StaticPeers } from "../discovery/StaticPeers.js";
import type { LocalInferenceEngine, ModelCatalog, ModelDescriptor } from "../engine/types.js";
import { ResourceProbe, type GpuProbeState } from "../hardware/ResourceProbe.js";
import type { ClusterMembership } from "../identity/ClusterMembership.js";
import type { NodeIdentity } from "../identity/NodeIdentity.js";
import type { RequestHandler } from "../peers/linkRequests.js";
import type { StreamHandler } from "../peers/linkStreams.js";
import type { HandshakeFailedEvent, PeerDownEvent } from "../peers/PeerLinkManager.js";
import { PeerLinkManager } from "../peers/PeerLinkManager.js";
import type { PeerLink } from "../peers/PeerLink.js";
import { formatHostPort } from "../peers/wire.js";
import { LocalState } from "./LocalState.js";
import { ModelHashes } from "./ModelHashes.js";
import { PeerTable, type InboundFailure } from "./PeerTable.js";
import { SpeedScores } from "./SpeedScores.js";
import type { ClusterView, PeerView } from "./views.js";
import { memoryBudgetBytes } from "../split/memoryBudget.js";

/** Changes that come in bursts (a model load, several hashes) are published together. */
const PUBLISH_DEBOUNCE_MS = 200;
/** The handshake's reason when a static entry turns out to be this node (protocol/peer/handshake.ts). */
const SELF_DIAL_REASON = "the peer is this node itself";
const WILDCARD_HOSTS: ReadonlySet<string> = new Set(["0.0.0.0", "::", ""]);

export interface ClusterServiceInit {
  config: HearthConfig;
  identity: NodeIdentity;
  /** Undefined: standalone, no peer links. */
  membership: ClusterMembership | undefined;
  catalog: ModelCatalog;
  engine: Pick<LocalInferenceEngine, "generate" | "resolveModel" | "stats">;
  logger: Logger;
  softwareVersion: string;
  protocolVersion: ProtocolVersion;
}

export interface DialTargetDiagnostics {
  address: string;
  nodeId: string | null;
  linked: boolean;
  failures: number;
  lastFailure: { code: string; reason: string; agoMs: number } | null;
}

/** What `hearth doctor` needs beyond the ClusterView (`GET /hearth/v1/cluster/diagnostics`). */
export interface ClusterDiagnostics {
  nodeId: string;
  clusterId: string | null;
  listener: { host: string; port: number } | null;
  mdns: { enabled: boolean; status: MdnsDiscoveryStatus | null };
  staticPeers: string[];
  dialTargets: DialTargetDiagnostics[];
  inboundFailures: (Omit<InboundFailure, "at"> & { agoMs: number })[];
  /** Remote addresses the listener's failed-attempt limiter tracks, and handshakes running. */
  listenerLimiter: { trackedAddresses: number; pendingHandshakes: number } | null;
  hardware: { gpuProbe: GpuProbeState; failure: string | null };
  hashing: { pending: number };
}

export interface ClusterSummary {
  clusterId: string | null;
  nodeId: string;
  peers: { total: number; up: number };
}

export class ClusterService {
  readonly #init: ClusterServiceInit;
  readonly #logger: Logger;
  readonly #table = new PeerTable();
  readonly #resources: ResourceProbe;
  readonly #hashes: ModelHashes;
  readonly #speeds: SpeedScores | undefined;
  readonly #local: LocalState;
  #manager: PeerLinkManager | undefined;
  #mdns: MdnsDiscovery | undefined;
  #discoveries: PeerDiscovery[] = [];
  /** node id -> `host:port` targets its mDNS adverts gave us, to stop dialling them when it is lost. */
  readonly #mdnsTargets = new Map<string, Set<string>>();
  readonly #staticTargets = new Set<string>();
  #publishTimer: NodeJS.Timeout | undefined;
  #debounceTimer: NodeJS.Timeout | undefined;
  #publishing = false;
  #publishAgain = false;
  #stopped = false;
  /** Peer request and stream handlers registered before the manager exists (it is built in start()). */
  readonly #requestHandlers = new Map<string, RequestHandler>();
  readonly #streamHandlers = new Map<string, StreamHandler>();

  constructor(init: ClusterServiceInit) {
    this.#init = init;
    this.#logger = init.logger.child({ component: "cluster" });
    const { config } = init;
    this.#resources = new ResourceProbe({
      logger: init.logger,
      timeoutMs: config.peer.hardwareProbeTimeoutMs,
      onGpuInfo: () => this.requestPublish(),
    });
    // A standalone node shows cached hashes but computes none: nobody needs them, and hashing
    // gigabytes would compete with its requests.
    this.#hashes = new ModelHashes({
      dataDir: config.dataDir,
      logger: init.logger,
      compute: init.membership !== undefined,
      onHashed: () => this.requestPublish(),
    });
    // Measuring speed runs a request through a loaded model; only a cluster member has anyone to tell.
    this.#speeds =
      init.membership === undefined
        ? undefined
        : new SpeedScores({
            dataDir: config.dataDir,
            engine: init.engine,
            probeTokens: config.peer.speedProbeTokens,
            logger: init.logger,
            hashOf: (model) => this.#hashes.hashOf(model),
            onMeasured: () => this.requestPublish(),
          });
    this.#local = new LocalState({
      nodeId: init.identity.nodeId,
      fingerprintHex: init.identity.fingerprintHex,
      softwareVersion: init.softwareVersion,
      protocolVersion: init.protocolVersion,
      addresses: () => this.#listenerAddresses(),
      catalog: init.catalog,
      engineStats: () => init.engine.stats(),
      resources: () => this.#resources.snapshot(),
      hashOf: (model) => this.#hashes.hashOf(model),
      refreshHashes: (models) => this.#hashes.refresh(models),
      speedScores: (models) => this.#speeds?.scoresFor(models) ?? Promise.resolve({}),
      memoryBudget: (resources) =>
        memoryBudgetBytes(init.config.rpc, { ramFreeBytes: resources.ramFreeBytes, gpuBackend: resources.gpu.backend, vramFreeBytes: resources.gpu.vramFreeBytes }),
      logger: init.logger,
    });
  }

  get isMember(): boolean {
    return this.#init.membership !== undefined;
  }

  get peerLinks(): PeerLinkManager | undefined {
    return this.#manager;
  }

  /** node-llama-cpp's GPU backend here as last probed ("cuda", "vulkan", "metal"), null without a GPU. */
  gpuBackend(): string | null {
    return this.#resources.snapshot().gpu.backend;
  }

  /**
   * Serves a peer request method on every link, now and after start(). The parts that answer
   * peers (routing, model sharing, jobs) register here, whether or not the node is a member yet.
   */
  handlePeerRequest(method: string, handler: RequestHandler): void {
    this.#requestHandlers.set(method, handler);
    this.#manager?.handleRequest(method, handler);
  }

  /** Accepts peer streams of one purpose on every link, now and after start(). */
  handlePeerStream(purpose: string, handler: StreamHandler): void {
    this.#streamHandlers.set(purpose, handler);
    this.#manager?.handleStream(purpose, handler);
  }

  /** The peer table as it stands now (model sharing picks the holders of a file from it). */
  peerViews(): PeerView[] {
    return this.#peers();
  }

  /** SHA-256 of a local model file as of the last refresh, or null: what this node advertises. */
  modelHashOf(model: Pick<ModelDescriptor, "path">): string | null {
    return this.#hashes.hashOf(model);
  }

  /** A hash verified another way (a model fetched from a peer): advertised at once, never re-hashed. */
  async rememberModelHash(filePath: string, sha256: string): Promise<void> {
    await this.#hashes.remember(filePath, sha256);
    this.requestPublish();
  }

  /**
   * Starts the background work and, for a member, the peer listener and discovery. Rejects
   * (HEARTH_CONFIG_INVALID naming peer.port / peer.bind) when the listener cannot bind.
   */
  async start(): Promise<void> {
    const { config, membership, identity } = this.#init;
    if (membership !== undefined) {
      // Peers need the GPU facts soon; a standalone node probes only when first asked (view()).
      this.#resources.start();
      const manager = new PeerLinkManager({
        identity,
        membership,
        config: config.peer,
        logger: this.#init.logger,
        softwareVersion: this.#init.softwareVersion,
        protocolVersion: this.#init.protocolVersion,
      });
      this.#manager = manager;
      for (const [method, handler] of this.#requestHandlers) manager.handleRequest(method, handler);
      for (const [purpose, handler] of this.#streamHandlers) manager.handleStream(purpose, handler);
      this.#wireManager(manager);
      let bound: { host: string; port: number };
      try {
        bound = await manager.start();
      } catch (error) {
        throw peerListenError(error, config.peer.host, config.peer.port);
      }
      this.#logger.info(
        { nodeId: identity.nodeId, clusterId: membership.clusterId, peerAddress: formatHostPort(bound.host, bound.port), mdns: config.peer.mdns, staticPeers: config.peer.staticPeers.length },
        "cluster member: peer links enabled",
      );
      await this.#startDiscovery(bound.port);
    }
    if (membership === undefined) return;
    this.#publishTimer = setInterval(() => this.requestPublish(), config.peer.statePublishIntervalMs);
    this.#publishTimer.unref();
    this.requestPublish();
  }

  /** Engine hooks: a model loaded or unloaded changes this node's state (and may be measurable now). */
  onModelsChanged(): void {
    this.requestPublish();
  }

  /** Publishes this node's state soon (coalescing bursts); a standalone node has no one to tell. */
  requestPublish(): void {
    if (this.#stopped || this.#manager === undefined || this.#debounceTimer !== undefined) return;
    this.#debounceTimer = setTimeout(() => {
      this.#debounceTimer = undefined;
      void this.#publish();
    }, PUBLISH_DEBOUNCE_MS);
    this.#debounceTimer.unref();
  }

  async view(): Promise<ClusterView> {
    this.#resources.start();
    return this.routingView();
  }

  /**
   * The same view without starting the GPU probe: the router (daemon/routing/) asks for it on
   * every request, and a standalone node must not probe its GPU just because it serves one.
   */
  async routingView(): Promise<ClusterView> {
    const { view } = await this.#local.collect();
    return { cluster: this.#clusterRef(), local: view, peers: this.#peers() };
  }

  summary(): ClusterSummary {
    const peers = this.#peers();
    return {
      clusterId: this.#init.membership?.clusterId ?? null,
      nodeId: this.#init.identity.nodeId,
      peers: { total: peers.length, up: peers.filter((peer) => peer.state === "up").length },
    };
  }

  diagnostics(): ClusterDiagnostics {
    const now = Date.now();
    const manager = this.#manager;
    const server = manager?.server;
    return {
      nodeId: this.#init.identity.nodeId,
      clusterId: this.#init.membership?.clusterId ?? null,
      listener: manager?.listeningAddress ?? null,
      mdns: { enabled: this.isMember && this.#init.config.peer.mdns, status: this.#mdns?.status() ?? null },
      staticPeers: [...this.#init.config.peer.staticPeers],
      dialTargets: (manager?.dialTargets() ?? []).map((target) => ({
        address: formatHostPort(target.target.host, target.target.port),
        nodeId: target.nodeId ?? null,
        linked: target.linked,
        failures: target.failures,
        lastFailure: target.lastFailure === undefined ? null : { code: target.lastFailure.code, reason: target.lastFailure.reason, agoMs: Math.max(0, now - target.lastFailure.at) },
      })),
      inboundFailures: this.#table.inboundFailures().map(({ at, ...failure }) => ({ ...failure, agoMs: Math.max(0, now - at) })),
      listenerLimiter: server === undefined ? null : { trackedAddresses: server.limiter.trackedAddresses, pendingHandshakes: server.pendingHandshakes },
      hardware: { gpuProbe: this.#resources.gpuProbeState, failure: this.#resources.gpuProbeFailure ?? null },
      hashing: { pending: this.#hashes.pending },
    };
  }

  /** Shutdown step 2: mDNS goodbye; no new peers are dialled after this. */
  async stopDiscovery(): Promise<void> {
    const discoveries = this.#discoveries;
    this.#discoveries = [];
    await Promise.all(discoveries.map((discovery) => discovery.stop()));
  }

  /** Shutdown step 3: every peer link closes with 1001, then the listener. */
  async stopLinks(): Promise<void> {
    await this.#manager?.stop();
  }

  /** Background work: publishing, hashing, speed measurement, the GPU probe. */
  stop(): void {
    this.#stopped = true;
    clearInterval(this.#publishTimer);
    clearTimeout(this.#debounceTimer);
    this.#resources.stop();
    this.#hashes.stop();
    this.#speeds?.stop();
  }

  // ---- internals -------------------------------------------------------------------------

  #clusterRef(): { clusterId: string } | null {
    const membership = this.#init.membership;
    return membership === undefined ? null : { clusterId: membership.clusterId };
  }

  /** The peer table with each up link's current RTT and heartbeat time, and static targets resolved. */
  #peers(): ReturnType<PeerTable["snapshot"]> {
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

  async #publish(): Promise<void> {
    if (this.#stopped) return;
    if (this.#publishing) {
      this.#publishAgain = true;
      return;
    }
    this.#publishing = true;
    try {
      const { wire } = await this.#local.collect();
      if (this.#stopped) return;
      this.#manager?.publishState(wire);
      this.#speeds?.measureIdle(this.#init.engine.stats().loaded);
    } catch (error) {
      this.#logger.warn({ err: error }, "could not publish this node's state");
    } finally {
      this.#publishing = false;
      if (this.#publishAgain) {
        this.#publishAgain = false;
        this.requestPublish();
      }
    }
  }

  #listenerAddresses(): string[] {
    const bound = this.#manager?.listeningAddress;
    if (bound === undefined) return [];
    if (!WILDCARD_HOSTS.has(bound.host)) return [formatHostPort(bound.host, bound.port)];
    // A wildcard bind answers on every address; list the ones a peer could use.
    const interfaces = listInterfaces().filter((entry) => !entry.linkLocal && entry.kind !== "container" && entry.kind !== "vm-bridge");
    const reachable = interfaces.filter((entry) => entry.kind !== "loopback");
    const chosen = (reachable.length > 0 ? reachable : interfaces).filter((entry) => bound.host !== "0.0.0.0" || entry.family === "IPv4");
    return chosen.map((entry) => formatHostPort(entry.address, bound.port));
  }

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
      this.#guard("peer down", () => this.#table.linkDown(event.nodeId, { code: event.close.errorCode, message: event.close.reason })),
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

const LISTEN_REASONS: Record<string, string> = {
  EADDRINUSE: "the address is already in use (is another hearth serve running? choose another --peer-port)",
  EACCES: "permission denied (ports below 1024 need privileges)",
  EADDRNOTAVAIL: "this machine has no such address (check --peer-bind)",
};

function peerListenError(error: unknown, host: string, port: number): HearthError {
  if (error instanceof HearthError) return error;
  const code = (error as NodeJS.ErrnoException).code;
  const reason = code === undefined ? undefined : LISTEN_REASONS[code];
  const param = code === "EADDRNOTAVAIL" ? "peer.bind" : "peer.port";
  if (reason !== undefined) return errors.configInvalid(`cannot listen for peers on ${formatHostPort(host, port)}: ${reason}`, { param, cause: error });
  return HearthError.from(error);
}
