/**
 * Builds the effective HearthConfig from defaults < config file < HEARTH_API_KEY < flags.
 *
 * Everything is read and validated here, before the daemon opens a socket or spawns a
 * runner, so a bad value stops startup with one HEARTH_CONFIG_INVALID error that lists every
 * problem by key (or by flag). The default config file may be absent; a file named with
 * --config must exist. Relative paths in the file are relative to the file's directory,
 * relative paths in flags to the working directory, and a leading "~/" means the home dir.
 */

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parse as parseToml, TomlError } from "smol-toml";
import { errors, HearthError } from "../../protocol/errors.js";
import { validateModelAliases } from "../models/aliases.js";
import { MAX_STATIC_PEERS, parseStaticPeer } from "../discovery/staticPeerEntry.js";
import { PEER_WIRE_LIMITS } from "../../protocol/peer/messages.js";
import { readApiKeyFile, checkKeyCharacters } from "./apiKey.js";
import {
  DEFAULT_DRAIN_TIMEOUT_MS,
  DEFAULT_HOST,
  DEFAULT_LIMITS,
  DEFAULT_MODEL_SHARING,
  DEFAULT_LOG_LEVEL,
  DEFAULT_JOBS,
  DEFAULT_RESPONSES,
  DEFAULT_RPC,
  RPC_CACHE_DIR_NAME,
  DEFAULT_PEER,
  DEFAULT_PEER_PORT,
  DEFAULT_PORT,
  DEFAULT_RUNNER,
  defaultConfigPath,
  defaultDataDir,
  type HearthConfig,
  type PeerConfig,
} from "./defaults.js";
import { formatKeyPath, validateConfigObject, type ConfigIssue, type ConfigValues } from "./schema.js";

/** Command-line flags as commander hands them over (strings until validated). */
export interface ConfigFlags {
  host?: string;
  port?: string | number;
  modelsDir?: string;
  dataDir?: string;
  apiKeyFile?: string;
  logLevel?: string;
  parallel?: string | number;
  keepAlive?: string;
  /** `--peer host:port`, repeatable: appended to the file's `peer.static_peers`. */
  peer?: string[];
  peerPort?: string | number;
  peerBind?: string;
  /** `--no-mdns` sets this to false; commander's default `true` must not be passed on. */
  mdns?: boolean;
}

export interface LoadConfigOptions {
  /** --config: a file that must exist. Without it the default file is read if present. */
  configFile?: string;
  flags?: ConfigFlags;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export type ApiKeySource = "--api-key-file" | "HEARTH_API_KEY" | "api_key_file";

export interface LoadedConfig {
  config: HearthConfig;
  /** The file that was read; undefined when the default file does not exist. */
  configPath: string | undefined;
  /** Where the API key came from, if there is one. Never the key itself. */
  apiKeySource: ApiKeySource | undefined;
  /** Problems that do not stop startup; logged once a logger exists. */
  warnings: string[];
}

/** Each flag, the TOML key it sets, and how it is spelled in messages. */
const FLAG_KEYS: Record<keyof ConfigFlags, readonly string[]> = {
  host: ["host"],
  port: ["port"],
  modelsDir: ["models_dir"],
  dataDir: ["data_dir"],
  apiKeyFile: ["api_key_file"],
  logLevel: ["log", "level"],
  parallel: ["limits", "parallel_slots"],
  keepAlive: ["limits", "keep_alive"],
  peer: ["peer", "static_peers"],
  peerPort: ["peer", "port"],
  peerBind: ["peer", "bind"],
  mdns: ["peer", "mdns"],
};

/** Flags whose text must become a number before validation. */
const NUMERIC_FLAGS: ReadonlySet<keyof ConfigFlags> = new Set<keyof ConfigFlags>(["port", "parallel", "peerPort"]);

function flagName(property: string): string {
  if (property === "mdns") return "--no-mdns";
  return `--${property.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`)}`;
}

export async function loadConfig(options: LoadConfigOptions = {}): Promise<LoadedConfig> {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const home = env["HOME"] || os.homedir();

  const explicitPath = options.configFile === undefined ? undefined : resolvePath(options.configFile, cwd, home);
  const candidatePath = explicitPath ?? defaultConfigPath(env);
  const fileText = await readConfigText(candidatePath, explicitPath !== undefined);
  const configPath = fileText === undefined ? undefined : candidatePath;

  let fileValues: ConfigValues = { models: {}, limits: {}, runner: {}, log: {}, peer: {}, jobs: {}, rpc: {}, responses: {} };
  if (fileText !== undefined) {
    const raw = parseTomlText(fileText, candidatePath);
    const result = validateConfigObject(raw);
    if (!result.ok) throw configError(result.issues, (issue) => formatKeyPath(issue.path), `in ${candidatePath}`);
    fileValues = resolveValuePaths(result.values, path.dirname(candidatePath), home);
    checkStaticPeers(fileValues.peer.staticPeers ?? [], (index) => `peer.static_peers[${index}]`, `in ${candidatePath}`);
  }

  const flagValues = validateFlags(options.flags ?? {});
  checkStaticPeers(flagValues.peer.staticPeers ?? [], () => "--peer", "on the command line");
  const flagsResolved = resolveValuePaths(flagValues, cwd, home);

  const merged = mergeValues(fileValues, flagsResolved);
  const config = buildConfig(merged, env);
  const where = configPath ? `in ${configPath}` : "in the configuration";
  checkAliases(config, where);
  checkPeerTimings(config.peer, where);
  checkStaticPeers(config.peer.staticPeers, () => "peer.static_peers", where, { total: true });

  const warnings: string[] = [];
  let apiKeySource: ApiKeySource | undefined;
  const envKey = env["HEARTH_API_KEY"]?.trim();
  if (flagsResolved.apiKeyFile !== undefined) {
    const fromFile = await readApiKeyFile(flagsResolved.apiKeyFile, "--api-key-file");
    config.apiKey = fromFile.key;
    if (fromFile.warning) warnings.push(fromFile.warning);
    apiKeySource = "--api-key-file";
  } else if (envKey) {
    checkKeyCharacters(envKey, "HEARTH_API_KEY");
    config.apiKey = envKey;
    apiKeySource = "HEARTH_API_KEY";
  } else if (fileValues.apiKeyFile !== undefined) {
    const fromFile = await readApiKeyFile(fileValues.apiKeyFile, configPath ? `api_key_file (in ${configPath})` : "api_key_file");
    config.apiKey = fromFile.key;
    if (fromFile.warning) warnings.push(fromFile.warning);
    apiKeySource = "api_key_file";
  }
  return { config, configPath, apiKeySource, warnings };
}

async function readConfigText(filePath: string, mustExist: boolean): Promise<string | undefined> {
  try {
    return await fs.promises.readFile(filePath, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" && !mustExist) return undefined;
    const reason = code === "ENOENT" ? "no such file" : code === "EISDIR" ? "it is a directory" : (error as Error).message;
    throw errors.configInvalid(`cannot read the config file ${filePath}: ${reason}`, { param: "--config", cause: error });
  }
}

function parseTomlText(text: string, filePath: string): unknown {
  try {
    return parseToml(text);
  } catch (error) {
    if (error instanceof TomlError) {
      // smol-toml's message is "Invalid TOML document: <reason>\n\n<code excerpt>".
      const [firstLine = "", ...rest] = error.message.split("\n");
      const reason = firstLine.replace(/^Invalid TOML document:\s*/, "");
      const excerpt = rest.join("\n").trimEnd();
      throw errors.configInvalid(`${filePath}:${error.line}:${error.column}: TOML syntax error: ${reason}${excerpt ? `\n${excerpt}` : ""}`, {
        param: `${filePath}:${error.line}:${error.column}`,
        cause: error,
      });
    }
    throw HearthError.from(error, "HEARTH_CONFIG_INVALID");
  }
}

function validateFlags(flags: ConfigFlags): ConfigValues {
  const raw: Record<string, unknown> = {};
  const flagPaths = new Map<string, string>();
  for (const [property, keyPath] of Object.entries(FLAG_KEYS) as [keyof ConfigFlags, readonly string[]][]) {
    const value = flags[property];
    if (value === undefined) continue;
    let table = raw;
    for (const key of keyPath.slice(0, -1)) table = (table[key] ??= {}) as Record<string, unknown>;
    // Flags arrive as text; numeric keys need numbers, and anything else is left for the
    // schema to reject with the same message the file would get.
    const numeric = typeof value === "string" && /^-?\d+$/.test(value.trim()) && NUMERIC_FLAGS.has(property);
    table[keyPath.at(-1)!] = numeric ? Number(value) : value;
    flagPaths.set(keyPath.join("."), flagName(property));
  }
  const result = validateConfigObject(raw);
  if (!result.ok) {
    throw configError(result.issues, (issue) => flagPaths.get(issue.path.join(".")) ?? formatKeyPath(issue.path), "on the command line");
  }
  return result.values;
}

function configError(issues: ConfigIssue[], name: (issue: ConfigIssue) => string, where: string): HearthError {
  const lines = issues.map((issue) => `${name(issue)}: ${issue.message}`);
  const first = issues[0];
  const param = first ? name(first) : null;
  const message = lines.length === 1 ? `${lines[0]} (${where})` : `invalid configuration ${where}:\n  ${lines.join("\n  ")}`;
  return errors.configInvalid(message, { param });
}

/** "~/x" -> home/x; relative -> against base. */
export function resolvePath(value: string, base: string, home: string = os.homedir()): string {
  if (value === "~") return home;
  if (value.startsWith("~/")) return path.join(home, value.slice(2));
  return path.resolve(base, value);
}

function resolveValuePaths(values: ConfigValues, base: string, home: string): ConfigValues {
  const resolved: ConfigValues = { ...values, models: { ...values.models }, rpc: { ...values.rpc } };
  if (values.modelsDir !== undefined) resolved.modelsDir = resolvePath(values.modelsDir, base, home);
  if (values.dataDir !== undefined) resolved.dataDir = resolvePath(values.dataDir, base, home);
  if (values.apiKeyFile !== undefined) resolved.apiKeyFile = resolvePath(values.apiKeyFile, base, home);
  if (values.models.extraPaths !== undefined) resolved.models.extraPaths = values.models.extraPaths.map((entry) => resolvePath(entry, base, home));
  if (values.rpc.cacheDir !== undefined) resolved.rpc.cacheDir = resolvePath(values.rpc.cacheDir, base, home);
  return resolved;
}

function mergeValues(lower: ConfigValues, higher: ConfigValues): ConfigValues {
  return {
    ...lower,
    ...higher,
    models: { ...lower.models, ...higher.models },
    limits: { ...lower.limits, ...higher.limits },
    runner: { ...lower.runner, ...higher.runner },
    log: { ...lower.log, ...higher.log },
    // Static peers add up: `--peer` extends the file's list rather than replacing it.
    peer: { ...lower.peer, ...higher.peer, staticPeers: [...(lower.peer.staticPeers ?? []), ...(higher.peer.staticPeers ?? [])] },
    jobs: { ...lower.jobs, ...higher.jobs },
    rpc: { ...lower.rpc, ...higher.rpc },
    responses: { ...lower.responses, ...higher.responses },
  };
}

function buildConfig(values: ConfigValues, env: NodeJS.ProcessEnv): HearthConfig {
  const dataDir = values.dataDir ?? defaultDataDir(env);
  const config: HearthConfig = {
    host: values.host ?? DEFAULT_HOST,
    port: values.port ?? DEFAULT_PORT,
    dataDir,
    // Models live under the data dir unless placed elsewhere, so moving data_dir moves both.
    modelsDir: values.modelsDir ?? path.join(dataDir, "models"),
    allowedHosts: values.allowedHosts ?? [],
    models: { ...DEFAULT_MODEL_SHARING, ...values.models, aliases: values.models.aliases ?? {}, extraPaths: values.models.extraPaths ?? [] },
    limits: { ...DEFAULT_LIMITS, ...values.limits },
    runner: { ...DEFAULT_RUNNER, ...values.runner },
    log: { level: values.log.level ?? DEFAULT_LOG_LEVEL },
    drainTimeoutMs: values.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS,
    peer: { ...DEFAULT_PEER, ...values.peer, staticPeers: values.peer.staticPeers ?? [...DEFAULT_PEER.staticPeers] },
    jobs: { ...DEFAULT_JOBS, ...values.jobs },
    responses: { ...DEFAULT_RESPONSES, ...values.responses },
    rpc: { ...DEFAULT_RPC, ...values.rpc, cacheDir: values.rpc.cacheDir ?? path.join(dataDir, RPC_CACHE_DIR_NAME) },
  };
  if (values.log.pretty !== undefined) config.log.pretty = values.log.pretty;
  return config;
}

/** Alias rules live with the registry (daemon/models/aliases.ts); here they get the config's message form. */
function checkAliases(config: HearthConfig, where: string): void {
  try {
    validateModelAliases(config.models.aliases);
  } catch (error) {
    if (!(error instanceof HearthError)) throw error;
    throw errors.configInvalid(`${error.param ?? "models.aliases"}: ${error.message} (${where})`, { param: error.param });
  }
}

/**
 * Each static peer must be a usable `host:port` (daemon/discovery/staticPeerEntry.ts decides),
 * named by its key and index in the file or by `--peer` on the command line. With `total`, only
 * the combined count is checked (file and flags together).
 */
function checkStaticPeers(entries: readonly string[], name: (index: number) => string, where: string, options: { total?: boolean } = {}): void {
  if (options.total === true) {
    if (entries.length > MAX_STATIC_PEERS) {
      throw errors.configInvalid(`${name(0)}: at most ${MAX_STATIC_PEERS} static peers may be listed, got ${entries.length} (${where})`, {
        param: name(0),
      });
    }
    return;
  }
  for (const [index, entry] of entries.entries()) {
    try {
      parseStaticPeer(entry, DEFAULT_PEER_PORT, name(index));
    } catch (error) {
      if (!(error instanceof HearthError)) throw error;
      throw errors.configInvalid(`${name(index)}: ${error.message} (${where})`, { param: name(index), cause: error });
    }
  }
}

/** Limits that only make sense together; each message names the keys involved. */
function checkPeerTimings(peer: PeerConfig, where: string): void {
  const problems: [key: string, message: string][] = [];
  if (peer.heartbeatTimeoutMs <= peer.heartbeatIntervalMs) {
    problems.push(["peer.heartbeat_timeout", `must be longer than peer.heartbeat_interval (${peer.heartbeatIntervalMs} ms), got ${peer.heartbeatTimeoutMs} ms`]);
  }
  if (peer.dialBackoffMaxMs < peer.dialBackoffInitialMs) {
    problems.push(["peer.dial_backoff_max", `must be at least peer.dial_backoff_initial (${peer.dialBackoffInitialMs} ms), got ${peer.dialBackoffMaxMs} ms`]);
  }
  if (peer.maxStreamChunkBytes > PEER_WIRE_LIMITS.maxChunkBytes) {
    problems.push(["peer.max_stream_chunk_bytes", `must be at most ${PEER_WIRE_LIMITS.maxChunkBytes} (the protocol's cap), got ${peer.maxStreamChunkBytes}`]);
  }
  if (peer.maxStreamChunkBytes >= peer.maxFrameBytes) {
    problems.push(["peer.max_stream_chunk_bytes", `must be smaller than peer.max_frame_bytes (${peer.maxFrameBytes}), got ${peer.maxStreamChunkBytes}`]);
  }
  if (problems.length === 0) return;
  throw configError(
    problems.map(([key, message]) => ({ path: key.split("."), message })),
    (issue) => issue.path.join("."),
    where,
  );
}
