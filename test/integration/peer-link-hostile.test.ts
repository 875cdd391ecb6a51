/**
 * The peer listener under hostile input, over real sockets: raw TCP garbage, plain HTTPS,
 * malformed upgrades, and forged, oversized, truncated, out-of-order and random frames on the
 * WebSocket endpoint. Each attack must end with the documented refusal or close code, nothing
 * may throw out of a handler (vitest fails the run on any uncaught error), no handshake slot
 * may leak, and a real member must still be able to connect afterwards.
 *
 * Attackers bind to their own loopback addresses (127.0.x.y), because the listener rate-limits
 * failures per address; the member dials from 127.0.0.1.
 */

import { randomBytes } from "node:crypto";
import fs from "node:fs";
import https from "node:https";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import fc from "fast-check";
import { Packr } from "msgpackr";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { DEFAULT_PEER } from "../../daemon/config/defaults.js";
import type { PeerConfig } from "../../daemon/config/defaults.js";
import type { TLSSocket } from "node:tls";
import { ClusterMembership } from "../../daemon/identity/ClusterMembership.js";
import { NodeIdentity } from "../../daemon/identity/NodeIdentity.js";
import { PeerLinkManager } from "../../daemon/peers/PeerLinkManager.js";
import type { HandshakeFailedEvent } from "../../daemon/peers/PeerLinkManager.js";
import { PEER_LINK_PATH, PEER_SUBPROTOCOL } from "../../daemon/peers/wire.js";
import { decodeFrame, encodeFrame } from "../../protocol/peer/codec.js";
import { createInitiator } from "../../protocol/peer/handshake.js";
import { certificateFingerprint, fingerprintToHex } from "../../protocol/peer/identity.js";
import type { HelloMessage, PeerMessage } from "../../protocol/peer/messages.js";
import { waitFor, waitForValue } from "../support/wait.js";

const CONFIG: PeerConfig = {
  ...DEFAULT_PEER,
  host: "127.0.0.1",
  port: 0,
  heartbeatIntervalMs: 100,
  heartbeatTimeoutMs: 600,
  handshakeTimeoutMs: 500,
  closeGraceMs: 200,
  dialBackoffInitialMs: 50,
  dialBackoffMaxMs: 300,
  maxFrameBytes: 64 * 1024,
  maxStreamChunkBytes: 16 * 1024,
  streamWindowBytes: 32 * 1024,
  maxUnknownStreamMessages: 8,
  maxPendingHandshakes: 6,
  maxFailedAttempts: 5,
  failedAttemptWindowMs: 60_000,
};

/** Close codes an attack may legitimately end with (docs/protocol.md, "Close codes"). */
const REFUSAL_CODES = new Set([1002, 1007, 1009, 4401, 4408, 4426]);

/** Distinctive, so their absence from what a non-member receives means something. */
const SERVER_SOFTWARE = "5.5.5-membersonly";
const SERVER_CAPABILITY = "members-only-capability";

let dir: string;
let server: PeerLinkManager;
let serverIdentity: NodeIdentity;
let membership: ClusterMembership;
let attacker: NodeIdentity;
const failures: HandshakeFailedEvent[] = [];

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "hearth-hostile-"));
  serverIdentity = await NodeIdentity.loadOrCreate(path.join(dir, "server"));
  membership = (await ClusterMembership.init(path.join(dir, "server"))).membership;
  attacker = await NodeIdentity.loadOrCreate(path.join(dir, "attacker"));
  server = new PeerLinkManager({
    identity: serverIdentity,
    membership,
    config: CONFIG,
    logger: pino({ level: "silent" }),
    softwareVersion: SERVER_SOFTWARE,
    capabilities: ["streams", SERVER_CAPABILITY],
  });
  server.on("handshakeFailed", (event) => failures.push(event));
  await server.start();
});

afterAll(async () => {
  await server.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

let nextAddress = 0;
/** A fresh loopback source address per attack, so the rate limiter does not mix them up. */
function freshAddress(): string {
  nextAddress++;
  return `127.0.${1 + Math.floor(nextAddress / 250)}.${1 + (nextAddress % 250)}`;
}

const port = (): number => server.listeningAddress!.port;

interface RawOutcome {
  /** Set when the upgrade was refused with an HTTP status. */
  status?: number;
  /** Set when the WebSocket opened and was then closed. */
  closeCode?: number;
  received: PeerMessage[];
  /** Every frame the server sent, as bytes, decodable or not. */
  rawFrames: Buffer[];
}

interface RawClientOptions {
  localAddress?: string;
  withCertificate?: boolean;
  path?: string;
  protocols?: string[];
  /** Runs once the socket is open; frames the server sends are collected meanwhile. */
  script?: (socket: WebSocket, received: PeerMessage[]) => Promise<void> | void;
}

/** A hand-driven WebSocket client: whatever it sends, it reports how the server ended it. */
function rawClient(options: RawClientOptions = {}): Promise<RawOutcome> {
  return new Promise<RawOutcome>((resolve, reject) => {
    const received: PeerMessage[] = [];
    const rawFrames: Buffer[] = [];
    const socket = new WebSocket(`wss://127.0.0.1:${port()}${options.path ?? PEER_LINK_PATH}`, options.protocols ?? [PEER_SUBPROTOCOL], {
      ...(options.withCertificate === false ? {} : attacker.tlsCredentials()),
      rejectUnauthorized: false,
      localAddress: options.localAddress ?? freshAddress(),
      perMessageDeflate: false,
      maxPayload: 16 * 1024 * 1024,
    });
    const timer = setTimeout(() => {
      socket.terminate();
      reject(new Error("the server neither refused nor closed within 5 s"));
    }, 5_000);
    socket.on("unexpected-response", (_request, response) => {
      clearTimeout(timer);
      resolve({ status: response.statusCode ?? 0, received, rawFrames });
      socket.terminate();
    });
    socket.on("error", () => undefined);
    socket.on("message", (data: Buffer) => {
      rawFrames.push(Buffer.from(data));
      const decoded = decodeFrame(new Uint8Array(data), { maxFrameBytes: 16 * 1024 * 1024, maxStreamChunkBytes: 1024 * 1024, maxNestingDepth: 32 });
      if (decoded.ok) received.push(decoded.message);
    });
    socket.on("close", (code) => {
      clearTimeout(timer);
      resolve({ closeCode: code, received, rawFrames });
    });
    socket.on("open", () => {
      void Promise.resolve(options.script?.(socket, received)).catch(() => undefined);
    });
  });
}

/** Sends frames right after the upgrade and waits for the server to end the connection. */
const sendFrames = (frames: Array<Uint8Array | string>, localAddress?: string): Promise<RawOutcome> =>
  rawClient({
    ...(localAddress === undefined ? {} : { localAddress }),
    script: (socket) => {
      for (const frame of frames) socket.send(frame, { binary: typeof frame !== "string" });
    },
  });

function attackerHello(overrides: Partial<HelloMessage> = {}): HelloMessage {
  return {
    type: "hello",
    nodeId: attacker.nodeId,
    protocol: { major: 1, minor: 0 },
    certFingerprint: attacker.fingerprintHex,
    nonce: new Uint8Array(randomBytes(32)),
    ...overrides,
  };
}

const loosePackr = new Packr({ useRecords: false, structuredClone: false });

const LENIENT_LIMITS = { maxFrameBytes: 16 * 1024 * 1024, maxStreamChunkBytes: 1024 * 1024, maxNestingDepth: 32 };

interface MemberOutcome {
  closeCode: number;
  /** Messages received after the handshake. */
  received: PeerMessage[];
}

/**
 * A cluster member driven by hand: it completes a genuine handshake (it holds the secret),
 * then runs `misbehave`, which sends whatever it likes. Reports how the server ended the link.
 */
function memberClient(misbehave: (send: (message: PeerMessage | Uint8Array) => void, received: PeerMessage[]) => Promise<void> | void): Promise<MemberOutcome> {
  return new Promise<MemberOutcome>((resolve, reject) => {
    const received: PeerMessage[] = [];
    const socket = new WebSocket(`wss://127.0.0.1:${port()}${PEER_LINK_PATH}`, [PEER_SUBPROTOCOL], {
      ...attacker.tlsCredentials(),
      rejectUnauthorized: false,
      localAddress: freshAddress(),
      perMessageDeflate: false,
    });
    let serverFingerprint: Uint8Array | undefined;
    socket.on("upgrade", (response) => {
      serverFingerprint = certificateFingerprint((response.socket as TLSSocket).getPeerX509Certificate()!.raw);
    });
    const timer = setTimeout(() => {
      socket.terminate();
      reject(new Error("the server did not close the misbehaving link within 5 s"));
    }, 5_000);
    const send = (message: PeerMessage | Uint8Array): void => socket.send(message instanceof Uint8Array ? message : encodeFrame(message, LENIENT_LIMITS));
    let handshake: ReturnType<typeof createInitiator> | undefined;
    socket.on("error", () => undefined);
    socket.on("open", () => {
      handshake = createInitiator({
        clusterSecret: membership.secret,
        localFingerprint: attacker.fingerprint,
        remoteFingerprint: serverFingerprint!,
        softwareVersion: "0.1.0",
      });
      send(handshake.start().send!);
    });
    socket.on("message", (data: Buffer) => {
      const decoded = decodeFrame(new Uint8Array(data), LENIENT_LIMITS);
      if (!decoded.ok) return;
      if (handshake?.state !== "done") {
        const step = handshake!.step(decoded.message);
        if (step.send !== undefined) send(step.send);
        if (step.done !== undefined) void Promise.resolve(misbehave(send, received)).catch(() => undefined);
        return;
      }
      received.push(decoded.message);
    });
    socket.on("close", (code) => {
      clearTimeout(timer);
      resolve({ closeCode: code, received });
    });
  });
}

async function expectMemberStillConnects(): Promise<void> {
  const memberDir = path.join(dir, `member-${Date.now()}`);
  const member = new PeerLinkManager({
    identity: await NodeIdentity.loadOrCreate(memberDir),
    membership: (await ClusterMembership.join(memberDir, membership.joinToken())).membership,
    config: CONFIG,
    logger: pino({ level: "silent" }),
  });
  try {
    await member.start();
    server.handleRequest("test.ping", () => "pong");
    member.connect({ host: "127.0.0.1", port: port() });
    await waitFor(() => member.link(serverIdentity.nodeId) !== undefined, 5_000, "a member to connect after the attacks");
    expect(await member.request(serverIdentity.nodeId, "test.ping", null)).toBe("pong");
  } finally {
    await member.stop();
  }
}

describe("before any WebSocket exists", () => {
  it("raw TCP garbage is dropped", async () => {
    for (let round = 0; round < 5; round++) {
      const closed = await new Promise<boolean>((resolve) => {
        const socket = net.connect({ host: "127.0.0.1", port: port(), localAddress: freshAddress() }, () => {
          socket.write(randomBytes(2_000));
          socket.write("GET / HTTP/1.1\r\n\r\n");
        });
        socket.on("error", () => undefined);
        socket.on("close", () => resolve(true));
        setTimeout(() => resolve(false), 3_000).unref();
      });
      expect(closed).toBe(true);
    }
  });

  it("plain HTTPS gets a bare 404", async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const request = https.get(
        { host: "127.0.0.1", port: port(), path: "/", rejectUnauthorized: false, localAddress: freshAddress(), ...attacker.tlsCredentials() },
        (response) => {
          response.resume();
          resolve(response.statusCode ?? 0);
        },
      );
      request.on("error", reject);
    });
    expect(status).toBe(404);
  });

  it("an upgrade without a client certificate gets 401", async () => {
    expect((await rawClient({ withCertificate: false })).status).toBe(401);
  });

  it("an upgrade on another path gets 404, one without the peer subprotocol 400", async () => {
    expect((await rawClient({ path: "/v1/models" })).status).toBe(404);
    expect((await rawClient({ protocols: ["chat"] })).status).toBe(400);
  });
});

describe("frames on the WebSocket endpoint", () => {
  it("an oversized frame is refused with 1009", async () => {
    expect((await sendFrames([randomBytes(CONFIG.maxFrameBytes + 1)])).closeCode).toBe(1009);
  });

  it("a truncated frame is refused with 1007", async () => {
    const hello = encodeFrame(attackerHello());
    expect((await sendFrames([hello.subarray(0, hello.byteLength - 5)])).closeCode).toBe(1007);
  });

  it("a text frame is refused with 1007", async () => {
    expect((await sendFrames([JSON.stringify(attackerHello())])).closeCode).toBe(1007);
  });

  it("MessagePack extensions and non-catalogue maps are refused with 1007", async () => {
    expect((await sendFrames([loosePackr.pack({ type: "hello", when: new Date(), re: /x/ })])).closeCode).toBe(1007);
    expect((await sendFrames([loosePackr.pack({ type: "shutdown", now: true })])).closeCode).toBe(1007);
    expect((await sendFrames([loosePackr.pack([1, 2, 3])])).closeCode).toBe(1007);
  });

  it("a link message before the handshake is a protocol violation (1002)", async () => {
    const outcome = await sendFrames([encodeFrame({ type: "heartbeat", seq: 0, sentAt: 1 })]);
    expect(outcome.closeCode).toBe(1002);
    expect(outcome.received).toEqual([{ type: "handshakeReject", error: { code: "HEARTH_PEER_PROTOCOL_VIOLATION", message: "expected hello" } }]);
  });

  it("a hello of another major version is refused as incompatible (4426), saying why", async () => {
    const outcome = await sendFrames([encodeFrame(attackerHello({ protocol: { major: 2, minor: 0 } }))]);
    expect(outcome.closeCode).toBe(4426);
    const reject = outcome.received[0];
    expect(reject?.type).toBe("handshakeReject");
    expect(reject?.type === "handshakeReject" && reject.error.message).toContain("peer speaks protocol 2.0");
  });

  it("a hello forging a member's identity gets a hello back, but no proof, and is refused at the proof (4401)", async () => {
    // Claims to be the server's own cluster peer (its node id and fingerprint), with the attacker's certificate.
    const forged = attackerHello({ nodeId: serverIdentity.nodeId, certFingerprint: serverIdentity.fingerprintHex });
    const outcome = await rawClient({
      script: async (socket, received) => {
        socket.send(encodeFrame(forged));
        await waitFor(() => received.length > 0, 5_000, "the server's hello", 5);
        socket.send(encodeFrame({ type: "authProof", proof: new Uint8Array(randomBytes(32)) }));
      },
    });
    expect(outcome.closeCode).toBe(4401);
    expect(outcome.received.map((message) => message.type)).toEqual(["hello", "handshakeReject"]);
    expect(outcome.received[1]).toEqual({ type: "handshakeReject", error: { code: "HEARTH_PEER_AUTH_FAILED", message: "handshake refused" } });
  });

  it("an honest hello with a guessed proof is refused with the very same message (4401)", async () => {
    const outcome = await rawClient({
      script: async (socket, received) => {
        socket.send(encodeFrame(attackerHello()));
        await waitFor(() => received.length > 0, 5_000, "the server's hello", 5);
        const serverHello = received[0] as HelloMessage;
        // The server's hello names the certificate it presented in TLS, and proves nothing.
        expect(serverHello.certFingerprint).toBe(serverIdentity.fingerprintHex);
        expect(Object.keys(serverHello)).not.toContain("proof");
        socket.send(encodeFrame({ type: "authProof", proof: new Uint8Array(32) }));
      },
    });
    expect(outcome.closeCode).toBe(4401);
    expect(outcome.received[1]).toEqual({ type: "handshakeReject", error: { code: "HEARTH_PEER_AUTH_FAILED", message: "handshake refused" } });
  });

  it("a non-member learns neither the server's software version nor its capabilities, whatever proof it sends", async () => {
    const info = { software: "1.0.0", capabilities: ["streams"] };
    // A wrong proof is refused at the proof (4401), with or without info; an authConfirm where
    // the proof belongs is out of order (1002).
    const attempts: Array<[PeerMessage, number]> = [
      [{ type: "authProof", proof: new Uint8Array(randomBytes(32)) }, 4401],
      // Volunteering its own info does not buy any in return.
      [{ type: "authProof", proof: new Uint8Array(randomBytes(32)), info }, 4401],
      [{ type: "authConfirm", proof: new Uint8Array(randomBytes(32)), info }, 1002],
    ];
    for (const [attempt, closeCode] of attempts) {
      const outcome = await rawClient({
        script: async (socket, received) => {
          socket.send(encodeFrame(attackerHello()));
          await waitFor(() => received.length > 0, 5_000, "the server's hello", 5);
          socket.send(encodeFrame(attempt));
        },
      });
      expect(outcome.closeCode, attempt.type).toBe(closeCode);
      expect(outcome.rawFrames.length).toBeGreaterThan(0);
      for (const frame of outcome.rawFrames) {
        expect(frame.includes(SERVER_SOFTWARE)).toBe(false);
        expect(frame.includes(SERVER_CAPABILITY)).toBe(false);
      }
      for (const message of outcome.received) {
        expect(["hello", "handshakeReject"]).toContain(message.type);
        expect(Object.keys(message).sort()).toEqual(message.type === "hello" ? ["certFingerprint", "nodeId", "nonce", "protocol", "type"] : ["error", "type"]);
      }
    }
  });

  it("a recorded handshake replayed with a stale proof fails: the proof is bound to the server's fresh nonce", async () => {
    // First session: learn what a (wrong) proof looks like; second: replay the same frames.
    const hello = encodeFrame(attackerHello());
    const proof = encodeFrame({ type: "authProof", proof: new Uint8Array(randomBytes(32)) });
    const nonces: Uint8Array[] = [];
    for (let session = 0; session < 2; session++) {
      const outcome = await rawClient({
        script: async (socket, received) => {
          socket.send(hello);
          await waitFor(() => received.length > 0, 5_000, "the server's hello", 5);
          nonces.push((received[0] as HelloMessage).nonce);
          socket.send(proof);
        },
      });
      expect(outcome.closeCode).toBe(4401);
    }
    expect(fingerprintToHex(nonces[0]!)).not.toBe(fingerprintToHex(nonces[1]!));
  });

  it("a client that says nothing is closed at the handshake deadline (4408)", async () => {
    const started = Date.now();
    const outcome = await rawClient();
    expect(outcome.closeCode).toBe(4408);
    expect(Date.now() - started).toBeGreaterThanOrEqual(CONFIG.handshakeTimeoutMs - 50);
  });

  it("thousands of random and mutated frames never get past the refusal codes", async () => {
    const valid = encodeFrame(attackerHello());
    const frameArbitrary = fc.oneof(
      fc.uint8Array({ minLength: 1, maxLength: 300 }),
      fc.anything({ maxDepth: 4 }).map((value) => {
        try {
          return new Uint8Array(loosePackr.pack(value));
        } catch {
          return new Uint8Array([0xc1]);
        }
      }),
      // Bit flips and cuts of a valid hello reach deeper into the decoder and the schema.
      fc.tuple(fc.nat(valid.byteLength - 1), fc.integer({ min: 1, max: 255 }), fc.boolean()).map(([index, mask, cut]) => {
        const copy = new Uint8Array(valid);
        copy[index] = copy[index]! ^ mask;
        return cut ? copy.subarray(0, index + 1) : copy;
      }),
    );
    // Each connection gets a burst of frames: only the first matters, the rest test that a
    // closing link ignores what follows. 2 000 frames over 200 TLS connections.
    const bursts = fc.sample(fc.array(frameArbitrary, { minLength: 10, maxLength: 10 }), { numRuns: 200, seed: 20_240_601 });
    const codes = new Map<number, number>();
    // Five at a time: below the listener's cap on handshakes in progress.
    for (let index = 0; index < bursts.length; index += 5) {
      const outcomes = await Promise.all(bursts.slice(index, index + 5).map((burst) => sendFrames(burst)));
      for (const outcome of outcomes) {
        expect(outcome.status).toBeUndefined();
        expect(REFUSAL_CODES.has(outcome.closeCode!), `unexpected close code ${outcome.closeCode}`).toBe(true);
        codes.set(outcome.closeCode!, (codes.get(outcome.closeCode!) ?? 0) + 1);
      }
    }
    expect(codes.get(1007)).toBeGreaterThan(0);
  }, 60_000);

  it("no handshake slot leaks, and a member still connects after all of the above", async () => {
    await sleep(100);
    expect(server.server!.pendingHandshakes).toBe(0);
    expect(failures.length).toBeGreaterThan(200);
    expect(failures.every((event) => event.direction === "inbound")).toBe(true);
    await expectMemberStillConnects();
  });
});

describe("an authenticated member that breaks the protocol loses its link, with the documented code", () => {
  beforeAll(() => {
    server.handleStream("test.sink", () => undefined);
    server.handleRequest("test.hang", () => new Promise(() => undefined));
  });

  const waitForAcceptance = (received: PeerMessage[], streamId: number): Promise<number> =>
    waitForValue(
      () => {
        const credit = received.find((message) => message.type === "streamCredit" && message.streamId === streamId);
        return credit?.type === "streamCredit" && credit.credit;
      },
      5_000,
      `stream ${streamId} to be accepted`,
      5,
    );

  it("stream data beyond the granted credit: 1008", async () => {
    const outcome = await memberClient(async (send, received) => {
      send({ type: "streamOpen", streamId: 1, purpose: "test.sink", credit: 1024 });
      const credit = await waitForAcceptance(received, 1);
      expect(credit).toBe(CONFIG.streamWindowBytes);
      const chunk = new Uint8Array(CONFIG.maxStreamChunkBytes);
      for (let seq = 0; seq * chunk.byteLength <= credit; seq++) send({ type: "streamData", streamId: 1, seq, bytes: chunk });
    });
    expect(outcome.closeCode).toBe(1008);
  });

  it("a gap in a stream's chunk sequence: 1002", async () => {
    const outcome = await memberClient(async (send, received) => {
      send({ type: "streamOpen", streamId: 1, purpose: "test.sink", credit: 1024 });
      await waitForAcceptance(received, 1);
      send({ type: "streamData", streamId: 1, seq: 0, bytes: new Uint8Array(10) });
      send({ type: "streamData", streamId: 1, seq: 2, bytes: new Uint8Array(10) });
    });
    expect(outcome.closeCode).toBe(1002);
  });

  it("a stream id of the responder's parity, or a reused one: 1002", async () => {
    expect((await memberClient((send) => send({ type: "streamOpen", streamId: 2, purpose: "test.sink", credit: 0 }))).closeCode).toBe(1002);
    const reused = await memberClient(async (send, received) => {
      send({ type: "streamOpen", streamId: 3, purpose: "test.sink", credit: 0 });
      await waitForAcceptance(received, 3);
      send({ type: "streamOpen", streamId: 1, purpose: "test.sink", credit: 0 });
    });
    expect(reused.closeCode).toBe(1002);
  });

  it("traffic for streams that were never opened: answered with resets, then 4404 when it persists", async () => {
    const outcome = await memberClient((send) => {
      for (let index = 0; index <= CONFIG.maxUnknownStreamMessages; index++) send({ type: "streamCredit", streamId: 1001 + 2 * index, credit: 1 });
    });
    expect(outcome.closeCode).toBe(4404);
    const resets = outcome.received.filter((message) => message.type === "streamReset");
    expect(resets).toHaveLength(CONFIG.maxUnknownStreamMessages);
    expect(resets[0]).toMatchObject({ streamId: 1001, error: { code: "HEARTH_PEER_UNKNOWN_STREAM" } });
  });

  it("a request id reused while in flight: 1002; a second handshake message: 1002; an invalid frame: 1007", async () => {
    const reused = await memberClient((send) => {
      send({ type: "request", id: 7, method: "test.hang", payload: null });
      send({ type: "request", id: 7, method: "test.hang", payload: null });
    });
    expect(reused.closeCode).toBe(1002);
    expect((await memberClient((send) => send(encodeFrame(attackerHello())))).closeCode).toBe(1002);
    expect((await memberClient((send) => send(new Uint8Array([0x81, 0xa4, 0x74, 0x79, 0x70, 0x65, 0xc1])))).closeCode).toBe(1007);
  });

  it("yet heartbeats and unknown methods are answered normally before that", async () => {
    const outcome = await memberClient(async (send, received) => {
      send({ type: "heartbeat", seq: 41, sentAt: 123.5 });
      send({ type: "request", id: 1, method: "test.noSuchThing", payload: null });
      await waitFor(() => received.some((message) => message.type === "responseError"), 5_000, "the error reply", 5);
      send(new Uint8Array(CONFIG.maxFrameBytes + 10));
    });
    expect(outcome.closeCode).toBe(1009);
    expect(outcome.received).toContainEqual({ type: "heartbeatAck", seq: 41, sentAt: 123.5 });
    expect(outcome.received).toContainEqual(expect.objectContaining({ type: "responseError", id: 1, error: expect.objectContaining({ code: "HEARTH_NOT_FOUND" }) }));
  });
});

describe("listener limits", () => {
  it("a malformed upgrade that only ws itself catches is refused without leaking a handshake slot", async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const request = https.request({
        host: "127.0.0.1",
        port: port(),
        path: PEER_LINK_PATH,
        rejectUnauthorized: false,
        localAddress: freshAddress(),
        ...attacker.tlsCredentials(),
        headers: {
          connection: "Upgrade",
          upgrade: "websocket",
          "sec-websocket-version": "13",
          "sec-websocket-key": randomBytes(16).toString("base64"),
          "sec-websocket-protocol": `${PEER_SUBPROTOCOL}, ${PEER_SUBPROTOCOL}`,
        },
      });
      request.on("response", (response) => {
        response.resume();
        resolve(response.statusCode ?? 0);
      });
      request.on("upgrade", () => resolve(101));
      request.on("error", reject);
      request.end();
    });
    expect(status).toBe(400);
    expect(server.server!.pendingHandshakes).toBe(0);
  });

  it("handshakes in progress are capped: one more than the cap gets 503 until a slot frees", async () => {
    const silent = Array.from({ length: CONFIG.maxPendingHandshakes }, () => rawClient());
    await waitFor(() => server.server!.pendingHandshakes >= CONFIG.maxPendingHandshakes, 5_000, "every handshake slot to be taken", 5);
    expect((await rawClient()).status).toBe(503);
    for (const outcome of await Promise.all(silent)) expect(outcome.closeCode).toBe(4408);
    expect(server.server!.pendingHandshakes).toBe(0);
  });
});

describe("rate limiting", () => {
  it("an address that keeps failing is refused with 429, other addresses are not", async () => {
    const noisy = freshAddress();
    for (let attempt = 0; attempt < CONFIG.maxFailedAttempts; attempt++) {
      expect((await sendFrames([randomBytes(20)], noisy)).closeCode).toBe(1007);
    }
    const blocked = await rawClient({ localAddress: noisy });
    expect(blocked.status).toBe(429);
    expect(server.server!.limiter.isBlocked(noisy)).toBe(true);
    // Even a well-formed attempt from the blocked address is refused before any WebSocket or handshake work.
    expect((await sendFrames([encodeFrame(attackerHello())], noisy)).status).toBe(429);
    // A neighbour is unaffected.
    expect((await sendFrames([randomBytes(20)])).closeCode).toBe(1007);
    await expectMemberStillConnects();
  });
});
