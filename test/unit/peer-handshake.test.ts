// The peer handshake state machine: honest members pair, everyone else is refused, and a
// refused party learns nothing beyond a generic refusal. Every message goes through the
// real codec, as it would on a link.

import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeFrame, encodeFrame } from "../../protocol/peer/codec.js";
import { createInitiator, createResponder, derivePeerAuthKey } from "../../protocol/peer/handshake.js";
import type { Handshake, HandshakeParams, HandshakeStep } from "../../protocol/peer/handshake.js";
import { fingerprintToHex, nodeIdFromFingerprint } from "../../protocol/peer/identity.js";
import type { HelloMessage, PeerMessage, SoftwareInfo } from "../../protocol/peer/messages.js";

interface Node {
  fingerprint: Uint8Array;
  nodeId: string;
}

const makeNode = (): Node => {
  const fingerprint = new Uint8Array(randomBytes(32));
  return { fingerprint, nodeId: nodeIdFromFingerprint(fingerprint) };
};

const clusterSecret = new Uint8Array(randomBytes(32));
const otherSecret = new Uint8Array(randomBytes(32));

function params(local: Node, remoteSeenInTls: Node, overrides: Partial<HandshakeParams> = {}): HandshakeParams {
  return {
    clusterSecret,
    localFingerprint: local.fingerprint,
    remoteFingerprint: remoteSeenInTls.fingerprint,
    softwareVersion: "0.1.0",
    capabilities: ["streams"],
    ...overrides,
  };
}

/** What crosses the wire: encoded by one side, decoded by the other. */
function wire(message: PeerMessage): PeerMessage {
  const decoded = decodeFrame(encodeFrame(message));
  if (!decoded.ok) throw new Error(`codec refused ${message.type}: ${decoded.error.message}`);
  return decoded.message;
}

interface Outcome {
  initiator: HandshakeStep;
  responder: HandshakeStep;
  /** Every message, in order, with its sender. */
  transcript: Array<{ from: "initiator" | "responder"; message: PeerMessage }>;
  /** Every step result of the responder, in order (its last step may come after it finished). */
  responderSteps: HandshakeStep[];
}

/**
 * Runs a handshake to completion. `tamper` may rewrite any message in flight (a man in the
 * middle that can somehow read and write the TLS stream).
 */
function run(initiator: Handshake, responder: Handshake, tamper: (from: string, message: PeerMessage) => PeerMessage = (_f, m) => m): Outcome {
  const transcript: Outcome["transcript"] = [];
  const responderSteps: HandshakeStep[] = [];
  let last: Outcome = { initiator: {}, responder: responder.start(), transcript, responderSteps };
  let pending: { to: Handshake; message: PeerMessage } | undefined;
  const first = initiator.start();
  last = { ...last, initiator: first };
  if (first.send) pending = { to: responder, message: first.send };
  for (let hops = 0; pending !== undefined && hops < 10; hops++) {
    const from = pending.to === responder ? "initiator" : "responder";
    const sent = wire(tamper(from, pending.message));
    transcript.push({ from, message: sent });
    const step = pending.to.step(sent);
    if (pending.to === responder) {
      responderSteps.push(step);
      last = { ...last, responder: step };
    }
    else last = { ...last, initiator: step };
    pending = step.send ? { to: pending.to === responder ? initiator : responder, message: step.send } : undefined;
  }
  return last;
}

const proofsSentBy = (outcome: Outcome, side: "initiator" | "responder") =>
  outcome.transcript.filter((entry) => entry.from === side && entry.message.type === "authProof").length;

describe("honest members", () => {
  it("pair both ways, each pinning the other's certificate and node id", () => {
    const a = makeNode();
    const b = makeNode();
    const initiator = createInitiator(params(a, b, { capabilities: ["streams", "rpc-tunnel"] }));
    const responder = createResponder(params(b, a, { protocolVersion: { major: 1, minor: 3 } }));
    const outcome = run(initiator, responder);

    expect(outcome.initiator.fail).toBeUndefined();
    expect(outcome.responder.fail).toBeUndefined();
    expect(outcome.initiator.done).toMatchObject({ peerNodeId: b.nodeId, peerFingerprintHex: fingerprintToHex(b.fingerprint), protocol: { major: 1, minor: 0 }, peerCapabilities: ["streams"] });
    expect(outcome.responder.done).toMatchObject({ peerNodeId: a.nodeId, peerFingerprintHex: fingerprintToHex(a.fingerprint), protocol: { major: 1, minor: 0 }, peerCapabilities: ["streams", "rpc-tunnel"] });
    expect(outcome.initiator.done!.peerFingerprint).toEqual(b.fingerprint);
    expect(initiator.state).toBe("done");
    expect(responder.state).toBe("done");
    expect(outcome.transcript.map((entry) => `${entry.from}:${entry.message.type}`)).toEqual([
      "initiator:hello",
      "responder:hello",
      "initiator:authProof",
      "responder:authProof",
      "initiator:authConfirm",
    ]);
  });

  it("pair again with fresh nonces every time (no two sessions share a proof)", () => {
    const a = makeNode();
    const b = makeNode();
    const proofs = new Set<string>();
    for (let i = 0; i < 5; i++) {
      const outcome = run(createInitiator(params(a, b)), createResponder(params(b, a)));
      expect(outcome.initiator.done).toMatchObject({ peerNodeId: b.nodeId });
      for (const { message } of outcome.transcript) if (message.type === "authProof" || message.type === "authConfirm") proofs.add(Buffer.from(message.proof).toString("hex"));
    }
    expect(proofs.size).toBe(15);
  });
});

describe("non-members", () => {
  it("fail on both sides when the secrets differ, and the responder never reveals a proof", () => {
    const member = makeNode();
    const stranger = makeNode();
    const outcome = run(createInitiator(params(stranger, member, { clusterSecret: otherSecret })), createResponder(params(member, stranger)));
    expect(outcome.responder.fail).toMatchObject({ code: "HEARTH_PEER_AUTH_FAILED", closeCode: 4401 });
    expect(outcome.responder.fail!.reason).toMatch(/does not hold this cluster's secret/);
    expect(outcome.initiator.fail).toMatchObject({ code: "HEARTH_PEER_AUTH_FAILED", closeCode: 4401 });
    expect(outcome.initiator.fail!.reason).toMatch(/refused/);
    expect(outcome.initiator.done).toBeUndefined();
    expect(outcome.responder.done).toBeUndefined();
    expect(proofsSentBy(outcome, "responder")).toBe(0);
    const refusal = outcome.transcript.at(-1)!;
    expect(refusal).toEqual({ from: "responder", message: { type: "handshakeReject", error: { code: "HEARTH_PEER_AUTH_FAILED", message: "handshake refused" } } });
  });

  it("fail on both sides when a member dials a non-member", () => {
    const member = makeNode();
    const stranger = makeNode();
    const outcome = run(createInitiator(params(member, stranger)), createResponder(params(stranger, member, { clusterSecret: otherSecret })));
    expect(outcome.responder.fail?.code).toBe("HEARTH_PEER_AUTH_FAILED");
    expect(outcome.initiator.fail?.code).toBe("HEARTH_PEER_AUTH_FAILED");
    expect(outcome.initiator.done).toBeUndefined();
  });

  it("see the same refusal frame whether the secret or the identity is wrong", () => {
    const member = makeNode();
    const stranger = makeNode();
    const impostor = makeNode();
    const lastFrameFromResponder = (outcome: Outcome) => Buffer.from(encodeFrame(outcome.transcript.at(-1)!.message)).toString("hex");

    const wrongSecret = run(createInitiator(params(stranger, member, { clusterSecret: otherSecret })), createResponder(params(member, stranger)));
    // The initiator holds the secret but claims a certificate other than the one TLS shows.
    const wrongCertificate = run(createInitiator(params(impostor, member)), createResponder(params(member, stranger)));

    expect(wrongCertificate.responder.fail!.reason).toMatch(/TLS presented/);
    expect(wrongSecret.responder.fail!.reason).not.toBe(wrongCertificate.responder.fail!.reason);
    // The refused side sees the same message types at the same step, and the same bytes.
    expect(wrongCertificate.transcript.map((e) => e.message.type)).toEqual(wrongSecret.transcript.map((e) => e.message.type));
    expect(lastFrameFromResponder(wrongCertificate)).toBe(lastFrameFromResponder(wrongSecret));
  });
});

describe("what a non-member learns", () => {
  // Distinctive values, so their absence from every frame a non-member receives means something.
  const SECRET_SOFTWARE = "7.7.7-membersonly";
  const SECRET_CAPABILITY = "members-only-capability";
  const memberParams = (local: Node, remote: Node, overrides: Partial<HandshakeParams> = {}) =>
    params(local, remote, { softwareVersion: SECRET_SOFTWARE, capabilities: ["streams", SECRET_CAPABILITY], ...overrides });

  /** Every frame `side` was sent, as bytes on the wire. */
  const framesReceivedBy = (outcome: Outcome, side: "initiator" | "responder") =>
    outcome.transcript.filter((entry) => entry.from !== side).map((entry) => ({ message: entry.message, bytes: Buffer.from(encodeFrame(entry.message)) }));

  function expectNothingRevealed(frames: Array<{ message: PeerMessage; bytes: Buffer }>): void {
    expect(frames.length).toBeGreaterThan(0);
    for (const { message, bytes } of frames) {
      expect(bytes.includes(SECRET_SOFTWARE)).toBe(false);
      expect(bytes.includes(SECRET_CAPABILITY)).toBe(false);
      expect(message.type).not.toBe("authConfirm");
      expect("info" in message && message.info !== undefined).toBe(false);
      expect("software" in message || "capabilities" in message).toBe(false);
    }
  }

  it("a member receives the other member's software version and capabilities (control: the check below can fail)", () => {
    const a = makeNode();
    const b = makeNode();
    const outcome = run(createInitiator(memberParams(a, b)), createResponder(memberParams(b, a)));
    for (const side of ["initiator", "responder"] as const) {
      const received = Buffer.concat(framesReceivedBy(outcome, side).map((frame) => frame.bytes));
      expect(received.includes(SECRET_SOFTWARE)).toBe(true);
      expect(received.includes(SECRET_CAPABILITY)).toBe(true);
    }
    expect(outcome.responder.done).toMatchObject({ peerSoftwareVersion: SECRET_SOFTWARE, peerCapabilities: ["streams", SECRET_CAPABILITY] });
    expect(outcome.initiator.done).toMatchObject({ peerSoftwareVersion: SECRET_SOFTWARE, peerCapabilities: ["streams", SECRET_CAPABILITY] });
  });

  it("a non-member initiator never receives the member responder's software version or capabilities", () => {
    const member = makeNode();
    const stranger = makeNode();
    const impostor = makeNode();
    const wrongSecret = run(createInitiator(params(stranger, member, { clusterSecret: otherSecret })), createResponder(memberParams(member, stranger)));
    expect(wrongSecret.responder.fail?.code).toBe("HEARTH_PEER_AUTH_FAILED");
    expectNothingRevealed(framesReceivedBy(wrongSecret, "initiator"));
    // Holding the secret but not the certificate it claims is no better.
    const wrongCertificate = run(createInitiator(params(impostor, member)), createResponder(memberParams(member, stranger)));
    expect(wrongCertificate.responder.fail?.code).toBe("HEARTH_PEER_AUTH_FAILED");
    expectNothingRevealed(framesReceivedBy(wrongCertificate, "initiator"));
  });

  it("a non-member responder never receives the member initiator's software version or capabilities", () => {
    const member = makeNode();
    const stranger = makeNode();
    const outcome = run(createInitiator(memberParams(member, stranger)), createResponder(params(stranger, member, { clusterSecret: otherSecret })));
    expect(outcome.initiator.fail?.code).toBe("HEARTH_PEER_AUTH_FAILED");
    expect(outcome.transcript.map((entry) => `${entry.from}:${entry.message.type}`)).toEqual([
      "initiator:hello",
      "responder:hello",
      "initiator:authProof",
      "responder:handshakeReject",
    ]);
    expectNothingRevealed(framesReceivedBy(outcome, "responder"));
  });

  it("a non-member responder that answers with a forged proof carrying info still learns nothing", () => {
    const member = makeNode();
    const stranger = makeNode();
    // The stranger runs a responder with the wrong secret, so its proof (with its info) is well formed but wrong.
    const outcome = run(createInitiator(memberParams(member, stranger)), createResponder(params(stranger, member, { clusterSecret: otherSecret })), (from, message) =>
      from === "responder" && message.type === "handshakeReject" ? { type: "authProof", proof: new Uint8Array(randomBytes(32)), info: { software: "1.0.0", capabilities: [] } } : message,
    );
    expect(outcome.initiator.fail?.code).toBe("HEARTH_PEER_AUTH_FAILED");
    expect(outcome.initiator.done).toBeUndefined();
    expectNothingRevealed(framesReceivedBy(outcome, "responder"));
  });

  it("a stranger sending any handshake messages to a member, in either role, never receives its software version or capabilities", () => {
    const member = makeNode();
    const stranger = makeNode();
    const strangerHello = createInitiator(params(stranger, member)).start().send as HelloMessage;
    const info = { software: "1.0.0", capabilities: [] };
    const message = fc.oneof(
      fc.constant<PeerMessage>(strangerHello),
      fc.uint8Array({ minLength: 32, maxLength: 32 }).map((proof): PeerMessage => ({ type: "authProof", proof })),
      fc.uint8Array({ minLength: 32, maxLength: 32 }).map((proof): PeerMessage => ({ type: "authProof", proof, info })),
      fc.uint8Array({ minLength: 32, maxLength: 32 }).map((proof): PeerMessage => ({ type: "authConfirm", proof, info })),
    );
    fc.assert(
      fc.property(fc.constantFrom("initiator", "responder"), fc.array(message, { minLength: 1, maxLength: 5 }), (role, messages) => {
        const machine = role === "initiator" ? createInitiator(memberParams(member, stranger)) : createResponder(memberParams(member, stranger));
        const sent: PeerMessage[] = [];
        const first = machine.start();
        if (first.send) sent.push(first.send);
        for (const m of messages) {
          const step = machine.step(wire(m));
          if (step.send) sent.push(step.send);
        }
        if (sent.length > 0) expectNothingRevealed(sent.map((m) => ({ message: m, bytes: Buffer.from(encodeFrame(m)) })));
      }),
      { numRuns: 300 },
    );
  });
});

describe("replay", () => {
  it("refuses a recorded initiator transcript replayed to a fresh responder", () => {
    const a = makeNode();
    const b = makeNode();
    const recorded = run(createInitiator(params(a, b)), createResponder(params(b, a)));
    expect(recorded.responder.done).toMatchObject({ peerNodeId: a.nodeId });
    const [hello, , proof] = recorded.transcript.map((entry) => entry.message);

    // Strongest attacker: the TLS layer even shows a's certificate (as if it were stolen).
    const fresh = createResponder(params(b, a));
    const afterHello = fresh.step(hello!);
    expect(afterHello.send?.type).toBe("hello");
    const afterProof = fresh.step(proof!);
    expect(afterProof.done).toBeUndefined();
    expect(afterProof.fail?.code).toBe("HEARTH_PEER_AUTH_FAILED");
    expect(afterProof.send?.type).toBe("handshakeReject");
  });

  it("refuses a recorded responder transcript replayed to a fresh initiator", () => {
    const a = makeNode();
    const b = makeNode();
    const recorded = run(createInitiator(params(a, b)), createResponder(params(b, a)));
    const [, hello, , proof] = recorded.transcript.map((entry) => entry.message);

    const fresh = createInitiator(params(a, b));
    fresh.start();
    expect(fresh.step(hello!).send?.type).toBe("authProof");
    const afterProof = fresh.step(proof!);
    expect(afterProof.done).toBeUndefined();
    expect(afterProof.fail?.code).toBe("HEARTH_PEER_AUTH_FAILED");
  });

  it("refuses a handshake whose nonce was fixed by an attacker's choice of randomness on the other side", () => {
    // Even if the responder's randomness repeated, the initiator's fresh nonce still changes the transcript.
    const a = makeNode();
    const b = makeNode();
    const fixed = () => new Uint8Array(32).fill(9);
    const recorded = run(createInitiator(params(a, b)), createResponder(params(b, a, { randomBytes: fixed })));
    const replayTarget = createResponder(params(b, a, { randomBytes: fixed }));
    const [, , proof] = recorded.transcript.map((entry) => entry.message);
    // A new initiator session (new nonce) whose proof is swapped for the recorded one.
    const outcome = run(createInitiator(params(a, b)), replayTarget, (_from, message) => (message.type === "authProof" && _from === "initiator" ? proof! : message));
    expect(outcome.responder.fail?.code).toBe("HEARTH_PEER_AUTH_FAILED");
  });
});

describe("reflection", () => {
  it("refuses the initiator's own proof sent back as the responder's", () => {
    const a = makeNode();
    const attacker = makeNode();
    const initiator = createInitiator(params(a, attacker));
    const hello = initiator.start().send as HelloMessage;
    // The attacker answers with a hello of its own identity (it has no secret)...
    const attackerHello: HelloMessage = { ...hello, nodeId: attacker.nodeId, certFingerprint: fingerprintToHex(attacker.fingerprint), nonce: new Uint8Array(randomBytes(32)) };
    const proofStep = initiator.step(wire(attackerHello));
    expect(proofStep.send?.type).toBe("authProof");
    // ...and reflects the initiator's proof.
    const result = initiator.step(wire(proofStep.send!));
    expect(result.done).toBeUndefined();
    expect(result.fail?.code).toBe("HEARTH_PEER_AUTH_FAILED");
  });

  it("refuses the initiator's own hello reflected back", () => {
    const a = makeNode();
    const initiator = createInitiator(params(a, a));
    const hello = initiator.start().send!;
    const result = initiator.step(wire(hello));
    expect(result.fail?.code).toBe("HEARTH_PEER_AUTH_FAILED");
    expect(result.fail!.reason).toMatch(/this node itself/);
    expect(result.send?.type).toBe("handshakeReject");
  });

  it("refuses a proof taken from one session and offered in another with the roles swapped", () => {
    const victim = makeNode();
    const attacker = makeNode();
    // Session 1: the victim dials the attacker and hands over an initiator proof.
    const session1 = createInitiator(params(victim, attacker));
    const hello1 = session1.start().send as HelloMessage;
    const attackerHello: HelloMessage = { ...hello1, nodeId: attacker.nodeId, certFingerprint: fingerprintToHex(attacker.fingerprint), nonce: new Uint8Array(randomBytes(32)) };
    const stolenProof = session1.step(wire(attackerHello)).send!;
    // Session 2: the attacker dials the victim and offers the stolen proof as its own.
    const session2 = createResponder(params(victim, attacker));
    expect(session2.step(wire({ ...attackerHello, nonce: new Uint8Array(randomBytes(32)) })).send?.type).toBe("hello");
    const result = session2.step(wire(stolenProof));
    expect(result.fail?.code).toBe("HEARTH_PEER_AUTH_FAILED");
    expect(result.done).toBeUndefined();
  });

  it("refuses a responder that echoes the initiator's nonce", () => {
    const a = makeNode();
    const b = makeNode();
    const nonce = new Uint8Array(32).fill(3);
    const outcome = run(createInitiator(params(a, b, { randomBytes: () => nonce })), createResponder(params(b, a, { randomBytes: () => nonce })));
    expect(outcome.initiator.fail?.reason).toMatch(/nonce/);
    expect(proofsSentBy(outcome, "initiator")).toBe(0);
  });
});

describe("tampering", () => {
  it("refuses a hello whose certificate fingerprint does not match the TLS certificate", () => {
    const a = makeNode();
    const b = makeNode();
    const mitm = makeNode();
    // The initiator reaches a man in the middle: TLS shows mitm's certificate, the relayed hello claims b's.
    const outcome = run(createInitiator(params(a, mitm)), createResponder(params(b, a)));
    expect(outcome.initiator.fail?.code).toBe("HEARTH_PEER_AUTH_FAILED");
    expect(outcome.initiator.fail!.reason).toMatch(/TLS presented/);
    expect(proofsSentBy(outcome, "initiator")).toBe(0);
    expect(outcome.responder.done).toBeUndefined();
  });

  it("refuses a man in the middle that rewrites the hellos to match its own certificates", () => {
    const a = makeNode();
    const b = makeNode();
    const mitm = makeNode();
    // Both legs terminate at the MITM, which rewrites each hello to its own identity, so each
    // hello matches the certificate its receiver sees in TLS. Only the transcript binding can catch this.
    const rewrite = (_from: string, message: PeerMessage): PeerMessage =>
      message.type === "hello" ? { ...message, nodeId: mitm.nodeId, certFingerprint: fingerprintToHex(mitm.fingerprint) } : message;
    const outcome = run(createInitiator(params(a, mitm)), createResponder(params(b, mitm)), rewrite);
    expect(outcome.responder.fail?.code).toBe("HEARTH_PEER_AUTH_FAILED");
    expect(outcome.responder.done).toBeUndefined();
    expect(outcome.initiator.done).toBeUndefined();
  });

  it("refuses a node id that does not belong to the certificate", () => {
    const a = makeNode();
    const b = makeNode();
    const other = makeNode();
    const outcome = run(createInitiator(params(a, b)), createResponder(params(b, a)), (from, message) =>
      from === "responder" && message.type === "hello" ? { ...message, nodeId: other.nodeId } : message,
    );
    expect(outcome.initiator.fail?.reason).toMatch(/does not match its certificate/);
    expect(outcome.initiator.done).toBeUndefined();
  });

  it("refuses the responder's node id when the initiator expected another node", () => {
    const a = makeNode();
    const b = makeNode();
    const outcome = run(createInitiator(params(a, b, { expectedPeerNodeId: makeNode().nodeId })), createResponder(params(b, a)));
    expect(outcome.initiator.fail?.reason).toMatch(/expected node/);
    expect(proofsSentBy(outcome, "initiator")).toBe(0);
  });

  it.each([
    ["protocol minor version", (hello: HelloMessage): HelloMessage => ({ ...hello, protocol: { major: 1, minor: 7 } })],
    ["nonce", (hello: HelloMessage): HelloMessage => ({ ...hello, nonce: new Uint8Array(32).fill(1) })],
  ])("refuses a handshake whose %s was altered in flight", (_field, alter) => {
    const a = makeNode();
    const b = makeNode();
    const outcome = run(createInitiator(params(a, b)), createResponder(params(b, a)), (from, message) =>
      from === "initiator" && message.type === "hello" ? alter(message) : message,
    );
    expect(outcome.responder.fail?.code).toBe("HEARTH_PEER_AUTH_FAILED");
    expect(outcome.responder.done).toBeUndefined();
    expect(outcome.initiator.done).toBeUndefined();
  });

  it.each([
    ["capabilities", (info: SoftwareInfo): SoftwareInfo => ({ ...info, capabilities: [] })],
    ["software version", (info: SoftwareInfo): SoftwareInfo => ({ ...info, software: "9.9.9" })],
  ])("refuses the responder's %s altered in flight, and neither side comes up", (_field, alter) => {
    const a = makeNode();
    const b = makeNode();
    const outcome = run(createInitiator(params(a, b)), createResponder(params(b, a)), (from, message) =>
      from === "responder" && message.type === "authProof" && message.info !== undefined ? { ...message, info: alter(message.info) } : message,
    );
    expect(outcome.initiator.fail?.code).toBe("HEARTH_PEER_AUTH_FAILED");
    expect(outcome.initiator.done).toBeUndefined();
    expect(outcome.responderSteps.some((step) => step.done !== undefined)).toBe(false);
    // The initiator refused before sending anything about itself.
    expect(outcome.transcript.some((entry) => entry.message.type === "authConfirm")).toBe(false);
  });

  it.each([
    ["capabilities", (info: SoftwareInfo): SoftwareInfo => ({ ...info, capabilities: [] })],
    ["software version", (info: SoftwareInfo): SoftwareInfo => ({ ...info, software: "9.9.9" })],
  ])("refuses the initiator's %s altered in flight", (_field, alter) => {
    const a = makeNode();
    const b = makeNode();
    const outcome = run(createInitiator(params(a, b)), createResponder(params(b, a)), (from, message) =>
      from === "initiator" && message.type === "authConfirm" ? { ...message, info: alter(message.info) } : message,
    );
    expect(outcome.responderSteps.at(-1)?.fail?.code).toBe("HEARTH_PEER_AUTH_FAILED");
    expect(outcome.responderSteps.some((step) => step.done !== undefined)).toBe(false);
    expect(outcome.transcript.at(-1)).toMatchObject({ from: "responder", message: { type: "handshakeReject" } });
  });

  it("refuses a flipped bit in a proof", () => {
    const a = makeNode();
    const b = makeNode();
    const outcome = run(createInitiator(params(a, b)), createResponder(params(b, a)), (from, message) => {
      if (from !== "responder" || message.type !== "authProof") return message;
      const proof = new Uint8Array(message.proof);
      proof[31] = proof[31]! ^ 1;
      return { ...message, proof };
    });
    // The responder waits for the initiator's authConfirm, so it never counts a refused link as done.
    expect(outcome.responderSteps.some((step) => step.done !== undefined)).toBe(false);
    expect(outcome.responder.fail?.code).toBe("HEARTH_PEER_AUTH_FAILED");
    expect(outcome.initiator.fail?.code).toBe("HEARTH_PEER_AUTH_FAILED");
    expect(outcome.initiator.done).toBeUndefined();
    expect(outcome.transcript.at(-1)).toMatchObject({ from: "initiator", message: { type: "handshakeReject" } });
  });
});

describe("versions and protocol order", () => {
  it("refuses another major version on both sides as incompatible, with a reason naming both", () => {
    const a = makeNode();
    const b = makeNode();
    const outcome = run(createInitiator(params(a, b, { protocolVersion: { major: 2, minor: 0 } })), createResponder(params(b, a)));
    expect(outcome.responder.fail).toMatchObject({ code: "HEARTH_PEER_INCOMPATIBLE", closeCode: 4426 });
    expect(outcome.responder.fail!.reason).toMatch(/2\.0.*1\.0.*upgrade this node/);
    expect(outcome.initiator.fail).toMatchObject({ code: "HEARTH_PEER_INCOMPATIBLE", closeCode: 4426 });
    expect(proofsSentBy(outcome, "initiator")).toBe(0);
  });

  it("refuses a non-handshake message during the handshake as a protocol violation", () => {
    const a = makeNode();
    const b = makeNode();
    const responder = createResponder(params(b, a));
    const step = responder.step({ type: "heartbeat", seq: 1, sentAt: 1 });
    expect(step.fail).toMatchObject({ code: "HEARTH_PEER_PROTOCOL_VIOLATION", closeCode: 1002 });
    expect(step.send?.type).toBe("handshakeReject");
    expect(responder.state).toBe("failed");
  });

  it("refuses a proof before the hello", () => {
    const a = makeNode();
    const b = makeNode();
    const step = createResponder(params(b, a)).step({ type: "authProof", proof: new Uint8Array(32) });
    expect(step.fail?.code).toBe("HEARTH_PEER_PROTOCOL_VIOLATION");
  });

  it("answers anything after the end with a failure and nothing to send", () => {
    const a = makeNode();
    const b = makeNode();
    const initiator = createInitiator(params(a, b));
    const responder = createResponder(params(b, a));
    run(initiator, responder);
    const late = initiator.step({ type: "authProof", proof: new Uint8Array(32) });
    expect(late.fail?.code).toBe("HEARTH_PEER_PROTOCOL_VIOLATION");
    expect(late.send).toBeUndefined();
    expect(initiator.state).toBe("done");
  });

  it("never throws and never completes for a stranger sending arbitrary handshake messages", () => {
    const member = makeNode();
    const stranger = makeNode();
    const strangerHello = createInitiator(params(stranger, member)).start().send as HelloMessage;
    const message = fc.oneof(
      fc.constant<PeerMessage>(strangerHello),
      fc.uint8Array({ minLength: 32, maxLength: 32 }).map((nonce): PeerMessage => ({ ...strangerHello, nonce })),
      fc.uint8Array({ minLength: 32, maxLength: 32 }).map((proof): PeerMessage => ({ type: "authProof", proof })),
      fc.uint8Array({ minLength: 32, maxLength: 32 }).map((proof): PeerMessage => ({ type: "authProof", proof, info: { software: "6.6.6", capabilities: [] } })),
      fc.uint8Array({ minLength: 32, maxLength: 32 }).map((proof): PeerMessage => ({ type: "authConfirm", proof, info: { software: "6.6.6", capabilities: [] } })),
      fc.constant<PeerMessage>({ type: "handshakeReject", error: { code: "HEARTH_PEER_INCOMPATIBLE", message: "no" } }),
      fc.constant<PeerMessage>({ type: "heartbeat", seq: 0, sentAt: 0 }),
    );
    fc.assert(
      fc.property(fc.constantFrom("initiator", "responder"), fc.array(message, { maxLength: 6 }), (role, messages) => {
        const machine = role === "initiator" ? createInitiator(params(member, stranger)) : createResponder(params(member, stranger));
        machine.start();
        for (const m of messages) {
          let step: HandshakeStep = {};
          expect(() => {
            step = machine.step(m);
          }).not.toThrow();
          expect(step.done).toBeUndefined();
          // A member never hands a stranger a responder proof, nor anything about its software.
          if (role === "responder") expect(step.send?.type).not.toBe("authProof");
          expect(step.send?.type).not.toBe("authConfirm");
          if (step.send?.type === "authProof") expect(step.send.info).toBeUndefined();
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe("key derivation", () => {
  it("derives a 32-byte key that depends on the secret, and refuses a short secret", () => {
    const key = derivePeerAuthKey(clusterSecret);
    expect(key.byteLength).toBe(32);
    expect(Buffer.from(key).equals(Buffer.from(derivePeerAuthKey(clusterSecret)))).toBe(true);
    expect(Buffer.from(key).equals(Buffer.from(derivePeerAuthKey(otherSecret)))).toBe(false);
    expect(Buffer.from(key).equals(Buffer.from(clusterSecret))).toBe(false);
    expect(() => derivePeerAuthKey(new Uint8Array(8))).toThrow(/at least 16 bytes/);
  });
});
