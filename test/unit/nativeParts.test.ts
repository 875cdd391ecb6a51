/**
 * The environment and arguments that drive the native parts (daemon/native/nativeParts.ts):
 * the shim's endpoint list and how rpc-server is launched. Pure given a NativeParts value; the
 * real parts are exercised in test/integration/rpc-native.test.ts.
 */

import path from "node:path";
import { describe, expect, it } from "vitest";
import { NATIVE_ENV, formatShimEndpoints, rpcServerBackendFor, rpcServerLaunch, shimEnvironment, type NativeParts } from "../../daemon/native/nativeParts.js";

const parts: NativeParts = {
  buildDir: "/opt/hearth/native/build",
  shimLibrary: "/opt/hearth/native/build/lib/libhearth-rpc-shim.so",
  threadPoolLibrary: "/opt/hearth/native/build/lib/libhearth-threadpool.so",
  rpcServers: { cpu: "/opt/hearth/native/build/rpc-server/cpu/rpc-server", vulkan: "/opt/hearth/native/build/rpc-server/vulkan/rpc-server" },
  nodeLlamaCppVersion: "3.22.1",
  rpcProtocol: "7.0.0",
  llamaCppCommit: "de3ff815ea7d559ee917f063901b8986f038abc6",
};

describe("shim endpoints", () => {
  it("lists host:port in order, brackets IPv6 hosts and appends whole MiB", () => {
    expect(formatShimEndpoints([{ host: "127.0.0.1", port: 40001 }, { host: "::1", port: 40002, memoryMiB: 1500.4 }, { host: "127.0.0.1", port: 40003, memoryMiB: 0.2 }])).toBe(
      "127.0.0.1:40001,[::1]:40002@1500,127.0.0.1:40003@1",
    );
    expect(formatShimEndpoints([])).toBe("");
  });

  it("points GGML_BACKEND_PATH at the shim and passes the timeout only when given", () => {
    expect(shimEnvironment(parts, [{ host: "127.0.0.1", port: 40001 }])).toEqual({
      GGML_BACKEND_PATH: parts.shimLibrary,
      HEARTH_RPC_ENDPOINTS: "127.0.0.1:40001",
    });
    expect(shimEnvironment(parts, [{ host: "127.0.0.1", port: 40001 }], 750)[NATIVE_ENV.connectTimeoutMs]).toBe("750");
  });
});

describe("rpc-server launch", () => {
  const inherited = { PATH: "/usr/bin", GGML_BACKEND_PATH: parts.shimLibrary, HEARTH_RPC_ENDPOINTS: "127.0.0.1:1", LLAMA_CACHE: "/elsewhere" };

  it("binds loopback only, runs in its own folder and never inherits the shim", () => {
    const launch = rpcServerLaunch(parts, { port: 50052, threads: 2.7, baseEnv: inherited });
    expect(launch.command).toBe(parts.rpcServers.cpu);
    expect(launch.args).toEqual(["-H", "127.0.0.1", "-p", "50052", "-t", "2"]);
    expect(launch.cwd).toBe(path.dirname(parts.rpcServers.cpu));
    expect(launch.env).toEqual({ PATH: "/usr/bin" });
  });

  it("enables the tensor cache under the given folder", () => {
    const launch = rpcServerLaunch(parts, { port: 50052, threads: 1, tensorCacheDir: "/var/cache/hearth/tensors", baseEnv: inherited });
    expect(launch.args).toContain("-c");
    expect(launch.env.LLAMA_CACHE).toBe("/var/cache/hearth/tensors");
  });

  it("picks the backend's folder and refuses a backend that was not built", () => {
    expect(rpcServerLaunch(parts, { port: 1, threads: 1, backend: "vulkan", baseEnv: {} }).cwd).toBe(path.dirname(parts.rpcServers.vulkan!));
    expect(() => rpcServerLaunch(parts, { port: 1, threads: 0, backend: "cuda", baseEnv: {} })).toThrow(expect.objectContaining({ code: "HEARTH_NATIVE_MISSING" }));
  });
});

describe("rpc-server flavour", () => {
  const servers = (...backends: Array<"cuda" | "vulkan">): Pick<NativeParts, "rpcServers"> => ({
    rpcServers: { cpu: "/x/cpu/rpc-server", ...Object.fromEntries(backends.map((backend) => [backend, `/x/${backend}/rpc-server`])) },
  });

  it("serves a GPU machine's layers from its GPU build, and falls back to the CPU build", () => {
    expect(rpcServerBackendFor("cuda", servers("cuda", "vulkan"))).toBe("cuda");
    expect(rpcServerBackendFor("vulkan", servers("cuda", "vulkan"))).toBe("vulkan");
    expect(rpcServerBackendFor("cuda", servers("vulkan"))).toBe("cpu");
    expect(rpcServerBackendFor("metal", servers("cuda"))).toBe("cpu");
    expect(rpcServerBackendFor(null, servers("cuda"))).toBe("cpu");
    expect(rpcServerBackendFor("cpu", servers("cuda"))).toBe("cpu");
  });
});
