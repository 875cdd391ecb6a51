/**
 * Starts a real `hearth serve` (the built CLI in dist/) in a throwaway home, for integration
 * tests and benchmarks. Everything it writes lives under one temp dir that `stop()` removes.
 */

import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { CLI_PATH } from "./cli.js";
import { waitFor } from "./wait.js";


export interface StartDaemonOptions {
  /** Model files to link into the daemon's models dir, by id. */
  models?: Record<string, string>;
  /** Extra TOML appended to the generated config file. */
  configToml?: string;
  /** Extra `hearth serve` flags. */
  args?: string[];
  env?: NodeJS.ProcessEnv;
  /** Prefix the command, e.g. ["taskset", "-c", "1"]. */
  wrapper?: string[];
  readyTimeoutMs?: number;
  /**
   * Use this directory as the daemon's home (created if missing) instead of a fresh temp dir.
   * The caller owns it: stop() leaves it in place, so a restarted daemon keeps its data dir
   * (node identity, cluster membership). Models are linked only where not already present.
   */
  home?: string;
  /** HTTP port; default a free one. */
  port?: number;
}

export interface RunningDaemon {
  url: string;
  port: number;
  home: string;
  modelsDir: string;
  process: ChildProcess;
  /** Everything the daemon wrote to stdout and stderr so far. */
  output(): string;
  /** Sends SIGTERM and waits for exit; returns the exit code (or the signal name). */
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

export function waitForExit(child: ChildProcess): Promise<number | string> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  if (child.signalCode !== null) return Promise.resolve(child.signalCode);
  return new Promise((resolve) => child.once("exit", (code, signal) => resolve(code ?? signal ?? -1)));
}

export async function startDaemon(options: StartDaemonOptions = {}): Promise<RunningDaemon> {
  const ownsHome = options.home === undefined;
  const home = options.home ?? fs.mkdtempSync(path.join(os.tmpdir(), "hearth-daemon-"));
  const removeHome = (): void => {
    if (ownsHome) fs.rmSync(home, { recursive: true, force: true });
  };
  const modelsDir = path.join(home, "models");
  fs.mkdirSync(modelsDir, { recursive: true });
  for (const [id, file] of Object.entries(options.models ?? {})) {
    const link = path.join(modelsDir, `${id}.gguf`);
    if (!fs.existsSync(link)) fs.symlinkSync(path.resolve(file), link);
  }
  const configPath = path.join(home, "config.toml");
  fs.writeFileSync(configPath, `${options.configToml ?? ""}\n`);
  const port = options.port ?? (await freePort());
  const args = [
    CLI_PATH, "serve",
    "--port", String(port),
    "--models-dir", modelsDir,
    "--data-dir", path.join(home, "data"),
    "--config", configPath,
    ...(options.args ?? []),
  ];
  const wrapper = options.wrapper ?? [];
  const command = wrapper[0] ?? process.execPath;
  const commandArgs = wrapper.length > 0 ? [...wrapper.slice(1), process.execPath, ...args] : args;
  const child = spawn(command, commandArgs, {
    env: {
      ...process.env,
      XDG_CONFIG_HOME: path.join(home, "xdg-config"),
      XDG_DATA_HOME: path.join(home, "xdg-data"),
      ...options.env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => { output += chunk.toString(); });
  child.stderr?.on("data", (chunk: Buffer) => { output += chunk.toString(); });
  const url = `http://127.0.0.1:${port}`;
  const daemon: RunningDaemon = {
    url,
    port,
    home,
    modelsDir,
    process: child,
    output: () => output,
    async stop(signal: NodeJS.Signals = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const result = await waitForExit(child);
      removeHome();
      return result;
    },
  };
  const healthy = async (): Promise<boolean> => {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`hearth serve exited early (${child.exitCode ?? child.signalCode}):\n${output}`);
    try {
      return (await fetch(`${url}/health`)).ok;
    } catch {
      return false; // not listening yet
    }
  };
  try {
    await waitFor(healthy, options.readyTimeoutMs ?? 30_000, "hearth serve to answer /health", 100);
  } catch (error) {
    // Killed (or already gone), and its home removed: nothing of a failed start stays behind.
    await daemon.stop("SIGKILL");
    const exitedEarly = (error as Error).message.startsWith("hearth serve exited early");
    throw exitedEarly ? error : new Error(`${(error as Error).message}:\n${output}`);
  }
  return daemon;
}
