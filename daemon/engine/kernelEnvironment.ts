/**
 * The environment every runner of this node gets from the native parts:
 * - with `[runner] repack_weights = false`, the kernels a split's peers use: rpc-server
 *   allocates only plain CPU buffers, so the host must not repack weights either, or a layer's
 *   result would depend on where it sits. The RPC shim does the switching;
 * - with `[runner] thread_pool = true`, a persistent CPU thread pool per context (the preload in
 *   native/hearth-threadpool.cpp): without it every decode starts and joins its threads again.
 * Without the native parts there is nothing to switch with, and no split could run here anyway,
 * so runners then keep llama.cpp's defaults and the daemon says so once.
 */

import type { Logger } from "pino";
import type { RunnerConfig } from "../config/defaults.js";
import { locateNativeParts, plainKernelsEnvironment, threadPoolEnvironment } from "../native/nativeParts.js";

export function kernelEnvironment(
  runner: Pick<RunnerConfig, "repackWeights" | "threadPool">,
  logger: Logger,
  locate = locateNativeParts,
  inheritedPreload = process.env["LD_PRELOAD"],
): Record<string, string> | undefined {
  if (runner.repackWeights && !runner.threadPool) return undefined;
  let parts;
  try {
    parts = locate();
  } catch (error) {
    const keeps = [...(runner.repackWeights ? [] : ["repacked weights"]), ...(runner.threadPool ? ["per-decode threads"] : [])].join(" and ");
    logger.warn({ component: "engine", reason: (error as Error).message }, `runners keep llama.cpp's ${keeps}: the native parts that change them are missing`);
    return undefined;
  }
  return {
    ...(runner.repackWeights ? {} : plainKernelsEnvironment(parts)),
    ...(runner.threadPool ? threadPoolEnvironment(parts, inheritedPreload) : {}),
  };
}
