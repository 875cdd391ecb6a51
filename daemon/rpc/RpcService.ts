/**
 * Layer splitting's I/O, composed for the daemon (docs/splitting.md, "What crosses the network").
 *
 * Folder overview (daemon/rpc/):
 *   RpcService.ts      this file: wiring to the cluster, the rpc.prepare / rpc.release handlers
 *   RpcWorkerPool.ts   one rpc-server worker per remote host: start, idle stop, crash, release
 *   RpcWorker.ts       one rpc-server child process on 127.0.0.1 (HELLO-checked)
 *   rpcHello.ts        the RPC HELLO probe
 *   tunnelAcceptor.ts  peer side of `rpc.tunnel` streams: stream <-> the opener's worker
 *   TunnelListener.ts  host side: a loopback listener per peer, connection <-> stream
 *   RpcTunnels.ts      host-side API: open / prepare / release / traffic
 *   tunnelPipe.ts      joining a socket and a stream, with byte counters
 *   TensorCache.ts     rpc-server's tensor cache: pre-fill from a local GGUF, LRU bound
 *   fnv1a.ts           the cache's naming (FNV-1a 64 of the tensor bytes)
 *
 * As a peer it serves hosts: their tunnels reach a worker started for them, rpc.prepare
 * pre-fills the cache from this node's own copy of the file (found by sha256 among its
 * advertised models, never by a path from the network), rpc.release and link loss stop the
 * worker. As a host it offers `tunnels` to whatever runs split placements.
 */

import path from "node:path";
import os from "node:os";
import type { Logger } from "pino";
import { errors } from "../../protocol/errors.js";
import { shortNodeId } from "../../protocol/peer/identity.js";
import {
  RPC_PREPARE_METHOD,
  RPC_RELEASE_METHOD,
  RPC_TUNNEL_PURPOSE,
  parseRpcPayload,
  rpcPrepareRequestSchema,
  rpcReleaseRequestSchema,
  type RpcPrepareResponse,
  type RpcReleaseResponse,
} from "../../protocol/peer/rpcWire.js";
import type { ModelHashes } from "../cluster/ModelHashes.js";
import type { ResourceProbe } from "../hardware/ResourceProbe.js";
import type { PeerFabric } from "../peers/PeerFabric.js";
import type { PeerRoutes } from "../peers/PeerRouteTable.js";
import type { HearthConfig } from "../config/defaults.js";
import type { ModelCatalog, ModelDescriptor } from "../engine/types.js";
import { locateNativeParts, rpcServerBackendFor, rpcServerLaunch, type NativeParts } from "../native/nativeParts.js";
import type { PeerDownEvent } from "../peers/PeerLinkManager.js";
import { RpcTunnels } from "./RpcTunnels.js";
import { RpcWorkerPool } from "./RpcWorkerPool.js";
import { TensorCache } from "./TensorCache.js";
import { TunnelAcceptor } from "./tunnelAcceptor.js";

/** rpc-server keeps its `-c` cache in <LLAMA_CACHE>/rpc/. */
const RPC_SERVER_CACHE_SUBDIR = "rpc";

export interface RpcServiceInit {
  config: HearthConfig;
  fabric: Pick<PeerFabric, "request" | "openStream" | "on" | "off">;
  hashes: Pick<ModelHashes, "hashOf">;
  catalog: Pick<ModelCatalog, "list">;
  /** Its GPU answer decides which rpc-server build serves layers. */
  resources: Pick<ResourceProbe, "snapshot">;
  logger: Logger;
  /** Where the native parts are; defaults to the ones `npm install` built. */
  nativeParts?: () => NativeParts;
}

export class RpcService {
  readonly pool: RpcWorkerPool;
  readonly tunnels: RpcTunnels;
  readonly acceptor: TunnelAcceptor;
  readonly cache: TensorCache;
  /** What peers reach here: tunnels to this node's workers, and the prepare/release requests. */
  readonly peerRoutes: PeerRoutes;
  readonly #init: RpcServiceInit;
  readonly #logger: Logger;
  readonly #onPeerDown = (event: PeerDownEvent): void => {
    try {
      this.tunnels.peerDown(event.nodeId);
      void this.pool.release(event.nodeId, "its peer link went down").catch((error: unknown) => this.#logger.warn({ err: error }, "stopping a worker failed"));
    } catch (error) {
      this.#logger.error({ err: error }, "rpc peer-down handler failed");
    }
  };

  constructor(init: RpcServiceInit) {
    this.#init = init;
    const { config, fabric, logger } = init;
    this.#logger = logger.child({ component: "rpc" });
    const nativeParts = init.nativeParts ?? (() => locateNativeParts());
    const cacheRoot = config.rpc.cacheDir;
    this.cache = new TensorCache({ directory: path.join(cacheRoot, RPC_SERVER_CACHE_SUBDIR), maxBytes: config.rpc.cacheMaxBytes, logger });
    this.pool = new RpcWorkerPool({
      config: config.rpc,
      launcher: (threads) => {
        const parts = nativeParts();
        // A GPU machine serves its layers from its GPU (the flavour node-llama-cpp itself uses).
        const backend = rpcServerBackendFor(init.resources.snapshot().gpu.backend, parts);
        if (backend !== "cpu") this.#logger.info({ backend }, "rpc-server workers use the GPU build");
        return (port) => rpcServerLaunch(parts, { port, threads, backend, tensorCacheDir: cacheRoot });
      },
      logger,
    });
    this.acceptor = new TunnelAcceptor({ pool: this.pool, connectTimeoutMs: config.rpc.startTimeoutMs, logger });
    this.tunnels = new RpcTunnels({
      links: fabric,
      // The peer may start its worker before accepting: allow for that on top of a request's time.
      openTimeoutMs: config.rpc.startTimeoutMs + config.peer.requestTimeoutMs,
      prepareTimeoutMs: config.rpc.prepareTimeoutMs,
      logger,
    });
    this.peerRoutes = {
      streams: { [RPC_TUNNEL_PURPOSE]: this.acceptor.handler },
      requests: {
        [RPC_PREPARE_METHOD]: (payload, context) => this.#prepare(payload, context.peerNodeId),
        [RPC_RELEASE_METHOD]: (payload, context) => this.#release(payload, context.peerNodeId),
      },
    };
  }

  /** A peer's link going down ends its worker and its tunnels. */
  start(): void {
    this.#init.fabric.on("peerDown", this.#onPeerDown);
  }

  async stop(): Promise<void> {
    this.#init.fabric.off("peerDown", this.#onPeerDown);
    await this.tunnels.stop();
    await this.pool.stop();
  }

  async #prepare(payload: unknown, hostNodeId: string): Promise<RpcPrepareResponse> {
    const { sha256 } = parseRpcPayload(rpcPrepareRequestSchema, payload, "rpc.prepare request");
    // The worker starts now, so the host's runner finds it answering when the shim probes it
    // (a short timeout), and a node that cannot serve layers says so here, with its code.
    await this.pool.endpointFor(hostNodeId);
    const base = { tensors: 0, cachedTensors: 0, cachedBytes: 0, writtenBytes: 0, ms: 0, freeMemoryBytes: os.freemem() };
    if (!this.#init.config.rpc.prefill) return { status: "disabled", ...base };
    const model = await this.#localModel(sha256);
    if (model === undefined) {
      this.#logger.info({ host: shortNodeId(hostNodeId), sha256 }, "rpc.prepare: no local copy of the model; the host pushes its weights over RPC");
      return { status: "missing", ...base };
    }
    let result;
    try {
      result = await this.cache.prefill(model.path, sha256);
    } catch (error) {
      throw errors.internal(`pre-filling the rpc tensor cache from ${model.id} failed: ${(error as Error).message}`, { cause: error });
    }
    return { status: result.cachedTensors === result.tensors ? "prefilled" : "partial", ...result, freeMemoryBytes: os.freemem() };
  }

  async #release(payload: unknown, hostNodeId: string): Promise<RpcReleaseResponse> {
    parseRpcPayload(rpcReleaseRequestSchema, payload, "rpc.release request");
    return { stopped: await this.pool.release(hostNodeId, "the host released its placement") };
  }

  /** The local file with this content, among the models this node advertises. */
  async #localModel(sha256: string): Promise<ModelDescriptor | undefined> {
    const models = await this.#init.catalog.list();
    return models.find((model) => this.#init.hashes.hashOf(model) === sha256);
  }
}
