/**
 * The rpc-server workers this node runs for remote hosts: at most one per host node id.
 *
 * A worker starts on the host's first tunnel connection (or rpc.prepare) and stops when:
 *   - the host's peer link goes down (hostGone),
 *   - the host says its placement here ended (rpc.release),
 *   - no tunnel connection has been open for `idleTimeoutMs`,
 *   - the daemon stops.
 * A worker that crashes is logged and forgotten; the host's next connection starts a new one
 * (the host's runner died with it anyway: llama.cpp aborts a client whose server vanished).
 * No failure here can reach the daemon: a worker that will not start is a HEARTH_RPC_UNAVAILABLE
 * refusal of that one tunnel.
 */

import os from "node:os";
import type { Logger } from "pino";
import { errors, HearthError } from "../../protocol/errors.js";
import { shortNodeId } from "../../protocol/peer/identity.js";
import type { RpcConfig } from "../config/defaults.js";
import { RpcWorker, type RpcServerLauncher } from "./RpcWorker.js";

export interface RpcWorkerPoolInit {
  config: Pick<RpcConfig, "threads" | "idleTimeoutMs" | "startTimeoutMs" | "maxWorkers">;
  /**
   * How to run rpc-server with `threads` threads; throws (HEARTH_NATIVE_MISSING) when this node
   * has none. Called per worker start, so a build made after the daemon started is picked up.
   */
  launcher: (threads: number) => RpcServerLauncher;
  logger: Logger;
}

export interface RpcEndpoint {
  host: string;
  port: number;
}

/** What a host may plan with (peers learn it from rpc.prepare). */
export interface RpcCapacity {
  workers: number;
  maxWorkers: number;
  threads: number;
  freeMemoryBytes: number;
}

export interface RpcWorkerView {
  hostNodeId: string;
  pid: number | undefined;
  port: number | undefined;
  connections: number;
  startedAt: number;
  crashes: number;
}

interface Slot {
  hostNodeId: string;
  /** Settles when the current worker is up; replaced after a crash. */
  ready: Promise<RpcEndpoint> | undefined;
  worker: RpcWorker | undefined;
  connections: number;
  idleTimer: NodeJS.Timeout | undefined;
  startedAt: number;
  crashes: number;
}

export class RpcWorkerPool {
  readonly #init: RpcWorkerPoolInit;
  readonly #logger: Logger;
  readonly #slots = new Map<string, Slot>();
  #stopped = false;

  constructor(init: RpcWorkerPoolInit) {
    this.#init = init;
    this.#logger = init.logger.child({ component: "rpc-pool" });
  }

  get threads(): number {
    return this.#init.config.threads > 0 ? this.#init.config.threads : os.availableParallelism();
  }

  capacity(): RpcCapacity {
    return { workers: this.#slots.size, maxWorkers: this.#init.config.maxWorkers, threads: this.threads, freeMemoryBytes: os.freemem() };
  }

  workers(): RpcWorkerView[] {
    return [...this.#slots.values()].map((slot) => ({
      hostNodeId: slot.hostNodeId,
      pid: slot.worker?.pid,
      port: slot.worker?.port,
      connections: slot.connections,
      startedAt: slot.startedAt,
      crashes: slot.crashes,
    }));
  }

  /** The endpoint of `hostNodeId`'s worker, started (or restarted after a crash) if needed. */
  endpointFor(hostNodeId: string): Promise<RpcEndpoint> {
    if (this.#stopped) return Promise.reject(errors.shuttingDown());
    let slot = this.#slots.get(hostNodeId);
    if (slot === undefined) {
      if (this.#slots.size >= this.#init.config.maxWorkers) {
        return Promise.reject(
          errors.rpcUnavailable(`this node already serves layers to ${this.#slots.size} hosts (rpc.max_workers = ${this.#init.config.maxWorkers})`, { retryAfterSeconds: 5 }),
        );
      }
      slot = { hostNodeId, ready: undefined, worker: undefined, connections: 0, idleTimer: undefined, startedAt: Date.now(), crashes: 0 };
      this.#slots.set(hostNodeId, slot);
      this.#armIdle(slot);
    }
    slot.ready ??= this.#start(slot);
    return slot.ready;
  }

  /** A tunnel connection to `hostNodeId`'s worker opened: no idle stop while it lasts. */
  connectionOpened(hostNodeId: string): void {
    const slot = this.#slots.get(hostNodeId);
    if (slot === undefined) return;
    slot.connections++;
    clearTimeout(slot.idleTimer);
    slot.idleTimer = undefined;
  }

  connectionClosed(hostNodeId: string): void {
    const slot = this.#slots.get(hostNodeId);
    if (slot === undefined) return;
    slot.connections = Math.max(0, slot.connections - 1);
    if (slot.connections === 0) this.#armIdle(slot);
  }

  /** Stops `hostNodeId`'s worker (placement ended, or its link went down). Resolves true if one ran. */
  async release(hostNodeId: string, reason: string): Promise<boolean> {
    const slot = this.#slots.get(hostNodeId);
    if (slot === undefined) return false;
    this.#slots.delete(hostNodeId);
    clearTimeout(slot.idleTimer);
    this.#logger.info({ host: shortNodeId(hostNodeId), reason }, "stopping the rpc-server worker of a host");
    // A start in progress finishes first, so its process is the one stopped.
    await slot.ready?.catch(() => undefined);
    await slot.worker?.stop();
    return true;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all([...this.#slots.keys()].map((hostNodeId) => this.release(hostNodeId, "the daemon is stopping")));
  }

  async #start(slot: Slot): Promise<RpcEndpoint> {
    let launch: RpcServerLauncher;
    try {
      launch = this.#init.launcher(this.threads);
    } catch (error) {
      slot.ready = undefined;
      clearTimeout(slot.idleTimer);
      if (slot.connections === 0) this.#slots.delete(slot.hostNodeId);
      throw HearthError.from(error, "HEARTH_RPC_UNAVAILABLE");
    }
    const worker = new RpcWorker({ launch, hostNodeId: slot.hostNodeId, startTimeoutMs: this.#init.config.startTimeoutMs, logger: this.#init.logger });
    slot.worker = worker;
    try {
      const endpoint = await worker.start();
      worker.onExit((exit) => {
        if (exit.expected || slot.worker !== worker) return;
        // Logged by the worker; the next connection from this host starts a fresh one.
        slot.crashes++;
        slot.ready = undefined;
        slot.worker = undefined;
      });
      return endpoint;
    } catch (error) {
      slot.worker = undefined;
      slot.ready = undefined;
      // A worker that would not start holds no slot: it must not count against max_workers.
      if (slot.connections === 0 && this.#slots.get(slot.hostNodeId) === slot) {
        clearTimeout(slot.idleTimer);
        this.#slots.delete(slot.hostNodeId);
      }
      throw HearthError.from(error, "HEARTH_RPC_UNAVAILABLE");
    }
  }

  #armIdle(slot: Slot): void {
    clearTimeout(slot.idleTimer);
    slot.idleTimer = setTimeout(() => {
      if (this.#slots.get(slot.hostNodeId) !== slot || slot.connections > 0) return;
      void this.release(slot.hostNodeId, `no tunnel connection for ${this.#init.config.idleTimeoutMs} ms`);
    }, this.#init.config.idleTimeoutMs);
    slot.idleTimer.unref();
  }
}
