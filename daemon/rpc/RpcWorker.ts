/**
 * One llama.cpp rpc-server child process serving one remote host's layers.
 *
 * It binds 127.0.0.1 only, on a port the daemon picked free a moment before (rpc-server has
 * no "any free port" option); a lost race for the port shows as an early exit and start()
 * tries another. It is ready once it answers an RPC HELLO. It runs in its own process group
 * (a Ctrl-C at the daemon's terminal must not kill it mid-reply; the daemon stops it), with
 * the daemon's thread count and the shared tensor cache (`-c`, LLAMA_CACHE), as
 * nativeParts.rpcServerLaunch builds the command. Its output is
 * kept as debug logs, and the last lines are logged with the exit when it dies unexpectedly.
 * Nothing about it is taken from the network: the host node id only labels logs.
 */

import { spawn, type ChildProcess } from "node:child_process";
import net from "node:net";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import { errors } from "../../protocol/errors.js";
import { shortNodeId } from "../../protocol/peer/identity.js";
import type { RpcServerLaunch } from "../native/nativeParts.js";
import { rpcHello, type RpcVersion } from "./rpcHello.js";

/** How to run rpc-server on a port (daemon/native/nativeParts.ts rpcServerLaunch: 127.0.0.1 only, -c, no shim env). */
export type RpcServerLauncher = (port: number) => RpcServerLaunch;

export interface RpcWorkerOptions {
  launch: RpcServerLauncher;
  hostNodeId: string;
  startTimeoutMs: number;
  logger: Logger;
}

export interface RpcWorkerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** True after stop(); false for a crash. */
  expected: boolean;
}

export const RPC_WORKER_HOST = "127.0.0.1";
const HELLO_POLL_MS = 50;
const HELLO_TIMEOUT_MS = 1_000;
const PORT_ATTEMPTS = 3;
const STOP_GRACE_MS = 2_000;
const KEPT_OUTPUT_LINES = 20;

export class RpcWorker {
  readonly hostNodeId: string;
  readonly #options: RpcWorkerOptions;
  readonly #logger: Logger;
  #child: ChildProcess | undefined;
  #port: number | undefined;
  #version: RpcVersion | undefined;
  #expectingExit = false;
  #exit: RpcWorkerExit | undefined;
  readonly #output: string[] = [];
  readonly #exitListeners = new Set<(exit: RpcWorkerExit) => void>();

  constructor(options: RpcWorkerOptions) {
    this.#options = options;
    this.hostNodeId = options.hostNodeId;
    this.#logger = options.logger.child({ component: "rpc-worker", host: shortNodeId(options.hostNodeId) });
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  get port(): number | undefined {
    return this.#port;
  }

  get version(): RpcVersion | undefined {
    return this.#version;
  }

  get alive(): boolean {
    return this.#child !== undefined && this.#exit === undefined;
  }

  /** Called once when the process is gone, whatever the reason. */
  onExit(listener: (exit: RpcWorkerExit) => void): void {
    if (this.#exit !== undefined) listener(this.#exit);
    else this.#exitListeners.add(listener);
  }

  /** Starts the process and waits for its HELLO. Rejects HEARTH_RPC_UNAVAILABLE; nothing is left running then. */
  async start(): Promise<{ host: string; port: number }> {
    const deadline = performance.now() + this.#options.startTimeoutMs;
    let lastFailure = "";
    for (let attempt = 1; attempt <= PORT_ATTEMPTS; attempt++) {
      const port = await freeLoopbackPort();
      const failure = await this.#startOn(port, deadline);
      if (failure === undefined) return { host: RPC_WORKER_HOST, port };
      lastFailure = failure;
      if (performance.now() >= deadline) break;
    }
    throw errors.rpcUnavailable(`rpc-server did not start: ${lastFailure}`);
  }

  /** SIGTERM to its process group, SIGKILL after a grace period; resolves once it is gone. */
  async stop(): Promise<void> {
    const child = this.#child;
    if (child === undefined || this.#exit !== undefined) return;
    this.#expectingExit = true;
    const exited = new Promise<void>((resolve) => this.onExit(() => resolve()));
    this.#signal("SIGTERM");
    const timer = setTimeout(() => this.#signal("SIGKILL"), STOP_GRACE_MS);
    await exited;
    clearTimeout(timer);
  }

  /** Undefined once ready, else why it did not start. */
  async #startOn(port: number, deadline: number): Promise<string | undefined> {
    const launch = this.#options.launch(port);
    if (!launch.args.includes(RPC_WORKER_HOST)) return `refusing to start rpc-server without -H ${RPC_WORKER_HOST}`;
    this.#exit = undefined;
    this.#expectingExit = false;
    this.#output.length = 0;
    let child: ChildProcess;
    try {
      child = spawn(launch.command, [...launch.args], { cwd: launch.cwd, env: launch.env, stdio: ["ignore", "pipe", "pipe"], detached: true });
    } catch (error) {
      return `cannot run ${launch.command}: ${(error as Error).message}`;
    }
    this.#child = child;
    this.#port = port;
    this.#collectOutput(child);
    let spawnError: string | undefined;
    child.on("error", (error) => {
      spawnError = error.message;
      // A process that never started emits no "exit".
      if (child.pid === undefined) this.#onExit(child, null, null);
    });
    child.on("exit", (code, signal) => this.#onExit(child, code, signal));

    while (performance.now() < deadline) {
      if (this.#exit !== undefined) return spawnError ?? `it exited (${describeExit(this.#exit)}): ${this.#output.slice(-3).join(" | ") || "no output"}`;
      const version = await rpcHello(RPC_WORKER_HOST, port, HELLO_TIMEOUT_MS);
      if (version !== undefined && this.#exit === undefined) {
        this.#version = version;
        this.#logger.info({ pid: child.pid, port, args: launch.args.join(" "), rpcProtocol: `${version.major}.${version.minor}.${version.patch}` }, "rpc-server worker started");
        return undefined;
      }
      await sleep(HELLO_POLL_MS);
    }
    await this.stop();
    return `no HELLO answer within ${this.#options.startTimeoutMs} ms`;
  }

  #signal(signal: NodeJS.Signals): void {
    const pid = this.#child?.pid;
    if (pid === undefined || this.#exit !== undefined) return;
    try {
      process.kill(-pid, signal);
    } catch {
      // Already gone (ESRCH): its "exit" event is on the way.
    }
  }

  #onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (child !== this.#child || this.#exit !== undefined) return;
    const exit: RpcWorkerExit = { code, signal, expected: this.#expectingExit };
    this.#exit = exit;
    if (exit.expected) this.#logger.info({ pid: child.pid, ...exit }, "rpc-server worker stopped");
    else this.#logger.warn({ pid: child.pid, port: this.#port, code, signal, lastOutput: this.#output.slice(-5) }, `rpc-server worker ${describeExit(exit)}`);
    for (const listener of this.#exitListeners) {
      try {
        listener(exit);
      } catch (error) {
        this.#logger.error({ err: error }, "rpc worker exit listener failed");
      }
    }
    this.#exitListeners.clear();
  }

  #collectOutput(child: ChildProcess): void {
    for (const stream of [child.stdout, child.stderr]) {
      if (!stream) continue;
      createInterface({ input: stream, crlfDelay: Infinity }).on("line", (line) => {
        const text = line.trim();
        if (text === "") return;
        this.#output.push(text);
        if (this.#output.length > KEPT_OUTPUT_LINES) this.#output.shift();
        this.#logger.debug({ pid: child.pid }, text);
      });
    }
  }
}

function describeExit(exit: Pick<RpcWorkerExit, "code" | "signal">): string {
  return exit.signal !== null ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
}

/** A port free on 127.0.0.1 right now (the kernel's choice), released for the worker to bind. */
function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on("error", reject);
    server.listen({ host: RPC_WORKER_HOST, port: 0, exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(errors.internal("no free loopback port"))));
    });
  });
}
