/**
 * `hearth doctor [--json]`: why machines do or do not see each other.
 *
 * It reports, in order:
 *   - this node: id, cluster membership, peer port (from the data dir and config);
 *   - network interfaces, flagged loopback / container / vm-bridge / vpn / link-local, and
 *     whether any looks like a LAN a peer could be on;
 *   - multicast: a short mDNS query for `_hearth._tcp` and who answered, plus the daemon's own
 *     mDNS counters;
 *   - peers seen but not up, dial targets that keep failing, and inbound handshakes refused,
 *     each with its error code and what it usually means (wrong cluster, incompatible
 *     version, unreachable port);
 *   - the HTTP and peer ports: listening, and by whom (the daemon, or another program).
 * Then a list of problems with what to do. The daemon part needs a running `hearth serve`;
 * without one the rest is still reported. Exit 0 whatever it finds: it is a report; usage
 * errors exit 2 as usual.
 */

import type { Command } from "commander";
import { HearthError } from "../../protocol/errors.js";
import { shortNodeId } from "../../protocol/peer/identity.js";
import { clusterResponseSchema, type ClusterView } from "../../protocol/api/cluster.js";
import { clusterDiagnosticsSchema, type ClusterDiagnostics } from "../../protocol/api/diagnostics.js";
import { parseDuration } from "../../protocol/duration.js";
import { DaemonClient, resolveDaemonTarget } from "../client.js";
import { explainFailure } from "../doctor/explain.js";
import { probeMdns, type MdnsProbeResult } from "../doctor/mdnsProbe.js";
import { isListening, probeHost } from "../doctor/portProbe.js";
import type { InterfaceAddress, LocalMachine } from "../localMachine.js";
import { addClientOptions, type ClientCommandOptions } from "../options.js";
import { formatTable, printJson } from "../output.js";
import { InvalidArgumentError } from "commander";

const DAEMON_TIMEOUT_MS = 5_000;
const DEFAULT_MDNS_WAIT_MS = 2_000;

interface DoctorOptions extends ClientCommandOptions {
  mdnsWait: number;
}

interface PeerProblem {
  /** Node id, or the address when the node is not known. */
  peer: string;
  source: "peer" | "dial" | "inbound";
  state: string | null;
  code: string;
  message: string;
  kind: string;
  hint: string;
}

interface PortReport {
  name: "http" | "peer";
  host: string;
  port: number;
  listening: boolean;
  /** "daemon" when the running daemon reports it as its own. */
  owner: "daemon" | "other" | "none";
}

interface DoctorReport {
  node: { nodeId: string | null; clusterId: string | null; dataDir: string; peerPort: number; peerBind: string; mdns: boolean; staticPeers: string[] };
  interfaces: (InterfaceAddress & { flags: string[] })[];
  multicast: MdnsProbeResult & { daemonStatus: ClusterDiagnostics["mdns"] | null };
  daemon: { up: boolean; url: string; error: string | null; peers: { total: number; up: number } | null };
  peerProblems: PeerProblem[];
  ports: PortReport[];
  problems: string[];
}

export function registerDoctorCommand(program: Command, machine: LocalMachine): void {
  addClientOptions(
    program
      .command("doctor")
      .description("explain what this node sees: interfaces, multicast, peers failing and why, ports")
      .option("--json", "print the report as JSON")
      .option("--mdns-wait <duration>", 'how long to listen for mDNS answers, e.g. "2s"', parseWait, DEFAULT_MDNS_WAIT_MS),
  ).action((options: DoctorOptions) => doctor(machine, options));
}

function parseWait(text: string): number {
  const ms = parseDuration(text);
  if (ms === undefined || ms <= 0 || ms > 60_000) throw new InvalidArgumentError('expected a duration from "1ms" to "1m", e.g. "2s".');
  return ms;
}

async function doctor(machine: LocalMachine, options: DoctorOptions): Promise<void> {
  const local = await machine.facts({ configFile: options.config });

  const interfaces = local.interfaces.map((entry) => ({ ...entry, flags: flagsOf(entry) }));
  const [mdns, daemon] = await Promise.all([probeMdns(options.mdnsWait), askDaemon(machine, options)]);
  const diagnostics = daemon.diagnostics;

  const listener = diagnostics?.listener ?? null;
  const peerPort = listener?.port ?? local.peer.port;
  const ports: PortReport[] = [
    await portReport("http", local.host, daemon.httpPort ?? local.port, daemon.reachable),
    await portReport("peer", listener?.host ?? local.peer.host, peerPort, listener !== null),
  ];

  // What the running daemon says beats the local files: it is what peers actually talk to.
  const report: DoctorReport = {
    node: {
      nodeId: daemon.view?.local.nodeId ?? local.nodeId,
      clusterId: daemon.view === null ? local.clusterId : (daemon.view.cluster?.clusterId ?? null),
      dataDir: local.dataDir,
      peerPort,
      peerBind: listener?.host ?? local.peer.host,
      mdns: diagnostics?.mdns.enabled ?? local.peer.mdns,
      staticPeers: diagnostics?.staticPeers ?? local.peer.staticPeers,
    },
    interfaces,
    multicast: { ...mdns, daemonStatus: diagnostics?.mdns ?? null },
    daemon: {
      up: daemon.view !== null,
      url: daemon.url,
      error: daemon.error,
      peers: daemon.view === null ? null : { total: daemon.view.peers.length, up: daemon.view.peers.filter((peer) => peer.state === "up").length },
    },
    peerProblems: peerProblems(daemon.view, diagnostics),
    ports,
    problems: [],
  };
  report.problems = problemsOf(report, report.node.nodeId);

  if (options.json) printJson(report);
  else printReport(report);
}

function flagsOf(entry: InterfaceAddress): string[] {
  const flags: string[] = [entry.kind];
  if (entry.linkLocal) flags.push("link-local");
  if (entry.likelyPeerNetwork) flags.push("peer-network");
  return flags;
}

interface DaemonAnswer {
  url: string;
  view: ClusterView | null;
  diagnostics: ClusterDiagnostics | null;
  httpPort: number | undefined;
  /** Something answered HTTP there (even if only to refuse, e.g. without the API key). */
  reachable: boolean;
  error: string | null;
}

async function askDaemon(machine: LocalMachine, options: DoctorOptions): Promise<DaemonAnswer> {
  let client: DaemonClient;
  try {
    client = new DaemonClient(await resolveDaemonTarget(machine, { url: options.url, config: options.config }));
  } catch (error) {
    return { url: options.url ?? "", view: null, diagnostics: null, httpPort: undefined, reachable: false, error: error instanceof Error ? error.message : String(error) };
  }
  const port = Number(new URL(client.baseUrl).port) || undefined;
  try {
    const view = await client.getJson("/hearth/v1/cluster", clusterResponseSchema, { timeoutMs: DAEMON_TIMEOUT_MS });
    const diagnostics = await client.getJson("/hearth/v1/cluster/diagnostics", clusterDiagnosticsSchema, { timeoutMs: DAEMON_TIMEOUT_MS });
    return { url: client.baseUrl, view, diagnostics, httpPort: port, reachable: true, error: null };
  } catch (error) {
    const message = error instanceof HearthError ? `${error.code}: ${error.message}` : String(error);
    const reachable = error instanceof HearthError && error.code !== "HEARTH_DAEMON_UNREACHABLE";
    return { url: client.baseUrl, view: null, diagnostics: null, httpPort: port, reachable, error: message };
  }
}

async function portReport(name: "http" | "peer", host: string, port: number, ownedByDaemon: boolean): Promise<PortReport> {
  const probe = probeHost(host);
  const listening = port > 0 && (await isListening(probe, port));
  return { name, host: probe, port, listening, owner: !listening ? "none" : ownedByDaemon ? "daemon" : "other" };
}

function peerProblems(view: ClusterView | null, diagnostics: ClusterDiagnostics | null): PeerProblem[] {
  const problems: PeerProblem[] = [];
  const named = new Set<string>();
  for (const peer of view?.peers ?? []) {
    if (peer.state === "up" || peer.lastError === null) continue;
    const name = peer.nodeId ?? peer.addresses[0] ?? "?";
    for (const address of peer.addresses) named.add(address);
    problems.push({ peer: name, source: "peer", state: peer.state, code: peer.lastError.code, message: peer.lastError.message, ...explainFailure(peer.lastError.code, peer.lastError.message) });
  }
  for (const target of diagnostics?.dialTargets ?? []) {
    if (target.linked || target.lastFailure === null || named.has(target.address)) continue;
    problems.push({
      peer: target.nodeId ?? target.address,
      source: "dial",
      state: null,
      code: target.lastFailure.code,
      message: target.lastFailure.reason,
      ...explainFailure(target.lastFailure.code, target.lastFailure.reason),
    });
  }
  for (const failure of diagnostics?.inboundFailures ?? []) {
    problems.push({
      peer: failure.address,
      source: "inbound",
      state: null,
      code: failure.code,
      message: `${failure.reason} (${failure.count}x, last ${Math.round(failure.agoMs / 1000)} s ago)`,
      ...explainFailure(failure.code, failure.reason),
    });
  }
  return problems;
}

function problemsOf(report: DoctorReport, nodeId: string | null): string[] {
  const problems: string[] = [];
  if (report.node.clusterId === null) problems.push("this node belongs to no cluster: run `hearth cluster init` on one machine and `hearth cluster join TOKEN` on the others");
  if (!report.interfaces.some((entry) => entry.likelyPeerNetwork)) {
    problems.push("no interface looks like a LAN (only loopback, container, VM, VPN or link-local addresses): peers on other machines cannot reach this one");
  }
  if (report.multicast.socketError !== null) problems.push(`the mDNS socket failed (${report.multicast.socketError}): use static peers (--peer host:port)`);
  const daemonMdns = report.multicast.daemonStatus;
  if (daemonMdns?.status?.socketError) problems.push(`the daemon's mDNS socket failed (${daemonMdns.status.socketError}): only static peers will be found`);
  const others = report.multicast.answers.filter((answer) => answer.nodeId !== nodeId);
  const heardSelf = report.multicast.answers.some((answer) => answer.nodeId !== null && answer.nodeId === nodeId);
  if (report.daemon.up && daemonMdns?.enabled === true && !heardSelf && report.multicast.socketError === null) {
    problems.push("this node's own mDNS advert was not heard: multicast does not work on this machine (firewall on UDP 5353?); use --peer host:port");
  }
  if (report.daemon.up && daemonMdns?.enabled === true && others.length === 0 && (report.daemon.peers?.total ?? 0) === 0) {
    problems.push("no other Hearth node answered mDNS: is hearth serve running on the others? Wi-Fi client isolation and VMs often drop multicast; --peer host:port works without it");
  }
  if (!report.daemon.up) {
    problems.push(report.daemon.error ?? `no daemon answers at ${report.daemon.url || "the configured address"}; start one with: hearth serve`);
  }
  for (const port of report.ports) {
    if (port.owner === "other") problems.push(`${port.name} port ${port.port} is in use by another program: choose another with ${port.name === "http" ? "--port" : "--peer-port"}`);
  }
  for (const problem of report.peerProblems) problems.push(`${problem.source === "inbound" ? "attempt from" : "peer"} ${label(problem.peer)}: ${problem.code}: ${problem.hint}`);
  return problems;
}

function label(peer: string): string {
  return /^[A-Z2-7]{7}(-[A-Z2-7]{7}){7}$/.test(peer) ? shortNodeId(peer) : peer;
}

function printReport(report: DoctorReport): void {
  const out: string[] = [];
  const node = report.node;
  out.push(`node ${node.nodeId ?? "(no identity yet)"}, cluster ${node.clusterId ?? "none"}, peer port ${node.peerPort} on ${node.peerBind}, mDNS ${node.mdns ? "on" : "off"}`);
  if (node.staticPeers.length > 0) out.push(`static peers: ${node.staticPeers.join(", ")}`);
  out.push("", "interfaces:");
  out.push(
    formatTable(
      ["INTERFACE", "ADDRESS", "FLAGS"],
      report.interfaces.map((entry) => [entry.interface, entry.cidr ?? entry.address, entry.flags.join(",")]),
    ).trimEnd(),
  );
  const multicast = report.multicast;
  out.push("", `multicast: ${multicast.socketError === null ? `${multicast.answers.length} answer(s) to _hearth._tcp in ${multicast.waitedMs} ms` : `socket failed: ${multicast.socketError}`}`);
  for (const answer of multicast.answers) {
    out.push(`  ${answer.nodeId === null ? answer.name : label(answer.nodeId)}${answer.nodeId !== null && answer.nodeId === node.nodeId ? " (this node)" : ""} port ${answer.port} at ${answer.addresses.join(", ") || "?"}${answer.from === null ? "" : ` from ${answer.from}`}`);
  }
  const status = multicast.daemonStatus?.status;
  if (status) out.push(`  daemon: ${status.queriesSent} queries sent, ${status.answersRead} answers read (${status.ownAnswersHeard} its own), ${status.answersIgnored} ignored`);
  out.push("", `daemon: ${report.daemon.up ? `up at ${report.daemon.url}, ${report.daemon.peers?.up ?? 0} of ${report.daemon.peers?.total ?? 0} peers up` : `down (${report.daemon.error ?? "unreachable"})`}`);
  if (report.peerProblems.length > 0) {
    out.push("", "peers failing:");
    out.push(
      formatTable(
        ["PEER", "WHERE", "STATE", "CODE", "WHY"],
        report.peerProblems.map((problem) => [label(problem.peer), problem.source, problem.state ?? "-", problem.code, problem.message.slice(0, 100)]),
      ).trimEnd(),
    );
  }
  out.push("", "ports:");
  for (const port of report.ports) {
    out.push(`  ${port.name} ${port.host}:${port.port}: ${port.listening ? `listening (${port.owner === "daemon" ? "hearth" : "another program"})` : "not listening"}`);
  }
  out.push("", report.problems.length === 0 ? "no problems found" : "problems:");
  for (const problem of report.problems) out.push(`  - ${problem}`);
  process.stdout.write(`${out.join("\n")}\n`);
}
