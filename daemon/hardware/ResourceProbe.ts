/**
 * This machine's resources as the cluster sees them: CPU cores, RAM total and free, and the
 * GPU devices and VRAM node-llama-cpp would use.
 *
 * CPU and RAM come from `os` on every read (free RAM drifts). The GPU answer comes from a
 * short-lived child process (gpuProbeMain.ts), started once in the background by start() and
 * cached: the daemon never loads node-llama-cpp's native code itself, and nothing waits on the
 * probe. Until it answers, or if it fails or times out, the node reports no GPU.
 *
 * Lifecycle as js-libp2p services: construct, start(), stop() (kills a probe still running).
 */

import { EventEmitter } from "node:events";
import os from "node:os";
import { fileURLToPath } from "node:url";
import type { Logger } from "pino";
import { ChildProcessHandle, describeExit } from "../lifecycle/ChildProcessHandle.js";
import { NO_GPU, parseGpuProbeMessage, type GpuInfo, type GpuProbeMessage } from "./gpuInfo.js";

/** The probe child's entry: the built gpuProbeMain.js next to this file. */
const DEFAULT_PROBE_ENTRY = fileURLToPath(new URL("./gpuProbeMain.js", import.meta.url));
/** Lines of the probe's stderr kept for the log when it fails. */
const MAX_STDERR_CHARS = 4096;

export interface MachineResources {
  cpuCores: number;
  ramTotalBytes: number;
  ramFreeBytes: number;
  gpu: GpuInfo;
}

export type GpuProbeState = "idle" | "probing" | "done" | "failed";

export interface ResourceProbeOptions {
  logger: Logger;
  /** Kill the probe child after this long (PeerConfig.hardwareProbeTimeoutMs). */
  timeoutMs: number;
  /** The probe's entry script; tests point it elsewhere. */
  entryPath?: string;
}

/** `gpuInfo` follows the GPU answer (or the news that there is none), so the state can be re-published. */
export interface ResourceProbeEvents {
  gpuInfo: [gpu: GpuInfo];
}

export class ResourceProbe extends EventEmitter<ResourceProbeEvents> {
  readonly #logger: Logger;
  readonly #options: ResourceProbeOptions;
  #gpu: GpuInfo = NO_GPU;
  #state: GpuProbeState = "idle";
  #failure: string | undefined;
  #child: ChildProcessHandle | undefined;
  #stopped = false;

  constructor(options: ResourceProbeOptions) {
    super();
    this.#options = options;
    this.#logger = options.logger.child({ component: "hardware" });
  }

  get gpuProbeState(): GpuProbeState {
    return this.#state;
  }

  /** Why the GPU probe failed, if it did. */
  get gpuProbeFailure(): string | undefined {
    return this.#failure;
  }

  /** Starts the GPU probe in the background; returns at once. */
  start(): void {
    if (this.#state !== "idle" || this.#stopped) return;
    this.#state = "probing";
    const started = Date.now();
    let stderr = "";
    const child = new ChildProcessHandle({
      command: { kind: "fork", entry: this.#options.entryPath ?? DEFAULT_PROBE_ENTRY, serialization: "json" },
      ownProcessGroup: false,
      output: { stdout: false, stderr: true },
      onOutput: (line) => {
        if (stderr.length < MAX_STDERR_CHARS) stderr += `${line}\n`.slice(0, MAX_STDERR_CHARS - stderr.length);
      },
    });
    this.#child = child;
    const answer = child.whenReady(
      this.#options.timeoutMs,
      () => new Promise<GpuProbeMessage | undefined>((resolve) => child.onMessage((message) => resolve(parseGpuProbeMessage(message)))),
    );
    answer.then(
      (parsed) => {
        if (parsed === undefined) this.#finish(undefined, "the GPU probe sent an unexpected message");
        else if (parsed.type === "gpuProbeFailed") this.#finish(undefined, `node-llama-cpp could not start: ${parsed.message}`);
        else {
          this.#finish(parsed.info, undefined);
          this.#logger.info({ backend: parsed.info.backend, devices: parsed.info.devices, vramTotalBytes: parsed.info.vramTotalBytes, ms: Date.now() - started }, "GPU probe done");
        }
      },
      (error: unknown) => {
        const reason = (error as Error).message;
        if (reason.startsWith("not ready within")) this.#finish(undefined, `the GPU probe did not answer within ${this.#options.timeoutMs} ms`);
        else if (child.spawnError !== undefined) this.#finish(undefined, `could not start the GPU probe: ${child.spawnError.message}`);
        else this.#finish(undefined, `the GPU probe ${describeExit(child.exit!)} without an answer${stderr === "" ? "" : `: ${stderr.trim()}`}`);
      },
    );
    void child.exited.then(() => {
      if (this.#child === child) this.#child = undefined;
    });
  }

  stop(): void {
    this.#stopped = true;
    this.#child?.kill();
    this.#child = undefined;
  }

  /** Resources now: CPU and RAM read fresh, the GPU as last probed. */
  snapshot(): MachineResources {
    return {
      cpuCores: Math.max(1, os.availableParallelism()),
      ramTotalBytes: os.totalmem(),
      ramFreeBytes: Math.min(os.freemem(), os.totalmem()),
      gpu: { ...this.#gpu, devices: [...this.#gpu.devices] },
    };
  }

  #finish(gpu: GpuInfo | undefined, failure: string | undefined): void {
    if (this.#state !== "probing") return;
    if (gpu !== undefined) {
      this.#gpu = gpu;
      this.#state = "done";
    } else {
      this.#state = "failed";
      this.#failure = failure;
      if (!this.#stopped) this.#logger.warn({ reason: failure }, "GPU probe failed; this node reports no GPU");
    }
    if (this.#stopped) return;
    try {
      this.emit("gpuInfo", this.#gpu);
    } catch (error) {
      this.#logger.error({ err: error }, "GPU info listener failed");
    }
  }
}
