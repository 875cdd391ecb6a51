/**
 * The shape of config.toml: every key, its TOML spelling (snake_case) and how it is validated.
 *
 * The same schema checks the file and the command-line flags (flags are first turned into the
 * TOML shape), so a value means the same thing wherever it comes from. Tables are strict: an
 * unknown key is an error, because a typo that is silently ignored leaves a limit at its
 * default without anyone noticing. Each section's field table is typed against the matching
 * interface in defaults.ts, so a new limit does not compile until it has a TOML key here.
 *
 * Pure: no I/O. docs/configuration.md documents every key; keep them in step.
 */

import { z } from "zod";
import { parseDuration } from "../../protocol/duration.js";
import { DECODE_BATCHING_MODES } from "../../protocol/runnerIpc.js";
import { SHARE_POLICIES, type JobsConfig, type LimitsConfig, type LogConfig, type ModelsConfig, type PeerConfig, type ResponsesConfig, type RpcConfig, type RunnerConfig } from "./defaults.js";

// ---- value validators ------------------------------------------------------------------
// Each validator carries one message for every way a value can be wrong; the caller appends
// the offending value, which gives "limits.queue_depth: expected a positive integer, got -3".

function positiveInt(): z.ZodType<number> {
  const expected = "expected a positive integer";
  return z.number({ error: expected }).int({ error: expected }).positive({ error: expected });
}

function nonNegativeInt(): z.ZodType<number> {
  const expected = "expected an integer >= 0";
  return z.number({ error: expected }).int({ error: expected }).nonnegative({ error: expected });
}

function port(): z.ZodType<number> {
  const expected = "expected a port number from 0 to 65535";
  return z.number({ error: expected }).int({ error: expected }).min(0, { error: expected }).max(65535, { error: expected });
}

function duration(): z.ZodType<number, unknown> {
  const expected = 'expected a duration with a unit, like "500ms", "30s", "5m" or "1h"';
  return z.string({ error: expected }).transform((text, context) => {
    const ms = parseDuration(text);
    if (ms === undefined) {
      context.issues.push({ code: "custom", message: expected, input: text });
      return z.NEVER;
    }
    return ms;
  });
}

function positiveDuration(): z.ZodType<number, unknown> {
  const expected = 'expected a duration above zero, like "500ms" or "2s"';
  return duration().refine((ms) => ms > 0, { error: expected });
}

function nonEmptyString(what = "a non-empty string"): z.ZodType<string> {
  const expected = `expected ${what}`;
  return z.string({ error: expected }).refine((text) => text.trim() !== "", { error: expected });
}

function host(): z.ZodType<string> {
  const expected = 'expected a host name or IP address, like "127.0.0.1" or "0.0.0.0"';
  return z.string({ error: expected }).regex(/^(?:\[[0-9A-Fa-f:.%\w]+\]|[\w.:%-]+)$/, { error: expected });
}

function fraction(): z.ZodType<number> {
  const expected = "expected a number from 0 to 1";
  return z.number({ error: expected }).min(0, { error: expected }).max(1, { error: expected });
}

function boolean(): z.ZodType<boolean> {
  return z.boolean({ error: "expected true or false" });
}

function gpuLayers(): z.ZodType<number | "auto"> {
  const expected = 'expected "auto" or an integer >= 0';
  return z.union([z.literal("auto"), z.number().int().nonnegative()], { error: expected });
}

const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const satisfies readonly LogConfig["level"][];

// ---- sections --------------------------------------------------------------------------

/** One config field: its TOML key and the validator producing the typed value. */
type FieldSpec<T> = readonly [tomlKey: string, schema: z.ZodType<T, unknown>];

/** Every property of T must have a TOML key: adding a limit without one does not compile. */
type SectionFields<T> = { readonly [K in keyof T]-?: FieldSpec<Exclude<T[K], undefined>> };

export const LIMITS_FIELDS = {
  maxBodyBytes: ["max_body_bytes", positiveInt()],
  queueDepth: ["queue_depth", positiveInt()],
  parallelSlots: ["parallel_slots", positiveInt()],
  keepAliveMs: ["keep_alive", duration()],
  contextSize: ["context_size", positiveInt()],
  maxEmbeddingInputs: ["max_embedding_inputs", positiveInt()],
  retryAfterSeconds: ["retry_after_seconds", positiveInt()],
  sseKeepAliveMs: ["sse_keep_alive", duration()],
} as const satisfies SectionFields<LimitsConfig>;

/** `[jobs]`: batch job limits (daemon/jobs/). */
export const JOBS_FIELDS = {
  maxInputBytes: ["max_input_bytes", positiveInt()],
  maxItems: ["max_items", positiveInt()],
  inFlightPerNode: ["in_flight_per_node", positiveInt()],
  maxAttempts: ["max_attempts", positiveInt()],
  refreshIntervalMs: ["refresh_interval", positiveDuration()],
  maxRunning: ["max_running", positiveInt()],
} as const satisfies SectionFields<JobsConfig>;

/** `[rpc]`: the rpc-server workers and their tensor cache (daemon/rpc/). */
export const RPC_FIELDS = {
  threads: ["threads", nonNegativeInt()],
  cacheDir: ["cache_dir", nonEmptyString("a directory path")],
  cacheMaxBytes: ["cache_max_bytes", nonNegativeInt()],
  prefill: ["prefill", boolean()],
  idleTimeoutMs: ["idle_timeout", positiveDuration()],
  startTimeoutMs: ["start_timeout", positiveDuration()],
  maxWorkers: ["max_workers", positiveInt()],
  prepareTimeoutMs: ["prepare_timeout", positiveDuration()],
  memoryBudgetBytes: ["memory_budget_bytes", nonNegativeInt()],
  memoryHeadroomBytes: ["memory_headroom_bytes", nonNegativeInt()],
  recoveryAttempts: ["recovery_attempts", nonNegativeInt()],
  lostNodeWaitMs: ["lost_node_wait", duration()],
} as const satisfies SectionFields<RpcConfig>;

/** `[responses]`: the response store of the Responses API (daemon/responses/). */
export const RESPONSES_FIELDS = {
  maxStored: ["max_stored", positiveInt()],
  maxStoredBytes: ["max_stored_bytes", positiveInt()],
  maxAgeMs: ["max_age", positiveDuration()],
} as const satisfies SectionFields<ResponsesConfig>;

export const RUNNER_FIELDS = {
  threads: ["threads", nonNegativeInt()],
  gpuLayers: ["gpu_layers", gpuLayers()],
  batchSize: ["batch_size", positiveInt()],
  repackWeights: ["repack_weights", boolean()],
  threadPool: ["thread_pool", boolean()],
  batching: ["batching", z.enum(DECODE_BATCHING_MODES, { error: `expected one of ${DECODE_BATCHING_MODES.map((mode) => `"${mode}"`).join(", ")}` })],
  loadTimeoutMs: ["load_timeout", duration()],
  stopTimeoutMs: ["stop_timeout", duration()],
} as const satisfies SectionFields<RunnerConfig>;

export const MODELS_FIELDS = {
  aliases: ["aliases", z.record(z.string(), nonEmptyString("a model id"), { error: 'expected a table of alias = "model-id"' })],
  extraPaths: ["extra_paths", z.array(nonEmptyString("a path to a .gguf file"), { error: "expected an array of paths" })],
  sharePolicy: ["share_policy", z.enum(SHARE_POLICIES, { error: `expected one of ${SHARE_POLICIES.map((policy) => `"${policy}"`).join(", ")}` })],
  serveToPeers: ["serve_to_peers", boolean()],
  diskReserveBytes: ["disk_reserve_bytes", nonNegativeInt()],
  fetchResumeTimeoutMs: ["fetch_resume_timeout", positiveDuration()],
  fetchStallTimeoutMs: ["fetch_stall_timeout", positiveDuration()],
  maxConcurrentServes: ["max_concurrent_serves", positiveInt()],
  peerFetchTimeoutMs: ["peer_fetch_timeout", positiveDuration()],
} as const satisfies SectionFields<ModelsConfig>;

export const LOG_FIELDS = {
  level: ["level", z.enum(LOG_LEVELS, { error: `expected one of ${LOG_LEVELS.map((level) => `"${level}"`).join(", ")}` })],
  pretty: ["pretty", z.boolean({ error: "expected true or false" })],
} as const satisfies SectionFields<LogConfig>;

/**
 * `[peer]`: the peer listener, discovery, and the link timings of docs/protocol.md. Static peer
 * entries are only checked to be strings here; loadConfig parses each `host:port` (it needs the
 * entry's index for the message) with daemon/discovery/staticPeerEntry.ts.
 */
export const PEER_FIELDS = {
  host: ["bind", host()],
  port: ["port", port()],
  staticPeers: ["static_peers", z.array(z.string({ error: 'expected a "host:port" string' }), { error: 'expected an array of "host:port" strings' })],
  mdns: ["mdns", boolean()],
  maxFrameBytes: ["max_frame_bytes", positiveInt()],
  maxStreamChunkBytes: ["max_stream_chunk_bytes", positiveInt()],
  maxNestingDepth: ["max_nesting_depth", positiveInt()],
  handshakeTimeoutMs: ["handshake_timeout", positiveDuration()],
  heartbeatIntervalMs: ["heartbeat_interval", positiveDuration()],
  heartbeatTimeoutMs: ["heartbeat_timeout", positiveDuration()],
  closeGraceMs: ["close_grace", positiveDuration()],
  dialTimeoutMs: ["dial_timeout", positiveDuration()],
  dialBackoffInitialMs: ["dial_backoff_initial", positiveDuration()],
  dialBackoffMaxMs: ["dial_backoff_max", positiveDuration()],
  dialBackoffJitter: ["dial_backoff_jitter", fraction()],
  requestTimeoutMs: ["request_timeout", positiveDuration()],
  maxConcurrentRequests: ["max_concurrent_requests", positiveInt()],
  maxOpenStreams: ["max_open_streams", positiveInt()],
  streamWindowBytes: ["stream_window_bytes", positiveInt()],
  maxUnknownStreamMessages: ["max_unknown_stream_messages", positiveInt()],
  maxPendingHandshakes: ["max_pending_handshakes", positiveInt()],
  maxConnections: ["max_connections", positiveInt()],
  maxFailedAttempts: ["max_failed_attempts", positiveInt()],
  failedAttemptWindowMs: ["failed_attempt_window", positiveDuration()],
  maxTrackedAddresses: ["max_tracked_addresses", positiveInt()],
  statePublishIntervalMs: ["state_publish_interval", positiveDuration()],
  speedProbeTokens: ["speed_probe_tokens", positiveInt()],
  hardwareProbeTimeoutMs: ["hardware_probe_timeout", positiveDuration()],
} as const satisfies SectionFields<PeerConfig>;

/** Top-level keys (not tables). Paths are left as written; the loader resolves them. */
export const TOP_FIELDS = {
  host: ["host", host()],
  port: ["port", port()],
  modelsDir: ["models_dir", nonEmptyString("a directory path")],
  dataDir: ["data_dir", nonEmptyString("a directory path")],
  apiKeyFile: ["api_key_file", nonEmptyString("a file path")],
  allowedHosts: ["allowed_hosts", z.array(nonEmptyString("a host name"), { error: "expected an array of host names" })],
  drainTimeoutMs: ["drain_timeout", duration()],
} as const satisfies SectionFields<TopLevelValues>;

interface TopLevelValues {
  host: string;
  port: number;
  modelsDir: string;
  dataDir: string;
  apiKeyFile: string;
  allowedHosts: string[];
  drainTimeoutMs: number;
}

const SECTIONS = {
  models: MODELS_FIELDS,
  limits: LIMITS_FIELDS,
  runner: RUNNER_FIELDS,
  log: LOG_FIELDS,
  peer: PEER_FIELDS,
  jobs: JOBS_FIELDS,
  rpc: RPC_FIELDS,
  responses: RESPONSES_FIELDS,
} as const;

type SectionName = keyof typeof SECTIONS;

function shapeOf(fields: Record<string, FieldSpec<unknown>>): Record<string, z.ZodType> {
  return Object.fromEntries(Object.values(fields).map(([key, schema]) => [key, schema.optional()]));
}

const FILE_SCHEMA = z.strictObject({
  ...shapeOf(TOP_FIELDS),
  ...Object.fromEntries(
    Object.entries(SECTIONS).map(([name, fields]) => [name, z.strictObject(shapeOf(fields), { error: `expected a table, like [${name}]` }).optional()]),
  ),
});

/** Keys a table accepts, by dotted path ("" is the top level); used to suggest fixes for typos. */
export function knownKeys(tablePath: string): string[] {
  if (tablePath === "") return [...Object.values(TOP_FIELDS).map(([key]) => key), ...Object.keys(SECTIONS)];
  const fields = (SECTIONS as Record<string, Record<string, FieldSpec<unknown>>>)[tablePath];
  return fields ? Object.values(fields).map(([key]) => key) : [];
}

/** Validated values from one source (file or flags): only the keys that source set. */
export interface ConfigValues extends Partial<TopLevelValues> {
  models: Partial<ModelsConfig>;
  limits: Partial<LimitsConfig>;
  runner: Partial<RunnerConfig>;
  log: Partial<LogConfig>;
  peer: Partial<PeerConfig>;
  jobs: Partial<JobsConfig>;
  rpc: Partial<RpcConfig>;
  responses: Partial<ResponsesConfig>;
}

export type ValidationResult = { ok: true; values: ConfigValues } | { ok: false; issues: ConfigIssue[] };

/** One problem, located by its TOML key path (e.g. ["limits", "queue_depth"]). */
export interface ConfigIssue {
  path: (string | number)[];
  message: string;
}

function pick<T>(fields: SectionFields<T>, table: Record<string, unknown> | undefined): Partial<T> {
  const result: Partial<T> = {};
  if (!table) return result;
  for (const property of Object.keys(fields) as (keyof T)[]) {
    const [key] = fields[property];
    if (table[key] !== undefined) result[property] = table[key] as T[keyof T];
  }
  return result;
}

/** Validates a TOML-shaped object; on failure lists every problem, each with its key. */
export function validateConfigObject(raw: unknown): ValidationResult {
  const parsed = FILE_SCHEMA.safeParse(raw);
  if (!parsed.success) {
    return { ok: false, issues: parsed.error.issues.flatMap((issue) => describeIssue(issue, raw)) };
  }
  const data = parsed.data as Record<string, unknown>;
  const section = (name: SectionName) => data[name] as Record<string, unknown> | undefined;
  return {
    ok: true,
    values: {
      ...pick(TOP_FIELDS, data),
      models: pick(MODELS_FIELDS, section("models")),
      limits: pick(LIMITS_FIELDS, section("limits")),
      runner: pick(RUNNER_FIELDS, section("runner")),
      log: pick(LOG_FIELDS, section("log")),
      peer: pick(PEER_FIELDS, section("peer")),
      jobs: pick(JOBS_FIELDS, section("jobs")),
      rpc: pick(RPC_FIELDS, section("rpc")),
      responses: pick(RESPONSES_FIELDS, section("responses")),
    },
  };
}

// ---- messages --------------------------------------------------------------------------

function describeIssue(issue: z.core.$ZodIssue, raw: unknown): ConfigIssue[] {
  const path = issue.path.filter((part): part is string | number => typeof part !== "symbol");
  if (issue.code === "unrecognized_keys") {
    const tablePath = path.join(".");
    return issue.keys.map((key) => {
      const suggestion = closestKey(key, knownKeys(tablePath));
      return { path: [...path, key], message: `unknown key${suggestion ? ` (did you mean "${suggestion}"?)` : ""}` };
    });
  }
  return [{ path, message: `${issue.message}, got ${describeValue(valueAt(raw, path))}` }];
}

function valueAt(raw: unknown, path: (string | number)[]): unknown {
  let value = raw;
  for (const part of path) {
    if (value === null || typeof value !== "object") return undefined;
    value = (value as Record<string | number, unknown>)[part];
  }
  return value;
}

/** A short rendering of a TOML value for error messages. */
export function describeValue(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint") return String(value);
  if (value instanceof Date) return `the date ${value.toISOString()}`;
  if (Array.isArray(value)) return "an array";
  if (value === undefined) return "nothing";
  if (value === null) return "null";
  return "a table";
}

/** "limits.queue_depth", "models.extra_paths[1]", 'models.aliases."a.b"'. */
export function formatKeyPath(path: readonly (string | number)[]): string {
  let text = "";
  for (const part of path) {
    if (typeof part === "number") text += `[${part}]`;
    else {
      const key = /^[A-Za-z0-9_-]+$/.test(part) ? part : JSON.stringify(part);
      text += text === "" ? key : `.${key}`;
    }
  }
  return text;
}

function closestKey(typo: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = editDistance(typo.toLowerCase(), candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  // Beyond a third of the word it is a different word, not a typo.
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(typo.length / 3)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}
