// The peer table (daemon/cluster/PeerTable.ts) driven event by event with an injected clock:
// states, how static addresses merge with the node found there, what a handshake failure
// changes, reported state and link metrics, inbound failures, and bounds.

import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { PeerTable } from "../../daemon/peers/PeerTable.js";
import type { DiscoveredPeer } from "../../daemon/discovery/PeerDiscovery.js";
import { nodeIdFromFingerprint } from "../../protocol/peer/identity.js";
import { peerStateMessage } from "../support/peerState.js";

function fingerprint(seed: string): Uint8Array {
  return new Uint8Array(createHash("sha256").update(seed).digest());
}
function nodeId(seed: string): string {
  return nodeIdFromFingerprint(fingerprint(seed));
}
function hex(seed: string): string {
  return Buffer.from(fingerprint(seed)).toString("hex");
}

const A = nodeId("a");
const B = nodeId("b");

function mdnsPeer(id: string, seed: string, addresses: { host: string; port: number }[], major = 1): DiscoveredPeer {
  return { source: "mdns", nodeId: id, fingerprint: hex(seed), protocolVersion: { major, minor: 0 }, addresses };
}
function staticPeer(host: string, port: number): DiscoveredPeer {
  return { source: "static", nodeId: undefined, fingerprint: undefined, protocolVersion: undefined, addresses: [{ host, port }] };
}

function clock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let time = start;
  return { now: () => time, advance: (ms) => (time += ms) };
}

describe("PeerTable states", () => {
  it("an mDNS sighting is a connecting peer with its advertised identity and addresses", () => {
    const table = new PeerTable();
    table.discovered(mdnsPeer(A, "a", [{ host: "192.168.1.2", port: 4328 }, { host: "fd00::2", port: 4328 }], 1));
    const [peer] = table.snapshot();
    expect(peer).toEqual({
      nodeId: A,
      fingerprint: hex("a"),
      addresses: ["192.168.1.2:4328", "[fd00::2]:4328"],
      protocolVersion: "1.0",
      softwareVersion: null,
      resources: null,
      models: null,
      loadedModels: null,
      queueDepth: null,
      speedScores: null,
      state: "connecting",
      rttMs: null,
      lastHeartbeatAgoMs: null,
      lastError: null,
      source: "mdns",
    });
  });

  it("goes connecting -> up -> down -> up, keeping its node id and clearing the error when up", () => {
    const table = new PeerTable();
    table.discovered(mdnsPeer(A, "a", [{ host: "10.0.0.2", port: 4328 }]));
    table.linkUp({ nodeId: A, fingerprint: hex("a"), softwareVersion: "0.2.0", protocolVersion: "1.0", dialedAddress: "10.0.0.2:4328" });
    expect(table.snapshot()[0]).toMatchObject({ state: "up", softwareVersion: "0.2.0", lastError: null });

    table.linkDown(A, { code: "HEARTH_PEER_TIMEOUT", message: "no frame from the peer for 9000 ms" });
    expect(table.snapshot()[0]).toMatchObject({ nodeId: A, state: "down", lastError: { code: "HEARTH_PEER_TIMEOUT", message: "no frame from the peer for 9000 ms" } });

    table.linkUp({ nodeId: A, fingerprint: hex("a"), softwareVersion: "0.2.0", protocolVersion: "1.0" });
    expect(table.snapshot()).toHaveLength(1);
    expect(table.snapshot()[0]).toMatchObject({ nodeId: A, state: "up", lastError: null });
  });

  it("a protocol major mismatch makes the peer incompatible", () => {
    const table = new PeerTable();
    table.discovered(mdnsPeer(A, "a", [{ host: "10.0.0.2", port: 4328 }], 2));
    table.handshakeFailed({ direction: "outbound", address: "10.0.0.2:4328", nodeId: A, code: "HEARTH_PEER_INCOMPATIBLE", reason: "peer speaks protocol 2.0" });
    expect(table.snapshot()[0]).toMatchObject({ state: "incompatible", protocolVersion: "2.0", lastError: { code: "HEARTH_PEER_INCOMPATIBLE" } });
  });

  it("a refused handshake makes a not-up peer down with the reason, and never up", () => {
    const table = new PeerTable();
    table.discovered(staticPeer("10.0.0.9", 4328));
    table.handshakeFailed({ direction: "outbound", address: "10.0.0.9:4328", nodeId: undefined, code: "HEARTH_PEER_AUTH_FAILED", reason: "the peer refused the handshake" });
    expect(table.snapshot()).toEqual([
      expect.objectContaining({ nodeId: null, addresses: ["10.0.0.9:4328"], state: "down", source: "static", lastError: { code: "HEARTH_PEER_AUTH_FAILED", message: "the peer refused the handshake" } }),
    ]);
  });

  it("a failed spare dial to a peer that is up does not mark it down", () => {
    const table = new PeerTable();
    table.discovered(mdnsPeer(A, "a", [{ host: "10.0.0.2", port: 4328 }, { host: "172.17.0.1", port: 4328 }]));
    table.linkUp({ nodeId: A, fingerprint: hex("a"), softwareVersion: "1", protocolVersion: "1.0", dialedAddress: "10.0.0.2:4328" });
    table.handshakeFailed({ direction: "outbound", address: "172.17.0.1:4328", nodeId: A, code: "HEARTH_PEER_TIMEOUT", reason: "did not answer" });
    expect(table.snapshot()[0]).toMatchObject({ state: "up", lastError: null });
  });
});

describe("PeerTable static addresses", () => {
  it("a static entry is known by address until a link shows who answers there, then merges into that node", () => {
    const table = new PeerTable();
    table.discovered(staticPeer("desktop.lan", 4328));
    expect(table.snapshot()).toEqual([expect.objectContaining({ nodeId: null, addresses: ["desktop.lan:4328"], state: "connecting", source: "static" })]);

    table.linkUp({ nodeId: B, fingerprint: hex("b"), softwareVersion: "1", protocolVersion: "1.0", dialedAddress: "desktop.lan:4328" });
    expect(table.snapshot()).toEqual([expect.objectContaining({ nodeId: B, fingerprint: hex("b"), addresses: ["desktop.lan:4328"], state: "up", source: "static" })]);
  });

  it("an inbound link first and the static address resolved later still make one peer, named static", () => {
    const table = new PeerTable();
    table.discovered(staticPeer("10.0.0.3", 4000));
    table.linkUp({ nodeId: B, fingerprint: hex("b"), softwareVersion: "1", protocolVersion: "1.0" });
    expect(table.snapshot()).toHaveLength(2);
    table.addressResolved("10.0.0.3:4000", B);
    expect(table.snapshot()).toEqual([expect.objectContaining({ nodeId: B, addresses: ["10.0.0.3:4000"], state: "up", source: "static" })]);
  });

  it("a peer that only ever called in is an inbound peer without addresses", () => {
    const table = new PeerTable();
    table.linkUp({ nodeId: B, fingerprint: hex("b"), softwareVersion: "1", protocolVersion: "1.0" });
    expect(table.snapshot()).toEqual([expect.objectContaining({ nodeId: B, addresses: [], state: "up", source: "inbound" })]);
  });

  it("after the merge, failures at the static address land on the node", () => {
    const table = new PeerTable();
    table.discovered(staticPeer("10.0.0.3", 4000));
    table.linkUp({ nodeId: B, fingerprint: hex("b"), softwareVersion: "1", protocolVersion: "1.0", dialedAddress: "10.0.0.3:4000" });
    table.linkDown(B, { code: "HEARTH_PEER_UNAVAILABLE", message: "socket error" });
    table.handshakeFailed({ direction: "outbound", address: "10.0.0.3:4000", nodeId: undefined, code: "HEARTH_PEER_UNAVAILABLE", reason: "connection refused" });
    expect(table.snapshot()).toEqual([expect.objectContaining({ nodeId: B, state: "down", lastError: { code: "HEARTH_PEER_UNAVAILABLE", message: "connection refused" } })]);
  });

  it("an address that now leads to another node moves to it", () => {
    const table = new PeerTable();
    table.discovered(staticPeer("10.0.0.3", 4000));
    table.addressResolved("10.0.0.3:4000", A);
    table.addressResolved("10.0.0.3:4000", B);
    const byId = Object.fromEntries(table.snapshot().map((peer) => [peer.nodeId, peer.addresses]));
    expect(byId).toEqual({ [A]: [], [B]: ["10.0.0.3:4000"] });
  });

  it("forgetAddress drops an address-only entry (a static entry that is this node)", () => {
    const table = new PeerTable();
    table.discovered(staticPeer("127.0.0.1", 4328));
    table.forgetAddress("127.0.0.1:4328");
    expect(table.snapshot()).toEqual([]);
  });

  it("the same static address seen twice is one entry", () => {
    const table = new PeerTable();
    table.discovered(staticPeer("10.0.0.3", 4000));
    table.discovered(staticPeer("10.0.0.3", 4000));
    expect(table.size).toBe(1);
  });
});

describe("PeerTable reported state and metrics", () => {
  it("shows the last snapshot a peer sent, with VRAM spread over its devices", () => {
    const table = new PeerTable();
    table.linkUp({ nodeId: A, fingerprint: hex("a"), softwareVersion: "1", protocolVersion: "1.0" });
    table.stateReported(A, peerStateMessage());
    expect(table.snapshot()[0]).toMatchObject({
      resources: {
        cpuCores: 8,
        ramTotalBytes: 32e9,
        ramFreeBytes: 20e9,
        gpus: [
          { name: "RTX A", vramTotalBytes: 13, vramFreeBytes: 6 },
          { name: "RTX B", vramTotalBytes: 12, vramFreeBytes: 5 },
        ],
        gpuBackend: "cuda",
        vramTotalBytes: 25,
        vramFreeBytes: 11,
      },
      models: [
        { id: "llama", sizeBytes: 1000, sha256: "ab".repeat(32) },
        { id: "new", sizeBytes: 5, sha256: null },
      ],
      loadedModels: ["llama"],
      queueDepth: 3,
      speedScores: { llama: 42.5 },
    });
  });

  it("accepts a restarted peer's snapshots although their seq starts again", () => {
    const table = new PeerTable();
    table.linkUp({ nodeId: A, fingerprint: hex("a"), softwareVersion: "1", protocolVersion: "1.0" });
    table.stateReported(A, peerStateMessage({ seq: 50, queueDepth: 9 }));
    table.linkDown(A, { code: "HEARTH_PEER_UNAVAILABLE", message: "gone" });
    table.linkUp({ nodeId: A, fingerprint: hex("a"), softwareVersion: "1", protocolVersion: "1.0" });
    table.stateReported(A, peerStateMessage({ seq: 1, queueDepth: 0 }));
    expect(table.snapshot()[0]?.queueDepth).toBe(0);
  });

  it("keeps the last reported state while a peer is down", () => {
    const table = new PeerTable();
    table.linkUp({ nodeId: A, fingerprint: hex("a"), softwareVersion: "1", protocolVersion: "1.0" });
    table.stateReported(A, peerStateMessage());
    table.linkDown(A, { code: "HEARTH_PEER_TIMEOUT", message: "silent" });
    expect(table.snapshot()[0]).toMatchObject({ state: "down", loadedModels: ["llama"] });
  });

  it("ignores state for a node it never heard of", () => {
    const table = new PeerTable();
    table.stateReported(A, peerStateMessage());
    expect(table.snapshot()).toEqual([]);
  });

  it("reports RTT and the time since the last heartbeat by the injected clock", () => {
    const time = clock();
    const table = new PeerTable({ now: time.now });
    table.linkUp({ nodeId: A, fingerprint: hex("a"), softwareVersion: "1", protocolVersion: "1.0" });
    table.linkMetrics(A, { rttMs: 1.23456, lastHeartbeatAt: time.now() });
    time.advance(1500);
    expect(table.snapshot()[0]).toMatchObject({ rttMs: 1.235, lastHeartbeatAgoMs: 1500 });
    // Missing metrics keep the last known values; the age keeps growing while down.
    table.linkDown(A, { code: "HEARTH_PEER_TIMEOUT", message: "silent" });
    table.linkMetrics(A, { rttMs: undefined, lastHeartbeatAt: undefined });
    time.advance(8500);
    expect(table.snapshot()[0]).toMatchObject({ rttMs: 1.235, lastHeartbeatAgoMs: 10_000 });
  });
});

describe("PeerTable inbound failures and bounds", () => {
  it("keeps inbound failures it cannot tie to a peer, counted per address and code, newest first", () => {
    const time = clock();
    const table = new PeerTable({ now: time.now, maxInboundFailures: 2 });
    const fail = (address: string, code: "HEARTH_PEER_AUTH_FAILED" | "HEARTH_PEER_INCOMPATIBLE"): void =>
      table.handshakeFailed({ direction: "inbound", address, nodeId: undefined, code, reason: "refused" });
    fail("10.0.0.5", "HEARTH_PEER_AUTH_FAILED");
    time.advance(10);
    fail("10.0.0.5", "HEARTH_PEER_AUTH_FAILED");
    time.advance(10);
    fail("10.0.0.6", "HEARTH_PEER_INCOMPATIBLE");
    expect(table.inboundFailures()).toEqual([
      { address: "10.0.0.6", code: "HEARTH_PEER_INCOMPATIBLE", reason: "refused", at: time.now(), count: 1 },
      { address: "10.0.0.5", code: "HEARTH_PEER_AUTH_FAILED", reason: "refused", at: time.now() - 10, count: 2 },
    ]);
    time.advance(10);
    fail("10.0.0.7", "HEARTH_PEER_AUTH_FAILED");
    expect(table.inboundFailures().map((failure) => failure.address)).toEqual(["10.0.0.7", "10.0.0.6"]);
    expect(table.snapshot()).toEqual([]);
  });

  it("stays within maxPeers, evicting address-only entries before known nodes and never an up peer", () => {
    const time = clock();
    const table = new PeerTable({ now: time.now, maxPeers: 3 });
    table.linkUp({ nodeId: A, fingerprint: hex("a"), softwareVersion: "1", protocolVersion: "1.0" });
    table.discovered(mdnsPeer(B, "b", [{ host: "10.0.0.2", port: 1 }]));
    for (let index = 0; index < 20; index++) {
      time.advance(1);
      table.discovered(staticPeer(`10.1.0.${index}`, 4328));
    }
    expect(table.size).toBe(3);
    const ids = table.snapshot().map((peer) => peer.nodeId);
    expect(ids).toContain(A);
    expect(ids).toContain(B);
    expect(table.snapshot().find((peer) => peer.nodeId === null)?.addresses).toEqual(["10.1.0.19:4328"]);
  });

  it("orders peers by node id, then address-only entries", () => {
    const table = new PeerTable();
    table.discovered(staticPeer("10.0.0.1", 1));
    table.linkUp({ nodeId: B, fingerprint: hex("b"), softwareVersion: "1", protocolVersion: "1.0" });
    table.linkUp({ nodeId: A, fingerprint: hex("a"), softwareVersion: "1", protocolVersion: "1.0" });
    expect(table.snapshot().map((peer) => peer.nodeId)).toEqual([[A, B].sort()[0], [A, B].sort()[1], null]);
  });
});
