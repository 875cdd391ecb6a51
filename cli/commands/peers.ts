/**
 * `hearth peers`: the daemon's peer table (`GET /hearth/v1/cluster`), as a table for people or,
 * with --json, exactly that response's `peers` array.
 */

import type { Command } from "commander";
import { shortNodeId } from "../../protocol/peer/identity.js";
import { formatDuration } from "../../protocol/duration.js";
import { clusterResponseSchema, type ClusterResponse, type PeerView } from "../../protocol/api/cluster.js";
import { daemonClientFor } from "../client.js";
import type { LocalMachine } from "../localMachine.js";
import { addClientOptions, type ClientCommandOptions } from "../options.js";
import { formatBytes, formatTable, printJson } from "../output.js";

const PEERS_TIMEOUT_MS = 10_000;
/** Error messages are cut in the table; --json has them whole. */
const MAX_ERROR_CHARS = 60;

export function registerPeersCommand(program: Command, machine: LocalMachine): void {
  addClientOptions(
    program
      .command("peers")
      .description("show the peers this daemon knows: state, addresses, RTT, resources, models")
      .option("--json", "print the peers as JSON (the `peers` array of GET /hearth/v1/cluster)"),
  ).action((options: ClientCommandOptions) => peers(machine, options));
}

async function fetchClusterView(machine: LocalMachine, options: ClientCommandOptions): Promise<ClusterResponse> {
  const client = await daemonClientFor(machine, options);
  return client.getJson("/hearth/v1/cluster", clusterResponseSchema, { timeoutMs: PEERS_TIMEOUT_MS });
}

async function peers(machine: LocalMachine, options: ClientCommandOptions): Promise<void> {
  const view = await fetchClusterView(machine, options);
  const list = view.peers;
  if (options.json) {
    printJson(list);
    return;
  }
  if (view.cluster === null) {
    process.stdout.write("this node belongs to no cluster (standalone); see `hearth cluster init` and `hearth cluster join`\n");
    return;
  }
  if (list.length === 0) {
    process.stdout.write(`no peers seen yet (cluster ${view.cluster.clusterId}); \`hearth doctor\` explains what this node can see\n`);
    return;
  }
  process.stdout.write(formatTable(["NODE", "STATE", "ADDRESS", "RTT", "HEARTBEAT", "CPU", "RAM FREE/TOTAL", "GPU", "MODELS", "LOADED", "QUEUE", "LAST ERROR"], list.map(peerRow)));
}

function peerRow(peer: PeerView): string[] {
  const resources = peer.resources;
  const gpu =
    resources === null ? "-" : resources.gpus.length === 0 ? "none" : `${resources.gpus.length}x ${formatBytes(resources.vramTotalBytes)} ${resources.gpuBackend ?? ""}`.trim();
  const error = peer.lastError === null ? "" : `${peer.lastError.code}: ${peer.lastError.message}`;
  return [
    peer.nodeId === null ? "?" : shortNodeId(peer.nodeId),
    peer.state,
    peer.addresses[0] ?? "-",
    peer.rttMs === null ? "-" : `${peer.rttMs.toFixed(1)} ms`,
    peer.lastHeartbeatAgoMs === null ? "-" : `${formatDuration(Math.round(peer.lastHeartbeatAgoMs / 1000) * 1000)} ago`,
    resources === null ? "-" : String(resources.cpuCores),
    resources === null ? "-" : `${formatBytes(resources.ramFreeBytes)}/${formatBytes(resources.ramTotalBytes)}`,
    gpu,
    peer.models === null ? "-" : String(peer.models.length),
    peer.loadedModels === null ? "-" : peer.loadedModels.join(",") || "none",
    peer.queueDepth === null ? "-" : String(peer.queueDepth),
    error.length > MAX_ERROR_CHARS ? `${error.slice(0, MAX_ERROR_CHARS - 3)}...` : error,
  ];
}
