/**
 * Peer links end to end on loopback: real identities and memberships on disk, real TLS 1.3
 * WebSockets between PeerLinkManagers in this process, and a TCP "cable" that can be cut or
 * reset to play a dead network. Timings are scaled down through PeerConfig (100 ms heartbeat,
 * 600 ms silence timeout) so failures are detected in well under a second.
 *
 * Imports the TypeScript sources: nothing here runs in a child process.
 */

import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_PEER } from "../../daemon/config/defaults.js";
import type { PeerConfig } from "../../daemon/config/defaults.js";
import { ClusterMembership } from "../../daemon/identity/ClusterMembership.js";
import { NodeIdentity } from "../../daemon/identity/NodeIdentity.js";
import { PeerLinkManager } from "../../daemon/peers/PeerLinkManager.js";
import type { HandshakeFailedEvent, LocalPeerState, PeerDownEvent } from "../../daemon/peers/PeerLinkManager.js";
import type { PeerStream } from "../../daemon/peers/PeerStream.js";
import { HearthError } from "../../protocol/errors.js";
import type { PeerStateMessage } from "../../protocol/peer/messages.js";
import { waitFor } from "../support/wait.js";
import { rejectionOf } from "../support/thrown.js";

const FAST: Partial<PeerConfig> = {
  host: "127.0.0.1",
  port: 0,
  heartbeatIntervalMs: 100,
  heartbeatTimeoutMs: 600,
  handshakeTimeoutMs: 2_000,
  closeGraceMs: 200,
  dialTimeoutMs: 1_000,
  dialBackoffInitialMs: 50,
  dialBackoffMaxMs: 300,
  requestTimeoutMs: 5_000,
  // Every node here dials from 127.0.0.1; the limiter has its own test in peer-link-hostile.
  maxFailedAttempts: 10_000,
};

interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

interface TestNode {
  name: string;
  manager: PeerLinkManager;
  identity: NodeIdentity;
  membership: ClusterMembership;
  dataDir: string;
  port: number;
  logs: LogLine[];
  logText: () => string;
  up: string[];
  down: PeerDownEvent[];
  failed: HandshakeFailedEvent[];
  states: Array<{ nodeId: string; state: PeerStateMessage }>;
}

const nodes: TestNode[] = [];

async function startNode(name: string, cluster: { token?: string }, overrides: Partial<PeerConfig> = {}): Promise<TestNode> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), `hearth-peer-${name}-`));
  const identity = await NodeIdentity.loadOrCreate(dataDir);
  const membership =
    cluster.token === undefined ? (await ClusterMembership.init(dataDir)).membership : (await ClusterMembership.join(dataDir, cluster.token)).membership;
  const raw: string[] = [];
  const logs: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      const text = chunk.toString("utf8");
      raw.push(text);
      for (const line of text.split("\n").filter((entry) => entry !== "")) logs.push(JSON.parse(line) as LogLine);
      callback();
    },
  });
  const manager = new PeerLinkManager({
    identity,
    membership,
    config: { ...DEFAULT_PEER, ...FAST, ...overrides },
    logger: pino({ level: "debug", base: { node: name } }, sink),
    softwareVersion: "0.1.0-test",
    capabilities: ["streams"],
  });
  const node: TestNode = {
    name,
    manager,
    identity,
    membership,
    dataDir,
    port: 0,
    logs,
    logText: () => raw.join(""),
    up: [],
    down: [],
    failed: [],
    states: [],
  };
  manager.on("up", (link) => node.up.push(link.peerNodeId!));
  manager.on("down", (event) => node.down.push(event));
  manager.on("handshakeFailed", (event) => node.failed.push(event));
  manager.on("state", (nodeId, state) => node.states.push({ nodeId, state }));
  node.port = (await manager.start()).port;
  nodes.push(node);
  return node;
}

async function startCluster(count: number, overrides: Partial<PeerConfig> = {}): Promise<TestNode[]> {
  const first = await startNode("n0", {}, overrides);
  const token = first.membership.joinToken();
  const rest = await Promise.all(Array.from({ length: count - 1 }, (_, index) => startNode(`n${index + 1}`, { token }, overrides)));
  return [first, ...rest];
}

async function stopNode(node: TestNode): Promise<void> {
  const index = nodes.indexOf(node);
  if (index >= 0) nodes.splice(index, 1);
  await node.manager.stop();
  fs.rmSync(node.dataDir, { recursive: true, force: true });
}

afterEach(async () => {
  await Promise.all([...nodes].map((node) => stopNode(node)));
});

/** Nodes shared by a describe block live until its afterAll, not the next afterEach. */
function releaseFromAfterEach(...shared: TestNode[]): void {
  for (const node of shared) nodes.splice(nodes.indexOf(node), 1);
}

const linked = (a: TestNode, b: TestNode): boolean => a.manager.link(b.identity.nodeId) !== undefined && b.manager.link(a.identity.nodeId) !== undefined;
const target = (node: TestNode): { host: string; port: number } => ({ host: "127.0.0.1", port: node.port });

/**
 * A TCP relay standing in for the network between two nodes. `cut()` silently stops moving
 * bytes without closing anything (a pulled cable, a frozen host); `reset()` kills the
 * connections with RST (a crashed host); `restore()` lets new connections through again.
 */
class Cable {
  readonly #server: net.Server;
  readonly #pairs = new Set<[net.Socket, net.Socket]>();
  #cut = false;

  constructor(targetPort: number) {
    this.#server = net.createServer((inbound) => {
      inbound.on("error", () => undefined);
      if (this.#cut) {
        // Like SYNs into a dead cable: nothing ever answers.
        inbound.pause();
        this.#pairs.add([inbound, inbound]);
        return;
      }
      const outbound = net.connect(targetPort, "127.0.0.1");
      outbound.on("error", () => undefined);
      inbound.pipe(outbound);
      outbound.pipe(inbound);
      const pair: [net.Socket, net.Socket] = [inbound, outbound];
      this.#pairs.add(pair);
      const drop = (): void => {
        if (this.#cut) return;
        inbound.destroy();
        outbound.destroy();
        this.#pairs.delete(pair);
      };
      inbound.on("close", drop);
      outbound.on("close", drop);
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.#server.listen(0, "127.0.0.1", resolve));
    return (this.#server.address() as net.AddressInfo).port;
  }

  cut(): void {
    this.#cut = true;
    for (const [a, b] of this.#pairs) {
      a.unpipe(b);
      b.unpipe(a);
      a.pause();
      b.pause();
    }
  }

  reset(): void {
    for (const [a, b] of this.#pairs) {
      a.resetAndDestroy();
      b.resetAndDestroy();
    }
    this.#pairs.clear();
  }

  restore(): void {
    for (const [a, b] of this.#pairs) {
      a.destroy();
      b.destroy();
    }
    this.#pairs.clear();
    this.#cut = false;
  }

  async close(): Promise<void> {
    this.restore();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

function sampleState(queueDepth: number): LocalPeerState {
  return {
    cpuCores: 2,
    ramTotalBytes: 24 * 1024 ** 3,
    ramFreeBytes: 20 * 1024 ** 3,
    gpu: { backend: null, devices: [], vramTotalBytes: 0, vramFreeBytes: 0 },
    modelsPresent: [{ id: "tiny", sizeBytes: 7_000_000, sha256: null }],
    modelsLoaded: [],
    queueDepth,
    speedScores: [],
  };
}

function readAll(stream: PeerStream): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.once("end", () => resolve(Buffer.concat(chunks)));
    stream.once("error", reject);
  });
}

const sha = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex");

describe("membership and authentication", () => {
  it("two members come up on both sides, each pinning the fingerprint the other presented", async () => {
    const [a, b] = await startCluster(2);
    a!.manager.connect(target(b!));
    await waitFor(() => linked(a!, b!), 5_000, "a and b linked", 5);

    const fromA = a!.manager.link(b!.identity.nodeId)!;
    const fromB = b!.manager.link(a!.identity.nodeId)!;
    expect(fromA.role).toBe("initiator");
    expect(fromB.role).toBe("responder");
    expect(fromA.peer?.peerFingerprintHex).toBe(b!.identity.fingerprintHex);
    expect(fromB.peer?.peerFingerprintHex).toBe(a!.identity.fingerprintHex);
    expect(fromA.peer?.protocol).toEqual({ major: 1, minor: 0 });
    expect(fromB.peer?.peerSoftwareVersion).toBe("0.1.0-test");
    expect(fromB.peer?.peerCapabilities).toEqual(["streams"]);
    expect(a!.up).toEqual([b!.identity.nodeId]);
    expect(b!.up).toEqual([a!.identity.nodeId]);

    // Heartbeat acks give an RTT, and heartbeats a recent "last heard" time.
    await waitFor(() => fromA.rttMs !== undefined && fromB.rttMs !== undefined, 5_000, "RTT measured", 5);
    expect(fromA.rttMs!).toBeGreaterThanOrEqual(0);
    expect(fromA.rttMs!).toBeLessThan(500);
    expect(Date.now() - fromB.lastHeartbeatAt!).toBeLessThan(500);
  });

  it("state snapshots reach every peer, newest wins, and a peer that connects later gets the current one", async () => {
    const [a, b, c] = await startCluster(3);
    a!.manager.publishState(sampleState(1));
    a!.manager.connect(target(b!));
    await waitFor(() => b!.states.length === 1, 5_000, "b has a's state", 5);
    expect(b!.states[0]).toMatchObject({ nodeId: a!.identity.nodeId, state: { type: "peerState", seq: 1, queueDepth: 1, modelsPresent: [{ id: "tiny" }] } });

    a!.manager.publishState(sampleState(5));
    await waitFor(() => b!.states.length === 2, 5_000, "b has the update", 5);
    expect(b!.manager.link(a!.identity.nodeId)?.peerState?.queueDepth).toBe(5);

    c!.manager.connect(target(a!));
    await waitFor(() => c!.states.length === 1, 5_000, "c has a's current state", 5);
    expect(c!.states[0]?.state).toMatchObject({ seq: 2, queueDepth: 5 });
  });

  it("a node with another cluster's secret is never up anywhere; both sides report the refusal and why, and no log holds a secret", async () => {
    const [a, b] = await startCluster(2);
    const outsider = await startNode("outsider", {});
    a!.manager.connect(target(b!));
    outsider.manager.connect(target(a!));
    a!.manager.connect(target(outsider));
    await waitFor(() => outsider.failed.length >= 3 && a!.failed.length >= 3, 8_000, "repeated refusals in both directions", 5);
    await waitFor(() => linked(a!, b!), 5_000, "members linked", 5);

    expect(a!.up).toEqual([b!.identity.nodeId]);
    expect(outsider.up).toEqual([]);
    expect(outsider.manager.connectedNodeIds()).toEqual([]);
    expect(a!.manager.link(outsider.identity.nodeId)).toBeUndefined();
    for (const event of [...outsider.failed, ...a!.failed]) expect(event.code).toBe("HEARTH_PEER_AUTH_FAILED");
    // What `hearth doctor` will show for the target: why it never came up.
    expect(outsider.manager.dialTargets()).toEqual([
      expect.objectContaining({ linked: false, lastFailure: expect.objectContaining({ code: "HEARTH_PEER_AUTH_FAILED" }) }),
    ]);

    // The responder knows exactly why; the initiator only hears the generic refusal.
    expect(a!.failed).toContainEqual(
      expect.objectContaining({ direction: "inbound", address: "127.0.0.1", code: "HEARTH_PEER_AUTH_FAILED", reason: expect.stringContaining("does not hold this cluster's secret") }),
    );
    expect(outsider.failed).toContainEqual(
      expect.objectContaining({ direction: "outbound", address: `127.0.0.1:${a!.port}`, code: "HEARTH_PEER_AUTH_FAILED", reason: expect.stringContaining("refused") }),
    );

    // Redaction: what the logs must not contain is the behaviour here, so the log text is searched.
    for (const node of [a!, outsider]) {
      const text = node.logText();
      for (const membership of [a!.membership, outsider.membership]) {
        expect(text).not.toContain(Buffer.from(membership.secret).toString("hex"));
        expect(text).not.toContain(Buffer.from(membership.secret).toString("base64"));
        expect(text).not.toContain(membership.joinToken());
      }
    }
  });

  it("dialling a static address that turns out to be this node itself is refused, never linked", async () => {
    const [a] = await startCluster(1);
    a!.manager.connect({ host: "127.0.0.1", port: a!.port });
    await waitFor(() => a!.failed.length >= 2, 5_000, "self-dial refused", 5);
    expect(a!.manager.connectedNodeIds()).toEqual([]);
    expect(a!.failed).toContainEqual(expect.objectContaining({ code: "HEARTH_PEER_AUTH_FAILED", reason: expect.stringContaining("this node itself") }));
  });

  it("a target whose node id hint does not match the node answering there is refused", async () => {
    const [a, b, c] = await startCluster(3);
    a!.manager.connect({ host: "127.0.0.1", port: b!.port, nodeId: c!.identity.nodeId });
    await waitFor(() => a!.failed.length >= 1, 5_000, "mismatch refused", 5);
    expect(a!.failed[0]).toMatchObject({ code: "HEARTH_PEER_AUTH_FAILED", nodeId: c!.identity.nodeId, reason: expect.stringContaining(`expected node ${c!.identity.nodeId}`) });
    expect(linked(a!, b!)).toBe(false);
  });
});

describe("exactly one link per pair", () => {
  it("when both sides dial at once, one link survives: the one initiated by the smaller node id", async () => {
    for (let round = 0; round < 3; round++) {
      const [a, b] = await startCluster(2);
      a!.manager.connect(target(b!));
      b!.manager.connect(target(a!));
      await waitFor(() => linked(a!, b!), 5_000, "linked", 5);
      // Let any second handshake finish and the duplicate rule run on both sides.
      await sleep(400);
      const fromA = a!.manager.link(b!.identity.nodeId)!;
      const fromB = b!.manager.link(a!.identity.nodeId)!;
      expect(a!.manager.linkCount(b!.identity.nodeId)).toBe(1);
      expect(b!.manager.linkCount(a!.identity.nodeId)).toBe(1);
      // Both ends of one link: complementary roles, the same initiator.
      expect(fromA.role).not.toBe(fromB.role);
      const initiatorSeenByA = fromA.role === "initiator" ? a!.identity.nodeId : b!.identity.nodeId;
      const initiatorSeenByB = fromB.role === "initiator" ? b!.identity.nodeId : a!.identity.nodeId;
      expect(initiatorSeenByA).toBe(initiatorSeenByB);
      const duplicates = [...a!.logs, ...b!.logs].filter((line) => line["errorCode"] === "HEARTH_PEER_DUPLICATE_LINK");
      if (duplicates.length > 0) expect(initiatorSeenByA).toBe([a!.identity.nodeId, b!.identity.nodeId].sort()[0]);
      // Never a flap: each side saw the peer come up once and never go down.
      expect(a!.up).toEqual([b!.identity.nodeId]);
      expect(b!.up).toEqual([a!.identity.nodeId]);
      expect(a!.down).toEqual([]);
      expect(b!.down).toEqual([]);
      b!.manager.handleRequest("test.ping", () => "pong");
      expect(await a!.manager.request(b!.identity.nodeId, "test.ping", null)).toBe("pong");
      await Promise.all([stopNode(a!), stopNode(b!)]);
    }
  });

  it("one node dialling the same peer by two addresses ends with one link and no flap", async () => {
    const [a, b] = await startCluster(2);
    const cable = new Cable(b!.port);
    const cablePort = await cable.listen();
    try {
      a!.manager.connect(target(b!));
      a!.manager.connect({ host: "127.0.0.1", port: cablePort });
      await waitFor(() => linked(a!, b!), 5_000, "linked", 5);
      await waitFor(() => a!.manager.linkCount(b!.identity.nodeId) === 1 && b!.manager.linkCount(a!.identity.nodeId) === 1, 5_000, "duplicates resolved", 5);
      await sleep(400);
      expect(a!.manager.linkCount(b!.identity.nodeId)).toBe(1);
      expect(b!.manager.linkCount(a!.identity.nodeId)).toBe(1);
      expect(a!.down).toEqual([]);
      expect(b!.down).toEqual([]);
      expect(a!.manager.link(b!.identity.nodeId)?.state).toBe("up");
    } finally {
      await cable.close();
    }
  });
});

describe("liveness", () => {
  it("the default timings meet the issue's targets: a silent peer is down within 10 s", () => {
    // Silence is measured from the last frame received, which is at most one heartbeat old.
    expect(DEFAULT_PEER.heartbeatTimeoutMs).toBeLessThanOrEqual(10_000);
    expect(DEFAULT_PEER.heartbeatTimeoutMs).toBeGreaterThanOrEqual(3 * DEFAULT_PEER.heartbeatIntervalMs);
    expect(DEFAULT_PEER.handshakeTimeoutMs + DEFAULT_PEER.dialTimeoutMs).toBeLessThan(60_000);
  });

  it("a cut link is down on both sides within the heartbeat timeout, then up again once restored", async () => {
    const [a, b] = await startCluster(2);
    const cable = new Cable(b!.port);
    const cablePort = await cable.listen();
    try {
      a!.manager.connect({ host: "127.0.0.1", port: cablePort });
      await waitFor(() => linked(a!, b!), 5_000, "linked through the cable", 5);
      await sleep(150);

      cable.cut();
      const elapsed = await waitFor(() => a!.down.length === 1 && b!.down.length === 1, 3_000, "both sides see the peer down", 5);
      // Detected by silence, not by a reset: no sooner than the timeout, and promptly after it.
      expect(elapsed).toBeGreaterThanOrEqual(600 - 150);
      expect(elapsed).toBeLessThan(600 + 400);
      expect(a!.down[0]?.close).toMatchObject({ code: 4408, errorCode: "HEARTH_PEER_TIMEOUT", by: "local", wasUp: true });
      expect(b!.down[0]?.close).toMatchObject({ code: 4408, errorCode: "HEARTH_PEER_TIMEOUT", by: "local", wasUp: true });

      cable.restore();
      await waitFor(() => linked(a!, b!), 5_000, "redialled with backoff and up again", 5);
      expect(a!.up).toEqual([b!.identity.nodeId, b!.identity.nodeId]);
      expect(b!.up).toEqual([a!.identity.nodeId, a!.identity.nodeId]);
    } finally {
      await cable.close();
    }
  });

  it("a crashed peer (connection reset) is down at once, and requests and streams in flight fail cleanly", async () => {
    const [a, b] = await startCluster(2);
    const cable = new Cable(b!.port);
    const cablePort = await cable.listen();
    try {
      b!.manager.handleRequest("test.never", () => new Promise(() => undefined));
      b!.manager.handleStream("test.hold", () => undefined);
      a!.manager.connect({ host: "127.0.0.1", port: cablePort });
      await waitFor(() => linked(a!, b!), 5_000, "linked", 5);
      const pending = rejectionOf(a!.manager.request(b!.identity.nodeId, "test.never", null));
      const stream = await a!.manager.openStream(b!.identity.nodeId, "test.hold");
      const streamError = new Promise<unknown>((resolve) => stream.once("error", resolve));

      cable.reset();
      const elapsed = await waitFor(() => a!.down.length === 1, 2_000, "a sees b down", 5);
      expect(elapsed).toBeLessThan(300);
      expect(a!.down[0]?.close.errorCode).toBe("HEARTH_PEER_UNAVAILABLE");
      expect((await pending).code).toBe("HEARTH_PEER_UNAVAILABLE");
      expect(((await streamError) as HearthError).code).toBe("HEARTH_PEER_UNAVAILABLE");
    } finally {
      await cable.close();
    }
  });

  it("a peer that shuts down closes its links with 1001 and is down on the others at once", async () => {
    const [a, b, c] = await startCluster(3);
    a!.manager.connect(target(b!));
    c!.manager.connect(target(b!));
    await waitFor(() => linked(a!, b!) && linked(c!, b!), 5_000, "linked", 5);
    const started = performance.now();
    await stopNode(b!);
    await waitFor(() => a!.down.length === 1 && c!.down.length === 1, 2_000, "a and c see b down", 5);
    expect(performance.now() - started).toBeLessThan(1_000);
    for (const node of [a!, c!]) {
      expect(node.down[0]).toMatchObject({ nodeId: b!.identity.nodeId, close: { code: 1001, errorCode: "HEARTH_SHUTTING_DOWN", by: "remote" } });
    }
    // The dialler keeps trying (and failing) with backoff, without ever crashing...
    await waitFor(() => a!.failed.some((event) => event.code === "HEARTH_PEER_UNAVAILABLE"), 3_000, "a redials and fails", 5);
    // ...until the target is removed.
    a!.manager.disconnect(target(b!));
    const failuresAtRemoval = a!.failed.length;
    await sleep(700);
    expect(a!.failed.length).toBeLessThanOrEqual(failuresAtRemoval + 1);
    expect(a!.manager.dialTargets()).toEqual([]);
  });

  it("a restarted node comes back with the same node id and is up again", async () => {
    const [a, b] = await startCluster(2);
    const bPort = b!.port;
    a!.manager.connect(target(b!));
    await waitFor(() => linked(a!, b!), 5_000, "linked", 5);
    const bNodeId = b!.identity.nodeId;
    const bDir = b!.dataDir;
    // Stop without deleting the data dir, then start again from it on the same port.
    nodes.splice(nodes.indexOf(b!), 1);
    await b!.manager.stop();
    await waitFor(() => a!.down.length === 1, 5_000, "a sees b down", 5);

    const identity = await NodeIdentity.loadOrCreate(bDir);
    const membership = (await ClusterMembership.load(bDir))!;
    expect(identity.nodeId).toBe(bNodeId);
    const restarted = new PeerLinkManager({
      identity,
      membership,
      config: { ...DEFAULT_PEER, ...FAST, port: bPort },
      logger: pino({ level: "silent" }),
    });
    try {
      await restarted.start();
      await waitFor(() => a!.up.length === 2 && restarted.link(a!.identity.nodeId) !== undefined, 5_000, "a sees b up again", 5);
      expect(a!.up).toEqual([bNodeId, bNodeId]);
    } finally {
      await restarted.stop();
      fs.rmSync(bDir, { recursive: true, force: true });
    }
  });
});

describe("requests", () => {
  let a: TestNode;
  let b: TestNode;
  const aborted: Array<{ method: string; code: string }> = [];

  beforeAll(async () => {
    [a, b] = (await startCluster(2)) as [TestNode, TestNode];
    releaseFromAfterEach(a, b);
    b.manager.handleRequest("test.echo", (payload) => payload);
    b.manager.handleRequest("test.fail", () => {
      throw new HearthError("HEARTH_MODEL_NOT_FOUND", "no model called ghost", { param: "model" });
    });
    b.manager.handleRequest("test.crash", () => {
      throw new Error("secret internal detail /etc/passwd");
    });
    b.manager.handleRequest("test.date", () => new Date());
    const waitForAbort = (method: string) => (_payload: unknown, context: { signal: AbortSignal }) =>
      new Promise<never>((_resolve, reject) => {
        context.signal.addEventListener("abort", () => {
          aborted.push({ method, code: (context.signal.reason as HearthError).code });
          reject(context.signal.reason as Error);
        });
      });
    b.manager.handleRequest("test.slow", waitForAbort("test.slow"));
    b.manager.handleRequest("test.cancellable", waitForAbort("test.cancellable"));
    a.manager.connect(target(b));
    await waitFor(() => linked(a, b), 5_000, "linked", 5);
  });

  afterAll(async () => {
    await Promise.all([stopNode(a), stopNode(b)]);
  });

  it("round-trips plain data, bytes included", async () => {
    const payload = { text: "héllo", list: [1, 2.5, null, true], nested: { bytes: new Uint8Array([0, 1, 254, 255]) }, big: 2 ** 52 };
    expect(await a.manager.request(b.identity.nodeId, "test.echo", payload)).toEqual(payload);
    expect(await a.manager.request(b.identity.nodeId, "test.echo", "x".repeat(100_000))).toHaveLength(100_000);
  });

  it("a handler's HearthError keeps its code and param across the link", async () => {
    const error = await rejectionOf(a.manager.request(b.identity.nodeId, "test.fail", {}));
    expect(error.code).toBe("HEARTH_MODEL_NOT_FOUND");
    expect(error.param).toBe("model");
    expect(error.message).toBe("no model called ghost");
  });

  it("an unknown method is HEARTH_NOT_FOUND and leaves the link up", async () => {
    expect((await rejectionOf(a.manager.request(b.identity.nodeId, "test.nothingHere", {}))).code).toBe("HEARTH_NOT_FOUND");
    expect(a.manager.link(b.identity.nodeId)?.state).toBe("up");
  });

  it("a handler bug is HEARTH_INTERNAL without leaking its message", async () => {
    const error = await rejectionOf(a.manager.request(b.identity.nodeId, "test.crash", {}));
    expect(error.code).toBe("HEARTH_INTERNAL");
    expect(error.message).not.toContain("passwd");
  });

  it("a response that is not plain data becomes an error reply, not a broken link", async () => {
    const error = await rejectionOf(a.manager.request(b.identity.nodeId, "test.date", {}));
    expect(error.code).toBe("HEARTH_PEER_FRAME_INVALID");
    expect(a.manager.link(b.identity.nodeId)?.state).toBe("up");
  });

  it("sending a payload that is not plain data or too large fails locally, the link stays up", async () => {
    expect((await rejectionOf(a.manager.request(b.identity.nodeId, "test.echo", new Map([[1, 2]])))).code).toBe("HEARTH_PEER_FRAME_INVALID");
    expect((await rejectionOf(a.manager.request(b.identity.nodeId, "test.echo", "y".repeat(2 * 1024 * 1024)))).code).toBe("HEARTH_PEER_FRAME_TOO_LARGE");
    expect(await a.manager.request(b.identity.nodeId, "test.echo", 1)).toBe(1);
  });

  it("a request that times out is HEARTH_PEER_TIMEOUT, and the handler is told to stop", async () => {
    const started = performance.now();
    const error = await rejectionOf(a.manager.request(b.identity.nodeId, "test.slow", {}, { timeoutMs: 150 }));
    expect(error.code).toBe("HEARTH_PEER_TIMEOUT");
    expect(performance.now() - started).toBeLessThan(1_000);
    await waitFor(() => aborted.some((entry) => entry.method === "test.slow"), 5_000, "handler aborted", 5);
  });

  it("cancelling a request rejects it with HEARTH_CANCELLED and aborts the remote handler with the same code", async () => {
    const controller = new AbortController();
    const pending = a.manager.request(b.identity.nodeId, "test.cancellable", {}, { signal: controller.signal });
    await sleep(50);
    controller.abort();
    expect((await rejectionOf(pending)).code).toBe("HEARTH_CANCELLED");
    await waitFor(() => aborted.some((entry) => entry.method === "test.cancellable"), 5_000, "remote handler aborted", 5);
    expect(aborted.find((entry) => entry.method === "test.cancellable")?.code).toBe("HEARTH_CANCELLED");
    // Nothing is left in flight on either side.
    await waitFor(() => b.manager.link(a.identity.nodeId)!.inFlight.incomingRequests === 0, 5_000, "no requests in flight", 5);
    expect(a.manager.link(b.identity.nodeId)!.inFlight.outgoingRequests).toBe(0);
  });

  it("a request to a peer with no link is HEARTH_PEER_UNAVAILABLE", async () => {
    expect((await rejectionOf(a.manager.request("AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA", "test.echo", 1))).code).toBe(
      "HEARTH_PEER_UNAVAILABLE",
    );
  });

  it("many concurrent requests each get their own answer", async () => {
    const answers = await Promise.all(Array.from({ length: 200 }, (_, index) => a.manager.request(b.identity.nodeId, "test.echo", { index })));
    expect(answers).toEqual(Array.from({ length: 200 }, (_, index) => ({ index })));
  });
});

describe("streams", () => {
  const WINDOW = 64 * 1024;
  let a: TestNode;
  let b: TestNode;
  const held: PeerStream[] = [];
  const openOn = (node: TestNode, peer: TestNode): number => node.manager.link(peer.identity.nodeId)!.inFlight.streams;

  beforeAll(async () => {
    [a, b] = (await startCluster(2, { streamWindowBytes: WINDOW, maxStreamChunkBytes: 16 * 1024 })) as [TestNode, TestNode];
    releaseFromAfterEach(a, b);
    b.manager.handleStream("test.echo", (stream) => {
      stream.pipe(stream);
    });
    b.manager.handleStream("test.hold", (stream) => {
      held.push(stream);
      stream.on("error", () => undefined);
    });
    b.manager.handleStream("test.count", (stream) => {
      let total = 0;
      stream.on("data", (chunk: Buffer) => (total += chunk.byteLength));
      stream.on("end", () => stream.end(`got ${total} bytes`));
    });
    b.manager.handleStream("test.refuse", () => {
      throw new HearthError("HEARTH_QUEUE_FULL", "busy", { retryAfterSeconds: 2 });
    });
    b.manager.handleStream("test.slowAccept", async (_stream, meta) => {
      await sleep(100);
      if ((meta as { ok?: unknown } | undefined)?.ok !== true) throw new HearthError("HEARTH_INVALID_REQUEST", "meta.ok must be true", { param: "meta" });
    });
    a.manager.connect(target(b));
    await waitFor(() => linked(a, b), 5_000, "linked", 5);
  });

  afterAll(async () => {
    await Promise.all([stopNode(a), stopNode(b)]);
  });

  // Every test finishes or resets its streams: none may stay in either side's table.
  afterEach(async () => {
    await waitFor(() => openOn(a, b) === 0 && openOn(b, a) === 0, 2_000, `no stream left open (${openOn(a, b)} on a, ${openOn(b, a)} on b)`, 5);
  });

  it("carries megabytes both ways in order, through a 64 KiB window", async () => {
    const stream = await a.manager.openStream(b.identity.nodeId, "test.echo");
    const data = randomBytes(3 * 1024 * 1024 + 123);
    const echoed = readAll(stream);
    for (let offset = 0; offset < data.byteLength; offset += 100_000) stream.write(data.subarray(offset, offset + 100_000));
    stream.end();
    const back = await echoed;
    expect(back.byteLength).toBe(data.byteLength);
    expect(sha(back)).toBe(sha(data));
  });

  it("several streams at once stay separate", async () => {
    const payloads = [randomBytes(300_000), randomBytes(10), randomBytes(700_001)];
    const results = await Promise.all(
      payloads.map(async (payload) => {
        const stream = await a.manager.openStream(b.identity.nodeId, "test.echo");
        const back = readAll(stream);
        stream.end(payload);
        return back;
      }),
    );
    results.forEach((result, index) => expect(sha(result)).toBe(sha(payloads[index]!)));
  });

  it("a reader that does not read stops the sender at the window: nothing piles up beyond it", async () => {
    const before = held.length;
    const stream = await a.manager.openStream(b.identity.nodeId, "test.hold");
    await waitFor(() => held.length === before + 1, 5_000, "held", 5);
    const remote = held[held.length - 1]!;
    const data = randomBytes(1024 * 1024);
    let written = 0;
    for (let offset = 0; offset < data.byteLength; offset += 32 * 1024) {
      stream.write(data.subarray(offset, offset + 32 * 1024));
      written += 32 * 1024;
    }
    await waitFor(() => stream.sendCredit === 0, 5_000, "sender out of credit", 5);
    await sleep(200);
    // The receiver holds at most one window; the rest waits on the sender's side.
    expect(remote.readableLength).toBeLessThanOrEqual(WINDOW);
    expect(remote.readableLength).toBeGreaterThan(0);
    expect(stream.writableLength).toBeGreaterThanOrEqual(written - WINDOW - 32 * 1024);
    expect(stream.sendCredit).toBe(0);

    const received = readAll(remote);
    stream.end();
    expect(sha(await received)).toBe(sha(data));
    remote.end();
  });

  it("half-close: the opener ends, the acceptor still answers, then both sides forget the stream", async () => {
    const stream = await a.manager.openStream(b.identity.nodeId, "test.count");
    expect(openOn(a, b)).toBe(1);
    const answer = readAll(stream);
    stream.end(randomBytes(12_345));
    expect((await answer).toString()).toBe("got 12345 bytes");
    await waitFor(() => openOn(a, b) === 0 && openOn(b, a) === 0, 5_000, "released on both sides", 5);
  });

  it("a reset carries its error code to the other side and frees the stream", async () => {
    const before = held.length;
    const stream = await a.manager.openStream(b.identity.nodeId, "test.hold");
    await waitFor(() => held.length === before + 1, 5_000, "held", 5);
    const remote = held[held.length - 1]!;
    const remoteError = new Promise<unknown>((resolve) => remote.once("error", resolve));
    stream.on("error", () => undefined);
    stream.destroy(new HearthError("HEARTH_MODEL_LOAD_FAILED", "gave up"));
    const error = (await remoteError) as HearthError;
    expect(error).toBeInstanceOf(HearthError);
    expect(error.code).toBe("HEARTH_MODEL_LOAD_FAILED");
    expect(remote.destroyed).toBe(true);
    await waitFor(() => openOn(a, b) === 0 && openOn(b, a) === 0, 5_000, "released on both sides", 5);
  });

  it("refusals keep their codes: unknown purpose, a handler's error, invalid meta", async () => {
    expect((await rejectionOf(a.manager.openStream(b.identity.nodeId, "test.nowhere"))).code).toBe("HEARTH_NOT_FOUND");
    const refused = await rejectionOf(a.manager.openStream(b.identity.nodeId, "test.refuse"));
    expect(refused.code).toBe("HEARTH_QUEUE_FULL");
    expect(refused.retryAfterSeconds).toBe(2);
    expect((await rejectionOf(a.manager.openStream(b.identity.nodeId, "test.slowAccept", { meta: { ok: false } }))).code).toBe("HEARTH_INVALID_REQUEST");
    const accepted = await a.manager.openStream(b.identity.nodeId, "test.slowAccept", { meta: { ok: true } });
    accepted.destroy();
    expect(a.manager.link(b.identity.nodeId)?.state).toBe("up");
  });

  it("opening a stream the peer never accepts times out and tells the peer", async () => {
    let remote: PeerStream | undefined;
    b.manager.handleStream("test.never", (stream) => {
      remote = stream;
      return new Promise<void>(() => undefined);
    });
    const error = await rejectionOf(a.manager.openStream(b.identity.nodeId, "test.never", { timeoutMs: 150 }));
    expect(error.code).toBe("HEARTH_PEER_TIMEOUT");
    // The opener's reset reaches the acceptor, whose half-accepted stream ends with the same code.
    await waitFor(() => remote?.destroyed === true, 5_000, "acceptor's stream reset", 5);
    expect((remote!.errored as HearthError).code).toBe("HEARTH_PEER_TIMEOUT");
    await waitFor(() => openOn(a, b) === 0 && openOn(b, a) === 0, 5_000, "released on both sides", 5);
  });
});
