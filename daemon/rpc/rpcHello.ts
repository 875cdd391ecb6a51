/**
 * One llama.cpp RPC HELLO over TCP: how the pool knows a worker it started is listening and
 * speaks the protocol of this build, without holding the connection (rpc-server serves one
 * client at a time, so the probe closes as soon as the answer is in).
 *
 * Wire (ggml-rpc.cpp, protocol 7): the client sends | cmd u8 = 14 | size u64 LE = 24 | 24
 * bytes of transport capabilities (zero: plain TCP) |; the server answers | size u64 LE = 28
 * | major u8 | minor u8 | patch u8 | pad u8 | 24 bytes of capabilities |.
 */

import net from "node:net";

const RPC_CMD_HELLO = 14;
const CONN_CAPS_BYTES = 24;
const HELLO_RESPONSE_BYTES = 4 + CONN_CAPS_BYTES;
const SIZE_FIELD_BYTES = 8;

export interface RpcVersion {
  major: number;
  minor: number;
  patch: number;
}

export function helloRequest(): Buffer {
  const request = Buffer.alloc(1 + SIZE_FIELD_BYTES + CONN_CAPS_BYTES);
  request.writeUInt8(RPC_CMD_HELLO, 0);
  request.writeBigUInt64LE(BigInt(CONN_CAPS_BYTES), 1);
  return request;
}

/** The version in a complete HELLO answer, or undefined while it is incomplete or malformed. */
export function parseHelloResponse(bytes: Buffer): RpcVersion | undefined {
  if (bytes.length < SIZE_FIELD_BYTES + HELLO_RESPONSE_BYTES) return undefined;
  if (bytes.readBigUInt64LE(0) !== BigInt(HELLO_RESPONSE_BYTES)) return undefined;
  return { major: bytes.readUInt8(8), minor: bytes.readUInt8(9), patch: bytes.readUInt8(10) };
}

/** Resolves with the server's version, or undefined when nothing (or something else) answers in time. */
export function rpcHello(host: string, port: number, timeoutMs: number): Promise<RpcVersion | undefined> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    let received = Buffer.alloc(0);
    const finish = (version: RpcVersion | undefined): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(version);
    };
    const timer = setTimeout(() => finish(undefined), timeoutMs);
    socket.setNoDelay(true);
    socket.on("connect", () => socket.write(helloRequest()));
    socket.on("data", (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (received.length >= SIZE_FIELD_BYTES + HELLO_RESPONSE_BYTES) finish(parseHelloResponse(received));
    });
    socket.on("error", () => finish(undefined));
    socket.on("close", () => finish(undefined));
  });
}
