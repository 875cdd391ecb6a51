/**
 * The GPU probe: a short-lived child process that asks node-llama-cpp which GPU backend it would
 * use, the devices' names and their VRAM, sends the answer to its parent over IPC and exits.
 *
 * It runs apart from the daemon because the daemon never loads node-llama-cpp's native code:
 * a driver that crashes or hangs while being initialised takes down only this child, and the
 * parent's timeout kills a hung one. It never builds or downloads anything (`build: "never"`).
 */

import { getLlama, LlamaLogLevel } from "node-llama-cpp";
import type { GpuProbeMessage } from "./gpuInfo.js";

function send(message: GpuProbeMessage): Promise<void> {
  return new Promise((resolve) => {
    if (process.send === undefined) {
      // Run by hand: print instead.
      process.stdout.write(`${JSON.stringify(message)}\n`);
      resolve();
      return;
    }
    process.send(message, undefined, undefined, () => resolve());
  });
}

async function probe(): Promise<GpuProbeMessage> {
  try {
    const llama = await getLlama({ build: "never", progressLogs: false, logLevel: LlamaLogLevel.disabled });
    const backend = llama.gpu === false ? null : llama.gpu;
    const devices = backend === null ? [] : await llama.getGpuDeviceNames();
    const vram = backend === null ? { total: 0, free: 0 } : await llama.getVramState();
    return { type: "gpuInfo", info: { backend, devices, vramTotalBytes: vram.total, vramFreeBytes: vram.free } };
  } catch (error) {
    return { type: "gpuProbeFailed", message: (error instanceof Error ? error.message : String(error)).slice(0, 4096) };
  }
}

await send(await probe());
// node-llama-cpp keeps native handles open; the answer is out, so leave without waiting on them.
process.exit(0);
