/**
 * `hearth status`: is the daemon up, which version, where, and what it has loaded.
 *
 * Asks /health, then /hearth/v1/status (which includes a cluster summary: node id, cluster,
 * peers up, and the model transfers from peers in progress, one line each). A daemon that does not answer is "down" and the
 * command exits 3; --json prints an object in both cases so scripts can parse either.
 */

import type { Command } from "commander";
import { healthSchema } from "../../protocol/api/health.js";
import { statusSchema, type ClusterSummary } from "../../protocol/api/status.js";
import { formatDuration } from "../../protocol/duration.js";
import { HearthError } from "../../protocol/errors.js";
import { daemonClientFor } from "../client.js";
import type { LocalMachine } from "../localMachine.js";
import { addClientOptions, type ClientCommandOptions } from "../options.js";
import { EXIT_UNREACHABLE, formatTable, printJson } from "../output.js";
import { placementLines } from "../placementLines.js";
import { formatTransferLine } from "./transferLine.js";

/** A status probe should answer fast; a daemon that takes longer is as good as down. */
const STATUS_TIMEOUT_MS = 5000;

export function registerStatusCommand(program: Command, machine: LocalMachine): void {
  addClientOptions(
    program
      .command("status")
      .description("show whether the daemon is up, its version and address, and its loaded models")
      .option("--json", "print a JSON object for scripts"),
  ).action((options: ClientCommandOptions) => status(machine, options));
}

async function status(machine: LocalMachine, options: ClientCommandOptions): Promise<void> {
  const client = await daemonClientFor(machine, options);

  let health: { status: string; error?: unknown };
  try {
    health = await client.getJson("/health", healthSchema, { timeoutMs: STATUS_TIMEOUT_MS });
  } catch (error) {
    if (error instanceof HearthError && error.code === "HEARTH_DAEMON_UNREACHABLE") {
      if (options.json) printJson({ up: false, url: client.baseUrl, error: error.message });
      else process.stdout.write(`down: ${error.message}\n`);
      process.exitCode = EXIT_UNREACHABLE;
      return;
    }
    // Anything else (e.g. 503 while draining) is a daemon that is up but not ready.
    health = { status: "unavailable", error: error instanceof HearthError ? error.toPayload() : String(error) };
  }
  const detail = await client.getJson("/hearth/v1/status", statusSchema, { timeoutMs: STATUS_TIMEOUT_MS });

  if (options.json) {
    printJson({ up: true, url: client.baseUrl, health, status: detail });
    return;
  }
  process.stdout.write(`up: hearth ${detail.version} at ${client.baseUrl} (${health.status}, up ${formatDuration(detail.uptimeSeconds * 1000)})\n`);
  if (detail.cluster !== undefined) process.stdout.write(`${clusterLine(detail.cluster)}\n`);
  for (const transfer of detail.transfers ?? []) process.stdout.write(`fetching ${formatTransferLine(transfer)}\n`);
  for (const line of placementLines(detail.placements ?? [])) process.stdout.write(`${line}\n`);
  if (detail.models.length === 0) {
    process.stdout.write("no models loaded\n");
    return;
  }
  process.stdout.write(
    formatTable(
      ["MODEL", "STATE", "RUNNING", "QUEUED", "PID"],
      detail.models.map((model) => [model.modelId, model.state, String(model.running), String(model.queued), model.pid === undefined ? "-" : String(model.pid)]),
    ),
  );
}

/** The status's cluster summary, as one line. */
function clusterLine(cluster: ClusterSummary): string {
  if (cluster.clusterId === null) return `node ${cluster.nodeId}: standalone (no cluster)`;
  return `node ${cluster.nodeId} in cluster ${cluster.clusterId}: ${cluster.peers.up} of ${cluster.peers.total} peers up (hearth peers for details)`;
}
