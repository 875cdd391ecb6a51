/**
 * A whole HearthConfig for a daemon, or the parts of one, run inside a test: the HTTP API on
 * loopback at a port the OS picks, a silent log, a short drain, and every table at its
 * default. A test names only what it depends on; a table it names is merged over the default,
 * so `limits: { parallelSlots: 1 }` keeps the other limits.
 *
 * The defaults come from the caller: a unit test hands in the sources' module, an integration
 * test the one it imported from dist/, which is what it runs.
 */

import path from "node:path";
import type * as DefaultsModule from "../../daemon/config/defaults.js";
import type { HearthConfig, JobsConfig, LimitsConfig, ModelsConfig, PeerConfig, ResponsesConfig, RpcConfig, RunnerConfig } from "../../daemon/config/defaults.js";

export type ConfigDefaults = Pick<typeof DefaultsModule, "DEFAULT_JOBS" | "DEFAULT_RESPONSES" | "DEFAULT_LIMITS" | "DEFAULT_MODEL_SHARING" | "DEFAULT_PEER" | "DEFAULT_RPC" | "DEFAULT_RUNNER">;

export interface TestConfigOverrides extends Partial<Omit<HearthConfig, "models" | "limits" | "runner" | "peer" | "jobs" | "rpc" | "responses">> {
  models?: Partial<ModelsConfig>;
  limits?: Partial<LimitsConfig>;
  runner?: Partial<RunnerConfig>;
  peer?: Partial<PeerConfig>;
  jobs?: Partial<JobsConfig>;
  rpc?: Partial<RpcConfig>;
  responses?: Partial<ResponsesConfig>;
}

/** The models dir is `dataDir`/models and the RPC cache `dataDir`/rpc-cache unless overridden. */
export function testConfig(defaults: ConfigDefaults, dataDir: string, overrides: TestConfigOverrides = {}): HearthConfig {
  const { DEFAULT_JOBS, DEFAULT_RESPONSES, DEFAULT_LIMITS, DEFAULT_MODEL_SHARING, DEFAULT_PEER, DEFAULT_RPC, DEFAULT_RUNNER } = defaults;
  const { models, limits, runner, peer, jobs, rpc, responses, ...top } = overrides;
  return {
    host: "127.0.0.1",
    port: 0,
    dataDir,
    modelsDir: path.join(dataDir, "models"),
    allowedHosts: [],
    log: { level: "silent" },
    drainTimeoutMs: 2_000,
    ...top,
    models: { aliases: {}, extraPaths: [], ...DEFAULT_MODEL_SHARING, ...models },
    limits: { ...DEFAULT_LIMITS, ...limits },
    runner: { ...DEFAULT_RUNNER, ...runner },
    peer: { ...DEFAULT_PEER, ...peer },
    jobs: { ...DEFAULT_JOBS, ...jobs },
    responses: { ...DEFAULT_RESPONSES, ...responses },
    rpc: { ...DEFAULT_RPC, cacheDir: path.join(dataDir, "rpc-cache"), ...rpc },
  };
}
