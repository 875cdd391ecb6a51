/**
 * Static peers (daemon/discovery/staticPeerEntry.ts, StaticPeers.ts), the listener safety every
 * discovery shares (PeerDiscovery.ts), and MdnsDiscovery's refusal of bad settings before it
 * opens any socket. Network behaviour is in test/cluster/discovery*.test.ts.
 */

import { Writable } from "node:stream";
import { pino, type Logger } from "pino";
import { describe, expect, it } from "vitest";
import { MdnsDiscovery } from "../../daemon/discovery/MdnsDiscovery.js";
import type { DiscoveredPeer } from "../../daemon/discovery/PeerDiscovery.js";
import { MAX_STATIC_PEERS, parseStaticPeer, parseStaticPeers } from "../../daemon/discovery/staticPeerEntry.js";
import { StaticPeers } from "../../daemon/discovery/StaticPeers.js";
import { HearthError } from "../../protocol/errors.js";
import { nodeIdFromFingerprint } from "../../protocol/peer/identity.js";
import { thrownBy } from "../support/thrown.js";

const DEFAULT_PORT = 4328;

function capturingLogger(): { logger: Logger; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk.toString());
      callback();
    },
  });
  return {
    logger: pino({ level: "debug" }, stream),
    lines: () =>
      chunks
        .join("")
        .split("\n")
        .filter(Boolean)
        .map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}

const silent = pino({ level: "silent" });
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe("parseStaticPeer", () => {
  it.each([
    ["192.168.1.20:4328", { host: "192.168.1.20", port: 4328 }],
    ["  192.168.1.20:5000  ", { host: "192.168.1.20", port: 5000 }],
    ["192.168.1.20", { host: "192.168.1.20", port: DEFAULT_PORT }],
    ["[::1]:4328", { host: "::1", port: 4328 }],
    ["[FD00::20]:1", { host: "fd00::20", port: 1 }],
    ["[fe80::1%eth0]:4328", { host: "fe80::1%eth0", port: 4328 }],
    ["[fd00::20]", { host: "fd00::20", port: DEFAULT_PORT }],
    ["Desktop.LAN:65535", { host: "desktop.lan", port: 65_535 }],
    ["gpu-box:4328", { host: "gpu-box", port: 4328 }],
    ["nas.local.:4328", { host: "nas.local.", port: 4328 }],
  ])("accepts %j", (entry, expected) => {
    expect(parseStaticPeer(entry, DEFAULT_PORT)).toEqual(expected);
  });

  it.each([
    ["", "is empty"],
    ["   ", "is empty"],
    ["host:0", "outside 1-65535"],
    ["host:65536", "outside 1-65535"],
    ["host:http", "not a number"],
    ["host:", "not a number"],
    ["host:-1", "not a number"],
    ["::1", "put it in brackets"],
    ["fd00::20:4328", "put it in brackets"],
    ["[::1:4328", "no closing ]"],
    ["[::1]4328", "after the ]"],
    ["[192.168.1.1]:4328", "not an IPv6 address"],
    ["[fe80::1%bad zone]:1", "not an IPv6 address"],
    ["https://desktop:4328", "is a URL"],
    ["999.1.1.1:4328", "neither an IP address nor a host name"],
    ["-bad.lan:4328", "neither an IP address nor a host name"],
    ["under_score:4328", "neither an IP address nor a host name"],
    ["host/path:4328", "neither an IP address nor a host name"],
    [`${"a".repeat(64)}.lan:4328`, "neither an IP address nor a host name"],
    ["0.0.0.0:4328", "not a peer"],
    ["224.0.0.251:4328", "not a peer"],
    ["[::]:4328", "not a peer"],
    ["a".repeat(300), "longer than"],
  ])("refuses %j with HEARTH_CONFIG_INVALID saying why", (entry, why) => {
    const error = thrownBy(() => parseStaticPeer(entry, DEFAULT_PORT, "peer"));
    expect(error.code).toBe("HEARTH_CONFIG_INVALID");
    expect(error.param).toBe("peer");
    expect(error.message).toContain(why);
    expect(error.message).toContain("192.168.1.20:4328");
  });

  it("quotes the entry it refuses, shortened if long", () => {
    expect(thrownBy(() => parseStaticPeer("nas:99999", DEFAULT_PORT)).message).toContain('"nas:99999"');
    expect(thrownBy(() => parseStaticPeer(`x:${"9".repeat(200)}`, DEFAULT_PORT)).message.length).toBeLessThan(250);
  });
});

describe("parseStaticPeers", () => {
  it("keeps order and drops duplicates of one host and port", () => {
    expect(parseStaticPeers(["10.0.0.2:4328", "10.0.0.3", "10.0.0.2", "[::1]:4328", "[0:0::1]:4328"], DEFAULT_PORT)).toEqual([
      { host: "10.0.0.2", port: 4328 },
      { host: "10.0.0.3", port: 4328 },
      { host: "::1", port: 4328 },
      { host: "0:0::1", port: 4328 },
    ]);
  });

  it("refuses the whole list on one bad entry, and lists longer than the cap", () => {
    expect(thrownBy(() => parseStaticPeers(["10.0.0.2:4328", "10.0.0.3:0"], DEFAULT_PORT)).message).toContain('"10.0.0.3:0"');
    const tooMany = Array.from({ length: MAX_STATIC_PEERS + 1 }, (_, i) => `10.0.${Math.floor(i / 200)}.${(i % 200) + 1}:4328`);
    expect(thrownBy(() => parseStaticPeers(tooMany, DEFAULT_PORT)).code).toBe("HEARTH_CONFIG_INVALID");
  });
});

describe("StaticPeers", () => {
  it("refuses bad entries when constructed, before anything starts", () => {
    expect(() => new StaticPeers({ logger: silent }, { peers: ["ok:4328", "bad:port"], defaultPort: DEFAULT_PORT })).toThrow(HearthError);
  });

  it("announces every entry after start() returns, with source static and no node id", async () => {
    const discovery = new StaticPeers({ logger: silent }, { peers: ["10.0.0.2:4328", "desktop.lan"], defaultPort: DEFAULT_PORT });
    const seen: DiscoveredPeer[] = [];
    await discovery.start();
    discovery.on("peerSeen", (peer) => seen.push(peer));
    expect(seen).toEqual([]);
    await nextTurn();
    expect(seen).toEqual([
      { source: "static", nodeId: undefined, fingerprint: undefined, protocolVersion: undefined, addresses: [{ host: "10.0.0.2", port: 4328 }] },
      { source: "static", nodeId: undefined, fingerprint: undefined, protocolVersion: undefined, addresses: [{ host: "desktop.lan", port: DEFAULT_PORT }] },
    ]);
    expect(discovery.peers()).toEqual(seen);
    await discovery.stop();
  });

  it("reports nothing when stopped before its announcement, and nothing in peers() while stopped", async () => {
    const discovery = new StaticPeers({ logger: silent }, { peers: ["10.0.0.2:4328"], defaultPort: DEFAULT_PORT });
    const seen: DiscoveredPeer[] = [];
    discovery.on("peerSeen", (peer) => seen.push(peer));
    expect(discovery.peers()).toEqual([]);
    await discovery.start();
    await discovery.stop();
    await nextTurn();
    expect(seen).toEqual([]);
    expect(discovery.peers()).toEqual([]);
    expect(discovery.configured()).toEqual([{ host: "10.0.0.2", port: 4328 }]);
  });

  it("treats start() and stop() as idempotent and announces again after a restart", async () => {
    const discovery = new StaticPeers({ logger: silent }, { peers: ["10.0.0.2:4328"], defaultPort: DEFAULT_PORT });
    let count = 0;
    discovery.on("peerSeen", () => count++);
    await discovery.stop();
    await discovery.start();
    await discovery.start();
    await nextTurn();
    expect(count).toBe(1);
    await discovery.stop();
    await discovery.stop();
    await discovery.start();
    await nextTurn();
    expect(count).toBe(2);
    await discovery.stop();
  });
});

describe("discovery listeners", () => {
  it("cannot break the service: a throwing or rejecting listener is logged and later listeners still run", async () => {
    const { logger, lines } = capturingLogger();
    const discovery = new StaticPeers({ logger }, { peers: ["10.0.0.2:4328", "10.0.0.3:4328"], defaultPort: DEFAULT_PORT });
    const seen: string[] = [];
    discovery.on("peerSeen", () => {
      throw new Error("listener bug");
    });
    discovery.on("peerSeen", () => Promise.reject(new Error("async listener bug")) as unknown as void);
    discovery.on("peerSeen", (peer) => seen.push(peer.addresses[0]!.host));
    await discovery.start();
    await nextTurn();
    await nextTurn();
    expect(seen).toEqual(["10.0.0.2", "10.0.0.3"]);
    // A listener's fault is reported nowhere but the log (it must not reach the emitter), so the line is the behaviour.
    const messages = lines().map((line) => line.msg);
    expect(messages.filter((msg) => msg === "discovery listener threw")).toHaveLength(2);
    expect(messages.filter((msg) => msg === "discovery listener rejected")).toHaveLength(2);
    await discovery.stop();
  });

  it("honours once(): such a listener hears one event only", async () => {
    const discovery = new StaticPeers({ logger: silent }, { peers: ["10.0.0.2:4328", "10.0.0.3:4328"], defaultPort: DEFAULT_PORT });
    const seen: string[] = [];
    discovery.once("peerSeen", (peer) => seen.push(peer.addresses[0]!.host));
    await discovery.start();
    await nextTurn();
    expect(seen).toEqual(["10.0.0.2"]);
    expect(discovery.listenerCount("peerSeen")).toBe(0);
    await discovery.stop();
  });
});

describe("MdnsDiscovery settings", () => {
  const fingerprint = new Uint8Array(32).fill(9);
  const identity = { nodeId: nodeIdFromFingerprint(fingerprint), fingerprint };

  it.each([
    ["port 0", { port: 0 }, "HEARTH_CONFIG_INVALID"],
    ["port 70000", { port: 70_000 }, "HEARTH_CONFIG_INVALID"],
    ["a service type with underscores", { port: 4328, serviceType: "_hearth" }, "HEARTH_CONFIG_INVALID"],
    ["a service type over 15 characters", { port: 4328, serviceType: "a".repeat(16) }, "HEARTH_CONFIG_INVALID"],
    ["a zero query interval", { port: 4328, timings: { queryIntervalMs: 0 } }, "HEARTH_CONFIG_INVALID"],
    ["a negative jitter", { port: 4328, timings: { queryJitterMs: -1 } }, "HEARTH_CONFIG_INVALID"],
    ["a multicast interface that is not an IPv4 address", { port: 4328, multicast: { interface: "eth0" } }, "HEARTH_CONFIG_INVALID"],
    ["a multicast group outside 224/4", { port: 4328, multicast: { group: "10.0.0.1" } }, "HEARTH_CONFIG_INVALID"],
    ["a multicast port of 0", { port: 4328, multicast: { port: 0 } }, "HEARTH_CONFIG_INVALID"],
  ])("refuses %s", (_name, init, code) => {
    expect(() => new MdnsDiscovery({ logger: silent, identity }, init)).toThrow(expect.objectContaining({ code }));
  });

  it("refuses an identity whose node id is not derived from its fingerprint", () => {
    const other = nodeIdFromFingerprint(new Uint8Array(32).fill(10));
    expect(() => new MdnsDiscovery({ logger: silent, identity: { nodeId: other, fingerprint } }, { port: 4328 })).toThrow(
      expect.objectContaining({ code: "HEARTH_IDENTITY_INVALID" }),
    );
  });

  it("is stopped, empty and quiet until started; stop() before start() does nothing", async () => {
    const discovery = new MdnsDiscovery({ logger: silent, identity }, { port: 4328 });
    expect(discovery.state).toBe("stopped");
    expect(discovery.peers()).toEqual([]);
    await discovery.stop();
    expect(discovery.status()).toMatchObject({ state: "stopped", queriesSent: 0, peers: 0, socketError: undefined });
  });
});
