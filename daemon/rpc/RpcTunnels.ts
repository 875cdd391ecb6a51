/**
 * Host side of layer splitting: the tunnels this node's runners use to reach peers'
 * rpc-servers, and the requests around a placement.
 *
 *   open(peer)            -> {host, port}: a loopback endpoint for the runner's RPC device list
 *                            (HEARTH_RPC_ENDPOINTS "host:port[@MiB]"); one listener per peer,
 *                            reused while it lives.
 *   prepare(peer, sha256) -> the peer's answer to rpc.prepare: pre-filled from its own copy of
 *                            the file, or `missing` (the split engine then has the peer fetch
 *                            the file, or lets the load push the weights over RPC and logs
 *                            that fallback). It also starts the peer's
 *                            worker, so call it before the runner loads: the shim gives each
 *                            endpoint only a short probe (HEARTH_RPC_CONNECT_TIMEOUT_MS).
 *   release(peer)         -> closes the listener and tells the peer to stop its worker.
 *   traffic(peer)         -> bytes through the peer's tunnels (tests, bench, status).
 * A peer whose link goes down loses its listener at once (peerDown): its runner's connections
 * drop with it, which is what lets the daemon notice and re-plan.
 */

import type { Logger } from "pino";
import { errors } from "../../protocol/errors.js";
import { shortNodeId } from "../../protocol/peer/identity.js";
import {
  RPC_PREPARE_METHOD,
  RPC_RELEASE_METHOD,
  parseRpcPayload,
  rpcPrepareResponseSchema,
  rpcReleaseResponseSchema,
  type RpcPrepareResponse,
} from "../../protocol/peer/rpcWire.js";
import type { PeerLinks } from "../peers/PeerFabric.js";
import { TunnelListener } from "./TunnelListener.js";
import { emptyTraffic, type TunnelTraffic } from "./tunnelPipe.js";

export interface RpcTunnelsInit {
  /** Standalone, every call fails with HEARTH_PEER_UNAVAILABLE. */
  links: PeerLinks;
  /** How long a peer may take to accept a tunnel (it may be starting its worker). */
  openTimeoutMs: number;
  prepareTimeoutMs: number;
  logger: Logger;
}

export class RpcTunnels {
  readonly #init: RpcTunnelsInit;
  readonly #logger: Logger;
  readonly #listeners = new Map<string, Promise<TunnelListener>>();
  /** Traffic of listeners already closed, so counts survive a release. */
  readonly #pastTraffic = new Map<string, TunnelTraffic>();
  #stopped = false;

  constructor(init: RpcTunnelsInit) {
    this.#init = init;
    this.#logger = init.logger.child({ component: "rpc-tunnels" });
  }

  /** A loopback endpoint whose connections reach `peerNodeId`'s rpc-server worker for this node. */
  async open(peerNodeId: string): Promise<{ host: string; port: number }> {
    if (this.#stopped) throw errors.shuttingDown();
    const links = this.#init.links;
    let pending = this.#listeners.get(peerNodeId);
    if (pending === undefined) {
      const listener = new TunnelListener({
        peerNodeId,
        openStream: (purpose, options) => links.openStream(peerNodeId, purpose, options),
        openTimeoutMs: this.#init.openTimeoutMs,
        logger: this.#init.logger,
      });
      pending = listener.listen().then(() => listener);
      this.#listeners.set(peerNodeId, pending);
      pending.catch(() => this.#listeners.delete(peerNodeId));
    }
    const listener = await pending;
    const endpoint = listener.endpoint;
    if (endpoint === undefined) throw errors.internal("the tunnel listener is not listening");
    return endpoint;
  }

  /** Asks `peerNodeId` to get ready for a load of the file `sha256` (pre-fill its tensor cache). */
  async prepare(peerNodeId: string, sha256: string): Promise<RpcPrepareResponse> {
    const answer = await this.#init.links.request(peerNodeId, RPC_PREPARE_METHOD, { sha256 }, { timeoutMs: this.#init.prepareTimeoutMs });
    const response = parseRpcPayload(rpcPrepareResponseSchema, answer, "rpc.prepare response");
    const fields = { peer: shortNodeId(peerNodeId), sha256, ...response };
    if (response.status === "prefilled") this.#logger.info(fields, "peer pre-filled its rpc tensor cache: the load sends hashes, not weights");
    else if (response.status === "partial") this.#logger.warn(fields, "peer pre-filled part of its rpc tensor cache (cache bound): the rest of the weights are pushed over RPC at load");
    // What happens next (model sharing first, else pushing the weights) is the caller's call and log.
    else this.#logger.info(fields, "the peer cannot pre-fill its rpc tensor cache: it lacks the model file or pre-fill is off");
    return response;
  }

  /** Closes the tunnel listener of `peerNodeId` and tells the peer to stop its worker. */
  async release(peerNodeId: string): Promise<void> {
    await this.#closeListener(peerNodeId);
    try {
      const answer = await this.#init.links.request(peerNodeId, RPC_RELEASE_METHOD, {});
      parseRpcPayload(rpcReleaseResponseSchema, answer, "rpc.release response");
    } catch (error) {
      // The worker stops by itself (link down or idle timeout); nothing to undo here.
      this.#logger.debug({ err: error, peer: shortNodeId(peerNodeId) }, "rpc.release not acknowledged");
    }
  }

  /** The peer's link went down: its tunnels are dead, so is the listener. */
  peerDown(peerNodeId: string): void {
    void this.#closeListener(peerNodeId);
  }

  /** Bytes through every tunnel to `peerNodeId` so far, including released ones. */
  async traffic(peerNodeId: string): Promise<TunnelTraffic> {
    const total = { ...(this.#pastTraffic.get(peerNodeId) ?? emptyTraffic()) };
    const listener = await this.#listeners.get(peerNodeId)?.catch(() => undefined);
    if (listener !== undefined) addTraffic(total, listener.traffic);
    return total;
  }

  endpoints(): string[] {
    return [...this.#listeners.keys()];
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all([...this.#listeners.keys()].map((peerNodeId) => this.#closeListener(peerNodeId)));
  }

  async #closeListener(peerNodeId: string): Promise<void> {
    const pending = this.#listeners.get(peerNodeId);
    if (pending === undefined) return;
    this.#listeners.delete(peerNodeId);
    const listener = await pending.catch(() => undefined);
    if (listener === undefined) return;
    await listener.close();
    const past = this.#pastTraffic.get(peerNodeId) ?? emptyTraffic();
    addTraffic(past, { ...listener.traffic, open: 0 });
    this.#pastTraffic.set(peerNodeId, past);
  }
}

function addTraffic(into: TunnelTraffic, from: TunnelTraffic): void {
  into.socketToStream += from.socketToStream;
  into.streamToSocket += from.streamToSocket;
  into.opened += from.opened;
  into.open += from.open;
}
