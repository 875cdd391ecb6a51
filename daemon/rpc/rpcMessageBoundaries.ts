/**
 * Where llama.cpp RPC messages begin and end in a byte stream, so the tunnel can move whole
 * messages instead of whatever each write(2) happened to carry.
 *
 * Wire (ggml-rpc.cpp, protocol 3.x, the build native/build.mjs pins):
 *   request:  | cmd u8 | size u64 LE | size bytes |
 *   response: | size u64 LE | size bytes |
 * The client writes a request as three send(2) calls and rpc-server a response as two; with
 * Nagle off each becomes its own segment, so a naive relay turns one message into two or three
 * peer-link frames. Some commands never get a response (the server just applies them); the
 * tunnel may hold those briefly and send them with the next command that does.
 *
 * Pure and allocation-light: it only counts bytes. It never interprets payloads, and a size it
 * cannot believe makes it give up (`lost`), after which the tunnel relays bytes as they come.
 */

export type RpcStreamDirection = "requests" | "responses";

/** Commands rpc-server applies without answering (ggml-rpc.cpp's server loop). */
const COMMANDS_WITHOUT_RESPONSE: ReadonlySet<number> = new Set([
  4, // FREE_BUFFER
  5, // BUFFER_CLEAR
  6, // SET_TENSOR
  10, // GRAPH_COMPUTE
  12, // INIT_TENSOR
  16, // GRAPH_RECOMPUTE
  17, // MEMSET_TENSOR
]);

const SIZE_FIELD_BYTES = 8;
/** Larger than any single message llama.cpp sends (a tensor is at most a few GiB). */
const MAX_BELIEVABLE_MESSAGE_BYTES = 2 ** 40;

export class RpcMessageBoundaries {
  readonly #headerBytes: number;
  readonly #header: Buffer;
  #headerFilled = 0;
  #bodyRemaining = 0;
  #lost = false;
  #lastCommand: number | undefined;

  constructor(direction: RpcStreamDirection) {
    this.#headerBytes = direction === "requests" ? 1 + SIZE_FIELD_BYTES : SIZE_FIELD_BYTES;
    this.#header = Buffer.alloc(this.#headerBytes);
  }

  /** True once a size made no sense: boundaries are unknown from here on. */
  get lost(): boolean {
    return this.#lost;
  }

  /** True when everything fed so far ends exactly at the end of a message. */
  get atBoundary(): boolean {
    return !this.#lost && this.#headerFilled === 0 && this.#bodyRemaining === 0;
  }

  /**
   * Requests only: whether the last complete message was a command rpc-server answers (so the
   * client is, or soon will be, waiting on it). Unknown commands count as answered: holding
   * them back is never right.
   */
  get lastExpectsResponse(): boolean {
    return this.#lastCommand === undefined || !COMMANDS_WITHOUT_RESPONSE.has(this.#lastCommand);
  }

  feed(chunk: Uint8Array): void {
    let offset = 0;
    while (offset < chunk.byteLength && !this.#lost) {
      if (this.#bodyRemaining > 0) {
        const take = Math.min(this.#bodyRemaining, chunk.byteLength - offset);
        this.#bodyRemaining -= take;
        offset += take;
        continue;
      }
      const take = Math.min(this.#headerBytes - this.#headerFilled, chunk.byteLength - offset);
      this.#header.set(chunk.subarray(offset, offset + take), this.#headerFilled);
      this.#headerFilled += take;
      offset += take;
      if (this.#headerFilled < this.#headerBytes) return;
      this.#headerFilled = 0;
      const size = this.#header.readBigUInt64LE(this.#headerBytes - SIZE_FIELD_BYTES);
      if (size > BigInt(MAX_BELIEVABLE_MESSAGE_BYTES)) {
        this.#lost = true;
        return;
      }
      this.#bodyRemaining = Number(size);
      if (this.#headerBytes > SIZE_FIELD_BYTES) this.#lastCommand = this.#header[0];
    }
  }
}
