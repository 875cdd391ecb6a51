/**
 * The peer listener: an HTTPS server with the node's self-signed certificate that asks every
 * client for its certificate, and upgrades exactly one kind of request to a WebSocket.
 *
 * Everything cheap is checked in the `upgrade` handler, before ws or the handshake spends
 * anything (docs/protocol.md, "Expectations for the I/O layer"):
 *   1. the remote address is not blocked by the failed-attempt limiter (else 429);
 *   2. it is `GET PEER_LINK_PATH` with a well-formed WebSocket upgrade offering PEER_SUBPROTOCOL
 *      (else 400/404);
 *   3. the client presented a certificate in TLS (else 401);
 *   4. fewer than `maxPendingHandshakes` handshakes are running (else 503).
 * Refusals are a bare status line and `socket.destroy()`. Anything that is not an upgrade,
 * and any TLS or HTTP garbage, costs the sender its connection and counts as a failed attempt.
 * The server hands accepted sockets to `onConnection`, which runs the handshake (PeerLink)
 * and reports the outcome through the HandshakeSlot, so failures count against the address.
 */

import { createHash } from "node:crypto";
import https from "node:https";
import type { IncomingMessage } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { TLSSocket } from "node:tls";
import type { Logger } from "pino";
import { WebSocketServer } from "ws";
import type { WebSocket } from "ws";
import type { PeerConfig } from "../config/defaults.js";
import { errors } from "../../protocol/errors.js";
import { FailedAttemptLimiter } from "./FailedAttemptLimiter.js";
import { normaliseAddress, PEER_LINK_PATH, PEER_SUBPROTOCOL } from "./wire.js";

export type PeerLinkServerConfig = Pick<
  PeerConfig,
  | "maxFrameBytes"
  | "handshakeTimeoutMs"
  | "maxPendingHandshakes"
  | "maxConnections"
  | "maxFailedAttempts"
  | "failedAttemptWindowMs"
  | "maxTrackedAddresses"
>;

/** One accepted socket's place in the pending-handshake count; settle it exactly once. */
export interface HandshakeSlot {
  succeeded(): void;
  /** Counts against the address in the failed-attempt limiter. */
  failed(): void;
  /** Ended without fault of the peer (e.g. this node is stopping): free the slot only. */
  released(): void;
}

export interface AcceptedConnection {
  socket: WebSocket;
  /** The remote IP, normalised. */
  remoteAddress: string;
  remotePort: number | undefined;
  /** SHA-256 of the client's certificate, as TLS observed it. */
  remoteFingerprint: Uint8Array;
  slot: HandshakeSlot;
}

export interface PeerLinkServerInit {
  tls: { key: string; cert: string };
  config: PeerLinkServerConfig;
  logger: Logger;
  onConnection: (connection: AcceptedConnection) => void;
}

/** ws's own check of Sec-WebSocket-Key: 16 bytes of base64. */
const WEBSOCKET_KEY_PATTERN = /^[+/0-9A-Za-z]{22}==$/;

function refuse(socket: Duplex, status: number, statusText: string, extraHeaders = ""): void {
  if (socket.writable) socket.end(`HTTP/1.1 ${status} ${statusText}\r\nConnection: close\r\nContent-Length: 0\r\n${extraHeaders}\r\n`);
  socket.destroy();
}

export class PeerLinkServer {
  readonly #init: PeerLinkServerInit;
  readonly #server: https.Server;
  readonly #wss: WebSocketServer;
  readonly #limiter: FailedAttemptLimiter;
  readonly #logger: Logger;
  readonly #sockets = new Set<Socket>();
  #pendingHandshakes = 0;
  #closing = false;

  constructor(init: PeerLinkServerInit) {
    this.#init = init;
    this.#logger = init.logger;
    const { config } = init;
    this.#limiter = new FailedAttemptLimiter({
      maxFailures: config.maxFailedAttempts,
      windowMs: config.failedAttemptWindowMs,
      maxTrackedAddresses: config.maxTrackedAddresses,
    });
    this.#server = https.createServer({
      key: init.tls.key,
      cert: init.tls.cert,
      // Mutual TLS without a CA: the certificate is checked by fingerprint in the handshake.
      requestCert: true,
      rejectUnauthorized: false,
      minVersion: "TLSv1.3",
      handshakeTimeout: config.handshakeTimeoutMs,
      headersTimeout: config.handshakeTimeoutMs,
      requestTimeout: config.handshakeTimeoutMs,
      maxHeaderSize: 8 * 1024,
    });
    this.#server.maxConnections = config.maxConnections;
    this.#wss = new WebSocketServer({
      noServer: true,
      maxPayload: config.maxFrameBytes,
      perMessageDeflate: false,
      clientTracking: false,
      handleProtocols: (protocols) => (protocols.has(PEER_SUBPROTOCOL) ? PEER_SUBPROTOCOL : false),
    });
    this.#wss.on("error", (error) => this.#logger.warn({ err: error }, "peer WebSocket server error"));

    this.#server.on("connection", (socket: Socket) => {
      this.#sockets.add(socket);
      socket.once("close", () => this.#sockets.delete(socket));
      // Resets and broken pipes from a peer that vanished are routine, never fatal.
      socket.on("error", () => undefined);
    });
    this.#server.on("tlsClientError", (error, socket) => {
      const address = normaliseAddress(socket.remoteAddress);
      this.#recordFailure(address, `TLS handshake failed: ${error.message.slice(0, 200)}`);
      socket.destroy();
    });
    this.#server.on("clientError", (error, socket) => {
      this.#recordFailure(normaliseAddress((socket as Socket).remoteAddress), `malformed HTTP: ${error.message.slice(0, 200)}`);
      refuse(socket, 400, "Bad Request");
    });
    this.#server.on("request", (request, response) => {
      // Plain HTTPS gets nothing but a 404: the port serves peer links only.
      this.#recordFailure(normaliseAddress(request.socket.remoteAddress), `plain ${request.method ?? "?"} request`);
      response.writeHead(404, { connection: "close", "content-length": 0 }).end();
    });
    this.#server.on("upgrade", (request: IncomingMessage, socket: Duplex, head: Buffer) => this.#onUpgrade(request, socket, head));
    this.#server.on("error", (error) => this.#logger.error({ err: error }, "peer listener error"));
  }

  get limiter(): FailedAttemptLimiter {
    return this.#limiter;
  }

  get pendingHandshakes(): number {
    return this.#pendingHandshakes;
  }

  async listen(host: string, port: number): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      const onError = (error: Error): void => reject(error);
      this.#server.once("error", onError);
      this.#server.listen(port, host, () => {
        this.#server.off("error", onError);
        resolve();
      });
    }).catch((error: unknown) => {
      const code = (error as NodeJS.ErrnoException).code;
      throw errors.configInvalid(`cannot listen for peers on ${host}:${port}: ${code ?? (error as Error).message}`, { param: "peer.port", cause: error });
    });
    return this.address()!;
  }

  address(): AddressInfo | undefined {
    const address = this.#server.address();
    return address !== null && typeof address === "object" ? address : undefined;
  }

  #recordFailure(address: string, reason: string): void {
    const blocked = this.#limiter.recordFailure(address);
    this.#logger.warn({ address, reason, blocked }, "refused a peer connection");
  }

  #onUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on("error", () => undefined);
    const tlsSocket = request.socket as TLSSocket;
    const address = normaliseAddress(tlsSocket.remoteAddress);
    try {
      if (this.#closing) return refuse(socket, 503, "Service Unavailable");
      if (this.#limiter.isBlocked(address)) {
        this.#logger.debug({ address }, "refused a peer connection: too many failed attempts");
        return refuse(socket, 429, "Too Many Requests", `Retry-After: ${this.#limiter.retryAfterSeconds(address)}\r\n`);
      }
      const path = (request.url ?? "").split("?")[0];
      const protocols = (request.headers["sec-websocket-protocol"] ?? "").split(",").map((entry) => entry.trim());
      const key = request.headers["sec-websocket-key"];
      const wellFormed =
        request.method === "GET" &&
        (request.headers.upgrade ?? "").toLowerCase() === "websocket" &&
        request.headers["sec-websocket-version"] === "13" &&
        typeof key === "string" &&
        WEBSOCKET_KEY_PATTERN.test(key);
      if (path !== PEER_LINK_PATH) {
        this.#recordFailure(address, "upgrade for an unknown path");
        return refuse(socket, 404, "Not Found");
      }
      if (!wellFormed || !protocols.includes(PEER_SUBPROTOCOL)) {
        this.#recordFailure(address, wellFormed ? "upgrade without the peer subprotocol" : "malformed WebSocket upgrade");
        return refuse(socket, 400, "Bad Request");
      }
      const certificate = tlsSocket.getPeerX509Certificate();
      if (certificate === undefined) {
        this.#recordFailure(address, "no client certificate");
        return refuse(socket, 401, "Unauthorized");
      }
      if (this.#pendingHandshakes >= this.#init.config.maxPendingHandshakes) {
        this.#logger.warn({ address, pending: this.#pendingHandshakes }, "refused a peer connection: too many handshakes in progress");
        return refuse(socket, 503, "Service Unavailable");
      }
      const remoteFingerprint = new Uint8Array(createHash("sha256").update(certificate.raw).digest());
      // Without verifyClient, ws completes (or refuses) the upgrade synchronously: a slot is
      // taken only for a WebSocket that exists, so a refusal by ws can never leak one.
      let upgraded = false;
      this.#wss.handleUpgrade(request, socket, head, (webSocket) => {
        upgraded = true;
        this.#pendingHandshakes++;
        const slot = this.#slot(address);
        try {
          this.#init.onConnection({ socket: webSocket, remoteAddress: address, remotePort: tlsSocket.remotePort, remoteFingerprint, slot });
        } catch (error) {
          this.#logger.error({ err: error }, "peer connection handler failed");
          slot.released();
          webSocket.terminate();
        }
      });
      if (!upgraded) this.#recordFailure(address, "WebSocket upgrade refused");
    } catch (error) {
      this.#logger.error({ err: error, address }, "peer upgrade handler failed");
      refuse(socket, 500, "Internal Server Error");
    }
  }

  #slot(address: string): HandshakeSlot {
    let settled = false;
    const settle = (outcome: "succeeded" | "failed" | "released"): void => {
      if (settled) return;
      settled = true;
      this.#pendingHandshakes--;
      if (outcome === "succeeded") this.#limiter.recordSuccess(address);
      if (outcome === "failed") this.#limiter.recordFailure(address);
    };
    return { succeeded: () => settle("succeeded"), failed: () => settle("failed"), released: () => settle("released") };
  }

  /** Stops accepting; drops whatever connections remain after `graceMs` (links are closed by their owner first). */
  async close(graceMs = 1_000): Promise<void> {
    this.#closing = true;
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    const timer = setTimeout(() => {
      for (const socket of this.#sockets) socket.destroy();
    }, graceMs);
    timer.unref();
    await closed;
    clearTimeout(timer);
  }
}
