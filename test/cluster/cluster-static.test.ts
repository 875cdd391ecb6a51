/**
 * Static peers on a network that drops multicast: n2 and n4 sit behind switch ports that
 * filter all IPv4 multicast, so mDNS neither reaches nor leaves them.
 *
 *   n1  mDNS only
 *   n2  multicast blocked, `--peer <n1>:4328`
 *   n3  mDNS only: the control. It finds n1 by mDNS but never hears n2 or n4 (nor they it),
 *       which proves the block is real and that the static entry is what linked them.
 *   n4  multicast blocked, `static_peers = ["<n1>:4328"]` in its config file
 */

import fs from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClusterNet, describeView, peerEntries, seesUp, type ClusterNode } from "../support/clusterNet.js";

const LINKED_WITHIN_MS = 15_000;
/** bonjour-service queries and announces within its first seconds; this is several times that. */
const BLOCKED_WINDOW_MS = 6_000;

let net: ClusterNet;

beforeAll(async () => {
  net = await ClusterNet.create({ nodes: 4 });
});

afterAll(async () => {
  await net?.destroy();
});

describe("static peers", () => {
  it("a static peer (`--peer` or `static_peers` in the config) links a node whose multicast is blocked, while mDNS alone could not reach it", async () => {
    const [n1, n2, n3, n4] = net.nodes as [ClusterNode, ClusterNode, ClusterNode, ClusterNode];
    await n2.host.blockMulticast();
    await n4.host.blockMulticast();
    fs.writeFileSync(n4.configPath, `[peer]\nstatic_peers = ["${n1.peerAddress}"]\n`);
    const since = performance.now();
    n1.spawnDaemon();
    n2.spawnDaemon({ args: ["--peer", n1.peerAddress] });
    n3.spawnDaemon();
    n4.spawnDaemon();
    await Promise.all(net.nodes.map((node) => node.waitHealthy()));
    await net.views(net.nodes);

    const { elapsedMs } = await net.waitFor(
      net.nodes,
      ([v1, v2, v3, v4]) =>
        seesUp(v1!, n2.nodeId) && seesUp(v2!, n1.nodeId) && seesUp(v1!, n4.nodeId) && seesUp(v4!, n1.nodeId) && seesUp(v1!, n3.nodeId) && seesUp(v3!, n1.nodeId),
      { since, timeoutMs: LINKED_WITHIN_MS, what: "n1-n2 and n1-n4 (static) and n1-n3 (mDNS) to be up" },
    );
    console.log(`static and mDNS links up ${Math.round(elapsedMs)} ms after start`);

    // The blocked nodes and the control never hear each other by mDNS, however long they wait.
    const strangers = new Map<ClusterNode, ClusterNode[]>([
      [n2, [n3, n4]],
      [n3, [n2, n4]],
      [n4, [n2, n3]],
    ]);
    const sightings: string[] = [];
    const watch = net.watch([n2, n3, n4], (view, node) => {
      for (const stranger of strangers.get(node)!) {
        if (peerEntries(view, stranger.nodeId).some((peer) => peer.source === "mdns")) sightings.push(`${node.name} heard ${stranger.name} by mDNS: ${describeView(view)}`);
      }
    });
    await new Promise((resolve) => setTimeout(resolve, BLOCKED_WINDOW_MS));
    expect(await watch.stop()).toBeGreaterThan(0);
    expect(sightings.slice(0, 3), "multicast to and from n2 and n4 is blocked").toEqual([]);

    const [v1, v2, , v4] = await net.views(net.nodes);
    for (const [node, view] of [
      [n2, v2!],
      [n4, v4!],
    ] as const) {
      const n1Entries = peerEntries(view, n1.nodeId);
      expect(n1Entries.map((peer) => [peer.state, peer.source]), node.name).toEqual([["up", "static"]]);
      expect(n1Entries[0]!.addresses).toContain(n1.peerAddress);
      // The static entry became the peer's one entry when the handshake named it: no leftover without an id.
      expect(view.peers.filter((peer) => peer.nodeId === null)).toEqual([]);
      // n1 never saw it advertised: it knows it only because it dialled in.
      expect(peerEntries(v1!, node.nodeId).map((peer) => [peer.state, peer.source])).toEqual([["up", "inbound"]]);
    }
  });
});
