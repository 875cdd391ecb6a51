/**
 * Host side of an RPC tunnel: a TCP listener on 127.0.0.1 (random port) standing in for one
 * remote peer's rpc-server. The host's runner gets `127.0.0.1:<port>` as an RPC endpoint; each
 * connection it makes opens one `rpc.tunnel` stream to that peer over the authenticated peer
 * link, and the two are joined (tunnelPipe.ts). The listener never binds anything but loopback,
 * and anything local that connects reaches only that one peer's worker for this node.
 */

import net from "node:net";
import type { Logger } from "pino";
import { errors, HearthError } from "../../protocol/errors.js";
import { shortNodeId } from "../../protocol/peer/identity.js";
import { RPC_TUNNEL_PURPOSE, RPC_TUNNEL_WIRE_VERSION, type RpcTunnelMeta } from "../../protocol/peer/rpcWire.js";
import type { OpenStreamOptions } from "../peers/linkStreams.js";
import type { PeerStream } from "../peers/PeerStream.js";
import { emptyTraffic, joinTunnel, type TunnelTraffic } from "./tunnelPipe.js";

export const TUNNEL_LISTEN_HOST = "127.0.0.1";

export interface TunnelListenerInit {
  peerNodeId: string;
  /** Opens a stream to the peer (PeerLinkManager.openStream bound to the peer). */
  openStream: (purpose: string, options: OpenStreamOptions) => Promise<PeerStream>;
  /** How long the peer may take to accept (it may have to start its worker first). */
  openTimeoutMs: number;
  logger: Logger;
}

export class TunnelListener {
  readonly peerNodeId: string;
  readonly traffic: TunnelTraffic = emptyTraffic();
  readonly #init: TunnelListenerInit;
  readonly #logger: Logger;
  readonly #server: net.Server;
  readonly #sockets = new Set<net.Socket>();
  #port: number | undefined;
  #closed = false;

  constructor(init: TunnelListenerInit) {
    this.#init = init;
    this.peerNodeId = init.peerNodeId;
    this.#logger = init.logger.child({ component: "rpc-tunnel", peer: shortNodeId(init.peerNodeId) });
    this.#server = net.createServer({ pauseOnConnect: true, noDelay: true }, (socket) => this.#onConnection(socket));
    this.#server.on("error", (error) => this.#logger.warn({ err: error }, "tunnel listener error"));
  }

  get endpoint(): { host: string; port: number } | undefined {
    return this.#port === undefined ? undefined : { host: TUNNEL_LISTEN_HOST, port: this.#port };
  }

  async listen(): Promise<{ host: string; port: number }> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen({ host: TUNNEL_LISTEN_HOST, port: 0, exclusive: true }, () => {
        this.#server.off("error", reject);
        resolve();
      });
    });
    const address = this.#server.address();
    if (address === null || typeof address !== "object") throw errors.internal("the tunnel listener has no address");
    this.#port = address.port;
    this.#logger.info({ endpoint: `${TUNNEL_LISTEN_HOST}:${address.port}` }, "rpc tunnel listener up");
    return { host: TUNNEL_LISTEN_HOST, port: address.port };
  }

  /** Stops accepting and cuts every tunnel (the runner using them sees its connections drop). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#logger.info({ ...this.traffic }, "rpc tunnel listener closed");
  }

  #onConnection(socket: net.Socket): void {
    if (this.#closed) {
      socket.destroy();
      return;
    }
    this.#sockets.add(socket);
    socket.setNoDelay(true);
    // Until the stream is open the socket stays paused (pauseOnConnect); a client that leaves
    // meanwhile must not leave a stream behind.
    let gone = false;
    const onEarlyClose = (): void => {
      gone = true;
    };
    socket.on("error", onEarlyClose);
    socket.on("close", onEarlyClose);
    const meta: RpcTunnelMeta = { v: RPC_TUNNEL_WIRE_VERSION };
    this.#init.openStream(RPC_TUNNEL_PURPOSE, { meta, timeoutMs: this.#init.openTimeoutMs }).then(
      (stream) => {
        socket.off("error", onEarlyClose);
        socket.off("close", onEarlyClose);
        if (gone || this.#closed) {
          stream.destroy();
          socket.destroy();
          this.#sockets.delete(socket);
          return;
        }
        joinTunnel(socket, stream, this.traffic, () => this.#sockets.delete(socket));
      },
      (error: unknown) => {
        const failure = HearthError.from(error, "HEARTH_PEER_UNAVAILABLE");
        this.#logger.warn({ code: failure.code, reason: failure.message }, "cannot open an rpc tunnel to the peer");
        socket.destroy();
        this.#sockets.delete(socket);
      },
    );
  }
}
