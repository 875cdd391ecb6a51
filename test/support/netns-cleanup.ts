/**
 * Making sure the namespace harness leaves nothing behind.
 *
 * Owns the naming scheme that lets a later run recognise what an earlier one left (every
 * namespace name carries the owning process id), killing every process inside a namespace,
 * deleting namespaces, the sweep of stale ones at start, and the process-exit and signal
 * handlers that tear down live networks when a test run is interrupted. A run killed with
 * SIGKILL cannot clean up after itself; the next run's sweep does it.
 */

import fs from "node:fs";
import { NetnsCommandError, runCommand, runSyncBestEffort } from "./netns-system.js";

export const DEFAULT_NAMESPACE_PREFIX = "hth";

/** How long to wait for killed processes to disappear before reporting them as leaked. */
export const PROCESS_EXIT_WAIT_MS = 5_000;
const PROCESS_POLL_MS = 20;
// A process can fork while we kill its siblings; a few rounds catch such late arrivals.
const KILL_ROUNDS = 3;

const PREFIX_PATTERN = /^[a-z]{1,8}$/;

export function assertValidPrefix(prefix: string): void {
  if (!PREFIX_PATTERN.test(prefix)) {
    throw new RangeError(`Namespace prefix must be 1-8 lowercase letters, got ${JSON.stringify(prefix)}.`);
  }
}

/** Run ids look like `hth4242r0`: prefix, owner pid, `r`, a per-process sequence number. */
export function makeRunId(prefix: string, ownerPid: number, sequence: number): string {
  return `${prefix}${ownerPid}r${sequence}`;
}

export function bridgeNamespaceName(runId: string): string {
  return `${runId}s`;
}

export function nodeNamespaceName(runId: string, nodeIndex: number): string {
  return `${runId}n${nodeIndex}`;
}

/** The run id and owning process id encoded in a harness namespace name, or null for foreign names. */
export function parseNamespaceName(namespace: string, prefix: string): { runId: string; ownerPid: number } | null {
  if (!namespace.startsWith(prefix)) return null;
  const match = /^((\d+)r\d+)(?:s|n\d+)$/.exec(namespace.slice(prefix.length));
  if (match?.[1] === undefined || match[2] === undefined) return null;
  return { runId: `${prefix}${match[1]}`, ownerPid: Number(match[2]) };
}

// Run ids this process made. A namespace carrying our pid but another run id was left by an
// earlier process that had the same pid, and is as stale as any other.
const ownRunIds = new Set<string>();

export function claimRunId(runId: string): void {
  ownRunIds.add(runId);
}

/** True when the process no longer exists or is a zombie (dead, only waiting to be reaped). */
export function isProcessGone(pid: number): boolean {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return true;
  }
  // The command name sits in parentheses and may itself contain ") ", so read after the last one.
  const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  return state === "Z" || state === "X";
}

export function signalPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // Already gone: that is what we wanted.
  }
}

export async function waitForPidsGone(pids: readonly number[], timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  let alive = pids.filter((pid) => !isProcessGone(pid));
  while (alive.length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, PROCESS_POLL_MS));
    alive = alive.filter((pid) => !isProcessGone(pid));
  }
  return alive;
}

/** Names of all network namespaces known to iproute2 (`ip netns list`). */
export async function listNamespaces(ip: string): Promise<string[]> {
  const result = await runCommand(ip, ["netns", "list"]);
  if (result.code !== 0) throw new NetnsCommandError([ip, "netns", "list"], result);
  return parseNamespaceList(result.stdout);
}

function parseNamespaceList(output: string): string[] {
  // Lines look like `name (id: 3)` or just `name`.
  return output
    .split("\n")
    .map((line) => line.trim().split(/\s+/)[0] ?? "")
    .filter((name) => name.length > 0);
}

/** Every process whose network namespace is `namespace`, whoever started it. */
export async function namespacePids(ip: string, namespace: string): Promise<number[]> {
  const result = await runCommand(ip, ["netns", "pids", namespace]);
  // A namespace that is already gone has no processes.
  if (result.code !== 0) return [];
  return parsePids(result.stdout);
}

function parsePids(output: string): number[] {
  return output
    .split("\n")
    .map((line) => Number(line.trim()))
    .filter((pid) => Number.isInteger(pid) && pid > 0);
}

/**
 * SIGKILLs every process in the namespace, waits for them to die, and deletes the namespace
 * (which destroys its interfaces and the veth peers attached to them). Returns the pids that
 * survived, which is a leak the caller should report; their namespace is then kept, because
 * once deleted its processes can no longer be found by name and a later sweep would miss them.
 */
export async function purgeNamespace(ip: string, namespace: string): Promise<number[]> {
  let survivors: number[] = [];
  for (let round = 0; round < KILL_ROUNDS; round++) {
    const pids = await namespacePids(ip, namespace);
    if (pids.length === 0) {
      survivors = [];
      break;
    }
    for (const pid of pids) signalPid(pid, "SIGKILL");
    survivors = await waitForPidsGone(pids, PROCESS_EXIT_WAIT_MS);
  }
  if (survivors.length > 0) return survivors;
  const deletion = await runCommand(ip, ["netns", "del", namespace]);
  if (deletion.code !== 0 && (await listNamespaces(ip)).includes(namespace)) {
    throw new NetnsCommandError([ip, "netns", "del", namespace], deletion);
  }
  return survivors;
}

/** purgeNamespace for exit handlers: kills and deletes without waiting. */
export function purgeNamespaceSync(ip: string, namespace: string): void {
  const pids = parsePids(runSyncBestEffort(ip, ["netns", "pids", namespace]) ?? "");
  for (const pid of pids) signalPid(pid, "SIGKILL");
  runSyncBestEffort(ip, ["netns", "del", namespace]);
}

/**
 * Removes namespaces with this prefix whose owning process is gone: what a run killed with
 * SIGKILL (or a crashed machine) left behind. Namespaces of live runs, including parallel
 * ones, are left alone. Returns the names removed.
 */
export async function sweepStaleNamespaces(ip: string, prefix: string): Promise<string[]> {
  assertValidPrefix(prefix);
  const stale = (await listNamespaces(ip)).filter((namespace) => {
    const parsed = parseNamespaceName(namespace, prefix);
    if (parsed === null) return false;
    return parsed.ownerPid === process.pid ? !ownRunIds.has(parsed.runId) : isProcessGone(parsed.ownerPid);
  });
  await Promise.all(stale.map((namespace) => purgeNamespace(ip, namespace)));
  return stale;
}

/** Something that can tear itself down synchronously when the process is about to exit. */
export interface ExitCleanup {
  destroySync(): void;
}

const liveCleanups = new Set<ExitCleanup>();
const TEARDOWN_SIGNALS: readonly NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];

function runAllCleanupsSync(): void {
  for (const cleanup of [...liveCleanups]) {
    liveCleanups.delete(cleanup);
    cleanup.destroySync();
  }
}

function onTeardownSignal(signal: NodeJS.Signals): void {
  runAllCleanupsSync();
  uninstallHandlers();
  // Our listener replaced Node's default of dying on the signal. If nobody else handles it,
  // restore that default by raising the signal again now that the namespaces are gone.
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
}

function installHandlers(): void {
  process.on("exit", runAllCleanupsSync);
  for (const signal of TEARDOWN_SIGNALS) process.on(signal, onTeardownSignal);
}

function uninstallHandlers(): void {
  process.removeListener("exit", runAllCleanupsSync);
  for (const signal of TEARDOWN_SIGNALS) process.removeListener(signal, onTeardownSignal);
}

/**
 * Ensures `cleanup` runs if the process exits or receives SIGINT/SIGTERM/SIGHUP before the
 * returned unregister function is called. Handlers are installed only while something is live,
 * so a process with no networks keeps Node's default signal behaviour.
 */
export function registerExitCleanup(cleanup: ExitCleanup): () => void {
  if (liveCleanups.size === 0) installHandlers();
  liveCleanups.add(cleanup);
  return () => {
    if (liveCleanups.delete(cleanup) && liveCleanups.size === 0) uninstallHandlers();
  };
}
