/**
 * The native parts `npm install` builds (native/build.mjs): the RPC shim that runners load to
 * see remote layers as offload devices, the thread-pool preload that gives runners' contexts
 * persistent CPU threads, and llama.cpp's rpc-server, the worker that serves this node's layers
 * to a peer. This module finds them, checks they were built for the installed
 * node-llama-cpp, and knows the environment and arguments that drive them.
 *
 * Missing or stale parts are HEARTH_NATIVE_MISSING: layer splitting is then unavailable on this
 * node, and everything else works.
 */

import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import type { HearthError } from "../../protocol/errors.js";
import { errors } from "../../protocol/errors.js";

/** Environment variables read by the native parts (the shim's are documented in native/hearth-rpc-shim.cpp). */
export const NATIVE_ENV = {
  /** ggml loads one out-of-tree backend from this path; set it to the shim in runners only. */
  backendPath: "GGML_BACKEND_PATH",
  /** The dynamic loader's preload list; runners get the thread-pool library in it. */
  preload: "LD_PRELOAD",
  /** `host:port[@MiB],...`: the RPC endpoints the shim probes and registers. */
  endpoints: "HEARTH_RPC_ENDPOINTS",
  /** Connect and HELLO timeout per endpoint, in ms (the shim's default is 1500). */
  connectTimeoutMs: "HEARTH_RPC_CONNECT_TIMEOUT_MS",
  /** `off`: the shim removes the CPU backend's repacked weight buffer type before any model loads. */
  cpuRepack: "HEARTH_CPU_REPACK",
  /** Any value: the shim also logs each device it registers. */
  verbose: "HEARTH_RPC_SHIM_VERBOSE",
  /** rpc-server keeps its `-c` tensor cache in `<LLAMA_CACHE>/rpc/`. */
  rpcServerCache: "LLAMA_CACHE",
  /** `1` makes `npm install` skip the native build. */
  skipBuild: "HEARTH_SKIP_NATIVE",
} as const;

/** rpc-server flavours: one folder per backend node-llama-cpp ships prebuilt for this platform. */
export const RPC_SERVER_BACKENDS = ["cpu", "cuda", "vulkan"] as const;
export type RpcServerBackend = (typeof RPC_SERVER_BACKENDS)[number];

export interface NativeParts {
  readonly buildDir: string;
  /** The shim shared library, for NATIVE_ENV.backendPath. */
  readonly shimLibrary: string;
  /** The thread-pool preload (native/hearth-threadpool.cpp), for NATIVE_ENV.preload. */
  readonly threadPoolLibrary: string;
  /** rpc-server executables by backend; "cpu" is always built. */
  readonly rpcServers: Readonly<Partial<Record<RpcServerBackend, string>>> & { readonly cpu: string };
  readonly nodeLlamaCppVersion: string;
  /** llama.cpp RPC protocol version both parts speak, e.g. "7.0.0". */
  readonly rpcProtocol: string;
  readonly llamaCppCommit: string;
}

/** One RPC device for the shim: where it listens and, optionally, the memory it should report (which sets its share of layers). */
export interface ShimEndpoint {
  readonly host: string;
  readonly port: number;
  readonly memoryMiB?: number;
}

export interface RpcServerLaunch {
  readonly command: string;
  readonly args: readonly string[];
  readonly cwd: string;
  readonly env: NodeJS.ProcessEnv;
}

const SHIM_LIBRARY = "libhearth-rpc-shim.so";
const THREAD_POOL_LIBRARY = "libhearth-threadpool.so";

const stampSchema = z.object({
  nodeLlamaCpp: z.string(),
  backends: z.array(z.string()),
  rpcProtocol: z.string(),
  llamaCppCommit: z.string(),
});

/** The hearth package root: the nearest ancestor holding hearth's package.json (sources and dist/ differ in depth). */
function packageRoot(): string {
  let directory = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const manifest = JSON.parse(fs.readFileSync(path.join(directory, "package.json"), "utf8")) as { name?: unknown };
      if (manifest.name === "hearth") return directory;
    } catch {
      // No readable manifest here: keep walking up.
    }
    const parent = path.dirname(directory);
    if (parent === directory) throw errors.nativeMissing("Cannot find Hearth's package root to locate native/build.");
    directory = parent;
  }
}

export function defaultNativeBuildDir(): string {
  return path.join(packageRoot(), "native", "build");
}

/** The installed node-llama-cpp's version, as this process would load it. */
export function installedNodeLlamaCppVersion(): string {
  const entry = createRequire(import.meta.url).resolve("node-llama-cpp");
  for (let directory = path.dirname(entry); path.dirname(directory) !== directory; directory = path.dirname(directory)) {
    const manifestPath = path.join(directory, "package.json");
    if (!fs.existsSync(manifestPath)) continue;
    const manifest = JSON.parse(fs.readFileSync(manifestPath, "utf8")) as { name?: unknown; version?: unknown };
    if (manifest.name === "node-llama-cpp" && typeof manifest.version === "string") return manifest.version;
  }
  throw errors.nativeMissing("Cannot find node-llama-cpp's package.json.");
}

function missing(reason: string): HearthError {
  return errors.nativeMissing(`${reason} Layer splitting is unavailable on this node; run \`npm run build:native\` (needs g++ and git).`);
}

/**
 * Finds the built parts and checks them against the installed node-llama-cpp: a build for
 * another version would speak a different RPC protocol or tensor layout.
 */
export function locateNativeParts(options: { buildDir?: string; nodeLlamaCppVersion?: string } = {}): NativeParts {
  const buildDir = options.buildDir ?? defaultNativeBuildDir();
  let stampText: string;
  try {
    stampText = fs.readFileSync(path.join(buildDir, "stamp.json"), "utf8");
  } catch {
    throw missing(`The native parts are not built (no ${path.join(buildDir, "stamp.json")}).`);
  }
  let stampJson: unknown;
  try {
    stampJson = JSON.parse(stampText);
  } catch {
    throw missing(`${path.join(buildDir, "stamp.json")} is not valid JSON.`);
  }
  const stamp = stampSchema.safeParse(stampJson);
  if (!stamp.success) throw missing(`${path.join(buildDir, "stamp.json")} is not a native build stamp.`);
  const installed = options.nodeLlamaCppVersion ?? installedNodeLlamaCppVersion();
  if (stamp.data.nodeLlamaCpp !== installed) {
    throw missing(`The native parts were built for node-llama-cpp ${stamp.data.nodeLlamaCpp}, but ${installed} is installed.`);
  }

  const shimLibrary = path.join(buildDir, "lib", SHIM_LIBRARY);
  const threadPoolLibrary = path.join(buildDir, "lib", THREAD_POOL_LIBRARY);
  const rpcServers: Partial<Record<RpcServerBackend, string>> = {};
  for (const backend of RPC_SERVER_BACKENDS) {
    if (!stamp.data.backends.includes(backend)) continue;
    const executable = path.join(buildDir, "rpc-server", backend, "rpc-server");
    // existsSync follows the folder's links into node_modules, so a removed node_modules counts as missing.
    if (fs.existsSync(executable) && fs.existsSync(path.join(buildDir, "rpc-server", backend, "libggml-base.so"))) rpcServers[backend] = executable;
  }
  const cpu = rpcServers.cpu;
  if (!fs.existsSync(shimLibrary) || !fs.existsSync(threadPoolLibrary) || cpu === undefined) throw missing(`The native build in ${buildDir} is incomplete.`);
  return {
    buildDir,
    shimLibrary,
    threadPoolLibrary,
    rpcServers: { ...rpcServers, cpu },
    nodeLlamaCppVersion: stamp.data.nodeLlamaCpp,
    rpcProtocol: stamp.data.rpcProtocol,
    llamaCppCommit: stamp.data.llamaCppCommit,
  };
}

/** The shim's endpoint list, `host:port[@MiB]` joined by commas; IPv6 hosts in brackets. */
export function formatShimEndpoints(endpoints: readonly ShimEndpoint[]): string {
  return endpoints
    .map(({ host, port, memoryMiB }) => {
      const address = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
      return memoryMiB === undefined ? address : `${address}@${Math.max(1, Math.round(memoryMiB))}`;
    })
    .join(",");
}

/**
 * Variables a runner needs to see `endpoints` as offload devices, in their order. They must be
 * in the runner's environment before its first getLlama(); layers then go there with an
 * explicit numeric gpuLayers (the last N layers leave the host).
 */
export function shimEnvironment(parts: NativeParts, endpoints: readonly ShimEndpoint[], connectTimeoutMs?: number): Record<string, string> {
  const env: Record<string, string> = {
    [NATIVE_ENV.backendPath]: parts.shimLibrary,
    [NATIVE_ENV.endpoints]: formatShimEndpoints(endpoints),
  };
  if (connectTimeoutMs !== undefined) env[NATIVE_ENV.connectTimeoutMs] = String(Math.max(1, Math.round(connectTimeoutMs)));
  return env;
}

/**
 * Variables that make a runner compute its layers with the kernels rpc-server uses: the shim,
 * loaded without endpoints, takes llama.cpp's repacked weight buffers away, since rpc-server
 * only ever allocates plain ones. A split's runner gets the same through shimEnvironment.
 */
export function plainKernelsEnvironment(parts: Pick<NativeParts, "shimLibrary">): Record<string, string> {
  return { [NATIVE_ENV.backendPath]: parts.shimLibrary, [NATIVE_ENV.cpuRepack]: "off" };
}

/**
 * Variables that give every llama.cpp context of a runner a persistent CPU thread pool
 * (native/hearth-threadpool.cpp explains the cost without one). The library goes first in
 * `inheritedPreload`, the preload list the runner would otherwise inherit.
 */
export function threadPoolEnvironment(parts: Pick<NativeParts, "threadPoolLibrary">, inheritedPreload?: string): Record<string, string> {
  const inherited = (inheritedPreload ?? "").split(/[\s:]+/).filter((entry) => entry !== "" && entry !== parts.threadPoolLibrary);
  return { [NATIVE_ENV.preload]: [parts.threadPoolLibrary, ...inherited].join(":") };
}

/**
 * How to start rpc-server so it is safe and serves what its folder holds:
 * - bound to 127.0.0.1 only: it has no authentication and is reached solely through the peer link;
 * - cwd is its own folder, because ggml also loads backend libraries from the working directory;
 * - without the shim variables, or it would load the shim into itself;
 * - `tensorCacheDir` enables `-c`, caching tensors in `<tensorCacheDir>/rpc/`.
 */
export function rpcServerLaunch(
  parts: NativeParts,
  options: { port: number; threads: number; backend?: RpcServerBackend; tensorCacheDir?: string; baseEnv?: NodeJS.ProcessEnv },
): RpcServerLaunch {
  const backend = options.backend ?? "cpu";
  const command = parts.rpcServers[backend];
  if (command === undefined) throw errors.nativeMissing(`No rpc-server was built for the ${backend} backend (built: ${Object.keys(parts.rpcServers).join(", ")}).`);
  const env: NodeJS.ProcessEnv = { ...(options.baseEnv ?? process.env) };
  delete env[NATIVE_ENV.backendPath];
  delete env[NATIVE_ENV.endpoints];
  delete env[NATIVE_ENV.rpcServerCache];
  const args = ["-H", "127.0.0.1", "-p", String(options.port), "-t", String(Math.max(1, Math.floor(options.threads)))];
  if (options.tensorCacheDir !== undefined) {
    env[NATIVE_ENV.rpcServerCache] = options.tensorCacheDir;
    args.push("-c");
  }
  return { command, args, cwd: path.dirname(command), env };
}

/**
 * The rpc-server flavour for a machine whose node-llama-cpp runs on `gpuBackend` ("cuda",
 * "vulkan", "metal" or null): that backend's build when there is one, so a peer's layers run on
 * its GPU; otherwise the CPU build. Metal has no build here (the native build is Linux only).
 */
export function rpcServerBackendFor(gpuBackend: string | null, parts: Pick<NativeParts, "rpcServers">): RpcServerBackend {
  const wanted = RPC_SERVER_BACKENDS.find((backend) => backend !== "cpu" && backend === gpuBackend);
  return wanted !== undefined && parts.rpcServers[wanted] !== undefined ? wanted : "cpu";
}
