/**
 * Every tunable limit and timing of the daemon, with its documented default, in one place.
 * docs/configuration.md mirrors this file; keep them in step.
 */

import os from "node:os";
import path from "node:path";

export interface LimitsConfig {
  /** Largest accepted HTTP request body, in bytes. */
  maxBodyBytes: number;
  /** Requests waiting for a slot of one model, beyond those running; more get 429. */
  queueDepth: number;
  /** Requests one model serves at once (node-llama-cpp context sequences, batched). */
  parallelSlots: number;
  /** Idle time after which a loaded model's runner is stopped. */
  keepAliveMs: number;
  /** Context window per parallel slot, in tokens (capped at the model's training context). */
  contextSize: number;
  /** Largest number of inputs in one embeddings request. */
  maxEmbeddingInputs: number;
  /** Seconds suggested to clients in `retry-after` when the queue is full. */
  retryAfterSeconds: number;
}

export interface RunnerConfig {
  /** CPU threads per runner; 0 lets node-llama-cpp choose. */
  threads: number;
  /** Layers offloaded to a GPU; "auto" lets node-llama-cpp decide (0 without a GPU). */
  gpuLayers: number | "auto";
  /** Logical batch size for prompt evaluation. */
  batchSize: number;
  /** How long a runner may take to load its model before it is killed. */
  loadTimeoutMs: number;
  /** How long a runner gets to exit after "shutdown" before SIGKILL. */
  stopTimeoutMs: number;
}

export interface ModelsConfig {
  /** alias -> model id (or another alias is not allowed: one level only). */
  aliases: Record<string, string>;
  /** Extra GGUF files outside the models dir. Their ids are their file names without .gguf. */
  extraPaths: string[];
}

export interface LogConfig {
  level: "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "silent";
  /** Pretty-print logs; undefined means "when stdout is a TTY". */
  pretty?: boolean;
}

export interface HearthConfig {
  /** Address the HTTP API binds to. Anything but loopback requires an API key. */
  host: string;
  port: number;
  modelsDir: string;
  dataDir: string;
  /** Bearer token required on /v1 (and /hearth) requests when set. */
  apiKey?: string;
  /** Extra names accepted in the Host header besides this node's addresses and localhost. */
  allowedHosts: string[];
  models: ModelsConfig;
  limits: LimitsConfig;
  runner: RunnerConfig;
  log: LogConfig;
  /** How long SIGTERM waits for in-flight generations before aborting them. */
  drainTimeoutMs: number;
}

export const DEFAULT_PORT = 4327;
export const DEFAULT_HOST = "127.0.0.1";

export const DEFAULT_LIMITS: LimitsConfig = {
  maxBodyBytes: 4 * 1024 * 1024,
  queueDepth: 64,
  parallelSlots: 4,
  keepAliveMs: 5 * 60 * 1000,
  contextSize: 4096,
  maxEmbeddingInputs: 2048,
  retryAfterSeconds: 1,
};

export const DEFAULT_RUNNER: RunnerConfig = {
  threads: 0,
  gpuLayers: "auto",
  batchSize: 512,
  loadTimeoutMs: 120_000,
  stopTimeoutMs: 5_000,
};

export const DEFAULT_DRAIN_TIMEOUT_MS = 10_000;

/** XDG base directories, resolved from the environment at call time. */
export function xdgConfigHome(env: NodeJS.ProcessEnv = process.env): string {
  return env["XDG_CONFIG_HOME"] || path.join(os.homedir(), ".config");
}

export function xdgDataHome(env: NodeJS.ProcessEnv = process.env): string {
  return env["XDG_DATA_HOME"] || path.join(os.homedir(), ".local", "share");
}

export function defaultConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(xdgConfigHome(env), "hearth", "config.toml");
}

export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(xdgDataHome(env), "hearth");
}

export function defaultModelsDir(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(defaultDataDir(env), "models");
}
