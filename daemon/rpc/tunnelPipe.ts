/**
 * Joins one local TCP socket and one peer-link stream into a tunnel: bytes both ways with
 * ordinary stream backpressure (a slow side pauses the other; the peer stream's credit window
 * bounds what is in flight on the link), counted, and torn down together: when either side
 * closes or fails, the other is destroyed too, so no half-dead tunnel keeps a single-client
 * rpc-server busy.
 *
 * llama.cpp RPC is latency-bound (one blocking round trip per generated token per device),
 * so Nagle is off on the socket.
 */

import type net from "node:net";
import type { PeerStream } from "../peers/PeerStream.js";

/** Bytes moved by one or more tunnels, as seen from the side that owns the counter. */
export interface TunnelTraffic {
  /** Local socket -> peer stream (host side: what the runner sends to the peer). */
  socketToStream: number;
  /** Peer stream -> local socket. */
  streamToSocket: number;
  /** Tunnels opened / currently open. */
  opened: number;
  open: number;
}

export function emptyTraffic(): TunnelTraffic {
  return { socketToStream: 0, streamToSocket: 0, opened: 0, open: 0 };
}

/** Pipes both ways; `onClosed` runs once, after both ends are destroyed. */
export function joinTunnel(socket: net.Socket, stream: PeerStream, traffic: TunnelTraffic, onClosed: () => void): void {
  socket.setNoDelay(true);
  traffic.opened++;
  traffic.open++;
  let closed = false;
  const teardown = (): void => {
    if (closed) return;
    closed = true;
    traffic.open--;
    socket.destroy();
    stream.destroy();
    onClosed();
  };
  socket.on("data", (chunk: Buffer) => {
    traffic.socketToStream += chunk.byteLength;
  });
  stream.on("data", (chunk: Buffer) => {
    traffic.streamToSocket += chunk.byteLength;
  });
  socket.pipe(stream);
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
