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

import { fork, type ChildProcess } from "node:child_process";
import os from "node:os";
import { fileURLToPath } from "node:url";
import type { Logger } from "pino";
import { NO_GPU, parseGpuProbeMessage, type GpuInfo } from "./gpuInfo.js";

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
  /** Called once the GPU answer is in (or known to be missing), so the state can be re-published. */
  onGpuInfo?: (gpu: GpuInfo) => void;
  /** The probe's entry script; tests point it elsewhere. */
  entryPath?: string;
}

export class ResourceProbe {
  readonly #logger: Logger;
  readonly #options: ResourceProbeOptions;
  #gpu: GpuInfo = NO_GPU;
  #state: GpuProbeState = "idle";
  #failure: string | undefined;
  #child: ChildProcess | undefined;
  #stopped = false;

  constructor(options: ResourceProbeOptions) {
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
    let child: ChildProcess;
    try {
      child = fork(this.#options.entryPath ?? DEFAULT_PROBE_ENTRY, [], { stdio: ["ignore", "ignore", "pipe", "ipc"], serialization: "json" });
    } catch (error) {
      this.#finish(undefined, `could not start the GPU probe: ${error instanceof Error ? error.message : String(error)}`);
      return;
    }
    this.#child = child;
    let stderr = "";
    child.stderr?.on("data", (chunk: Buffer) => {
      if (stderr.length < MAX_STDERR_CHARS) stderr += chunk.toString("utf8").slice(0, MAX_STDERR_CHARS - stderr.length);
    });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      this.#finish(undefined, `the GPU probe did not answer within ${this.#options.timeoutMs} ms`);
    }, this.#options.timeoutMs);
    timer.unref();
    child.on("message", (message: unknown) => {
      const parsed = parseGpuProbeMessage(message);
      if (parsed === undefined) this.#finish(undefined, "the GPU probe sent an unexpected message");
      else if (parsed.type === "gpuProbeFailed") this.#finish(undefined, `node-llama-cpp could not start: ${parsed.message}`);
      else {
        this.#finish(parsed.info, undefined);
        this.#logger.info({ backend: parsed.info.backend, devices: parsed.info.devices, vramTotalBytes: parsed.info.vramTotalBytes, ms: Date.now() - started }, "GPU probe done");
      }
    });
    child.on("error", (error) => this.#finish(undefined, `the GPU probe failed: ${error.message}`));
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      this.#child = undefined;
      if (this.#state === "probing") this.#finish(undefined, `the GPU probe exited (${code ?? signal}) without an answer${stderr === "" ? "" : `: ${stderr.trim()}`}`);
    });
  }

  stop(): void {
    this.#stopped = true;
    this.#child?.kill("SIGKILL");
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
      this.#options.onGpuInfo?.(this.#gpu);
    } catch (error) {
      this.#logger.error({ err: error }, "GPU info listener failed");
    }
  }
}
