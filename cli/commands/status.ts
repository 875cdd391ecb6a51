/**
 * `hearth status`: is the daemon up, which version, where, and what it has loaded.
 *
 * Asks /health, then /hearth/v1/status (which includes a cluster summary: node id, cluster,
 * peers up, and the model transfers from peers in progress, one line each). A daemon that does not answer is "down" and the
 * command exits 3; --json prints an object in both cases so scripts can parse either.
 */

import type { Command } from "commander";
import { HearthError } from "../../protocol/errors.js";
import { formatDuration } from "../../protocol/duration.js";
import { DaemonClient, resolveDaemonTarget } from "../client.js";
import { addClientOptions, type ClientCommandOptions } from "../options.js";
import { EXIT_UNREACHABLE, formatTable, printJson } from "../output.js";
import { placementLines } from "../placementLines.js";
import { formatTransferLine, type TransferLike } from "./transferLine.js";

/** A status probe should answer fast; a daemon that takes longer is as good as down. */
const STATUS_TIMEOUT_MS = 5000;

export function registerStatusCommand(program: Command): void {
  addClientOptions(
    program
      .command("status")
      .description("show whether the daemon is up, its version and address, and its loaded models")
      .option("--json", "print a JSON object for scripts"),
  ).action(status);
}

interface LoadedModelView {
  modelId: string;
  state?: string;
  running?: number;
  queued?: number;
  pid?: number;
}

async function status(options: ClientCommandOptions): Promise<void> {
  const target = await resolveDaemonTarget({ url: options.url, config: options.config });
  for (const warning of target.warnings) process.stderr.write(`warning: ${warning}\n`);
  const client = new DaemonClient(target);

  let health: unknown;
  try {
    health = await client.getJson("/health", { timeoutMs: STATUS_TIMEOUT_MS });
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
  const detail = await client.getJson("/hearth/v1/status", { timeoutMs: STATUS_TIMEOUT_MS });

  if (options.json) {
    printJson({ up: true, url: client.baseUrl, health, status: detail });
    return;
  }
  const version = stringField(detail, "version") ?? stringField(health, "version") ?? "unknown";
  const state = stringField(health, "status") ?? "ok";
  const uptime = (detail as { uptimeSeconds?: unknown } | null)?.uptimeSeconds;
  const uptimeText = typeof uptime === "number" ? `, up ${formatDuration(uptime * 1000)}` : "";
  process.stdout.write(`up: hearth ${version} at ${client.baseUrl} (${state}${uptimeText})\n`);
  const cluster = clusterLine(detail);
  if (cluster !== undefined) process.stdout.write(`${cluster}\n`);
  for (const transfer of transfers(detail)) process.stdout.write(`fetching ${formatTransferLine(transfer)}\n`);
  for (const line of placementLines((detail as { placements?: unknown } | null)?.placements)) process.stdout.write(`${line}\n`);
  const loaded = loadedModels(detail);
  if (loaded.length === 0) {
    process.stdout.write("no models loaded\n");
    return;
  }
  process.stdout.write(
    formatTable(
      ["MODEL", "STATE", "RUNNING", "QUEUED", "PID"],
      loaded.map((model) => [model.modelId, model.state ?? "?", String(model.running ?? 0), String(model.queued ?? 0), model.pid === undefined ? "-" : String(model.pid)]),
    ),
  );
}

/** The status's cluster summary (GET /hearth/v1/status `cluster`), as one line. */
function clusterLine(detail: unknown): string | undefined {
  const cluster = (detail as { cluster?: unknown } | null)?.cluster as { clusterId?: unknown; nodeId?: unknown; peers?: { total?: unknown; up?: unknown } } | undefined | null;
  if (cluster === undefined || cluster === null) return undefined;
  const node = typeof cluster.nodeId === "string" ? cluster.nodeId : "?";
  if (typeof cluster.clusterId !== "string") return `node ${node}: standalone (no cluster)`;
  const up = typeof cluster.peers?.up === "number" ? cluster.peers.up : 0;
  const total = typeof cluster.peers?.total === "number" ? cluster.peers.total : 0;
  return `node ${node} in cluster ${cluster.clusterId}: ${up} of ${total} peers up (hearth peers for details)`;
}

/** Model transfers from peers in progress (GET /hearth/v1/status `transfers`). */
function transfers(detail: unknown): Partial<TransferLike>[] {
  const list = (detail as { transfers?: unknown } | null)?.transfers;
  return Array.isArray(list) ? list.filter((entry): entry is Partial<TransferLike> => typeof entry === "object" && entry !== null) : [];
}

function stringField(value: unknown, key: string): string | undefined {
  const field = (value as Record<string, unknown> | null | undefined)?.[key];
  return typeof field === "string" ? field : undefined;
}

/** Loaded models as /hearth/v1/status lists them (EngineStats.loaded), tolerating missing fields. */
function loadedModels(detail: unknown): LoadedModelView[] {
  const list = (detail as { models?: unknown } | null)?.models;
  if (!Array.isArray(list)) return [];
  return list.flatMap((entry: unknown): LoadedModelView[] => {
    const item = entry as Record<string, unknown> | null;
    const modelId = typeof item?.["modelId"] === "string" ? item["modelId"] : undefined;
    if (!item || modelId === undefined) return [];
    const view: LoadedModelView = { modelId };
    if (typeof item["state"] === "string") view.state = item["state"];
    if (typeof item["running"] === "number") view.running = item["running"];
    if (typeof item["queued"] === "number") view.queued = item["queued"];
    if (typeof item["pid"] === "number") view.pid = item["pid"];
    return [view];
  });
}
