/**
 * The system side of the network-namespace harness: finding the tools it drives (`ip`, `tc`,
 * `taskset`, `python3`), checking up front that this machine can run multi-host tests at all,
 * and running commands with their output captured.
 *
 * Everything here fails with a typed error whose message names what is missing, so a developer
 * who runs the cluster tests without root or without iproute2 learns why at once instead of
 * reading a stack trace from deep inside a test.
 */

import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";

/** Why multi-host tests cannot run on this machine. */
export type NetnsUnavailableReason = "not-linux" | "not-root" | "missing-tool" | "netns-failed";

export class NetnsUnavailableError extends Error {
  override readonly name = "NetnsUnavailableError";
  readonly reason: NetnsUnavailableReason;
  /** The missing tool, for reason "missing-tool". */
  readonly tool: string | undefined;

  constructor(reason: NetnsUnavailableReason, message: string, tool?: string) {
    super(message);
    this.reason = reason;
    this.tool = tool;
  }
}

/** A harness command exited non-zero; carries what it printed so the failure explains itself. */
export class NetnsCommandError extends Error {
  override readonly name = "NetnsCommandError";
  readonly command: readonly string[];
  readonly code: number | null;
  readonly stderr: string;

  constructor(command: readonly string[], result: CommandResult) {
    const status = result.signal ? `signal ${result.signal}` : `exit code ${String(result.code)}`;
    super(`\`${command.join(" ")}\` failed with ${status}: ${result.stderr.trim() || result.stdout.trim() || "(no output)"}`);
    this.command = command;
    this.code = result.code;
    this.stderr = result.stderr;
  }
}

export interface CommandResult {
  /** Exit code, or null when the process was ended by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Kill the process (SIGKILL) after this long; the result then carries the signal. Default 30 s. */
  timeoutMs?: number;
  /** Written to stdin, which is then closed. */
  input?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export const DEFAULT_COMMAND_TIMEOUT_MS = 30_000;

// Root's PATH normally has the sbin directories, but a developer's shell or an IDE may not;
// iproute2 lives there on Debian.
const EXTRA_TOOL_DIRS = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

const INSTALL_HINTS: Record<string, string> = {
  ip: "install iproute2 (apt-get install iproute2)",
  tc: "install iproute2 (apt-get install iproute2)",
  taskset: "install util-linux (apt-get install util-linux)",
  python3: "install python3 (apt-get install python3); the harness uses it for ICMP ping and the delay line",
  sh: "a POSIX shell is required",
};

const resolvedTools = new Map<string, string | null>();

/** Absolute path of `tool`, or null when it is on neither PATH nor the sbin directories. */
export function findTool(tool: string, preferred: readonly string[] = []): string | null {
  const cached = resolvedTools.get(tool);
  if (cached !== undefined) return cached;
  const dirs = [...(process.env.PATH ?? "").split(path.delimiter).filter(Boolean), ...EXTRA_TOOL_DIRS];
  const candidates = [...preferred, ...dirs.map((dir) => path.join(dir, tool))];
  const found = candidates.find((candidate) => isExecutable(candidate)) ?? null;
  resolvedTools.set(tool, found);
  return found;
}

/** Like findTool, but a missing tool is a NetnsUnavailableError that says how to get it. */
export function requireTool(tool: string, preferred: readonly string[] = []): string {
  const found = findTool(tool, preferred);
  if (found === null) {
    const hint = INSTALL_HINTS[tool] ?? `install ${tool}`;
    throw new NetnsUnavailableError("missing-tool", `Multi-host tests need \`${tool}\`, which is not on PATH or in /usr/sbin: ${hint}.`, tool);
  }
  return found;
}

// Debian's own interpreter starts several times faster than a pyenv shim, which matters when a
// test pings six node pairs.
export function requirePython(): string {
  return requireTool("python3", ["/usr/bin/python3"]);
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/**
 * Throws NetnsUnavailableError unless this process can create network namespaces: Linux, root,
 * and iproute2's `ip` and `tc`. Whether the kernel allows `ip netns add` is only known by trying,
 * which createTestNetwork does and reports with reason "netns-failed".
 */
export function assertNetnsSupport(): void {
  if (process.platform !== "linux") {
    throw new NetnsUnavailableError("not-linux", `Multi-host tests need Linux network namespaces; this is ${process.platform}.`);
  }
  if (process.getuid?.() !== 0) {
    throw new NetnsUnavailableError(
      "not-root",
      `Multi-host tests need root to create network namespaces (\`ip netns add\`); this process runs as uid ${String(process.getuid?.())}. Run the cluster tests as root, as CI does.`,
    );
  }
  requireTool("ip");
  requireTool("tc");
}

/** Runs a command to completion. Never rejects for a non-zero exit; see runChecked for that. */
export function runCommand(file: string, args: readonly string[], options: RunOptions = {}): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      env: options.env ?? process.env,
      ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS);
    child.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    // A command that exits before reading its input closes the pipe; that is not our failure.
    child.stdin.on("error", () => {});
    child.stdin.end(options.input ?? "");
  });
}

/** Runs a command and rejects with NetnsCommandError unless it exits 0. Resolves to stdout. */
export async function runChecked(file: string, args: readonly string[], options: RunOptions = {}): Promise<string> {
  const result = await runCommand(file, args, options);
  if (result.code !== 0) throw new NetnsCommandError([file, ...args], result);
  return result.stdout;
}

/**
 * Synchronous run for process-exit handlers, where nothing asynchronous gets to finish.
 * Best effort: returns stdout, or null when the command failed.
 */
export function runSyncBestEffort(file: string, args: readonly string[]): string | null {
  try {
    return execFileSync(file, args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], timeout: 5_000 });
  } catch {
    return null;
  }
}
