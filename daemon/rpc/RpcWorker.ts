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

import net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import { errors } from "../../protocol/errors.js";
import { shortNodeId } from "../../protocol/peer/identity.js";
import { ChildProcessHandle, describeExit, type ChildExit } from "../lifecycle/ChildProcessHandle.js";
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

/** `expected` is true after stop(), false for a crash. */
export type RpcWorkerExit = ChildExit;

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
  #process: ChildProcessHandle | undefined;
  #port: number | undefined;
  #version: RpcVersion | undefined;
  readonly #output: string[] = [];
  readonly #exitListeners = new Set<(exit: RpcWorkerExit) => void>();

  constructor(options: RpcWorkerOptions) {
    this.#options = options;
    this.hostNodeId = options.hostNodeId;
    this.#logger = options.logger.child({ component: "rpc-worker", host: shortNodeId(options.hostNodeId) });
  }

  get pid(): number | undefined {
    return this.#process?.pid;
  }

  get port(): number | undefined {
    return this.#port;
  }

  get version(): RpcVersion | undefined {
    return this.#version;
  }

  get alive(): boolean {
    return this.#process?.alive ?? false;
  }

  /** Called once when the process is gone, whatever the reason. */
  onExit(listener: (exit: RpcWorkerExit) => void): void {
    const exit = this.#process?.exit;
    if (exit !== undefined) listener(exit);
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
    await this.#process?.stop(STOP_GRACE_MS);
  }

  /** Undefined once ready, else why it did not start. */
  async #startOn(port: number, deadline: number): Promise<string | undefined> {
    const launch = this.#options.launch(port);
    if (!launch.args.includes(RPC_WORKER_HOST)) return `refusing to start rpc-server without -H ${RPC_WORKER_HOST}`;
    this.#output.length = 0;
    // Its own process group: a Ctrl-C at the daemon's terminal must not kill it mid-reply.
    const child = new ChildProcessHandle({
      command: { kind: "spawn", file: launch.command, args: launch.args, cwd: launch.cwd },
      env: launch.env,
      ownProcessGroup: true,
      output: { stdout: true, stderr: true },
      onOutput: (line) => this.#keepOutput(child, line),
    });
    this.#process = child;
    this.#port = port;
    void child.exited.then((exit) => this.#onExit(child, exit));
    try {
      const version = await child.whenReady(Math.max(0, deadline - performance.now()), (signal) => this.#awaitHello(port, signal));
      this.#version = version;
      this.#logger.info({ pid: child.pid, port, args: launch.args.join(" "), rpcProtocol: `${version.major}.${version.minor}.${version.patch}` }, "rpc-server worker started");
      return undefined;
    } catch (error) {
      if (child.spawnError !== undefined) return `cannot run ${launch.command}: ${child.spawnError.message}`;
      const exit = child.exit;
      if (exit !== undefined && !exit.expected) return `it exited (${describeExit(exit)}): ${this.#output.slice(-3).join(" | ") || "no output"}`;
      await child.stop(STOP_GRACE_MS);
      return (error as Error).message.startsWith("not ready within") ? `no HELLO answer within ${this.#options.startTimeoutMs} ms` : (error as Error).message;
    }
  }

  async #awaitHello(port: number, signal: AbortSignal): Promise<RpcVersion> {
    while (!signal.aborted) {
      const version = await rpcHello(RPC_WORKER_HOST, port, HELLO_TIMEOUT_MS);
      if (version !== undefined) return version;
      await sleep(HELLO_POLL_MS);
    }
    throw new Error("stopped waiting for HELLO");
  }

  #onExit(child: ChildProcessHandle, exit: ChildExit): void {
    if (child !== this.#process) return;
    if (exit.expected) this.#logger.info({ pid: child.pid, ...exit }, "rpc-server worker stopped");
    else this.#logger.warn({ pid: child.pid, port: this.#port, code: exit.code, signal: exit.signal, lastOutput: this.#output.slice(-5) }, `rpc-server worker ${describeExit(exit)}`);
    for (const listener of this.#exitListeners) {
      try {
        listener(exit);
      } catch (error) {
        this.#logger.error({ err: error }, "rpc worker exit listener failed");
      }
    }
    this.#exitListeners.clear();
  }

  #keepOutput(child: ChildProcessHandle, line: string): void {
    const text = line.trim();
    if (text === "") return;
    this.#output.push(text);
    if (this.#output.length > KEPT_OUTPUT_LINES) this.#output.shift();
    this.#logger.debug({ pid: child.pid }, text);
  }
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
