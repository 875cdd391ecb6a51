/**
 * One peer link: a TLS WebSocket to another daemon, from the first frame to the close.
 *
 *   handshaking -> up -> closed
 *
 * It runs the pure handshake (protocol/peer/handshake.ts) under a deadline, with the peer's
 * certificate fingerprint as the TLS layer observed it. A responder counts as up only once the
 * initiator's authConfirm arrives, which says the initiator accepted its proof, so neither
 * side announces a link the other refused. Once up, it answers and measures
 * heartbeats, declares the peer dead after `heartbeatTimeoutMs` of silence, carries peer
 * state snapshots, requests and streams, and turns every bad frame into a close with the
 * documented code. No handler here ever throws: a misbehaving peer costs its own link only.
 */

import { EventEmitter } from "node:events";
import { performance } from "node:perf_hooks";
import type { Logger } from "pino";
import { WebSocket } from "ws";
import type { RawData } from "ws";
import type { PeerConfig } from "../config/defaults.js";
import { errors } from "../../protocol/errors.js";
import type { HearthError, HearthErrorCode } from "../../protocol/errors.js";
import { decodeFrame, encodeFrame } from "../../protocol/peer/codec.js";
import type { PeerFrameLimits } from "../../protocol/peer/codec.js";
import { createInitiator, createResponder } from "../../protocol/peer/handshake.js";
import type { Handshake, HandshakeDone, HandshakeParams, HandshakeRole, HandshakeStep } from "../../protocol/peer/handshake.js";
import { shortNodeId } from "../../protocol/peer/identity.js";
import type { ProtocolVersion } from "../../protocol/peer/version.js";
import type { HeartbeatAckMessage, PeerMessage, PeerStateMessage } from "../../protocol/peer/messages.js";
import { LinkRequests } from "./linkRequests.js";
import type { RequestHandler, RequestOptions } from "./linkRequests.js";
import { LinkStreams } from "./linkStreams.js";
import type { OpenStreamOptions, StreamHandler } from "./linkStreams.js";
import type { PeerStream } from "./PeerStream.js";
import { closeCodeFor, errorCodeForClose, frameLimitsOf } from "./wire.js";

export type PeerLinkState = "handshaking" | "up" | "closed";

/** The link's timings and limits: PeerConfig's link-level part. */
export type PeerLinkConfig = Pick<
  PeerConfig,
  | "maxFrameBytes"
  | "maxStreamChunkBytes"
  | "maxNestingDepth"
  | "handshakeTimeoutMs"
  | "heartbeatIntervalMs"
  | "heartbeatTimeoutMs"
  | "closeGraceMs"
  | "requestTimeoutMs"
  | "maxConcurrentRequests"
  | "maxOpenStreams"
  | "streamWindowBytes"
  | "maxUnknownStreamMessages"
>;

/** Where incoming requests and streams go, looked up per message so handlers added later apply. */
export interface PeerLinkHandlers {
  request(method: string): RequestHandler | undefined;
  stream(purpose: string): StreamHandler | undefined;
}

export interface PeerLinkInit {
  /** An open WebSocket whose TLS handshake is done. */
  socket: WebSocket;
  role: HandshakeRole;
  /** For logs and the rate limiter: the remote IP (and port when dialled). */
  remoteAddress: string;
  /** SHA-256 of the certificate the peer presented in TLS. */
  remoteFingerprint: Uint8Array;
  localFingerprint: Uint8Array;
  clusterSecret: Uint8Array;
  softwareVersion: string;
  capabilities: readonly string[];
  /** When dialling a known node: refuse any other. */
  expectedPeerNodeId?: string | undefined;
  /** The version this node announces. Default: PROTOCOL_VERSION. */
  protocolVersion?: ProtocolVersion | undefined;
  config: PeerLinkConfig;
  handlers: PeerLinkHandlers;
  logger: Logger;
}

export interface PeerLinkClose {
  /** The WebSocket close code (sent, or received from the peer). */
  code: number;
  errorCode: HearthErrorCode;
  /** What happened, for logs and `hearth doctor`. Never contains secrets. */
  reason: string;
  /** Which side ended the link. */
  by: "local" | "remote";
  /** Whether the link had come up (false: the handshake failed). */
  wasUp: boolean;
}

export interface PeerLinkEvents {
  up: [link: PeerLink];
  state: [state: PeerStateMessage, link: PeerLink];
  close: [info: PeerLinkClose, link: PeerLink];
}

/** The close reason on the wire is the error code only (at most 123 bytes); details stay local. */
const MAX_CLOSE_REASON_BYTES = 123;
/** Smoothing of the RTT estimate, as TCP's SRTT (RFC 6298): one sample moves it by 1/8. */
const RTT_SMOOTHING = 1 / 8;

function toBytes(data: RawData): Uint8Array {
  if (Array.isArray(data)) return Buffer.concat(data);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return data;
}

/** Errors ws raises for frames it refuses itself (its close code is set, but not exported). */
function errorCodeForSocketError(error: Error): HearthErrorCode {
  const code = (error as NodeJS.ErrnoException).code ?? "";
  if (code === "WS_ERR_UNSUPPORTED_MESSAGE_LENGTH") return "HEARTH_PEER_FRAME_TOO_LARGE";
  if (code === "WS_ERR_INVALID_UTF8") return "HEARTH_PEER_FRAME_INVALID";
  if (code.startsWith("WS_ERR_")) return "HEARTH_PEER_PROTOCOL_VIOLATION";
  return "HEARTH_PEER_UNAVAILABLE";
}

export class PeerLink extends EventEmitter<PeerLinkEvents> {
  readonly role: HandshakeRole;
  readonly remoteAddress: string;
  /** Wall-clock time the link object was created (ms). */
  readonly createdAt = Date.now();
  readonly localNodeId: string;
  /** Resolves when the link is up; rejects with the handshake failure. */
  readonly ready: Promise<HandshakeDone>;
  /** Resolves once, with why and by whom the link ended. */
  readonly closed: Promise<PeerLinkClose>;

  readonly #socket: WebSocket;
  readonly #config: PeerLinkConfig;
  readonly #limits: PeerFrameLimits;
  readonly #handlers: PeerLinkHandlers;
  #logger: Logger;
  readonly #handshake: Handshake | undefined;
  #state: PeerLinkState = "handshaking";
  #done: HandshakeDone | undefined;
  #upAt: number | undefined;
  #closeInfo: PeerLinkClose | undefined;
  #requests: LinkRequests | undefined;
  #streams: LinkStreams | undefined;
  #resolveReady!: (done: HandshakeDone) => void;
  #rejectReady!: (error: HearthError) => void;
  #resolveClosed!: (info: PeerLinkClose) => void;
  readonly #socketClosed: Promise<void>;

  #handshakeTimer: NodeJS.Timeout | undefined;
  #heartbeatTimer: NodeJS.Timeout | undefined;
  #livenessTimer: NodeJS.Timeout | undefined;
  #graceTimer: NodeJS.Timeout | undefined;
  /** Monotonic ms of the last frame received, of any kind. */
  #lastReceivedAt = performance.now();
  #lastHeartbeatAt: number | undefined;
  #heartbeatSeq = 0;
  #rttMs: number | undefined;
  #lastRttMs: number | undefined;
  #peerState: PeerStateMessage | undefined;

  constructor(init: PeerLinkInit) {
    super();
    this.role = init.role;
    this.remoteAddress = init.remoteAddress;
    this.#socket = init.socket;
    this.#config = init.config;
    this.#limits = frameLimitsOf(init.config);
    this.#handlers = init.handlers;
    this.#logger = init.logger.child({ address: init.remoteAddress, role: init.role });

    this.ready = new Promise<HandshakeDone>((resolve, reject) => {
      this.#resolveReady = resolve;
      this.#rejectReady = reject;
    });
    // Callers that only listen for events must not trigger an unhandled rejection.
    this.ready.catch(() => undefined);
    this.closed = new Promise<PeerLinkClose>((resolve) => {
      this.#resolveClosed = resolve;
    });
    this.#socketClosed = new Promise<void>((resolve) => {
      this.#socket.once("close", () => resolve());
    });

    this.#socket.binaryType = "nodebuffer";
    this.#socket.on("message", (data, isBinary) => this.#onMessage(data, isBinary));
    this.#socket.on("close", (code, reason) => this.#onSocketClose(code, reason));
    this.#socket.on("error", (error) => this.#onSocketError(error));

    const params: HandshakeParams = {
      clusterSecret: init.clusterSecret,
      localFingerprint: init.localFingerprint,
      remoteFingerprint: init.remoteFingerprint,
      softwareVersion: init.softwareVersion,
      capabilities: init.capabilities,
    };
    if (init.expectedPeerNodeId !== undefined) params.expectedPeerNodeId = init.expectedPeerNodeId;
    if (init.protocolVersion !== undefined) params.protocolVersion = init.protocolVersion;
    let handshake: Handshake | undefined;
    try {
      handshake = init.role === "initiator" ? createInitiator(params) : createResponder(params);
    } catch (error) {
      this.#logger.error({ err: error }, "cannot start a peer handshake");
    }
    this.#handshake = handshake;
    this.localNodeId = handshake?.localNodeId ?? "";
    // Start on the next microtask, so whoever constructs the link has attached its listeners
    // before the first event (frames only arrive on a later I/O turn anyway).
    queueMicrotask(() => this.#begin());
  }

  #begin(): void {
    if (this.#state === "closed") return;
    if (this.#handshake === undefined) {
      this.#closeWith("HEARTH_INTERNAL", "the handshake could not start");
      return;
    }
    if (this.#socket.readyState !== WebSocket.OPEN) {
      this.#closeWith("HEARTH_PEER_UNAVAILABLE", "the socket closed before the handshake started");
      return;
    }
    this.#handshakeTimer = setTimeout(
      () => this.#closeWith("HEARTH_PEER_TIMEOUT", `the handshake did not finish within ${this.#config.handshakeTimeoutMs} ms`),
      this.#config.handshakeTimeoutMs,
    );
    this.#handshakeTimer.unref();
    this.#applyHandshakeStep(this.#handshake.start());
  }

  // ---- public view -----------------------------------------------------------------------

  get state(): PeerLinkState {
    return this.#state;
  }

  /** The peer's node id, once the handshake is done. */
  get peerNodeId(): string | undefined {
    return this.#done?.peerNodeId;
  }

  /** What the handshake established: pinned fingerprint, negotiated version, capabilities. */
  get peer(): HandshakeDone | undefined {
    return this.#done;
  }

  /** Wall-clock time the link came up. */
  get upAt(): number | undefined {
    return this.#upAt;
  }

  /** Smoothed round-trip time from heartbeat acks, in ms. */
  get rttMs(): number | undefined {
    return this.#rttMs;
  }

  get lastRttMs(): number | undefined {
    return this.#lastRttMs;
  }

  /** Wall-clock time of the last heartbeat or ack received. */
  get lastHeartbeatAt(): number | undefined {
    return this.#lastHeartbeatAt;
  }

  /** The newest state snapshot the peer sent. */
  get peerState(): PeerStateMessage | undefined {
    return this.#peerState;
  }

  get closeInfo(): PeerLinkClose | undefined {
    return this.#closeInfo;
  }

  get inFlight(): { outgoingRequests: number; incomingRequests: number; streams: number } {
    const requests = this.#requests?.inFlight ?? { outgoing: 0, incoming: 0 };
    return { outgoingRequests: requests.outgoing, incomingRequests: requests.incoming, streams: this.#streams?.openCount ?? 0 };
  }

  request(method: string, payload: unknown, options?: RequestOptions): Promise<unknown> {
    if (this.#requests === undefined || this.#state !== "up") return Promise.reject(this.#unavailable());
    return this.#requests.request(method, payload, options);
  }

  openStream(purpose: string, options?: OpenStreamOptions): Promise<PeerStream> {
    if (this.#streams === undefined || this.#state !== "up") return Promise.reject(this.#unavailable());
    return this.#streams.open(purpose, options);
  }

  /** Sends a state snapshot; false when the link is not up (the snapshot goes with the next link). */
  sendPeerState(state: PeerStateMessage): boolean {
    if (this.#state !== "up") return false;
    try {
      this.#send(state);
      return true;
    } catch (error) {
      this.#logger.error({ err: error }, "cannot send the peer state snapshot");
      return false;
    }
  }

  /** Closes the link (1001 for a shutdown) and resolves once the socket is gone. */
  async close(errorCode: HearthErrorCode = "HEARTH_SHUTTING_DOWN", reason = "this node is shutting down"): Promise<void> {
    this.#closeWith(errorCode, reason);
    await this.#socketClosed;
  }

  /** Drops the TCP connection without a close frame (what a crash looks like to the peer). */
  terminate(reason = "terminated"): void {
    this.#closeWith("HEARTH_PEER_UNAVAILABLE", reason);
    this.#socket.terminate();
  }

  #unavailable(): HearthError {
    const detail = this.#closeInfo !== undefined ? `the link closed (${this.#closeInfo.errorCode}: ${this.#closeInfo.reason})` : `the link is ${this.#state}`;
    return errors.peerUnavailable(`no usable link to ${this.peerNodeId ?? this.remoteAddress}: ${detail}`);
  }

  // ---- frames in -------------------------------------------------------------------------

  #onMessage(data: RawData, isBinary: boolean): void {
    try {
      if (this.#state === "closed") return;
      this.#lastReceivedAt = performance.now();
      if (!isBinary) {
        this.#closeWith("HEARTH_PEER_FRAME_INVALID", "a text frame (frames are binary MessagePack)");
        return;
      }
      const decoded = decodeFrame(toBytes(data), this.#limits);
      if (!decoded.ok) {
        this.#closeWith(decoded.error.code, decoded.error.message);
        return;
      }
      const message = decoded.message;
      switch (this.#state) {
        case "handshaking":
          this.#applyHandshakeStep(this.#handshake!.step(message));
          return;
        case "up":
          this.#dispatch(message);
          return;
      }
    } catch (error) {
      this.#logger.error({ err: error }, "peer link message handler failed");
      this.#closeWith("HEARTH_INTERNAL", "internal error while handling a frame");
    }
  }

  #applyHandshakeStep(step: HandshakeStep): void {
    if (step.send !== undefined) {
      try {
        this.#send(step.send);
      } catch (error) {
        this.#closeWith("HEARTH_PEER_UNAVAILABLE", `cannot send ${step.send.type}: ${error instanceof Error ? error.message : String(error)}`);
        return;
      }
    }
    if (step.fail !== undefined) {
      this.#closeWith(step.fail.code, step.fail.reason);
      return;
    }
    if (step.done !== undefined) {
      this.#done = step.done;
      this.#logger = this.#logger.child({ peer: shortNodeId(step.done.peerNodeId) });
      this.#becomeUp();
    }
  }

  #becomeUp(): void {
    const done = this.#done!;
    clearTimeout(this.#handshakeTimer);
    this.#state = "up";
    this.#upAt = Date.now();
    const send = (message: PeerMessage): void => this.#send(message);
    this.#requests = new LinkRequests({
      peerNodeId: done.peerNodeId,
      send,
      handlerFor: (method) => this.#handlers.request(method),
      maxConcurrentRequests: this.#config.maxConcurrentRequests,
      defaultTimeoutMs: this.#config.requestTimeoutMs,
      logger: this.#logger,
    });
    this.#streams = new LinkStreams({
      role: this.role,
      peerNodeId: done.peerNodeId,
      send,
      handlerFor: (purpose) => this.#handlers.stream(purpose),
      windowBytes: this.#config.streamWindowBytes,
      maxOpenStreams: this.#config.maxOpenStreams,
      maxChunkBytes: this.#config.maxStreamChunkBytes,
      maxUnknownStreamMessages: this.#config.maxUnknownStreamMessages,
      defaultTimeoutMs: this.#config.requestTimeoutMs,
      logger: this.#logger,
    });
    // The first heartbeat goes out at once, so the peer measures an RTT without waiting an interval.
    this.#sendHeartbeat();
    this.#heartbeatTimer = setInterval(() => this.#sendHeartbeat(), this.#config.heartbeatIntervalMs);
    this.#heartbeatTimer.unref();
    this.#armLiveness(this.#config.heartbeatTimeoutMs);
    this.#logger.info(
      { nodeId: done.peerNodeId, protocol: `${done.protocol.major}.${done.protocol.minor}`, software: done.peerSoftwareVersion },
      "peer link up",
    );
    this.#resolveReady(done);
    this.emit("up", this);
  }

  #dispatch(message: PeerMessage): void {
    const requests = this.#requests!;
    const streams = this.#streams!;
    let violation: HearthError | undefined;
    switch (message.type) {
      case "hello":
      case "authProof":
      case "authConfirm":
        violation = errors.peerProtocolViolation(`${message.type} after the handshake`);
        break;
      case "handshakeReject":
        // The responder refused our authConfirm after we counted the handshake as done (docs/protocol.md).
        this.#closeWith("HEARTH_PEER_AUTH_FAILED", "the peer refused the handshake after it completed");
        return;
      case "heartbeat": {
        this.#lastHeartbeatAt = Date.now();
        const ack: HeartbeatAckMessage = { type: "heartbeatAck", seq: message.seq, sentAt: message.sentAt };
        this.#trySend(ack);
        return;
      }
      case "heartbeatAck":
        this.#lastHeartbeatAt = Date.now();
        this.#recordRtt(performance.now() - message.sentAt);
        return;
      case "peerState":
        if (this.#peerState === undefined || message.seq > this.#peerState.seq) {
          this.#peerState = message;
          this.emit("state", message, this);
        }
        return;
      case "request":
        violation = requests.onRequest(message);
        break;
      case "response":
        requests.onResponse(message);
        return;
      case "responseError":
        requests.onResponseError(message);
        return;
      case "requestCancel":
        requests.onCancel(message);
        return;
      case "streamOpen":
        violation = streams.onOpen(message);
        break;
      case "streamData":
        violation = streams.onData(message);
        break;
      case "streamCredit":
        violation = streams.onCredit(message);
        break;
      case "streamClose":
        violation = streams.onClose(message);
        break;
      case "streamReset":
        streams.onReset(message);
        return;
    }
    if (violation !== undefined) this.#closeWith(violation.code, violation.message);
  }

  #recordRtt(sample: number): void {
    // An ack echoing a time we never sent (negative or absurd) says nothing about the RTT.
    if (!(sample >= 0) || sample > this.#config.heartbeatTimeoutMs * 10) return;
    this.#lastRttMs = sample;
    this.#rttMs = this.#rttMs === undefined ? sample : this.#rttMs + RTT_SMOOTHING * (sample - this.#rttMs);
  }

  // ---- liveness --------------------------------------------------------------------------

  #sendHeartbeat(): void {
    this.#trySend({ type: "heartbeat", seq: this.#heartbeatSeq++, sentAt: performance.now() });
  }

  /** One timer for the silence deadline, re-armed lazily instead of on every frame. */
  #armLiveness(delayMs: number): void {
    this.#livenessTimer = setTimeout(() => {
      if (this.#state !== "up") return;
      const silentFor = performance.now() - this.#lastReceivedAt;
      if (silentFor >= this.#config.heartbeatTimeoutMs) {
        this.#closeWith("HEARTH_PEER_TIMEOUT", `no frame from the peer for ${Math.round(silentFor)} ms`);
        return;
      }
      this.#armLiveness(this.#config.heartbeatTimeoutMs - silentFor);
    }, Math.max(1, Math.ceil(delayMs)));
    this.#livenessTimer.unref();
  }

  // ---- frames out ------------------------------------------------------------------------

  /** Throws HEARTH_PEER_UNAVAILABLE when the link is closed, PeerProtocolError for a message that cannot be sent. */
  #send(message: PeerMessage): void {
    if (this.#state === "closed" || this.#socket.readyState !== WebSocket.OPEN) throw this.#unavailable();
    const frame = encodeFrame(message, this.#limits);
    this.#socket.send(frame, { binary: true }, (error) => {
      // A failed write means the socket is going away; its close event does the rest.
      if (error !== undefined && error !== null) this.#logger.debug({ err: error }, "peer link write failed");
    });
  }

  #trySend(message: PeerMessage): void {
    try {
      this.#send(message);
    } catch (error) {
      if (this.#state !== "closed") this.#logger.debug({ err: error, type: message.type }, "could not send");
    }
  }

  // ---- closing ---------------------------------------------------------------------------

  #closeWith(errorCode: HearthErrorCode, reason: string): void {
    this.#finish({ code: closeCodeFor(errorCode), errorCode, reason, by: "local" });
  }

  #onSocketClose(code: number, reasonBytes: Buffer): void {
    clearTimeout(this.#graceTimer);
    if (this.#state === "closed") return;
    const sent = reasonBytes.toString("utf8").slice(0, MAX_CLOSE_REASON_BYTES).replace(/[^\x20-\x7e]/g, "?");
    const phase = this.#state === "up" ? "" : " during the handshake";
    this.#finish({
      code,
      errorCode: errorCodeForClose(code),
      reason: `the peer closed the link${phase} (${code}${sent === "" ? "" : ` ${sent}`})`,
      by: "remote",
    });
  }

  #onSocketError(error: Error): void {
    if (this.#state === "closed") return;
    const errorCode = errorCodeForSocketError(error);
    this.#finish({
      code: errorCode === "HEARTH_PEER_UNAVAILABLE" ? 1006 : closeCodeFor(errorCode),
      errorCode,
      reason: `socket error: ${error.message.slice(0, 200)}`,
      by: errorCode === "HEARTH_PEER_UNAVAILABLE" ? "remote" : "local",
    });
  }

  #finish(info: Omit<PeerLinkClose, "wasUp">): void {
    if (this.#state === "closed") return;
    const wasUp = this.#state === "up";
    this.#state = "closed";
    clearTimeout(this.#handshakeTimer);
    clearInterval(this.#heartbeatTimer);
    clearTimeout(this.#livenessTimer);
    const closeInfo: PeerLinkClose = { ...info, wasUp };
    this.#closeInfo = closeInfo;

    const failure = errors.peerUnavailable(`the link to ${this.peerNodeId ?? this.remoteAddress} closed: ${info.errorCode}: ${info.reason}`);
    this.#requests?.closeAll(failure);
    this.#streams?.closeAll(failure);
    if (!wasUp) this.#rejectReady(errors.withCode(info.errorCode, info.reason));

    if (this.#socket.readyState === WebSocket.OPEN) {
      try {
        this.#socket.close(info.code, info.errorCode.slice(0, MAX_CLOSE_REASON_BYTES));
      } catch {
        this.#socket.terminate();
      }
    }
    if (this.#socket.readyState !== WebSocket.CLOSED) {
      // Do not wait on a peer that may never answer the close frame (cut cable, frozen process).
      this.#graceTimer = setTimeout(() => this.#socket.terminate(), this.#config.closeGraceMs);
      this.#graceTimer.unref();
    }

    const fields = { code: info.code, errorCode: info.errorCode, reason: info.reason, by: info.by };
    if (!wasUp) this.#logger.warn(fields, "peer handshake failed");
    else if (info.errorCode === "HEARTH_SHUTTING_DOWN" || info.errorCode === "HEARTH_PEER_DUPLICATE_LINK") this.#logger.info(fields, "peer link closed");
    else this.#logger.warn(fields, "peer link lost");

    this.#resolveClosed(closeInfo);
    this.emit("close", closeInfo, this);
  }
}
