/**
 * The one way tests run the `hearth` command: the built CLI (dist/cli/main.js) as a child
 * process of this Node.
 *
 *   runCli(args, options)    runs it to the end: exit code, signal, stdout, stderr. Rejects
 *                            when it has not finished within `timeoutMs` (it is killed), with
 *                            its stderr and stdout in the message.
 *   startCli(args, options)  starts it and returns at once, for commands a test signals or
 *                            that run alongside (`serve`, a long `run`, an interrupted `pull`).
 *
 * Commands run inside a network namespace go through that namespace's host instead
 * (test/support/clusterNet.ts `ClusterNode.cli`).
 */

import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

const TWO_UP = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
/** This file runs from test/support (vitest) or from dist/test/support (bench). */
export const REPO_ROOT = path.basename(TWO_UP) === "dist" ? path.dirname(TWO_UP) : TWO_UP;
export const CLI_PATH = path.join(REPO_ROOT, "dist", "cli", "main.js");

/** How long runCli waits by default before it kills the command and rejects. */
export const DEFAULT_CLI_TIMEOUT_MS = 60_000;

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** How many separate pieces stdout arrived in (streamed output shows as more than one). */
  stdoutChunks: number;
}

export interface CliOptions {
  /** The whole environment of the command; default this process's. */
  env?: NodeJS.ProcessEnv;
  /** Written to the command's stdin, which is then closed; without it stdin is empty. */
  stdin?: string;
  /** Its own process group (like a shell job), so a test can signal the whole group as Ctrl-C does. */
  ownProcessGroup?: boolean;
}

export interface CliProcess {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves when the command has exited and its output is read to the end. */
  exited: Promise<CliResult>;
}

export function startCli(args: readonly string[], options: CliOptions = {}): CliProcess {
  const child = spawn(process.execPath, [CLI_PATH, ...args], {
    env: options.env ?? process.env,
    stdio: [options.stdin === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    detached: options.ownProcessGroup ?? false,
  });
  let stdout = "";
  let stderr = "";
  let stdoutChunks = 0;
  child.stdout!.on("data", (chunk: Buffer) => {
    stdout += chunk.toString("utf8");
    stdoutChunks++;
  });
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
  if (options.stdin !== undefined) {
    // A command that exits before reading its input closes the pipe; that is not its failure.
    child.stdin!.on("error", () => undefined);
    child.stdin!.end(options.stdin);
  }
  const exited = new Promise<CliResult>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code, signal) => resolve({ code, signal, stdout, stderr, stdoutChunks }));
  });
  return { child, stdout: () => stdout, stderr: () => stderr, exited };
}

export function runCli(args: readonly string[], options: CliOptions & { timeoutMs?: number } = {}): Promise<CliResult> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_CLI_TIMEOUT_MS;
  const running = startCli(args, options);
  return new Promise<CliResult>((resolve, reject) => {
    const timer = setTimeout(() => {
      running.child.kill("SIGKILL");
      reject(new Error(`hearth ${args.join(" ")} did not finish within ${timeoutMs} ms\nstderr: ${running.stderr()}\nstdout: ${running.stdout()}`));
    }, timeoutMs);
    running.exited.then(
      (result) => {
        clearTimeout(timer);
        resolve(result);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}
