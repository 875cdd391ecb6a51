import { describe, expect, it } from "vitest";
import { kernelEnvironment } from "../../daemon/engine/kernelEnvironment.js";
import type { NativeParts } from "../../daemon/native/nativeParts.js";
import { errors } from "../../protocol/errors.js";
import { captureLogs } from "../support/logs.js";

const parts = { shimLibrary: "/opt/hearth/native/build/lib/libhearth-rpc-shim.so" } as NativeParts;

describe("kernelEnvironment", () => {
  it("loads the shim with repacking off into every runner by default", () => {
    const { logger } = captureLogs();
    expect(kernelEnvironment({ repackWeights: false }, logger, () => parts)).toEqual({ GGML_BACKEND_PATH: parts.shimLibrary, HEARTH_CPU_REPACK: "off" });
  });

  it("leaves runners alone when repacking is wanted", () => {
    const { logger } = captureLogs();
    let located = false;
    expect(kernelEnvironment({ repackWeights: true }, logger, () => { located = true; return parts; })).toBeUndefined();
    expect(located).toBe(false);
  });

  it("warns and keeps llama.cpp's default when the native parts are missing", () => {
    const { logger, entries } = captureLogs();
    const missing = () => { throw errors.nativeMissing("native/build has no stamp"); };
    expect(kernelEnvironment({ repackWeights: false }, logger, missing)).toBeUndefined();
    expect(entries.map((entry) => [entry.level, entry.msg, entry["reason"]])).toEqual([[40, "runners keep llama.cpp's repacked weights: the native parts that switch them off are missing", "native/build has no stamp"]]);
  });
});
