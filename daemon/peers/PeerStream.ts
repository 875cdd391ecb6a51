/**
 * One multiplexed byte stream on a peer link, as a Node Duplex, so callers pipe it to and
 * from sockets (tunnels) or token producers with ordinary stream backpressure.
 *
 * Credit-based flow control, per direction, in bytes (docs/protocol.md, "Byte streams"):
 *   - sending: a write waits until the peer has granted credit, and is cut into chunks no
 *     larger than the credit or `maxStreamChunkBytes`;
 *   - receiving: this side grants credit only as its reader drains the buffer, so at most
 *     `windowBytes` of unread data can ever pile up here, whatever the peer does; more than
 *     granted is a flow-control violation that ends the link (the link does that).
 * `end()` sends streamClose (half-close); `destroy(error)` sends streamReset with the error's
 * code. The stream leaves its link's table when both directions are closed or on reset.
 * Errors (a reset by the peer, the link going down) arrive as HearthErrors through 'error'
 * and `errored`; an unlistened one is never fatal.
 */

import { Duplex } from "node:stream";
import { errors, HearthError } from "../../protocol/errors.js";
import type { ErrorPayload } from "../../protocol/errors.js";
import { PeerProtocolError } from "../../protocol/peer/peerError.js";
import { wireErrorPayload } from "./wire.js";

/** What a stream needs from its link. The send functions throw when the link is gone. */
export interface StreamTransport {
  readonly maxChunkBytes: number;
  sendData(streamId: number, seq: number, bytes: Uint8Array): void;
  sendCredit(streamId: number, credit: number): void;
  sendClose(streamId: number): void;
  sendReset(streamId: number, error: ErrorPayload): void;
  /** The stream is finished (both sides closed, or reset): forget it. */
  release(stream: PeerStream): void;
}

export type PeerStreamSide = "opener" | "acceptor";

export interface PeerStreamInit {
  streamId: number;
  purpose: string;
  peerNodeId: string;
  side: PeerStreamSide;
  transport: StreamTransport;
  /** Most unread bytes this side lets the peer send ahead. */
  windowBytes: number;
  /** Acceptor: the credit announced in streamOpen. Opener: 0 until accepted. */
  initialSendCredit: number;
}

interface PendingWrite {
  chunk: Buffer;
  offset: number;
  callback: (error?: Error | null) => void;
}

const MAX_READ_BUFFER_HINT = 64 * 1024;

export class PeerStream extends Duplex {
  readonly streamId: number;
  readonly purpose: string;
  readonly peerNodeId: string;
  readonly side: PeerStreamSide;
  readonly #transport: StreamTransport;
  readonly #windowBytes: number;
  #sendCredit: number;
  #sendSeq = 0;
  #receiveSeq = 0;
  /** Total credit granted to the peer, and total bytes received: their difference is in flight. */
  #granted = 0;
  #received = 0;
  #pending: PendingWrite | undefined;
  #sentClose = false;
  #receivedClose = false;
  #released = false;
  /** The peer already knows the stream is gone (it reset it, or the link died): send no reset. */
  #silent = false;
  #accepted: boolean;
  /** Acceptor: set by accept(); nothing is granted until the purpose's handler took the stream. */
  #acceptCalled = false;
  #acceptance: { resolve: () => void; reject: (error: Error) => void } | undefined;
  readonly #acceptedPromise: Promise<void>;

  constructor(init: PeerStreamInit) {
    super({ allowHalfOpen: true, readableHighWaterMark: Math.max(1, Math.min(MAX_READ_BUFFER_HINT, Math.floor(init.windowBytes / 2))) });
    this.streamId = init.streamId;
    this.purpose = init.purpose;
    this.peerNodeId = init.peerNodeId;
    this.side = init.side;
    this.#transport = init.transport;
    this.#windowBytes = init.windowBytes;
    this.#sendCredit = init.initialSendCredit;
    // The opener announced its whole window in streamOpen; the acceptor grants on accept().
    if (init.side === "opener") this.#granted = init.windowBytes;
    this.#accepted = init.side === "acceptor";
    // A peer resetting a stream, or a link dying under it, is routine: it must never become an
    // uncaught 'error' that takes the daemon down. Listeners still see it, and so does `errored`.
    this.on("error", () => undefined);
    this.#acceptedPromise = new Promise<void>((resolve, reject) => {
      this.#acceptance = { resolve, reject };
    });
    // Nobody may wait on it (acceptor side, or an opener that gave up): never unhandled.
    this.#acceptedPromise.catch(() => undefined);
    if (this.#accepted) this.#settleAcceptance();
  }

  /** Opener: resolves when the peer accepts the stream, rejects with its refusal. */
  whenAccepted(): Promise<void> {
    return this.#acceptedPromise;
  }

  /** Bytes this side may still send before the peer grants more (for tests and metrics). */
  get sendCredit(): number {
    return this.#sendCredit;
  }

  #settleAcceptance(error?: Error): void {
    const acceptance = this.#acceptance;
    if (acceptance === undefined) return;
    this.#acceptance = undefined;
    if (error === undefined) acceptance.resolve();
    else acceptance.reject(error);
  }

  // ---- called by the link -----------------------------------------------------------------

  /** Acceptor: grants the opener its first window, which is what accepting means. */
  accept(): void {
    if (this.side !== "acceptor" || this.destroyed || this.#acceptCalled) return;
    this.#acceptCalled = true;
    this.#grant();
  }

  /** Returns the violation that must close the link, if any. */
  receiveData(seq: number, bytes: Uint8Array): PeerProtocolError | undefined {
    if (this.#receivedClose) return new PeerProtocolError("HEARTH_PEER_PROTOCOL_VIOLATION", `stream ${this.streamId}: data after streamClose`);
    if (seq !== this.#receiveSeq) return new PeerProtocolError("HEARTH_PEER_PROTOCOL_VIOLATION", `stream ${this.streamId}: expected chunk ${this.#receiveSeq}, received ${seq}`);
    if (this.#received + bytes.byteLength > this.#granted) {
      return new PeerProtocolError(
        "HEARTH_PEER_FLOW_CONTROL",
        `stream ${this.streamId}: ${bytes.byteLength} bytes sent with only ${this.#granted - this.#received} bytes of credit`,
      );
    }
    this.#receiveSeq++;
    this.#received += bytes.byteLength;
    if (!this.destroyed) this.push(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    return undefined;
  }

  receiveCredit(credit: number): void {
    this.#sendCredit += credit;
    if (!this.#accepted) {
      this.#accepted = true;
      this.#settleAcceptance();
    }
    this.#pump();
  }

  /** Returns the violation that must close the link, if any. */
  receiveClose(): PeerProtocolError | undefined {
    if (this.#receivedClose) return new PeerProtocolError("HEARTH_PEER_PROTOCOL_VIOLATION", `stream ${this.streamId}: streamClose received twice`);
    this.#receivedClose = true;
    this.push(null);
    this.#releaseIfFinished();
    return undefined;
  }

  receiveReset(error: ErrorPayload): void {
    this.#silent = true;
    this.destroy(HearthError.fromPayload(error));
  }

  /** Fails without telling the peer: the link is gone, or the peer never heard of the stream. */
  destroySilently(error: HearthError): void {
    this.#silent = true;
    this.destroy(error);
  }

  // ---- Duplex implementation ---------------------------------------------------------------

  override _read(): void {
    // Node calls _read before it takes the bytes it is about to return out of the buffer, and
    // then not again until the next push. Granting against the buffer as it stands after this
    // read (next tick) matters: judged now, a full buffer grants nothing, no data comes, no push
    // comes, and the stream never gets credit again.
    process.nextTick(() => this.#grant());
  }

  /** Grants the peer whatever the window allows now, unless that is a tiny sliver. */
  #grant(): void {
    if (this.#receivedClose || this.#released || this.destroyed) return;
    if (this.side === "acceptor" && !this.#acceptCalled) return;
    const outstanding = this.#granted - this.#received;
    const available = this.#windowBytes - outstanding - this.readableLength;
    // Half a window at a time keeps credit messages rare; when nothing is outstanding the
    // peer may be waiting on us, so grant whatever there is.
    if (available <= 0 || (available * 2 < this.#windowBytes && outstanding > 0)) return;
    try {
      this.#transport.sendCredit(this.streamId, available);
      this.#granted += available;
    } catch (error) {
      this.destroy(HearthError.from(error, "HEARTH_PEER_UNAVAILABLE"));
    }
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#pending = { chunk, offset: 0, callback };
    this.#pump();
  }

  #pump(): void {
    while (this.#pending !== undefined && this.#sendCredit > 0 && !this.destroyed) {
      const pending = this.#pending;
      const size = Math.min(pending.chunk.byteLength - pending.offset, this.#sendCredit, this.#transport.maxChunkBytes);
      try {
        this.#transport.sendData(this.streamId, this.#sendSeq, pending.chunk.subarray(pending.offset, pending.offset + size));
      } catch (error) {
        this.#pending = undefined;
        pending.callback(HearthError.from(error, "HEARTH_PEER_UNAVAILABLE"));
        return;
      }
      this.#sendSeq++;
      this.#sendCredit -= size;
      pending.offset += size;
      if (pending.offset >= pending.chunk.byteLength) {
        this.#pending = undefined;
        pending.callback();
      }
    }
  }

  override _final(callback: (error?: Error | null) => void): void {
    try {
      this.#transport.sendClose(this.streamId);
    } catch (error) {
      callback(HearthError.from(error, "HEARTH_PEER_UNAVAILABLE"));
      return;
    }
    this.#sentClose = true;
    this.#releaseIfFinished();
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.#released) {
      if (!this.#silent && !(this.#sentClose && this.#receivedClose)) {
        try {
          this.#transport.sendReset(this.streamId, wireErrorPayload(error ?? errors.cancelled("the stream was closed before it finished")));
        } catch {
          // The link is gone; the peer drops the stream with it.
        }
      }
      this.#release();
    }
    const pending = this.#pending;
    this.#pending = undefined;
    const failure = error ?? errors.cancelled("the stream was destroyed");
    pending?.callback(failure);
    this.#settleAcceptance(failure);
    callback(error);
  }

  #releaseIfFinished(): void {
    if (this.#sentClose && this.#receivedClose) this.#release();
  }

  #release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#transport.release(this);
  }
}
