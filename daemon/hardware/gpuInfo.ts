/**
 * What the GPU probe child reports (gpuProbeMain.ts) and how the daemon checks it before use.
 *
 * The child is our own code, but its answer crosses a process boundary and ends up in peer-state
 * snapshots that peers validate strictly (protocol/peer/messages.ts), so it is validated and
 * cut to the wire's limits here: a driver that returns an odd device name must not make this
 * node's state unsendable.
 *
 * Pure: no I/O.
 */

import { z } from "zod";
import { PEER_WIRE_LIMITS } from "../../protocol/peer/messages.js";

export interface GpuInfo {
  /** node-llama-cpp's backend ("cuda", "vulkan", "metal"), null when it runs on the CPU. */
  backend: string | null;
  /** Device names as node-llama-cpp's getGpuDeviceNames() reports them. */
  devices: string[];
  /** getVramState() of the backend, summed over its devices. */
  vramTotalBytes: number;
  vramFreeBytes: number;
}

export const NO_GPU: Readonly<GpuInfo> = Object.freeze({ backend: null, devices: [], vramTotalBytes: 0, vramFreeBytes: 0 });

/** The message the probe child sends over IPC. */
export type GpuProbeMessage = { type: "gpuInfo"; info: GpuInfo } | { type: "gpuProbeFailed"; message: string };

const BACKEND_PATTERN = /^[a-z][a-z0-9-]{0,31}$/;
const bytes = z.number().finite().min(0).max(Number.MAX_SAFE_INTEGER);

const probeMessageSchema = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("gpuInfo"),
    info: z.object({
      backend: z.string().nullable(),
      devices: z.array(z.string()).max(1024),
      vramTotalBytes: bytes,
      vramFreeBytes: bytes,
    }),
  }),
  z.object({ type: z.literal("gpuProbeFailed"), message: z.string().max(4096) }),
]);

/** A device name as the wire accepts it: no control characters, at most the label length. */
function cleanName(name: string): string {
  return name.replace(/\p{Cc}/gu, " ").trim().slice(0, PEER_WIRE_LIMITS.maxGpuNameLength);
}

/** Validates a message from the probe child; undefined when it is not one. */
export function parseGpuProbeMessage(message: unknown): GpuProbeMessage | undefined {
  const parsed = probeMessageSchema.safeParse(message);
  if (!parsed.success) return undefined;
  if (parsed.data.type === "gpuProbeFailed") return parsed.data;
  const { info } = parsed.data;
  const backend = info.backend !== null && BACKEND_PATTERN.test(info.backend) ? info.backend : null;
  const devices = info.devices.map(cleanName).filter((name) => name !== "").slice(0, PEER_WIRE_LIMITS.maxGpuDevices);
  return {
    type: "gpuInfo",
    info: {
      backend,
      devices,
      vramTotalBytes: Math.floor(info.vramTotalBytes),
      // Free can never exceed total, whatever a driver says.
      vramFreeBytes: Math.floor(Math.min(info.vramFreeBytes, info.vramTotalBytes)),
    },
  };
}
