/**
 * Peer side of an RPC tunnel: accepts `rpc.tunnel` streams and connects each to the rpc-server
 * worker this node runs for the opener. The worker is chosen by the opener's authenticated
 * node id (the link's, never the meta's), and the connection goes to 127.0.0.1 only: a peer
 * cannot name a host, a port or another peer's worker. The stream is accepted only once the
 * worker connection is up, so a refusal (no rpc-server here, too many hosts, bad meta) reaches
 * the opener as a streamReset with its code and nothing is left half-open.
 */

import net from "node:net";
import type { Logger } from "pino";
import type { HearthError } from "../../protocol/errors.js";
import { errors } from "../../protocol/errors.js";
import { shortNodeId } from "../../protocol/peer/identity.js";
import { parseRpcPayload, rpcTunnelMetaSchema } from "../../protocol/peer/rpcWire.js";
import type { StreamHandler } from "../peers/linkStreams.js";
import type { RpcEndpoint, RpcWorkerPool } from "./RpcWorkerPool.js";
import { emptyTraffic, joinTunnel, type TunnelTraffic } from "./tunnelPipe.js";

export interface TunnelAcceptorInit {
  pool: Pick<RpcWorkerPool, "endpointFor" | "connectionOpened" | "connectionClosed">;
  connectTimeoutMs: number;
  logger: Logger;
}

export class TunnelAcceptor {
  readonly #init: TunnelAcceptorInit;
  readonly #logger: Logger;
  /** Per host node id. */
  readonly #traffic = new Map<string, TunnelTraffic>();

  constructor(init: TunnelAcceptorInit) {
    this.#init = init;
    this.#logger = init.logger.child({ component: "rpc-tunnel" });
  }

  traffic(hostNodeId: string): TunnelTraffic {
    return { ...(this.#traffic.get(hostNodeId) ?? emptyTraffic()) };
  }

  readonly handler: StreamHandler = async (stream, meta, context) => {
    parseRpcPayload(rpcTunnelMetaSchema, meta, "rpc.tunnel meta");
    const hostNodeId = context.peerNodeId;
    const endpoint = await this.#init.pool.endpointFor(hostNodeId);
    const socket = await connectLocal(endpoint, this.#init.connectTimeoutMs);
    if (stream.destroyed) {
      socket.destroy();
      throw errors.cancelled("the tunnel was closed before it opened");
    }
    let traffic = this.#traffic.get(hostNodeId);
    if (traffic === undefined) {
      traffic = emptyTraffic();
      this.#traffic.set(hostNodeId, traffic);
    }
    this.#init.pool.connectionOpened(hostNodeId);
    this.#logger.debug({ host: shortNodeId(hostNodeId), stream: stream.streamId, worker: endpoint.port }, "rpc tunnel connected to the worker");
    joinTunnel(socket, stream, traffic, () => this.#init.pool.connectionClosed(hostNodeId));
  };
}

function connectLocal(endpoint: RpcEndpoint, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: endpoint.host, port: endpoint.port, noDelay: true });
    socket.pause();
    const timer = setTimeout(() => fail(errors.rpcUnavailable(`the rpc-server worker did not accept a connection within ${timeoutMs} ms`)), timeoutMs);
    const fail = (error: HearthError): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(error);
    };
    socket.once("error", (error) => fail(errors.rpcUnavailable(`cannot reach the rpc-server worker: ${error.message}`)));
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.removeAllListeners("error");
      // Until joinTunnel takes over, an error (the worker died) must not be unhandled.
      socket.on("error", () => undefined);
      resolve(socket);
    });
  });
}
