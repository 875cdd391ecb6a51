/**
 * mDNS discovery between real hosts: four network namespaces on one switch, each running
 * MdnsDiscovery (test/cluster/fixtures/discovery-node.ts) with its own node id, real multicast,
 * default timings, no mocks. Nodes 1-3 each also have a "docker0" with the same 172.17.0.1 (as
 * every machine running Docker does), node 2 a VPN-like "wg0"; node 4's multicast is dropped
 * by the switch and it lists nodes 1 and 2 as static peers.
 *
 * The tests share one network and run in order, as one story: discovery, a SIGKILL, a graceful
 * stop, a restart; the multicast-blocked node is judged at the end, over the whole run.
 * Needs `npx tsc -p tsconfig.json` first (fixtures run from dist/).
 */

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  MDNS_EXPIRY_SWEEP_INTERVAL_MS,
  MDNS_PEER_EXPIRY_MS,
  MDNS_QUERY_INTERVAL_MS,
  MDNS_QUERY_JITTER_MS,
} from "../../daemon/discovery/MdnsDiscovery.js";
import { createTestNetwork, type TestNetwork, type TestNode } from "../support/netns.js";
import { DISCOVERY_NODE_FIXTURE, DiscoveryProcess, fixtureNodeId, isPeerLost, isPeerSeen, type JsonLine } from "./fixtures/discovery-process.js";

const PEER_PORT = 4328;
/** The bound for three nodes to find each other. */
const DISCOVERY_DEADLINE_MS = 15_000;
const DOCKER_BRIDGE_ADDRESS = "172.17.0.1";
const VPN_ADDRESS = "10.99.0.2";
/** A goodbye travels in one packet; anything near the expiry window means it was not used. */
const GOODBYE_DEADLINE_MS = 2_000;
/** Latest a silent peer may be lost: expiry, plus one sweep, plus scheduling slack. */
const EXPIRY_DEADLINE_MS = MDNS_PEER_EXPIRY_MS + MDNS_EXPIRY_SWEEP_INTERVAL_MS + 2_000;
/** Earliest: its last answer can precede the kill by at most one query round (plus jitter). */
const EXPIRY_EARLIEST_MS = MDNS_PEER_EXPIRY_MS - MDNS_QUERY_INTERVAL_MS - MDNS_QUERY_JITTER_MS - 1_000;

const here = path.dirname(fileURLToPath(import.meta.url));

/** A second interface inside the node's namespace: a veth pair whose far end is also up, so it has carrier as a busy docker0 or a VPN tunnel does. */
async function addInterface(node: TestNode, name: string, cidr: string): Promise<void> {
  for (const args of [
    ["link", "add", name, "type", "veth", "peer", "name", `${name}p`],
    ["addr", "add", cidr, "dev", name],
    ["link", "set", `${name}p`, "up"],
    ["link", "set", name, "up"],
  ]) {
    const result = await node.exec("ip", args);
    if (result.code !== 0) throw new Error(`ip ${args.join(" ")} in ${node.namespace}: ${result.stderr}`);
  }
}

function peerOf(line: JsonLine): { source: string; nodeId?: string; addresses: { host: string; port: number }[] } {
  return line.peer as { source: string; nodeId?: string; addresses: { host: string; port: number }[] };
}

describe("mDNS discovery across network namespaces", () => {
  let network: TestNetwork;
  const ids = new Map<number, string>();
  const running = new Map<number, DiscoveryProcess>();
  /** Every process ever started, so the final checks cover the whole run. */
  const all: DiscoveryProcess[] = [];
  let startedAt = 0;

  const start = (index: number, extra: { staticPeers?: string[]; multicastInterface?: string } = {}): DiscoveryProcess => {
    const member = DiscoveryProcess.start(network.node(index), { seed: `n${index}`, port: PEER_PORT, ...extra }, `n${index}`);
    running.set(index, member);
    all.push(member);
    return member;
  };
  const node = (index: number): DiscoveryProcess => running.get(index)!;
  const id = (index: number): string => ids.get(index)!;

  beforeAll(async () => {
    const built = DISCOVERY_NODE_FIXTURE;
    const source = path.join(here, "fixtures/discovery-node.ts");
    if (!fs.existsSync(built) || fs.statSync(built).mtimeMs < fs.statSync(source).mtimeMs) {
      throw new Error(`${built} is missing or older than its source; run \`npx tsc -p tsconfig.json\` first.`);
    }
    network = await createTestNetwork({ nodes: 4 });
    for (const index of [1, 2, 3]) await addInterface(network.node(index), "docker0", `${DOCKER_BRIDGE_ADDRESS}/16`);
    await addInterface(network.node(2), "wg0", `${VPN_ADDRESS}/24`);
    await network.node(4).blockMulticast();
    for (const index of [1, 2, 3, 4]) ids.set(index, fixtureNodeId(`n${index}`));

    startedAt = performance.now();
    for (const index of [1, 2, 3]) start(index);
    start(4, { staticPeers: [`${network.node(1).address}:${PEER_PORT}`, `${network.node(2).address}:${PEER_PORT}`] });
    await Promise.all([...running.values()].map((member) => member.waitFor((line) => line.event === "started", 10_000)));
  });

  afterAll(async () => {
    await network?.destroy();
  });

  it("three nodes each see the other two within 15 s", async () => {
    for (const observer of [1, 2, 3]) {
      for (const peer of [1, 2, 3]) {
        if (peer === observer) continue;
        const seen = await node(observer).waitFor(isPeerSeen(id(peer), "mdns"), DISCOVERY_DEADLINE_MS);
        expect(seen.receivedAt - startedAt).toBeLessThan(DISCOVERY_DEADLINE_MS);
        expect(peerOf(seen)).toMatchObject({ protocolVersion: { major: 1, minor: 0 } });
      }
    }
  });

  it("puts the address an answer came from first, keeps a peer's other addresses, and drops the Docker address every node shares", () => {
    for (const observer of [1, 2, 3]) {
      for (const peer of [1, 2, 3]) {
        if (peer === observer) continue;
        const first = node(observer).lines.find(isPeerSeen(id(peer), "mdns"))!;
        const addresses = peerOf(first).addresses;
        expect(addresses[0]).toEqual({ host: network.node(peer).address, port: PEER_PORT });
        // 172.17.0.1 is this observer's own docker0: dialling it would reach itself.
        expect(addresses.map((address) => address.host)).not.toContain(DOCKER_BRIDGE_ADDRESS);
      }
    }
    const node2FromNode1 = node(1).lines.filter(isPeerSeen(id(2), "mdns")).at(-1)!;
    expect(peerOf(node2FromNode1).addresses).toEqual([
      { host: network.node(2).address, port: PEER_PORT },
      { host: VPN_ADDRESS, port: PEER_PORT },
    ]);
  });

  it("loses a SIGKILLed node within the expiry window, and no live node meanwhile", async () => {
    const killedAt = performance.now();
    await network.node(3).killProcesses("SIGKILL");
    running.delete(3);
    for (const observer of [1, 2]) {
      const lost = await node(observer).waitFor(isPeerLost(id(3)), EXPIRY_DEADLINE_MS + 1_000);
      const elapsed = lost.receivedAt - killedAt;
      expect(elapsed).toBeLessThanOrEqual(EXPIRY_DEADLINE_MS);
      // Not earlier than its last answer allows: live entries are not dropped at random.
      expect(elapsed).toBeGreaterThanOrEqual(EXPIRY_EARLIEST_MS);
    }
    // By now nodes 1 and 2 have known each other for longer than one expiry window: their
    // entries survive only because every answer refreshes them.
    expect(performance.now() - startedAt).toBeGreaterThan(MDNS_PEER_EXPIRY_MS);
    expect(node(1).lines.filter(isPeerLost(id(2)))).toEqual([]);
    expect(node(2).lines.filter(isPeerLost(id(1)))).toEqual([]);
  });

  it("loses a gracefully stopped node at once, through its goodbye", async () => {
    const stopping = node(2);
    const stoppedAt = performance.now();
    stopping.child.kill("SIGTERM");
    const lost = await node(1).waitFor(isPeerLost(id(2)), GOODBYE_DEADLINE_MS + 1_000);
    expect(lost.receivedAt - stoppedAt).toBeLessThan(GOODBYE_DEADLINE_MS);
    await stopping.waitFor((line) => line.event === "stopped", 5_000);
    await new Promise<void>((resolve) => (stopping.exitedWith !== null ? resolve() : stopping.child.once("exit", () => resolve())));
    expect(stopping.exitedWith).toBe("0");
    running.delete(2);
  });

  it("sees a restarted node again under the same node id, also with its multicast pinned to one interface", async () => {
    const restartedAt = performance.now();
    // Pinned as on a machine whose default route is not the peers' LAN (the socket must still
    // receive multicast, so it cannot simply bind to that address).
    const restarted = start(3, { multicastInterface: network.node(3).address });
    const identity = await restarted.waitFor((line) => line.event === "identity", 10_000);
    expect(identity.nodeId).toBe(id(3));
    const seen = await node(1).waitFor(isPeerSeen(id(3), "mdns"), DISCOVERY_DEADLINE_MS, restartedAt);
    expect(peerOf(seen).addresses[0]).toEqual({ host: network.node(3).address, port: PEER_PORT });
    await restarted.waitFor(isPeerSeen(id(1), "mdns"), DISCOVERY_DEADLINE_MS);
  });

  it("never lets a multicast-blocked node be seen or see anyone over mDNS, while its static peers still produce peerSeen", () => {
    // The whole run so far (over 20 s, several query rounds) is the observation window.
    expect(performance.now() - startedAt).toBeGreaterThan(MDNS_PEER_EXPIRY_MS);
    const blocked = all.find((member) => member.name === "n4")!;
    expect(blocked.lines.filter((line) => line.event === "peerSeen" && peerOf(line).source === "mdns")).toEqual([]);
    for (const member of all) expect(member.lines.filter(isPeerSeen(id(4)))).toEqual([]);

    const staticSeen = blocked.lines.filter(isPeerSeen(undefined, "static")).map((line) => peerOf(line).addresses);
    expect(staticSeen).toEqual([[{ host: network.node(1).address, port: PEER_PORT }], [{ host: network.node(2).address, port: PEER_PORT }]]);
  });

  it("no node ever reported itself, though each hears its own answers, and none crashed", async () => {
    const status = (await node(1).request("status", "status")).status as { ownAnswersHeard: number }[];
    expect(status[0]!.ownAnswersHeard).toBeGreaterThan(0);
    for (const member of all) {
      const own = fixtureNodeId(member.name);
      expect(member.lines.filter(isPeerSeen(own))).toEqual([]);
      expect(member.lines.filter((line) => line.event === "crash")).toEqual([]);
    }
  });
});
