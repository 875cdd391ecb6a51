import { describe, expect, it } from "vitest";
import { kernelEnvironment } from "../../daemon/engine/kernelEnvironment.js";
import type { NativeParts } from "../../daemon/native/nativeParts.js";
import { errors } from "../../protocol/errors.js";
import { captureLogs } from "../support/logs.js";

const parts = {
  shimLibrary: "/opt/hearth/native/build/lib/libhearth-rpc-shim.so",
  threadPoolLibrary: "/opt/hearth/native/build/lib/libhearth-threadpool.so",
} as NativeParts;

describe("kernelEnvironment", () => {
  it("loads the shim with repacking off and the thread-pool preload into every runner by default", () => {
    const { logger } = captureLogs();
    expect(kernelEnvironment({ repackWeights: false, threadPool: true }, logger, () => parts, undefined)).toEqual({
      GGML_BACKEND_PATH: parts.shimLibrary,
      HEARTH_CPU_REPACK: "off",
      LD_PRELOAD: parts.threadPoolLibrary,
    });
  });

  it("puts the thread-pool preload before the daemon's own preloads, once", () => {
    const { logger } = captureLogs();
    const inherited = `/usr/lib/libjemalloc.so ${parts.threadPoolLibrary}:/opt/trace.so`;
    expect(kernelEnvironment({ repackWeights: true, threadPool: true }, logger, () => parts, inherited)).toEqual({
      LD_PRELOAD: `${parts.threadPoolLibrary}:/usr/lib/libjemalloc.so:/opt/trace.so`,
    });
  });

  it("leaves runners alone when repacking and per-decode threads are wanted", () => {
    const { logger } = captureLogs();
    let located = false;
    expect(kernelEnvironment({ repackWeights: true, threadPool: false }, logger, () => { located = true; return parts; })).toBeUndefined();
    expect(located).toBe(false);
  });

  it("warns and keeps llama.cpp's defaults when the native parts are missing", () => {
    const { logger, entries } = captureLogs();
    const missing = () => { throw errors.nativeMissing("native/build has no stamp"); };
    expect(kernelEnvironment({ repackWeights: false, threadPool: true }, logger, missing)).toBeUndefined();
    expect(entries.map((entry) => [entry.level, entry.msg, entry["reason"]])).toEqual([
      [40, "runners keep llama.cpp's repacked weights and per-decode threads: the native parts that change them are missing", "native/build has no stamp"],
    ]);
  });
});
