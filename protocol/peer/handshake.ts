/**
 * The peer handshake: mutual proof of cluster membership over an already-encrypted TLS
 * channel, as a pure state machine (no sockets, no timers; the I/O layer feeds it decoded
 * messages and sends what it returns).
 *
 *   initiator (dialler)                          responder (listener)
 *     hello  {nodeId, version, fp_I, nonce_I}   ->
 *                                              <-  hello {nodeId, version, fp_R, nonce_R}
 *     authProof {P_I}                           ->
 *                        (responder verifies P_I; only now says anything about itself)
 *                                              <-  authProof {P_R, info_R}
 *                        (initiator verifies P_R; only now says anything about itself)
 *     authConfirm {C_I, info_I}                 ->
 *
 *   K   = HKDF-SHA256(cluster secret, info "hearth peer auth v1")
 *   T   = SHA-256 of both hellos' fields in a fixed, length-prefixed order, with the
 *         certificate fingerprints each side OBSERVED in TLS (not the ones claimed)
 *   P_I = HMAC(K, "proof initiator" | T)
 *   P_R = HMAC(K, "proof responder" | T | info_R)
 *   C_I = HMAC(K, "confirm initiator" | T | info_R | info_I)
 *   info = {software version, capabilities}
 *
 * Why it holds:
 *   - each proof covers a fresh nonce chosen by the other side, so a recorded handshake
 *     replayed to anyone fails;
 *   - the labels differ, so a proof reflected back to its sender, or offered as another
 *     message, fails;
 *   - T binds both TLS certificates, so a man in the middle (who must present its own
 *     certificate on each leg) makes the two sides compute different transcripts;
 *   - T binds both protocol versions, P_R binds info_R and C_I binds both infos, so neither
 *     a version nor a capability list can be altered in flight;
 *   - a node id must be the one derived from the certificate presented in TLS.
 * Who learns what: the initiator proves first, to a responder that has proven nothing, so
 * its proof carries nothing about it; its software info waits for authConfirm, after it has
 * verified the responder. The responder proves nothing, and says nothing about its software,
 * until it has verified the initiator; at that point the initiator is a proven member, so
 * the responder's info can ride in its proof. A non-member, on either side, sees hellos
 * (public facts) and a refusal, never a proof of the other side nor its software or
 * capabilities. A responder that finds anything wrong with the initiator's identity still
 * answers its hello and refuses only at the proof, with the same generic message as for a
 * wrong secret: a non-member cannot tell which check failed. The local `reason` says exactly
 * what failed, for logs and `hearth doctor`, and never contains the secret.
 *
 * Pure: hashing only; randomness is injected.
 */

import { createHash, createHmac, hkdfSync, randomBytes as nodeRandomBytes, timingSafeEqual } from "node:crypto";
import { ERROR_CATALOGUE, errors } from "../errors.js";
import { fingerprintToHex, FINGERPRINT_BYTES, nodeIdFromFingerprint } from "./identity.js";
import type { AuthConfirmMessage, AuthProofMessage, HandshakeRejectMessage, HelloMessage, PeerMessage, SoftwareInfo } from "./messages.js";
import { PEER_WIRE_LIMITS } from "./messages.js";
import { negotiate, PROTOCOL_VERSION } from "./version.js";
import type { ProtocolVersion } from "./version.js";

export const PEER_AUTH_CONTEXT = "hearth peer auth v1";

/** A shorter secret would make the HMAC guessable offline from one recorded proof. */
export const MIN_CLUSTER_SECRET_BYTES = 16;

export type HandshakeRole = "initiator" | "responder";

export type HandshakeState = "start" | "awaitingHello" | "awaitingProof" | "awaitingConfirm" | "done" | "failed";

export interface HandshakeParams {
  clusterSecret: Uint8Array;
  /** SHA-256 of this node's certificate (DER). */
  localFingerprint: Uint8Array;
  /** SHA-256 of the certificate the peer presented in TLS, as the TLS layer observed it. */
  remoteFingerprint: Uint8Array;
  /** Sent only to a peer that has proven membership (the responder's authProof, the initiator's authConfirm). */
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
  /** From the peer's authProof or authConfirm, covered by its MAC. */
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
    throw errors.configInvalid(`The cluster secret must be at least ${MIN_CLUSTER_SECRET_BYTES} bytes.`);
  }
  return new Uint8Array(hkdfSync("sha256", clusterSecret, new Uint8Array(0), PEER_AUTH_CONTEXT, 32));
}

interface TranscriptSide {
  hello: HelloMessage;
  /** As observed in TLS by the side computing the transcript. */
  fingerprint: Uint8Array;
}

/** Length prefixes make every encoding here injective: no two different inputs hash alike. */
function lengthPrefixed(update: (bytes: Uint8Array) => void): (part: string | Uint8Array) => void {
  return (part) => {
    const bytes = typeof part === "string" ? Buffer.from(part, "utf8") : part;
    const length = Buffer.alloc(4);
    length.writeUInt32BE(bytes.byteLength);
    update(length);
    update(bytes);
  };
}

function transcriptHash(initiator: TranscriptSide, responder: TranscriptSide): Buffer {
  const hash = createHash("sha256");
  const put = lengthPrefixed((bytes) => hash.update(bytes));
  put(`${PEER_AUTH_CONTEXT} transcript`);
  for (const side of [initiator, responder]) {
    put(side.hello.nodeId);
    put(`${side.hello.protocol.major}.${side.hello.protocol.minor}`);
    put(side.fingerprint);
    put(side.hello.nonce);
  }
  return hash.digest();
}

/** What each MAC proves; distinct labels keep one from standing in for another. */
type ProofLabel = "proof initiator" | "proof responder" | "confirm initiator";

function computeProof(key: Uint8Array, label: ProofLabel, transcript: Buffer, infos: readonly SoftwareInfo[] = []): Buffer {
  const hmac = createHmac("sha256", key).update(`${PEER_AUTH_CONTEXT} ${label}\0`).update(transcript);
  const put = lengthPrefixed((bytes) => hmac.update(bytes));
  for (const info of infos) {
    put(info.software);
    put(String(info.capabilities.length));
    for (const capability of info.capabilities) put(capability);
  }
  return hmac.digest();
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
  /** Sent only to a peer that has proven membership (see the header). */
  readonly #localInfo: SoftwareInfo;
  #peerHello: HelloMessage | undefined;
  #peerInfo: SoftwareInfo | undefined;
  #negotiated: ProtocolVersion | undefined;
  /** Set by the responder when the initiator's identity is wrong; refused at the proof step. */
  #doomReason: string | undefined;

  constructor(role: HandshakeRole, params: HandshakeParams) {
    if (params.remoteFingerprint.byteLength !== FINGERPRINT_BYTES) {
      throw errors.invalidRequest(`The peer's certificate fingerprint must be ${FINGERPRINT_BYTES} bytes.`, { param: "remoteFingerprint" });
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
      certFingerprint: fingerprintToHex(params.localFingerprint),
      nonce: new Uint8Array(random(PEER_WIRE_LIMITS.nonceBytes)),
    };
    this.#localInfo = { software: params.softwareVersion, capabilities: [...(params.capabilities ?? [])] };
    this.#state = role === "initiator" ? "start" : "awaitingHello";
  }

  get state(): HandshakeState {
    return this.#state;
  }

  start(): HandshakeStep {
    if (this.role === "responder") return {};
    if (this.#state !== "start") throw errors.internal("Handshake.start() called twice.");
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
    switch (this.#state) {
      case "awaitingHello":
        return message.type === "hello" ? this.#onHello(message) : this.#unexpected(message, "hello");
      case "awaitingProof":
        if (message.type !== "authProof") return this.#unexpected(message, "authProof");
        return this.role === "responder" ? this.#onInitiatorProof(message) : this.#onResponderProof(message);
      default:
        return message.type === "authConfirm" ? this.#onConfirm(message) : this.#unexpected(message, "authConfirm");
    }
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
    // No info here: the responder has proven nothing yet.
    const proof: AuthProofMessage = { type: "authProof", proof: new Uint8Array(computeProof(this.#key, "proof initiator", this.#transcript())) };
    return { send: proof };
  }

  /** Responder: the initiator's proof. Only once it verifies does this node say anything about itself. */
  #onInitiatorProof(message: AuthProofMessage): HandshakeStep {
    const transcript = this.#transcript();
    // Verify even when doomed, so a refusal costs the same either way.
    const verified = proofMatches(computeProof(this.#key, "proof initiator", transcript), message.proof);
    if (!verified || this.#doomReason !== undefined) {
      const reason =
        this.#doomReason ?? "the peer's proof does not verify: it does not hold this cluster's secret (another cluster, or a rotated secret), or the handshake was tampered with";
      return this.#fail(failure("HEARTH_PEER_AUTH_FAILED", reason), GENERIC_REFUSAL);
    }
    if (message.info !== undefined) {
      // A proven member, so it may hear why; it sent its info before this node had proven anything.
      return this.#unexpected(message, "authProof without info");
    }
    this.#state = "awaitingConfirm";
    const proof = computeProof(this.#key, "proof responder", transcript, [this.#localInfo]);
    return { send: { type: "authProof", proof: new Uint8Array(proof), info: this.#localInfo } };
  }

  /** Initiator: the responder's proof, covering its info. Only once it verifies does this node send its own. */
  #onResponderProof(message: AuthProofMessage): HandshakeStep {
    const peerInfo = message.info;
    const transcript = this.#transcript();
    // Without info it cannot be a responder's proof (a reflected initiator proof looks like this).
    if (peerInfo === undefined || !proofMatches(computeProof(this.#key, "proof responder", transcript, [peerInfo]), message.proof)) {
      return this.#fail(
        failure("HEARTH_PEER_AUTH_FAILED", "the peer's proof does not verify: it does not hold this cluster's secret, or the handshake was tampered with"),
        GENERIC_REFUSAL,
      );
    }
    this.#peerInfo = peerInfo;
    this.#state = "done";
    const confirm: AuthConfirmMessage = {
      type: "authConfirm",
      proof: new Uint8Array(computeProof(this.#key, "confirm initiator", transcript, [peerInfo, this.#localInfo])),
      info: this.#localInfo,
    };
    return { send: confirm, done: this.#doneResult() };
  }

  /** Responder: the initiator's info, from a proven member; the MAC catches tampering. */
  #onConfirm(message: AuthConfirmMessage): HandshakeStep {
    const expected = computeProof(this.#key, "confirm initiator", this.#transcript(), [this.#localInfo, message.info]);
    if (!proofMatches(expected, message.proof)) {
      return this.#fail(failure("HEARTH_PEER_AUTH_FAILED", "the peer's confirmation does not verify: the handshake was tampered with"), GENERIC_REFUSAL);
    }
    this.#peerInfo = message.info;
    this.#state = "done";
    return { done: this.#doneResult() };
  }

  #transcript(): Buffer {
    const peerHello = this.#peerHello!;
    const local = { hello: this.#localHello, fingerprint: this.#params.localFingerprint };
    const remote = { hello: peerHello, fingerprint: this.#params.remoteFingerprint };
    return this.role === "initiator" ? transcriptHash(local, remote) : transcriptHash(remote, local);
  }

  #doneResult(): HandshakeDone {
    const hello = this.#peerHello!;
    const info = this.#peerInfo!;
    return {
      peerNodeId: hello.nodeId,
      peerFingerprint: new Uint8Array(this.#params.remoteFingerprint),
      peerFingerprintHex: fingerprintToHex(this.#params.remoteFingerprint),
      protocol: this.#negotiated!,
      peerSoftwareVersion: info.software,
      peerCapabilities: [...info.capabilities],
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
