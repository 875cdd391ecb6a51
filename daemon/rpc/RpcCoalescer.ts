/**
 * Sits between a local RPC socket and its tunnel stream and hands the stream whole llama.cpp
 * RPC messages instead of each write(2)'s worth of bytes.
 *
 * Why: every peer-link frame costs both daemons a read, a TLS record, WebSocket framing and a
 * write, about 0.1 ms of CPU each on the cores the runner and rpc-server compute on, and a
 * generated token is a round trip through both. One 1b token is nine requests (seven
 * SET_TENSOR, GRAPH_RECOMPUTE, GET_TENSOR), each written as three send(2) calls, and a
 * two-part response: 29 frames relayed one by one, against 2 once coalesced.
 *
 * Rules:
 *   - a partial message is held until its last byte (rpc-server cannot act on it sooner);
 *   - held bytes beyond `maxHoldBytes` go at once, so a weight push streams instead of piling up;
 *   - requests: a complete command rpc-server does not answer (SET_TENSOR, GRAPH_COMPUTE, ...)
 *     is held, up to `holdMs`, to travel with the next command that it does answer;
 *   - anything held longer than `holdMs` goes anyway. If that happens mid-message the framing
 *     is doubted and, after a few times in a row, the coalescer relays bytes as they come.
 * Nothing is reordered or altered: the bytes out are exactly the bytes in.
 */

import { Transform, type TransformCallback } from "node:stream";
import { RpcMessageBoundaries, type RpcStreamDirection } from "./rpcMessageBoundaries.js";

export interface RpcCoalescerOptions {
  direction: RpcStreamDirection;
  /** Longest a byte waits for the rest of its message or for a command that is answered. */
  holdMs: number;
  /** Most bytes held back; more go at once. */
  maxHoldBytes: number;
  /** Called once if the coalescer gives up on message boundaries (reason for the log). */
  onPassthrough?: (reason: string) => void;
}

/** Timer flushes mid-message in a row after which boundaries are no longer trusted. */
const MID_MESSAGE_TIMEOUTS_BEFORE_PASSTHROUGH = 3;

export class RpcCoalescer extends Transform {
  readonly #options: RpcCoalescerOptions;
  readonly #boundaries: RpcMessageBoundaries;
  #held: Buffer[] = [];
  #heldBytes = 0;
  #timer: NodeJS.Timeout | undefined;
  #midMessageTimeouts = 0;
  #passthrough = false;

  constructor(options: RpcCoalescerOptions) {
    super();
    this.#options = options;
    this.#boundaries = new RpcMessageBoundaries(options.direction);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.#passthrough) {
      callback(null, chunk);
      return;
    }
    this.#held.push(chunk);
    this.#heldBytes += chunk.byteLength;
    this.#boundaries.feed(chunk);
    if (this.#boundaries.lost) {
      this.#giveUp("a message size beyond anything llama.cpp sends");
    } else if (this.#heldBytes >= this.#options.maxHoldBytes) {
      this.#release();
    } else if (this.#boundaries.atBoundary) {
      this.#midMessageTimeouts = 0;
      if (this.#options.direction === "responses" || this.#boundaries.lastExpectsResponse) this.#release();
      else this.#armTimer();
    } else {
      this.#armTimer();
    }
    callback();
  }

  override _flush(callback: TransformCallback): void {
    this.#release();
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#held = [];
    callback(error);
  }

  /** Sends whatever is held now (the socket is going away). */
  releaseHeld(): void {
    if (!this.destroyed) this.#release();
  }

  #armTimer(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.destroyed) return;
      if (!this.#boundaries.atBoundary && ++this.#midMessageTimeouts >= MID_MESSAGE_TIMEOUTS_BEFORE_PASSTHROUGH) {
        this.#giveUp(`a message stayed incomplete for ${this.#options.holdMs} ms ${MID_MESSAGE_TIMEOUTS_BEFORE_PASSTHROUGH} times in a row`);
        return;
      }
      this.#release();
    }, this.#options.holdMs);
  }

  #release(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#heldBytes === 0) return;
    const out = this.#held.length === 1 ? this.#held[0]! : Buffer.concat(this.#held, this.#heldBytes);
    this.#held = [];
    this.#heldBytes = 0;
    this.push(out);
  }

  #giveUp(reason: string): void {
    this.#passthrough = true;
    this.#release();
    this.#options.onPassthrough?.(reason);
  }
}
