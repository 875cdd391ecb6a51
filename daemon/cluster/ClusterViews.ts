/**
 * The cluster as this node shows it: `GET /hearth/v1/cluster` (view), the router's picture
 * (routingView), `hearth status`'s summary and `hearth doctor`'s diagnostics, each composed
 * from this node's own state (LocalStatePublisher) and what the peer fabric knows of the
 * others, so the API, the router and the peers see the same facts.
 */

import type { ClusterView } from "../../protocol/api/cluster.js";
import type { ClusterDiagnostics } from "../../protocol/api/diagnostics.js";
import type { ClusterSummary } from "../../protocol/api/status.js";
import type { ClusterMembership } from "../identity/ClusterMembership.js";
import type { NodeIdentity } from "../identity/NodeIdentity.js";
import type { ResourceProbe } from "../hardware/ResourceProbe.js";
import type { PeerFabric } from "../peers/PeerFabric.js";
import { formatHostPort } from "../peers/wire.js";
import type { LocalStatePublisher } from "./LocalStatePublisher.js";
import type { ModelHashes } from "./ModelHashes.js";

export interface ClusterViewsInit {
  identity: NodeIdentity;
  membership: ClusterMembership | undefined;
  publisher: LocalStatePublisher;
  fabric: PeerFabric;
  resources: ResourceProbe;
  hashes: ModelHashes;
}

export class ClusterViews {
  readonly #init: ClusterViewsInit;

  constructor(init: ClusterViewsInit) {
    this.#init = init;
  }

  /** The view behind `GET /hearth/v1/cluster`; a standalone node probes its GPU once asked. */
  view(): Promise<ClusterView> {
    this.#init.resources.start();
    return this.routingView();
  }

  /**
   * The same view without starting the GPU probe: the router asks for it per request, and a
   * standalone node must not probe its GPU just because it serves one.
   */
  async routingView(): Promise<ClusterView> {
    const { view } = await this.#init.publisher.collect();
    return { cluster: this.#clusterRef(), local: view, peers: this.#init.fabric.peers() };
  }

  summary(): ClusterSummary {
    const peers = this.#init.fabric.peers();
    return {
      clusterId: this.#init.membership?.clusterId ?? null,
      nodeId: this.#init.identity.nodeId,
      peers: { total: peers.length, up: peers.filter((peer) => peer.state === "up").length },
    };
  }

  diagnostics(): ClusterDiagnostics {
    const now = Date.now();
    const fabric = this.#init.fabric.diagnostics();
    const { resources, hashes } = this.#init;
    return {
      nodeId: this.#init.identity.nodeId,
      clusterId: this.#init.membership?.clusterId ?? null,
      listener: fabric.listener,
      mdns: fabric.mdns,
      staticPeers: fabric.staticPeers,
      dialTargets: fabric.dialTargets.map((target) => ({
        address: formatHostPort(target.target.host, target.target.port),
        nodeId: target.nodeId ?? null,
        linked: target.linked,
        failures: target.failures,
        lastFailure: target.lastFailure === undefined ? null : { code: target.lastFailure.code, reason: target.lastFailure.reason, agoMs: Math.max(0, now - target.lastFailure.at) },
      })),
      inboundFailures: fabric.inboundFailures.map(({ at, ...failure }) => ({ ...failure, agoMs: Math.max(0, now - at) })),
      listenerLimiter: fabric.listenerLimiter,
      hardware: { gpuProbe: resources.gpuProbeState, failure: resources.gpuProbeFailure ?? null },
      hashing: { pending: hashes.pending },
    };
  }

  #clusterRef(): { clusterId: string } | null {
    const membership = this.#init.membership;
    return membership === undefined ? null : { clusterId: membership.clusterId };
  }
}
