/**
 * The environment that makes every runner of this node compute with the kernels a split's
 * peers use ([runner] repack_weights = false): rpc-server allocates only plain CPU buffers, so
 * the host must not repack weights either, or a layer's result would depend on where it sits.
 * The RPC shim does the switching; without the native parts there is nothing to switch with,
 * and no split could run here anyway, so runners then keep llama.cpp's default.
 */

import type { Logger } from "pino";
import type { RunnerConfig } from "../config/defaults.js";
import { locateNativeParts, plainKernelsEnvironment } from "../native/nativeParts.js";

export function kernelEnvironment(runner: Pick<RunnerConfig, "repackWeights">, logger: Logger, locate = locateNativeParts): Record<string, string> | undefined {
  if (runner.repackWeights) return undefined;
  try {
    return plainKernelsEnvironment(locate());
  } catch (error) {
    logger.warn({ component: "engine", reason: (error as Error).message }, "runners keep llama.cpp's repacked weights: the native parts that switch them off are missing");
    return undefined;
  }
}
