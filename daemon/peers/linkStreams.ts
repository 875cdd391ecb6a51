/**
 * The table of byte streams on one peer link (docs/protocol.md, "Byte streams"): stream ids
 * (odd from the link's initiator, even from its responder, never reused), opening and
 * accepting, routing data/credit/close/reset to the right PeerStream, and what to do with
 * traffic for streams that are not open.
 *
 * Traffic for a stream that existed and has finished (closed or reset) is dropped silently:
 * it is the normal race between a reset or close and data already in flight, and the peer
 * already knows. Traffic for an id that was never opened is answered with streamReset
 * HEARTH_PEER_UNKNOWN_STREAM, and a peer that keeps sending it loses the link (4404).
 */

import type { Logger } from "pino";
import { errors, HearthError } from "../../protocol/errors.js";
import type { HandshakeRole } from "../../protocol/peer/handshake.js";
import type {
  PeerMessage,
  StreamCloseMessage,
  StreamCreditMessage,
  StreamDataMessage,
  StreamOpenMessage,
  StreamResetMessage,
} from "../../protocol/peer/messages.js";
import { PeerProtocolError } from "../../protocol/peer/peerError.js";
import { PeerStream } from "./PeerStream.js";
import type { StreamTransport } from "./PeerStream.js";
import { wireErrorPayload } from "./wire.js";

export interface StreamContext {
  peerNodeId: string;
}

/**
 * Takes an incoming stream. The stream is accepted (the opener gets its send window) when
 * the handler returns or its promise resolves, so a tunnel can first connect its local end;
 * throwing refuses it with the error's code. Do not await the whole transfer in here.
 */
export type StreamHandler = (stream: PeerStream, meta: unknown, context: StreamContext) => void | Promise<void>;

export interface OpenStreamOptions {
  /** Purpose-specific parameters, validated by the acceptor. */
  meta?: unknown;
  /** How long to wait for the peer to accept; defaults to PeerConfig.requestTimeoutMs. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface LinkStreamsInit {
  role: HandshakeRole;
  peerNodeId: string;
  send: (message: PeerMessage) => void;
  handlerFor: (purpose: string) => StreamHandler | undefined;
  windowBytes: number;
  maxOpenStreams: number;
  maxChunkBytes: number;
  maxUnknownStreamMessages: number;
  defaultTimeoutMs: number;
  logger: Logger;
}

export class LinkStreams {
  readonly #init: LinkStreamsInit;
  readonly #streams = new Map<number, PeerStream>();
  #nextLocalId: number;
  #highestRemoteId = 0;
  #unknownMessages = 0;
  #closedError: HearthError | undefined;
  readonly #transport: StreamTransport;

  constructor(init: LinkStreamsInit) {
    this.#init = init;
    this.#nextLocalId = init.role === "initiator" ? 1 : 2;
    const send = init.send;
    this.#transport = {
      maxChunkBytes: init.maxChunkBytes,
      sendData: (streamId, seq, bytes) => send({ type: "streamData", streamId, seq, bytes }),
      sendCredit: (streamId, credit) => send({ type: "streamCredit", streamId, credit }),
      sendClose: (streamId) => send({ type: "streamClose", streamId }),
      sendReset: (streamId, error) => send({ type: "streamReset", streamId, error }),
      release: (stream) => {
        if (this.#streams.get(stream.streamId) === stream) this.#streams.delete(stream.streamId);
      },
    };
  }

  get openCount(): number {
    return this.#streams.size;
  }

  #isRemoteId(streamId: number): boolean {
    // The peer's role is the opposite of ours: the initiator owns odd ids.
    const peerIsInitiator = this.#init.role === "responder";
    return streamId % 2 === (peerIsInitiator ? 1 : 0);
  }

  /** Whether `streamId` belonged to a stream that existed on this link (and is now finished). */
  #existedBefore(streamId: number): boolean {
    return this.#isRemoteId(streamId) ? streamId <= this.#highestRemoteId : streamId < this.#nextLocalId;
  }

  async open(purpose: string, options: OpenStreamOptions = {}): Promise<PeerStream> {
    if (this.#closedError !== undefined) throw this.#closedError;
    const { signal } = options;
    if (signal?.aborted === true) throw signal.reason instanceof HearthError ? signal.reason : errors.cancelled("opening the stream was cancelled");
    if (this.#streams.size >= this.#init.maxOpenStreams) {
      throw errors.queueFull(`${this.#init.maxOpenStreams} streams are already open on this link`, { retryAfterSeconds: 1 });
    }
    const streamId = this.#nextLocalId;
    this.#nextLocalId += 2;
    const stream = new PeerStream({
      streamId,
      purpose,
      peerNodeId: this.#init.peerNodeId,
      side: "opener",
      transport: this.#transport,
      windowBytes: this.#init.windowBytes,
      initialSendCredit: 0,
    });
    this.#streams.set(streamId, stream);
    const open: StreamOpenMessage = { type: "streamOpen", streamId, purpose, credit: this.#init.windowBytes };
    if (options.meta !== undefined) open.meta = options.meta;
    try {
      this.#init.send(open);
    } catch (error) {
      const failure = HearthError.from(error, "HEARTH_PEER_UNAVAILABLE");
      stream.destroySilently(failure);
      throw failure;
    }

    const timeoutMs = options.timeoutMs ?? this.#init.defaultTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const onAbort = (): void => {
      stream.destroy(signal?.reason instanceof HearthError ? signal.reason : errors.cancelled("opening the stream was cancelled"));
    };
    try {
      timer = setTimeout(() => stream.destroy(errors.peerTimeout(`the peer did not accept a "${purpose}" stream within ${timeoutMs} ms`)), timeoutMs);
      signal?.addEventListener("abort", onAbort, { once: true });
      await stream.whenAccepted();
      return stream;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    }
  }

  /** Returns the violation that must close the link, if any. */
  onOpen(message: StreamOpenMessage): PeerProtocolError | undefined {
    const { streamId, purpose } = message;
    if (!this.#isRemoteId(streamId)) return new PeerProtocolError("HEARTH_PEER_PROTOCOL_VIOLATION", `stream id ${streamId} has this node's parity`);
    if (streamId <= this.#highestRemoteId) return new PeerProtocolError("HEARTH_PEER_PROTOCOL_VIOLATION", `stream id ${streamId} reused`);
    this.#highestRemoteId = streamId;
    if (this.#closedError !== undefined) return undefined;

    const handler = this.#init.handlerFor(purpose);
    if (handler === undefined) {
      this.#refuse(streamId, errors.notFound(`this node has no handler for "${purpose}" streams`, { param: "purpose" }));
      return undefined;
    }
    if (this.#streams.size >= this.#init.maxOpenStreams) {
      this.#refuse(streamId, errors.queueFull(`${this.#init.maxOpenStreams} streams are already open on this link`, { retryAfterSeconds: 1 }));
      return undefined;
    }
    const stream = new PeerStream({
      streamId,
      purpose,
      peerNodeId: this.#init.peerNodeId,
      side: "acceptor",
      transport: this.#transport,
      windowBytes: this.#init.windowBytes,
      initialSendCredit: message.credit,
    });
    this.#streams.set(streamId, stream);
    Promise.resolve()
      .then(() => handler(stream, message.meta, { peerNodeId: this.#init.peerNodeId }))
      .then(
        () => stream.accept(),
        (error: unknown) => {
          if (!(error instanceof HearthError)) this.#init.logger.error({ err: error, purpose }, "peer stream handler failed");
          stream.destroy(error instanceof HearthError ? error : errors.internal(`internal error while accepting a "${purpose}" stream`));
        },
      );
    return undefined;
  }

  onData(message: StreamDataMessage): PeerProtocolError | undefined {
    const stream = this.#streams.get(message.streamId);
    if (stream === undefined) return this.#unknown(message.streamId, "streamData");
    return stream.receiveData(message.seq, message.bytes);
  }

  onCredit(message: StreamCreditMessage): PeerProtocolError | undefined {
    const stream = this.#streams.get(message.streamId);
    if (stream === undefined) return this.#unknown(message.streamId, "streamCredit");
    stream.receiveCredit(message.credit);
    return undefined;
  }

  onClose(message: StreamCloseMessage): PeerProtocolError | undefined {
    const stream = this.#streams.get(message.streamId);
    if (stream === undefined) return this.#unknown(message.streamId, "streamClose");
    return stream.receiveClose();
  }

  /** A reset is never answered: for an unknown stream it is the end of a race, not an error. */
  onReset(message: StreamResetMessage): void {
    this.#streams.get(message.streamId)?.receiveReset(message.error);
  }

  #unknown(streamId: number, type: string): PeerProtocolError | undefined {
    if (this.#existedBefore(streamId)) return undefined;
    this.#unknownMessages++;
    if (this.#unknownMessages > this.#init.maxUnknownStreamMessages) {
      return new PeerProtocolError("HEARTH_PEER_UNKNOWN_STREAM", `${this.#unknownMessages} messages for streams that were never opened (last: ${type} on ${streamId})`);
    }
    this.#refuse(streamId, errors.peerUnknownStream(`stream ${streamId} is not open`));
    return undefined;
  }

  #refuse(streamId: number, error: HearthError): void {
    try {
      this.#init.send({ type: "streamReset", streamId, error: wireErrorPayload(error) });
    } catch {
      // The link is closing.
    }
  }

  /** The link closed: every stream fails with `error`. */
  closeAll(error: HearthError): void {
    if (this.#closedError !== undefined) return;
    this.#closedError = error;
    for (const stream of [...this.#streams.values()]) stream.destroySilently(error);
    this.#streams.clear();
  }
}
