/**
 * One compliance suite for every PeerDiscovery implementation (as js-libp2p runs one suite
 * against every discovery module): MdnsDiscovery and StaticPeers must both announce a peer
 * the way the link manager relies on, whatever their mechanism.
 *
 * Each implementation runs for real in a namespace (fixtures/discovery-node.ts) on node 1 and
 * must find node 2, where a TCP server listens on the peer port: the first address announced
 * must reach it. Each implementation describes only how node 2 is made findable; the
 * assertions are shared. Needs `npx tsc -p tsconfig.json` first.
 */

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { isIP } from "node:net";
import { createTestNetwork, type TestNetwork, type TestNode } from "../support/netns.js";
import { DiscoveryProcess, fixtureNodeId, type DiscoveryNodeOptions, type JsonLine } from "./fixtures/discovery-process.js";

const PEER_PORT = 4328;
const FIND_TIMEOUT_MS = 15_000;
/** After stop(), how long nothing may be reported while the peer is made to announce itself. */
const QUIET_WINDOW_MS = 1_500;

const here = path.dirname(fileURLToPath(import.meta.url));
const fixture = (name: string): string => path.resolve(here, "../../dist/test/cluster/fixtures", name);

interface Implementation {
  name: string;
  source: "mdns" | "static";
  /** Options for the observer on node 1, which must find `peer`. */
  observer(peer: TestNode): DiscoveryNodeOptions;
  /** Makes `peer` findable (beyond its TCP listener); returns something to stimulate it with. */
  preparePeer(peer: TestNode): Promise<{ announceAgain(): Promise<void> }>;
  /** The node id the observer should report for the peer (unknown for static entries). */
  expectedNodeId: string | undefined;
}

const implementations: Implementation[] = [
  {
    name: "MdnsDiscovery",
    source: "mdns",
    observer: () => ({ seed: "observer", port: PEER_PORT, throwingListeners: true }),
    async preparePeer(peer) {
      const advertiser = DiscoveryProcess.start(peer, { seed: "peer", port: PEER_PORT });
      await advertiser.waitFor((line) => line.event === "started", 10_000);
      return {
        // A restart announces at once, unprompted: what a stopped observer must not report.
        async announceAgain() {
          await advertiser.request("stop", "stopped");
          await advertiser.request("start", "started");
        },
      };
    },
    expectedNodeId: fixtureNodeId("peer"),
  },
  {
    name: "StaticPeers",
    source: "static",
    observer: (peer) => ({ seed: "observer", port: PEER_PORT, mdns: false, staticPeers: [`${peer.address}:${PEER_PORT}`], throwingListeners: true }),
    preparePeer: () => Promise.resolve({ announceAgain: () => Promise.resolve() }),
    expectedNodeId: undefined,
  },
];

interface AnnouncedPeer {
  source: string;
  nodeId?: string;
  fingerprint?: string;
  protocolVersion?: { major: number; minor: number };
  addresses: { host: string; port: number }[];
}

const peerSeen = (line: JsonLine): boolean => line.event === "peerSeen";
const announced = (line: JsonLine): AnnouncedPeer => line.peer as AnnouncedPeer;

async function tcpReaches(from: TestNode, host: string, port: number): Promise<boolean> {
  const result = await from.exec(process.execPath, [fixture("tcp-probe.js"), host, String(port), "3000", "1000"], { timeoutMs: 10_000 });
  return (JSON.parse(result.stdout) as { ok: boolean }).ok;
}

describe.each(implementations)("PeerDiscovery compliance: $name", (implementation) => {
  let network: TestNetwork;
  let observer: DiscoveryProcess;
  let peer: { announceAgain(): Promise<void> };

  beforeAll(async () => {
    network = await createTestNetwork({ nodes: 2 });
    const peerNode = network.node(2);
    const server = new DiscoveryProcess(peerNode.spawn(process.execPath, [fixture("tcp-server.js"), peerNode.address, String(PEER_PORT)]), "tcp-server");
    await server.waitFor((line) => line.event === "listening", 10_000);
    peer = await implementation.preparePeer(peerNode);
    observer = DiscoveryProcess.start(network.node(1), implementation.observer(peerNode));
  });

  afterAll(async () => {
    await network?.destroy();
  });

  it("announces the peer with peerSeen, from its source, first with an address that reaches it", async () => {
    const line = await observer.waitFor(peerSeen, FIND_TIMEOUT_MS);
    const seen = announced(line);
    expect(seen.source).toBe(implementation.source);
    expect(seen.nodeId).toBe(implementation.expectedNodeId);
    expect(seen.addresses.length).toBeGreaterThan(0);
    for (const address of seen.addresses) {
      expect(isIP(address.host)).not.toBe(0);
      expect(Number.isInteger(address.port) && address.port >= 1 && address.port <= 65_535).toBe(true);
    }
    const first = seen.addresses[0]!;
    expect(first).toEqual({ host: network.node(2).address, port: PEER_PORT });
    expect(await tcpReaches(network.node(1), first.host, first.port)).toBe(true);
  });

  it("never announces the observing node itself", () => {
    const own = fixtureNodeId("observer");
    expect(observer.lines.filter((line) => peerSeen(line) && announced(line).nodeId === own)).toEqual([]);
  });

  it("lists in peers() exactly what peerSeen announced", async () => {
    const listed = (await observer.request("peers", "peers")).peers as AnnouncedPeer[];
    const lastSeen = observer.lines.filter(peerSeen).map(announced).at(-1);
    expect(listed).toEqual([lastSeen]);
  });

  it("keeps reporting and running when listeners before it throw or reject", async () => {
    // The fixture registered a throwing and a rejecting listener ahead of the reporting one.
    expect(observer.lines.filter(peerSeen).length).toBeGreaterThan(0);
    expect(observer.stderr).toContain("discovery listener threw");
    expect(observer.lines.filter((line) => line.event === "crash")).toEqual([]);
    expect(observer.exitedWith).toBeNull();
    expect((await observer.request("peers", "peers")).peers).toHaveLength(1);
  });

  it("treats start() and stop() as idempotent, reports nothing after stop(), and finds the peer again after start()", async () => {
    await observer.request("start", "started");
    await observer.request("stop", "stopped");
    const stoppedAt = performance.now();
    await observer.request("stop", "stopped");
    expect((await observer.request("peers", "peers")).peers).toEqual([]);

    await peer.announceAgain();
    await new Promise((resolve) => setTimeout(resolve, QUIET_WINDOW_MS));
    const afterStop = observer.lines.filter((line) => line.receivedAt > stoppedAt && (line.event === "peerSeen" || line.event === "peerLost"));
    expect(afterStop).toEqual([]);

    const restartedAt = performance.now();
    await observer.request("start", "started");
    const again = await observer.waitFor(peerSeen, FIND_TIMEOUT_MS, restartedAt);
    expect(announced(again).addresses[0]).toEqual({ host: network.node(2).address, port: PEER_PORT });
    expect(observer.lines.filter((line) => line.event === "crash")).toEqual([]);
  });
});
