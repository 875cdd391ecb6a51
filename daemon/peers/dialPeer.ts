/**
 * Dialling a peer: TCP + TLS 1.3 with this node's certificate (the server asks for it), then
 * the WebSocket upgrade to PEER_LINK_PATH with PEER_SUBPROTOCOL. Resolves with the open
 * socket and the fingerprint of the certificate the server presented; the caller runs the
 * handshake (PeerLink), which is where that certificate is actually trusted or refused.
 *
 * TLS does not verify the server (`rejectUnauthorized: false`): certificates are self-signed
 * and the handshake pins them by fingerprint after the HMAC proof. The TLS connection is made
 * here rather than by ws so any host form works (IPv6 with a zone id cannot go in a URL).
 */

import { createHash } from "node:crypto";
import tls from "node:tls";
import type { TLSSocket } from "node:tls";
import { WebSocket } from "ws";
import { errors, HearthError } from "../../protocol/errors.js";
import { formatHostPort, PEER_LINK_PATH, PEER_SUBPROTOCOL } from "./wire.js";

export interface DialOptions {
  tls: { key: string; cert: string };
  maxFrameBytes: number;
  /** TCP connect + TLS + WebSocket upgrade. */
  timeoutMs: number;
  signal?: AbortSignal;
}

export interface DialedSocket {
  socket: WebSocket;
  /** SHA-256 of the server's certificate, as TLS observed it. */
  remoteFingerprint: Uint8Array;
  /** `host:port` as dialled. */
  remoteAddress: string;
}

export function dialPeer(host: string, port: number, options: DialOptions): Promise<DialedSocket> {
  const remoteAddress = formatHostPort(host, port);
  return new Promise<DialedSocket>((resolve, reject) => {
    let tlsSocket: TLSSocket | undefined;
    let settled = false;
    const fail = (error: unknown): void => {
      if (settled) return;
      settled = true;
      options.signal?.removeEventListener("abort", onAbort);
      clearTimeout(timer);
      socket.terminate();
      reject(
        error instanceof HearthError
          ? error
          : errors.peerUnavailable(`cannot reach ${remoteAddress}: ${error instanceof Error ? error.message : String(error)}`, { cause: error }),
      );
    };
    const onAbort = (): void => fail(errors.cancelled(`dialling ${remoteAddress} was cancelled`));

    // The URL's host is only the Host header; the connection goes where createConnection says.
    const socket = new WebSocket(`wss://hearth-peer${PEER_LINK_PATH}`, [PEER_SUBPROTOCOL], {
      maxPayload: options.maxFrameBytes,
      perMessageDeflate: false,
      followRedirects: false,
      handshakeTimeout: options.timeoutMs,
      createConnection: () => {
        tlsSocket = tls.connect({
          host,
          port,
          key: options.tls.key,
          cert: options.tls.cert,
          rejectUnauthorized: false,
          minVersion: "TLSv1.3",
          // No SNI: peers are addressed by IP, and the certificate names nothing anyway.
          servername: "",
        });
        return tlsSocket;
      },
    });
    // Covers the TCP connect too, which ws's handshakeTimeout only starts after.
    const timer = setTimeout(() => fail(errors.peerTimeout(`${remoteAddress} did not answer within ${options.timeoutMs} ms`)), options.timeoutMs);
    timer.unref();
    if (options.signal?.aborted === true) {
      onAbort();
      return;
    }
    options.signal?.addEventListener("abort", onAbort, { once: true });

    socket.on("error", (error) => fail(error));
    socket.once("close", () => fail(new Error("the connection closed during the upgrade")));
    socket.once("open", () => {
      if (settled) return;
      const certificate = tlsSocket?.getPeerX509Certificate();
      if (certificate === undefined) {
        fail(errors.peerAuthFailed(`${remoteAddress} presented no certificate`));
        return;
      }
      if (socket.protocol !== PEER_SUBPROTOCOL) {
        fail(errors.peerIncompatible(`${remoteAddress} did not agree to ${PEER_SUBPROTOCOL}`));
        return;
      }
      settled = true;
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
      socket.removeAllListeners("error");
      socket.removeAllListeners("close");
      // Until the PeerLink takes over (same tick), errors must not go unhandled.
      socket.on("error", () => undefined);
      resolve({ socket, remoteFingerprint: new Uint8Array(createHash("sha256").update(certificate.raw).digest()), remoteAddress });
    });
  });
}
