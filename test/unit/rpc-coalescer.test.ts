/**
 * llama.cpp RPC message boundaries and the tunnel's coalescer: whole messages out, bytes never
 * altered or reordered, unanswered commands held at most holdMs, and a stream it cannot parse
 * relayed as it comes.
 */

import { once } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { RpcCoalescer } from "../../daemon/rpc/RpcCoalescer.js";
import { RpcMessageBoundaries, type RpcStreamDirection } from "../../daemon/rpc/rpcMessageBoundaries.js";

const SET_TENSOR = 6;
const GET_TENSOR = 8;
const GRAPH_COMPUTE = 10;
const HELLO = 14;

function request(command: number, payloadBytes: number, fill = 1): Buffer {
  const message = Buffer.alloc(9 + payloadBytes, fill);
  message.writeUInt8(command, 0);
  message.writeBigUInt64LE(BigInt(payloadBytes), 1);
  return message;
}

function response(payloadBytes: number): Buffer {
  const message = Buffer.alloc(8 + payloadBytes, 2);
  message.writeBigUInt64LE(BigInt(payloadBytes), 0);
  return message;
}

/** The pieces the RPC client writes a request as: command byte, size, payload. */
function asClientWrites(message: Buffer): Buffer[] {
  return [message.subarray(0, 1), message.subarray(1, 9), message.subarray(9)].filter((piece) => piece.byteLength > 0);
}

function collect(coalescer: RpcCoalescer): Buffer[] {
  const out: Buffer[] = [];
  coalescer.on("data", (chunk: Buffer) => out.push(chunk));
  return out;
}

function coalescer(direction: RpcStreamDirection, overrides: Partial<{ holdMs: number; maxHoldBytes: number; onPassthrough: (reason: string) => void }> = {}): RpcCoalescer {
  return new RpcCoalescer({ direction, holdMs: 1_000, maxHoldBytes: 128 * 1024, ...overrides });
}

describe("RpcMessageBoundaries", () => {
  it("finds request boundaries whatever the chunking, and knows which commands are answered", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom(SET_TENSOR, GET_TENSOR, GRAPH_COMPUTE, HELLO, 3, 200), fc.integer({ min: 0, max: 300 })), { minLength: 1, maxLength: 12 }),
        fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 40 }),
        (messages, cuts) => {
          const bytes = Buffer.concat(messages.map(([command, size]) => request(command, size)));
          const ends = new Map<number, number>();
          let offset = 0;
          for (const [command, size] of messages) {
            offset += 9 + size;
            ends.set(offset, command);
          }
          const boundaries = new RpcMessageBoundaries("requests");
          let position = 0;
          let cut = 0;
          while (position < bytes.byteLength) {
            const next = Math.min(bytes.byteLength, position + cuts[cut++ % cuts.length]!);
            boundaries.feed(bytes.subarray(position, next));
            position = next;
            expect(boundaries.atBoundary).toBe(ends.has(position));
            if (ends.has(position)) expect(boundaries.lastExpectsResponse).toBe(![SET_TENSOR, GRAPH_COMPUTE].includes(ends.get(position)!));
          }
          expect(boundaries.lost).toBe(false);
        },
      ),
    );
  });

  it("finds response boundaries, including empty responses", () => {
    const boundaries = new RpcMessageBoundaries("responses");
    boundaries.feed(response(0));
    expect(boundaries.atBoundary).toBe(true);
    const answer = response(1416);
    boundaries.feed(answer.subarray(0, 8));
    expect(boundaries.atBoundary).toBe(false);
    boundaries.feed(answer.subarray(8));
    expect(boundaries.atBoundary).toBe(true);
  });

  it("gives up on a size no llama.cpp message has", () => {
    const boundaries = new RpcMessageBoundaries("requests");
    const garbage = Buffer.alloc(9, 0xff);
    boundaries.feed(garbage);
    expect(boundaries.lost).toBe(true);
    expect(boundaries.atBoundary).toBe(false);
  });
});

describe("RpcCoalescer", () => {
  it("turns a request written in three pieces into one chunk, released as soon as it is complete", () => {
    const tunnel = coalescer("requests");
    const out = collect(tunnel);
    const getTensor = request(GET_TENSOR, 312);
    const [command, size, payload] = asClientWrites(getTensor);
    tunnel.write(command);
    tunnel.write(size);
    expect(out).toHaveLength(0);
    tunnel.write(payload);
    expect(out).toEqual([getTensor]);
  });

  it("holds unanswered commands for the next answered one, so a token's requests travel as one chunk", () => {
    const tunnel = coalescer("requests");
    const out = collect(tunnel);
    const token = [request(SET_TENSOR, 309), request(SET_TENSOR, 1329), request(GRAPH_COMPUTE, 4), request(GET_TENSOR, 312)];
    for (const message of token) for (const piece of asClientWrites(message)) tunnel.write(piece);
    expect(out).toEqual([Buffer.concat(token)]);
  });

  it("releases a held unanswered command after holdMs", async () => {
    const tunnel = coalescer("requests", { holdMs: 30 });
    const out = collect(tunnel);
    const started = performance.now();
    tunnel.write(request(SET_TENSOR, 100));
    expect(out).toHaveLength(0);
    while (out.length === 0) await sleep(2);
    expect(performance.now() - started).toBeGreaterThanOrEqual(25);
    expect(out).toEqual([request(SET_TENSOR, 100)]);
  });

  it("streams a message larger than maxHoldBytes instead of holding it whole", () => {
    const tunnel = coalescer("requests", { maxHoldBytes: 1024 });
    const out = collect(tunnel);
    const push = request(SET_TENSOR, 10_000);
    for (let offset = 0; offset < push.byteLength; offset += 500) tunnel.write(push.subarray(offset, offset + 500));
    expect(out.length).toBeGreaterThan(5);
    expect(Math.max(...out.map((chunk) => chunk.byteLength))).toBeLessThanOrEqual(1024 + 500);
    // The tail completes an unanswered SET_TENSOR: held like any other, until released.
    tunnel.releaseHeld();
    expect(Buffer.concat(out)).toEqual(push);
  });

  it("releases each response as soon as it is complete", () => {
    const tunnel = coalescer("responses");
    const out = collect(tunnel);
    const answer = response(1416);
    tunnel.write(answer.subarray(0, 8));
    expect(out).toHaveLength(0);
    tunnel.write(answer.subarray(8));
    expect(out).toEqual([answer]);
  });

  it("passes every byte through unchanged and in order, whatever the messages and chunking", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.constantFrom(SET_TENSOR, GET_TENSOR, GRAPH_COMPUTE), fc.integer({ min: 0, max: 3000 }), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 10 }),
        fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 20 }),
        async (messages, cuts) => {
          const tunnel = coalescer("requests", { maxHoldBytes: 2048 });
          const out = collect(tunnel);
          const bytes = Buffer.concat(messages.map(([command, size, fill]) => request(command, size, fill)));
          let position = 0;
          let cut = 0;
          while (position < bytes.byteLength) {
            const next = Math.min(bytes.byteLength, position + cuts[cut++ % cuts.length]!);
            tunnel.write(bytes.subarray(position, next));
            position = next;
          }
          tunnel.end();
          await once(tunnel, "end");
          expect(Buffer.concat(out)).toEqual(bytes);
        },
      ),
      { numRuns: 50 },
    );
  });

  it("relays bytes as they come once it finds a size it cannot believe, and says so once", () => {
    const reasons: string[] = [];
    const tunnel = coalescer("requests", { onPassthrough: (reason) => reasons.push(reason) });
    const out = collect(tunnel);
    tunnel.write(Buffer.alloc(9, 0xff));
    tunnel.write(Buffer.of(1));
    tunnel.write(Buffer.of(2));
    expect(out.map((chunk) => chunk.byteLength)).toEqual([9, 1, 1]);
    expect(reasons).toHaveLength(1);
    expect(reasons[0]).toMatch(/message size/);
  });

  it("stops trusting boundaries after messages stay incomplete for holdMs three times in a row", async () => {
    const reasons: string[] = [];
    const tunnel = coalescer("requests", { holdMs: 10, onPassthrough: (reason) => reasons.push(reason) });
    const out = collect(tunnel);
    // Claims 1000 bytes of payload, then sends them in slow dribbles.
    tunnel.write(request(SET_TENSOR, 1000).subarray(0, 9));
    for (let stall = 0; stall < 3; stall++) {
      tunnel.write(Buffer.alloc(10));
      await sleep(30);
    }
    expect(reasons).toHaveLength(1);
    expect(reasons[0]).toMatch(/incomplete/);
    const before = out.length;
    tunnel.write(Buffer.alloc(10));
    expect(out.length).toBe(before + 1);
  });

  it("hands over what it holds when the socket goes away", () => {
    const tunnel = coalescer("requests");
    const out = collect(tunnel);
    tunnel.write(request(SET_TENSOR, 50));
    expect(out).toHaveLength(0);
    tunnel.releaseHeld();
    expect(out).toEqual([request(SET_TENSOR, 50)]);
  });
});
