/**
 * Joins one local TCP socket and one peer-link stream into a tunnel: bytes both ways with
 * ordinary stream backpressure (a slow side pauses the other; the peer stream's credit window
 * bounds what is in flight on the link), counted, and torn down together: when either side
 * closes or fails, the other is destroyed too, so no half-dead tunnel keeps a single-client
 * rpc-server busy.
 *
 * llama.cpp RPC is latency-bound (one blocking round trip per generated token per device),
 * so Nagle is off on the socket, and what the socket sends goes through an RpcCoalescer unless
 * coalescing is off: whole messages, one frame each, instead of each write(2)'s bytes.
 */

import type net from "node:net";
import type { PeerStream } from "../peers/PeerStream.js";
import { RpcCoalescer } from "./RpcCoalescer.js";
import type { RpcStreamDirection } from "./rpcMessageBoundaries.js";

/** Bytes moved by one or more tunnels, as seen from the side that owns the counter. */
export interface TunnelTraffic {
  /** Local socket -> peer stream (host side: what the runner sends to the peer). */
  socketToStream: number;
  /** Peer stream -> local socket. */
  streamToSocket: number;
  /** Reads from the local socket, and the chunks they became on the stream (fewer when coalesced). */
  socketReads: number;
  chunksToStream: number;
  /** Tunnels opened / currently open. */
  opened: number;
  open: number;
}

export function emptyTraffic(): TunnelTraffic {
  return { socketToStream: 0, streamToSocket: 0, socketReads: 0, chunksToStream: 0, opened: 0, open: 0 };
}

/** The configured limits of message coalescing ([rpc] tunnel_hold, tunnel_hold_max_bytes). */
export interface TunnelHold {
  /** 0: relay bytes as they come. */
  holdMs: number;
  maxHoldBytes: number;
}

/** How the socket's bytes are grouped on their way into the stream. */
export interface TunnelCoalescing extends TunnelHold {
  /** What the local socket sends: requests (host side, the runner) or responses (peer side, rpc-server). */
  direction: RpcStreamDirection;
  onPassthrough?: (reason: string) => void;
}

/** Pipes both ways; `onClosed` runs once, after both ends are destroyed. */
export function joinTunnel(socket: net.Socket, stream: PeerStream, traffic: TunnelTraffic, onClosed: () => void, coalescing?: TunnelCoalescing): void {
  socket.setNoDelay(true);
  traffic.opened++;
  traffic.open++;
  const coalescer =
    coalescing === undefined || coalescing.holdMs <= 0
      ? undefined
      : new RpcCoalescer(coalescing);
  let closed = false;
  const teardown = (): void => {
    if (closed) return;
    closed = true;
    traffic.open--;
    socket.destroy();
    // Whatever it still holds was sent before the socket went: it goes first.
    coalescer?.releaseHeld();
    coalescer?.destroy();
    stream.destroy();
    onClosed();
  };
  socket.on("data", (chunk: Buffer) => {
    traffic.socketToStream += chunk.byteLength;
    traffic.socketReads++;
  });
  (coalescer ?? socket).on("data", () => {
    traffic.chunksToStream++;
  });
  stream.on("data", (chunk: Buffer) => {
    traffic.streamToSocket += chunk.byteLength;
  });
  if (coalescer === undefined) socket.pipe(stream);
  else socket.pipe(coalescer).pipe(stream);
  stream.pipe(socket);
  // Either end finishing ends the tunnel: RPC never half-closes a connection it still uses.
  for (const end of [socket, stream] as const) {
    end.on("error", teardown);
    end.on("close", teardown);
    end.on("end", teardown);
  }
  // The socket may have been resumed before the stream existed; anything it read is in its buffer.
  socket.resume();
}
