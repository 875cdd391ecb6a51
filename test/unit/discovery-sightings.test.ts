/**
 * The expiry table behind mDNS discovery (daemon/discovery/PeerSightings.ts), driven by an
 * injected clock: goodbyes are not guaranteed, so silence must expire a peer by itself.
 */

import { describe, expect, it } from "vitest";
import type { PeerAddress } from "../../daemon/discovery/PeerDiscovery.js";
import { PeerSightings, type Sighting } from "../../daemon/discovery/PeerSightings.js";
import { fingerprintToHex, nodeIdFromFingerprint } from "../../protocol/peer/identity.js";

const EXPIRY_MS = 15_000;

function peer(seed: number): { nodeId: string; fingerprint: string } {
  const fingerprint = new Uint8Array(32).fill(seed);
  return { nodeId: nodeIdFromFingerprint(fingerprint), fingerprint: fingerprintToHex(fingerprint) };
}

const A = peer(1);
const B = peer(2);
const at = (host: string, port = 4328): PeerAddress => ({ host, port });

function sighting(who: { nodeId: string; fingerprint: string }, addresses: PeerAddress[], minor = 0, instance = who.nodeId.toLowerCase()): Sighting {
  return { instance, hint: { nodeId: who.nodeId, fingerprint: who.fingerprint, protocolVersion: { major: 1, minor } }, addresses };
}

function table(limits: Partial<{ maxPeers: number; maxAddressesPerPeer: number }> = {}): PeerSightings {
  return new PeerSightings({ expiryMs: EXPIRY_MS, maxPeers: 64, maxAddressesPerPeer: 8, ...limits });
}

describe("PeerSightings", () => {
  it("reports a first sighting as new, the same again as a refresh, and a new address or version as a change", () => {
    const sightings = table();
    expect(sightings.observe(sighting(A, [at("10.0.0.1")]), 0)).toBe("new");
    expect(sightings.observe(sighting(A, [at("10.0.0.1")]), 1_000)).toBe("refreshed");
    expect(sightings.observe(sighting(A, [at("10.0.0.2"), at("10.0.0.1")]), 2_000)).toBe("changed");
    expect(sightings.observe(sighting(A, [at("10.0.0.1"), at("10.0.0.2")]), 2_500)).toBe("refreshed");
    expect(sightings.observe(sighting(A, [at("10.0.0.1")], 1), 3_000)).toBe("changed");
    expect(sightings.peer(A.nodeId)).toEqual({
      source: "mdns",
      nodeId: A.nodeId,
      fingerprint: A.fingerprint,
      protocolVersion: { major: 1, minor: 1 },
      addresses: [at("10.0.0.1"), at("10.0.0.2")],
    });
  });

  it("treats another port at the same host as another address", () => {
    const sightings = table();
    sightings.observe(sighting(A, [at("10.0.0.1", 4328)]), 0);
    expect(sightings.observe(sighting(A, [at("10.0.0.1", 5000)]), 1)).toBe("changed");
    expect(sightings.peer(A.nodeId)?.addresses).toEqual([at("10.0.0.1", 5000), at("10.0.0.1", 4328)]);
  });

  it("loses a peer only once none of its addresses was heard for the expiry time", () => {
    const sightings = table();
    sightings.observe(sighting(A, [at("10.0.0.1")]), 0);
    expect(sightings.expire(EXPIRY_MS)).toEqual({ lost: [], changed: [] });
    expect(sightings.expire(EXPIRY_MS + 1)).toEqual({ lost: [A.nodeId], changed: [] });
    expect(sightings.peer(A.nodeId)).toBeUndefined();
    expect(sightings.size).toBe(0);
  });

  it("keeps a peer that keeps answering, however long it lives", () => {
    const sightings = table();
    for (let now = 0; now <= 10 * EXPIRY_MS; now += 5_000) {
      sightings.observe(sighting(A, [at("10.0.0.1")]), now);
      expect(sightings.expire(now + 1_000).lost).toEqual([]);
    }
    expect(sightings.peer(A.nodeId)).toMatchObject({ nodeId: A.nodeId, addresses: [at("10.0.0.1")] });
  });

  it("expires a silent address alone and reports the peer as changed", () => {
    const sightings = table();
    sightings.observe(sighting(A, [at("10.0.0.1"), at("10.0.0.9")]), 0);
    sightings.observe(sighting(A, [at("10.0.0.1")]), 10_000);
    const result = sightings.expire(EXPIRY_MS + 1);
    expect(result.lost).toEqual([]);
    expect(result.changed).toEqual([expect.objectContaining({ nodeId: A.nodeId, addresses: [at("10.0.0.1")] })]);
  });

  it("forgets a peer on its goodbye, by instance name, and ignores goodbyes for unknown instances", () => {
    const sightings = table();
    sightings.observe(sighting(A, [at("10.0.0.1")]), 0);
    sightings.observe(sighting(B, [at("10.0.0.2")]), 0);
    expect(sightings.goodbye("unknown._hearth._tcp.local")).toBeUndefined();
    expect(sightings.goodbye(A.nodeId.toLowerCase())).toBe(A.nodeId);
    expect(sightings.peers().map((item) => item.nodeId)).toEqual([B.nodeId]);
    expect(sightings.goodbye(A.nodeId.toLowerCase())).toBeUndefined();
    // Seen again after the goodbye (a restart): new again.
    expect(sightings.observe(sighting(A, [at("10.0.0.1")]), 1)).toBe("new");
  });

  it("refuses a sighting without addresses", () => {
    const sightings = table();
    expect(sightings.observe(sighting(A, []), 0)).toBe("refused");
    expect(sightings.size).toBe(0);
  });

  it("refuses new peers when full, until one is lost", () => {
    const sightings = table({ maxPeers: 1 });
    sightings.observe(sighting(A, [at("10.0.0.1")]), 0);
    expect(sightings.observe(sighting(B, [at("10.0.0.2")]), 0)).toBe("refused");
    sightings.expire(EXPIRY_MS + 1);
    expect(sightings.observe(sighting(B, [at("10.0.0.2")]), EXPIRY_MS + 2)).toBe("new");
  });

  it("caps addresses per peer without letting a flood of fake ones push out the real one", () => {
    const sightings = table({ maxAddressesPerPeer: 3 });
    sightings.observe(sighting(A, [at("10.0.0.1")]), 0);
    for (let i = 0; i < 50; i++) sightings.observe(sighting(A, [at(`10.66.0.${i}`)]), i);
    sightings.observe(sighting(A, [at("10.0.0.1")]), 100);
    const addresses = sightings.peer(A.nodeId)!.addresses;
    expect(addresses).toHaveLength(3);
    expect(addresses[0]).toEqual(at("10.0.0.1"));
  });

  it("hands out copies: changing a returned peer does not change the table", () => {
    const sightings = table();
    sightings.observe(sighting(A, [at("10.0.0.1")]), 0);
    const copy = sightings.peers()[0]! as unknown as { addresses: PeerAddress[] };
    copy.addresses.length = 0;
    expect(sightings.peer(A.nodeId)?.addresses).toEqual([at("10.0.0.1")]);
  });

  it("forgets everything on clear()", () => {
    const sightings = table();
    sightings.observe(sighting(A, [at("10.0.0.1")]), 0);
    sightings.clear();
    expect(sightings.peers()).toEqual([]);
    expect(sightings.goodbye(A.nodeId.toLowerCase())).toBeUndefined();
  });
});
