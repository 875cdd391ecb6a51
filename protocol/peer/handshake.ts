/**
 * The peer handshake: mutual proof of cluster membership over an already-encrypted TLS
 * channel, as a pure state machine (no sockets, no timers; the I/O layer feeds it decoded
 * messages and sends what it returns).
 *
 *   initiator (dialler)                               responder (listener)
 *     hello  {nodeId, version, caps, fp_I, nonce_I}  ->
 *                                                   <-  hello {nodeId, version, caps, fp_R, nonce_R}
 *     authProof {HMAC(K, "initiator" | T)}           ->
 *                                                   <-  authProof {HMAC(K, "responder" | T)}
 *
 *   K = HKDF-SHA256(cluster secret, info "hearth peer auth v1")
 *   T = SHA-256 of both hellos' fields in a fixed, length-prefixed order, with the
 *       certificate fingerprints each side OBSERVED in TLS (not the ones claimed)
 *
 * Why it holds:
 *   - each proof covers a fresh nonce chosen by the other side, so a recorded handshake
 *     replayed to anyone fails;
 *   - the role label differs, so a proof reflected back to its sender fails;
 *   - T binds both TLS certificates, so a man in the middle (who must present its own
 *     certificate on each leg) makes the two sides compute different transcripts;
 *   - T binds both versions and capability lists, so neither can be downgraded in flight;
 *   - a node id must be the one derived from the certificate presented in TLS.
 * The responder proves nothing until the initiator has; a prober learns no proof. And a
 * responder that finds anything wrong with the initiator's identity still answers its hello
 * and refuses only at the proof, with the same generic message as for a wrong secret: a
 * non-member cannot tell which check failed. The local `reason` says exactly what failed,
 * for logs and `hearth doctor`, and never contains the secret.
 *
 * Pure: hashing only; randomness is injected.
 */

import { createHash, createHmac, hkdfSync, randomBytes as nodeRandomBytes, timingSafeEqual } from "node:crypto";
import { ERROR_CATALOGUE, HearthError } from "../errors.js";
import { fingerprintToHex, FINGERPRINT_BYTES, nodeIdFromFingerprint } from "./identity.js";
import type { AuthProofMessage, HandshakeRejectMessage, HelloMessage, PeerMessage } from "./messages.js";
import { PEER_WIRE_LIMITS } from "./messages.js";
import { negotiate, PROTOCOL_VERSION } from "./version.js";
import type { ProtocolVersion } from "./version.js";

export const PEER_AUTH_CONTEXT = "hearth peer auth v1";

/** A shorter secret would make the HMAC guessable offline from one recorded proof. */
export const MIN_CLUSTER_SECRET_BYTES = 16;

export type HandshakeRole = "initiator" | "responder";

export type HandshakeState = "start" | "awaitingHello" | "awaitingProof" | "done" | "failed";

export interface HandshakeParams {
  clusterSecret: Uint8Array;
  /** SHA-256 of this node's certificate (DER). */
  localFingerprint: Uint8Array;
  /** SHA-256 of the certificate the peer presented in TLS, as the TLS layer observed it. */
  remoteFingerprint: Uint8Array;
  softwareVersion: string;
  capabilities?: readonly string[];
  /** Defaults to PROTOCOL_VERSION; tests pass others. */
  protocolVersion?: ProtocolVersion;
  /** When dialling a known node: refuse any other. */
  expectedPeerNodeId?: string;
  randomBytes?: (size: number) => Uint8Array;
}

export interface HandshakeDone {
  peerNodeId: string;
  /** The fingerprint to pin for this node id. */
  peerFingerprint: Uint8Array;
  peerFingerprintHex: string;
  /** The negotiated version: same major, lower minor. */
  protocol: ProtocolVersion;
  peerSoftwareVersion: string;
  peerCapabilities: string[];
}

export type HandshakeFailureCode = "HEARTH_PEER_AUTH_FAILED" | "HEARTH_PEER_INCOMPATIBLE" | "HEARTH_PEER_PROTOCOL_VIOLATION";

export interface HandshakeFailure {
  code: HandshakeFailureCode;
  /** WebSocket close code for `code` (from the error catalogue). */
  closeCode: number;
  /** What failed, for local logs. Never sent to the peer. */
  reason: string;
}

/**
 * What to do after a step: send `send` if present (on failure, before closing), then close
 * with `fail.closeCode` if `fail` is present, or start using the link if `done` is.
 */
export interface HandshakeStep {
  send?: PeerMessage;
  done?: HandshakeDone;
  fail?: HandshakeFailure;
}

export interface Handshake {
  readonly role: HandshakeRole;
  readonly localNodeId: string;
  readonly state: HandshakeState;
  /** The initiator's first message; the responder returns an empty step. Call once. */
  start(): HandshakeStep;
  /** Feeds one decoded message from the peer. Never throws. */
  step(message: PeerMessage): HandshakeStep;
}

/** The only refusal a peer ever sees for an identity or secret problem. */
const GENERIC_REFUSAL: HandshakeRejectMessage = {
  type: "handshakeReject",
  error: { code: "HEARTH_PEER_AUTH_FAILED", message: "handshake refused" },
};

export function derivePeerAuthKey(clusterSecret: Uint8Array): Uint8Array {
  if (clusterSecret.byteLength < MIN_CLUSTER_SECRET_BYTES) {
    throw new HearthError("HEARTH_CONFIG_INVALID", `The cluster secret must be at least ${MIN_CLUSTER_SECRET_BYTES} bytes.`);
  }
  return new Uint8Array(hkdfSync("sha256", clusterSecret, new Uint8Array(0), PEER_AUTH_CONTEXT, 32));
}

interface TranscriptSide {
  hello: HelloMessage;
  /** As observed in TLS by the side computing the transcript. */
  fingerprint: Uint8Array;
}

function transcriptHash(initiator: TranscriptSide, responder: TranscriptSide): Buffer {
  const hash = createHash("sha256");
  // Length prefixes make the encoding injective: no two different hellos hash alike.
  const put = (part: string | Uint8Array): void => {
    const bytes = typeof part === "string" ? Buffer.from(part, "utf8") : part;
    const length = Buffer.alloc(4);
    length.writeUInt32BE(bytes.byteLength);
    hash.update(length).update(bytes);
  };
  put(`${PEER_AUTH_CONTEXT} transcript`);
  for (const side of [initiator, responder]) {
    put(side.hello.nodeId);
    put(`${side.hello.protocol.major}.${side.hello.protocol.minor}`);
    put(side.hello.software);
    put(String(side.hello.capabilities.length));
    for (const capability of side.hello.capabilities) put(capability);
    put(side.fingerprint);
    put(side.hello.nonce);
  }
  return hash.digest();
}

function computeProof(key: Uint8Array, role: HandshakeRole, transcript: Buffer): Buffer {
  return createHmac("sha256", key).update(`${PEER_AUTH_CONTEXT} proof ${role}\0`).update(transcript).digest();
}

function proofMatches(expected: Buffer, received: Uint8Array): boolean {
  return received.byteLength === expected.byteLength && timingSafeEqual(expected, received);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && timingSafeEqual(a, b);
}

function failure(code: HandshakeFailureCode, reason: string): HandshakeFailure {
  return { code, closeCode: ERROR_CATALOGUE[code].closeCode, reason };
}

function shortHex(fingerprint: Uint8Array | string): string {
  const hex = typeof fingerprint === "string" ? fingerprint : fingerprintToHex(fingerprint);
  return `${hex.slice(0, 16)}…`;
}

class HandshakeMachine implements Handshake {
  readonly role: HandshakeRole;
  readonly localNodeId: string;
  #state: HandshakeState;
  readonly #key: Uint8Array;
  readonly #params: HandshakeParams;
  readonly #version: ProtocolVersion;
  readonly #localHello: HelloMessage;
  #peerHello: HelloMessage | undefined;
  #negotiated: ProtocolVersion | undefined;
  /** Set by the responder when the initiator's identity is wrong; refused at the proof step. */
  #doomReason: string | undefined;

  constructor(role: HandshakeRole, params: HandshakeParams) {
    if (params.remoteFingerprint.byteLength !== FINGERPRINT_BYTES) {
      throw new HearthError("HEARTH_INVALID_REQUEST", `The peer's certificate fingerprint must be ${FINGERPRINT_BYTES} bytes.`, { param: "remoteFingerprint" });
    }
    this.role = role;
    this.#params = params;
    this.#key = derivePeerAuthKey(params.clusterSecret);
    this.localNodeId = nodeIdFromFingerprint(params.localFingerprint);
    this.#version = params.protocolVersion ?? PROTOCOL_VERSION;
    const random = params.randomBytes ?? nodeRandomBytes;
    this.#localHello = {
      type: "hello",
      nodeId: this.localNodeId,
      protocol: { major: this.#version.major, minor: this.#version.minor },
      software: params.softwareVersion,
      capabilities: [...(params.capabilities ?? [])],
      certFingerprint: fingerprintToHex(params.localFingerprint),
      nonce: new Uint8Array(random(PEER_WIRE_LIMITS.nonceBytes)),
    };
    this.#state = role === "initiator" ? "start" : "awaitingHello";
  }

  get state(): HandshakeState {
    return this.#state;
  }

  start(): HandshakeStep {
    if (this.role === "responder") return {};
    if (this.#state !== "start") throw new HearthError("HEARTH_INTERNAL", "Handshake.start() called twice.");
    this.#state = "awaitingHello";
    return { send: this.#localHello };
  }

  step(message: PeerMessage): HandshakeStep {
    try {
      return this.#step(message);
    } catch (error) {
      // Nothing here should throw; if it does, the link is refused, not the daemon.
      return this.#fail(failure("HEARTH_PEER_AUTH_FAILED", `handshake error: ${error instanceof Error ? error.message : String(error)}`), GENERIC_REFUSAL);
    }
  }

  #step(message: PeerMessage): HandshakeStep {
    switch (this.#state) {
      case "start":
        return this.#fail(failure("HEARTH_PEER_PROTOCOL_VIOLATION", "the initiator received a message before start()"));
      case "done":
      case "failed":
        return { fail: failure("HEARTH_PEER_PROTOCOL_VIOLATION", `received ${message.type} after the handshake ended`) };
      default:
        break;
    }
    if (message.type === "handshakeReject") return this.#onReject(message);
    if (this.#state === "awaitingHello") {
      if (message.type !== "hello") return this.#unexpected(message, "hello");
      return this.#onHello(message);
    }
    if (message.type !== "authProof") return this.#unexpected(message, "authProof");
    return this.#onProof(message);
  }

  #onReject(message: HandshakeRejectMessage): HandshakeStep {
    const code = message.error.code === "HEARTH_PEER_INCOMPATIBLE" ? "HEARTH_PEER_INCOMPATIBLE" : "HEARTH_PEER_AUTH_FAILED";
    const detail = message.error.message.slice(0, 300);
    return this.#fail(failure(code, `the peer refused the handshake (${message.error.code}): ${detail}`));
  }

  #unexpected(message: PeerMessage, expected: string): HandshakeStep {
    return this.#fail(failure("HEARTH_PEER_PROTOCOL_VIOLATION", `expected ${expected}, received ${message.type}`), {
      type: "handshakeReject",
      error: { code: "HEARTH_PEER_PROTOCOL_VIOLATION", message: `expected ${expected}` },
    });
  }

  /** Everything wrong with the peer's claimed identity, or undefined when it checks out. */
  #identityProblem(hello: HelloMessage): string | undefined {
    const observed = this.#params.remoteFingerprint;
    const observedHex = fingerprintToHex(observed);
    if (hello.certFingerprint !== observedHex) {
      return `the peer's hello names certificate ${shortHex(hello.certFingerprint)} but TLS presented ${shortHex(observedHex)}`;
    }
    if (hello.nodeId !== nodeIdFromFingerprint(observed)) return `the peer claims node id ${hello.nodeId}, which does not match its certificate`;
    if (hello.nodeId === this.localNodeId || sameBytes(observed, this.#params.localFingerprint)) return "the peer is this node itself";
    if (sameBytes(hello.nonce, this.#localHello.nonce)) return "the peer echoed this node's nonce (reflection)";
    const expected = this.#params.expectedPeerNodeId;
    if (expected !== undefined && expected !== hello.nodeId) return `expected node ${expected}, reached ${hello.nodeId}`;
    return undefined;
  }

  #onHello(hello: HelloMessage): HandshakeStep {
    const negotiation = negotiate(this.#version, hello.protocol);
    if (!negotiation.compatible) {
      // Versions are public (mDNS advertises them); saying so lets both sides show "incompatible".
      return this.#fail(failure("HEARTH_PEER_INCOMPATIBLE", negotiation.reason), {
        type: "handshakeReject",
        error: { code: "HEARTH_PEER_INCOMPATIBLE", message: negotiation.reason },
      });
    }
    this.#negotiated = negotiation.version;
    this.#peerHello = hello;
    const problem = this.#identityProblem(hello);

    if (this.role === "responder") {
      this.#doomReason = problem;
      this.#state = "awaitingProof";
      return { send: this.#localHello };
    }
    // The initiator never hands a proof to a peer it already doubts.
    if (problem !== undefined) return this.#fail(failure("HEARTH_PEER_AUTH_FAILED", problem), GENERIC_REFUSAL);
    this.#state = "awaitingProof";
    const proof: AuthProofMessage = { type: "authProof", proof: new Uint8Array(computeProof(this.#key, "initiator", this.#transcript())) };
    return { send: proof };
  }

  #onProof(message: AuthProofMessage): HandshakeStep {
    const transcript = this.#transcript();
    const peerRole: HandshakeRole = this.role === "initiator" ? "responder" : "initiator";
    // Verify even when doomed, so a refusal costs the same either way.
    const verified = proofMatches(computeProof(this.#key, peerRole, transcript), message.proof);
    if (!verified || this.#doomReason !== undefined) {
      const reason =
        this.#doomReason ?? "the peer's proof does not verify: it does not hold this cluster's secret (another cluster, or a rotated secret), or the handshake was tampered with";
      return this.#fail(failure("HEARTH_PEER_AUTH_FAILED", reason), GENERIC_REFUSAL);
    }
    this.#state = "done";
    const done = this.#doneResult();
    if (this.role === "responder") {
      return { send: { type: "authProof", proof: new Uint8Array(computeProof(this.#key, "responder", transcript)) }, done };
    }
    return { done };
  }

  #transcript(): Buffer {
    const peerHello = this.#peerHello!;
    const local = { hello: this.#localHello, fingerprint: this.#params.localFingerprint };
    const remote = { hello: peerHello, fingerprint: this.#params.remoteFingerprint };
    return this.role === "initiator" ? transcriptHash(local, remote) : transcriptHash(remote, local);
  }

  #doneResult(): HandshakeDone {
    const hello = this.#peerHello!;
    return {
      peerNodeId: hello.nodeId,
      peerFingerprint: new Uint8Array(this.#params.remoteFingerprint),
      peerFingerprintHex: fingerprintToHex(this.#params.remoteFingerprint),
      protocol: this.#negotiated!,
      peerSoftwareVersion: hello.software,
      peerCapabilities: [...hello.capabilities],
    };
  }

  #fail(fail: HandshakeFailure, send?: PeerMessage): HandshakeStep {
    this.#state = "failed";
    return send === undefined ? { fail } : { send, fail };
  }
}

export function createInitiator(params: HandshakeParams): Handshake {
  return new HandshakeMachine("initiator", params);
}

export function createResponder(params: HandshakeParams): Handshake {
  return new HandshakeMachine("responder", params);
}
