/**
 * Cluster benchmark: real daemons in network namespaces (test/support/clusterNet.ts), measured
 * from outside. Prints figures; asserts nothing, because a noisy machine must not fail a build.
 *
 *   handshake.*   one peer-link setup as a member makes it (fixtures/cluster-linkTimer.ts):
 *                 TCP + TLS 1.3 with both certificates + WebSocket upgrade, then the HMAC
 *                 handshake, median and p90 of N in a row against an idle daemon;
 *   heartbeat_per_peer_min.*  what an idle link costs per peer per minute: one daemon (mDNS
 *                 off, peers linked by --peer) measured over a window with 0 peers, then with
 *                 2; the difference divided by 2 is the cost of heartbeats and periodic state
 *                 snapshots. CPU is the process's user+system time; link bytes and segments are
 *                 the TCP payload and segments of its peer connections (ss); wire bytes and
 *                 packets are everything through its eth0, headers included;
 *   idle_per_min.*  the same daemon's totals per minute, and with mDNS on as well;
 *   converge.*    three daemons started at the same moment until each sees both others up.
 *
 * Needs root and iproute2 (network namespaces); without them the suite reports why and
 * returns no figures. Run alone with
 * `node dist/test/bench/cluster.js [--handshakes N] [--idle-seconds S] [--rounds N]`.
 */

import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { ClusterNet, clusterFixture, PEER_PORT, sleep, type ClusterNode } from "../support/clusterNet.js";
import { NetnsUnavailableError, assertNetnsSupport } from "../support/netns.js";
import { requireTool } from "../support/netns-system.js";
import { median, quantile } from "./stats.js";

export interface ClusterBenchOptions {
  /** Link setups timed for the handshake figures. */
  handshakes: number;
  /** Length of each idle measurement window, in seconds. */
  idleWindowSeconds: number;
  /** Simultaneous three-node starts timed for the convergence figures. */
  convergeRounds: number;
}

export const DEFAULT_CLUSTER_BENCH: ClusterBenchOptions = { handshakes: 40, idleWindowSeconds: 30, convergeRounds: 3 };

/** After a start, let hashing, first snapshots and JIT warm-up pass before measuring idleness. */
const SETTLE_MS = 5_000;
const CONVERGE_POLL_MS = 50;
const CONVERGE_TIMEOUT_MS = 60_000;

const round = (value: number, digits = 1): number => Math.round(value * 10 ** digits) / 10 ** digits;

interface LinkCounters {
  /** `local peer` of each established peer connection. */
  connections: string[];
  bytes: number;
  segments: number;
}

/** TCP payload and segments of this node's established peer links (not loopback), from `ss`. */
async function linkCounters(node: ClusterNode): Promise<LinkCounters> {
  const result = await node.host.exec(requireTool("ss"), ["-tinH", "state", "established"]);
  const lines = result.stdout.split("\n");
  const counters: LinkCounters = { connections: [], bytes: 0, segments: 0 };
  for (let i = 0; i < lines.length; i++) {
    const header = lines[i]!.trim().split(/\s+/);
    const local = header[2];
    const peer = header[3];
    if (local === undefined || peer === undefined || local.startsWith("127.")) continue;
    if (!local.endsWith(`:${PEER_PORT}`) && !peer.endsWith(`:${PEER_PORT}`)) continue;
    const info = lines[i + 1] ?? "";
    const field = (name: string): number => Number(new RegExp(`\\b${name}:(\\d+)`).exec(info)?.[1] ?? 0);
    counters.connections.push(`${local} ${peer}`);
    counters.bytes += field("bytes_acked") + field("bytes_received");
    counters.segments += field("segs_out") + field("segs_in");
  }
  return counters;
}

interface IdleFigures {
  cpuMsPerMin: number;
  wireBytesPerMin: number;
  wirePacketsPerMin: number;
  linkBytesPerMin: number;
  linkSegmentsPerMin: number;
  /** Whether the same links were up at both ends of the window (else link figures are off). */
  linksStable: boolean;
}

async function measureIdle(node: ClusterNode, windowMs: number): Promise<IdleFigures> {
  const cpuBefore = node.cpuTimeMs();
  const wireBefore = node.netDev();
  const linksBefore = await linkCounters(node);
  const started = performance.now();
  await sleep(windowMs);
  const elapsed = performance.now() - started;
  const cpuAfter = node.cpuTimeMs();
  const wireAfter = node.netDev();
  const linksAfter = await linkCounters(node);
  const perMinute = (delta: number): number => (delta * 60_000) / elapsed;
  return {
    cpuMsPerMin: perMinute(cpuAfter - cpuBefore),
    wireBytesPerMin: perMinute(wireAfter.rxBytes + wireAfter.txBytes - wireBefore.rxBytes - wireBefore.txBytes),
    wirePacketsPerMin: perMinute(wireAfter.rxPackets + wireAfter.txPackets - wireBefore.rxPackets - wireBefore.txPackets),
    linkBytesPerMin: perMinute(linksAfter.bytes - linksBefore.bytes),
    linkSegmentsPerMin: perMinute(linksAfter.segments - linksBefore.segments),
    linksStable: linksBefore.connections.sort().join(",") === linksAfter.connections.sort().join(","),
  };
}

/** Waits until the node has hashed its model, so the hashing is not measured as idle work. */
async function waitHashed(net: ClusterNet, nodes: readonly ClusterNode[]): Promise<void> {
  await net.waitFor(nodes, (views) => views.every((view) => view.local.models.every((model) => model.sha256 !== null) && view.peers.every((peer) => (peer.models ?? []).every((model) => model.sha256 !== null))), {
    timeoutMs: 60_000,
    what: "model hashes",
  });
}

/**
 * The idle cost of peer links alone: mDNS is off (its multicast chatter grows with the number
 * of nodes and would be counted as link cost), and the peers dial the measured node by `--peer`.
 */
async function idleCost(net: ClusterNet, windowMs: number, figures: Record<string, number>): Promise<void> {
  const [measured, ...peers] = net.nodes as [ClusterNode, ...ClusterNode[]];
  process.stderr.write(`cluster bench: idle links, ${windowMs / 1000} s with 0 peers, then ${windowMs / 1000} s with ${peers.length} ...\n`);
  await measured.start({ args: ["--no-mdns"] });
  await waitHashed(net, [measured]);
  await sleep(SETTLE_MS);
  const alone = await measureIdle(measured, windowMs);

  await net.startAll(peers, { args: ["--no-mdns", "--peer", measured.peerAddress] });
  await net.waitFor([measured], ([view]) => view!.peers.filter((entry) => entry.state === "up").length === peers.length, {
    timeoutMs: CONVERGE_TIMEOUT_MS,
    what: "the measured node to link with both peers",
  });
  await waitHashed(net, net.nodes);
  await sleep(SETTLE_MS);
  const linked = await measureIdle(measured, windowMs);
  if (!linked.linksStable) process.stderr.write("cluster bench: warning: a peer link was re-established during the idle window\n");

  const perPeer = (withPeers: number, withNone: number): number => (withPeers - withNone) / peers.length;
  figures["idle_per_min.cpu_ms.0_peers"] = round(alone.cpuMsPerMin);
  figures["idle_per_min.cpu_ms.2_peers"] = round(linked.cpuMsPerMin);
  figures["heartbeat_per_peer_min.cpu_ms"] = round(perPeer(linked.cpuMsPerMin, alone.cpuMsPerMin));
  figures["heartbeat_per_peer_min.link_bytes"] = Math.round(linked.linkBytesPerMin / peers.length);
  figures["heartbeat_per_peer_min.link_segs"] = Math.round(linked.linkSegmentsPerMin / peers.length);
  figures["heartbeat_per_peer_min.wire_bytes"] = Math.round(perPeer(linked.wireBytesPerMin, alone.wireBytesPerMin));
  figures["heartbeat_per_peer_min.wire_pkts"] = Math.round(perPeer(linked.wirePacketsPerMin, alone.wirePacketsPerMin));
  await Promise.all(net.nodes.map((node) => node.stop()));
}

/** The same idle node with mDNS on, after convergence: what discovery adds on top of the links. */
async function idleWithMdns(net: ClusterNet, windowMs: number, figures: Record<string, number>): Promise<void> {
  process.stderr.write(`cluster bench: idle with mDNS, ${windowMs / 1000} s ...\n`);
  await waitHashed(net, net.nodes);
  await sleep(SETTLE_MS);
  const idle = await measureIdle(net.node(1), windowMs);
  figures["idle_per_min.cpu_ms.2_peers_mdns"] = round(idle.cpuMsPerMin);
  figures["idle_per_min.wire_bytes.2p_mdns"] = Math.round(idle.wireBytesPerMin);
}

async function handshakeTime(net: ClusterNet, count: number, figures: Record<string, number>): Promise<void> {
  process.stderr.write(`cluster bench: ${count} link setups ...\n`);
  const [target, , dialler] = net.nodes as [ClusterNode, ClusterNode, ClusterNode];
  const options = { host: target.address, port: PEER_PORT, token: target.membership!.joinToken, count };
  const run = await dialler.host.exec(process.execPath, [clusterFixture("cluster-linkTimer.js"), JSON.stringify(options)], { timeoutMs: 120_000 });
  const result = JSON.parse(run.stdout.trim().split("\n").pop() ?? "{}") as { event?: string; error?: string; samples?: { openMs: number; handshakeMs: number; totalMs: number }[] };
  if (result.event !== "done" || result.samples === undefined) throw new Error(`the link timer failed: ${result.error ?? run.stderr}`);
  const samples = result.samples;
  figures["handshake.median_ms"] = round(median(samples.map((sample) => sample.totalMs)), 2);
  figures["handshake.p90_ms"] = round(quantile(samples.map((sample) => sample.totalMs), 0.9), 2);
  figures["handshake.tls_ws_median_ms"] = round(median(samples.map((sample) => sample.openMs)), 2);
  figures["handshake.auth_median_ms"] = round(median(samples.map((sample) => sample.handshakeMs)), 2);
}

async function convergence(net: ClusterNet, rounds: number, figures: Record<string, number>): Promise<void> {
  process.stderr.write(`cluster bench: ${rounds} simultaneous three-node starts ...\n`);
  const converged: number[] = [];
  const healthy: number[] = [];
  for (let i = 0; i < rounds; i++) {
    await Promise.all(net.nodes.filter((node) => node.running).map((node) => node.stop()));
    const since = performance.now();
    for (const node of net.nodes) node.spawnDaemon();
    await Promise.all(net.nodes.map((node) => node.waitHealthy()));
    healthy.push(performance.now() - since);
    const { elapsedMs } = await net.waitForMesh(net.nodes, { since, timeoutMs: CONVERGE_TIMEOUT_MS, pollMs: CONVERGE_POLL_MS });
    converged.push(elapsedMs);
  }
  figures["converge.median_ms"] = Math.round(median(converged));
  figures["converge.max_ms"] = Math.round(Math.max(...converged));
  figures["converge.healthy_median_ms"] = Math.round(median(healthy));
}

export async function benchCluster(options: ClusterBenchOptions = DEFAULT_CLUSTER_BENCH): Promise<Record<string, number>> {
  try {
    assertNetnsSupport();
    requireTool("ss");
  } catch (error) {
    if (!(error instanceof NetnsUnavailableError)) throw error;
    process.stderr.write(`cluster bench skipped: ${error.message}\n`);
    return {};
  }
  const figures: Record<string, number> = {};
  const net = await ClusterNet.create({ nodes: 3, prefix: "hbn" });
  try {
    await idleCost(net, options.idleWindowSeconds * 1000, figures);
    await convergence(net, options.convergeRounds, figures);
    await idleWithMdns(net, options.idleWindowSeconds * 1000, figures);
    await handshakeTime(net, options.handshakes, figures);
  } finally {
    await net.destroy();
  }
  return figures;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({
    options: {
      handshakes: { type: "string", default: String(DEFAULT_CLUSTER_BENCH.handshakes) },
      "idle-seconds": { type: "string", default: String(DEFAULT_CLUSTER_BENCH.idleWindowSeconds) },
      rounds: { type: "string", default: String(DEFAULT_CLUSTER_BENCH.convergeRounds) },
    },
  });
  benchCluster({ handshakes: Number(values.handshakes), idleWindowSeconds: Number(values["idle-seconds"]), convergeRounds: Number(values.rounds) }).then(
    (figures) => {
      for (const [key, value] of Object.entries(figures)) process.stdout.write(`  ${key.padEnd(44)} ${value}\n`);
    },
    (error: unknown) => {
      process.stderr.write(`cluster bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exit(1);
    },
  );
}
