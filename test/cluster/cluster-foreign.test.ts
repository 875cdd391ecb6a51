/**
 * Nodes that must not join: one holding another cluster's secret (a neighbour's Hearth on the
 * same LAN), and one of the right cluster speaking another protocol major. Real daemons, real
 * mDNS: they find each other, try, and are refused, with the refusal logged for the user and
 * no secret in any log.
 *
 *   n1, n2  cluster "home"
 *   n3      cluster "neighbour"
 *   n4      cluster "home", announcing protocol major 2 (the test-only HEARTH_TEST_PROTOCOL_MAJOR knob)
 */

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClusterNet, describeView, peerEntries, seesUp, shortId, type ClusterNode, type ClusterView, type LogLine } from "../support/clusterNet.js";

/** Long enough for several dials and redials between every pair (backoff starts at 500 ms). */
const REFUSALS_WITHIN_MS = 20_000;
const MESH_WITHIN_MS = 15_000;
/** After the refusals were seen, keep watching a little so a late "up" would be caught too. */
const EXTRA_WATCH_MS = 3_000;

let net: ClusterNet;
let home: ClusterNode[];
let neighbour: ClusterNode;
let future: ClusterNode;
/** Every "up" that must never happen, as seen by the background watch. */
const forbiddenUps: string[] = [];
let watch: { stop(): Promise<number> } | undefined;
let startedAt = 0;

beforeAll(async () => {
  net = await ClusterNet.create({
    nodes: [{ cluster: "home" }, { cluster: "home" }, { cluster: "neighbour" }, { cluster: "home", env: { HEARTH_TEST_PROTOCOL_MAJOR: "2" } }],
  });
  home = [net.node(1), net.node(2)];
  neighbour = net.node(3);
  future = net.node(4);
  startedAt = performance.now();
  await net.startAll();
  // Node ids of the nodes that joined are known once they answer.
  await net.views(net.nodes);
  const outsiders = new Set([neighbour.nodeId, future.nodeId]);
  watch = net.watch(net.nodes, (view, node) => {
    for (const peer of view.peers) {
      if (peer.state !== "up") continue;
      const pairIsOutsider = node === neighbour || node === future || (peer.nodeId !== null && outsiders.has(peer.nodeId));
      if (pairIsOutsider) forbiddenUps.push(`${node.name} saw ${shortId(peer.nodeId)} up: ${describeView(view)}`);
    }
  });
});

afterAll(async () => {
  await watch?.stop();
  await net?.destroy();
});

const isRefusal = (code: string) => (line: LogLine) => line.errorCode === code || line.code === code;

/** Every way a secret could be spelled in a log line. */
function secretSpellings(node: ClusterNode): string[] {
  const membership = node.membership!;
  const secret = Buffer.from(membership.secretBase64, "base64");
  return [membership.joinToken, membership.secretBase64, secret.toString("hex"), secret.toString("base64url"), membership.joinToken.replace(/^hearth1_/, "")];
}

describe("nodes that must not join", () => {
  it("a node with another cluster's secret is never up anywhere, both sides log the refusal, and no log holds a secret", async () => {
    // Control: discovery and links work on this network.
    await net.waitForMesh(home, { since: startedAt, timeoutMs: MESH_WITHIN_MS, what: "the two home nodes to link" });

    // Both sides of a neighbour handshake refuse and say so: the home nodes when the
    // neighbour dials them, the neighbour when they dial it.
    const deadline = startedAt + REFUSALS_WITHIN_MS;
    const refusedByHome = () => home.some((node) => node.logLines().some(isRefusal("HEARTH_PEER_AUTH_FAILED")));
    const refusedByNeighbour = () => neighbour.logLines().some(isRefusal("HEARTH_PEER_AUTH_FAILED"));
    while (!(refusedByHome() && refusedByNeighbour()) && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 200));
    await new Promise((resolve) => setTimeout(resolve, EXTRA_WATCH_MS));
    const views = await net.views(net.nodes);
    const tables = views.map((view, i) => `${net.nodes[i]!.name}: ${describeView(view)}`).join("\n");

    expect(refusedByHome(), `a home node logs refusing the neighbour\n${tables}\n${net.logTails(20)}`).toBe(true);
    expect(refusedByNeighbour(), `the neighbour logs being refused\n${tables}\n${net.logTails(20)}`).toBe(true);
    expect(forbiddenUps.filter((entry) => entry.includes(shortId(neighbour.nodeId)) || entry.startsWith("n3 "))).toEqual([]);

    for (const [i, node] of home.entries()) {
      // Known or not, the neighbour is never up; if the table names a reason, it is the refusal.
      for (const peer of peerEntries(views[i]!, neighbour.nodeId)) {
        expect(peer.state, `${node.name}'s entry for the neighbour`).not.toBe("up");
        if (peer.lastError !== null) expect(peer.lastError.code).toBe("HEARTH_PEER_AUTH_FAILED");
      }
    }
    // The neighbour learnt nothing about the home nodes beyond the refusal: no resources, no models.
    const neighbourView = views[2]!;
    expect(neighbourView.peers.filter((peer) => peer.state === "up")).toEqual([]);
    for (const node of home) {
      for (const peer of peerEntries(neighbourView, node.nodeId)) {
        expect(peer.resources).toBeNull();
        expect(peer.models ?? []).toEqual([]);
        expect(peer.loadedModels ?? []).toEqual([]);
      }
    }

    // The refusal explains itself, and no daemon ever wrote a secret of either cluster.
    const homeRefusals = home.flatMap((node) => node.logLines().filter(isRefusal("HEARTH_PEER_AUTH_FAILED")));
    expect(homeRefusals.some((line) => typeof line.reason === "string" && line.reason.length > 0)).toBe(true);
    const spellings = [...secretSpellings(net.node(1)), ...secretSpellings(neighbour)];
    for (const node of net.nodes) {
      const output = node.output();
      for (const spelling of spellings) expect(output.includes(spelling), `${node.name}'s log contains a secret`).toBe(false);
    }
  });

  it("a node speaking another protocol major is shown as incompatible on both sides, never up, with the reason logged", async () => {
    const [homeOne, homeTwo] = home as [ClusterNode, ClusterNode];
    const incompatibleFor = (view: ClusterView, nodeId: string) => peerEntries(view, nodeId).some((peer) => peer.state === "incompatible");
    await net.waitForEach(
      [homeOne, homeTwo, future],
      (view, node) => (node === future ? home.every((other) => incompatibleFor(view, other.nodeId)) : incompatibleFor(view, future.nodeId)),
      { since: startedAt, timeoutMs: REFUSALS_WITHIN_MS, what: "the major-2 node and the home nodes to show each other as incompatible" },
    );
    const views = await net.views([homeOne, homeTwo, future]);
    expect(views[2]!.local.protocolVersion).toMatch(/^2\./);
    expect(seesUp(views[0]!, future.nodeId) || seesUp(views[1]!, future.nodeId)).toBe(false);
    expect(forbiddenUps.filter((entry) => entry.includes(shortId(future.nodeId)) || entry.startsWith("n4 "))).toEqual([]);
    // The home nodes still have each other.
    expect(seesUp(views[0]!, homeTwo.nodeId)).toBe(true);

    const reasons = [...home, future].flatMap((node) => node.logLines().filter(isRefusal("HEARTH_PEER_INCOMPATIBLE")));
    expect(reasons.length, net.logTails(20)).toBeGreaterThan(0);
    // The logged reason names both majors, so the user knows which side to upgrade.
    expect(reasons.some((line) => typeof line.reason === "string" && /\b2\.\d/.test(line.reason) && /\b1\.\d/.test(line.reason)), JSON.stringify(reasons.slice(0, 3))).toBe(true);
  });
});
