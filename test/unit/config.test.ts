// Configuration loading: defaults, file and flag precedence, validation messages naming the
// key, TOML syntax errors with a position, the API key sources and the non-loopback guard.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { HearthError } from "../../protocol/errors.js";
import { DEFAULT_DRAIN_TIMEOUT_MS, DEFAULT_JOBS, DEFAULT_RESPONSES, DEFAULT_LIMITS, DEFAULT_MODEL_SHARING, DEFAULT_PEER, DEFAULT_PORT, DEFAULT_RPC, DEFAULT_RUNNER } from "../../daemon/config/defaults.js";
import { loadConfig, type LoadConfigOptions } from "../../daemon/config/loadConfig.js";
import { assertSafeToServe, isLoopbackHost } from "../../daemon/config/security.js";
import { formatDuration, parseDuration } from "../../protocol/duration.js";
import { rejectionOf } from "../support/thrown.js";

let root: string;
let env: NodeJS.ProcessEnv;

beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "hearth-config-"));
  env = { HOME: path.join(root, "home"), XDG_CONFIG_HOME: path.join(root, "xdg-config"), XDG_DATA_HOME: path.join(root, "xdg-data") };
});

afterEach(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

function writeDefaultConfig(text: string): string {
  const file = path.join(root, "xdg-config", "hearth", "config.toml");
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
  return file;
}

function writeFile(name: string, text: string, mode = 0o600): string {
  const file = path.join(root, name);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text, { mode });
  fs.chmodSync(file, mode);
  return file;
}

function load(options: Omit<LoadConfigOptions, "env" | "cwd"> = {}) {
  return loadConfig({ env, cwd: root, ...options });
}

async function configError(options: Omit<LoadConfigOptions, "env" | "cwd">): Promise<HearthError> {
  const error = await rejectionOf(load(options));
  expect(error.code).toBe("HEARTH_CONFIG_INVALID");
  return error;
}

describe("defaults", () => {
  it("without any config file every value is the documented default under the XDG dirs", async () => {
    const { config, configPath, apiKeySource, warnings } = await load();
    expect(configPath).toBeUndefined();
    expect(apiKeySource).toBeUndefined();
    expect(warnings).toEqual([]);
    expect(config).toEqual({
      host: "127.0.0.1",
      port: DEFAULT_PORT,
      dataDir: path.join(root, "xdg-data", "hearth"),
      modelsDir: path.join(root, "xdg-data", "hearth", "models"),
      allowedHosts: [],
      models: { aliases: {}, extraPaths: [], ...DEFAULT_MODEL_SHARING },
      limits: DEFAULT_LIMITS,
      runner: DEFAULT_RUNNER,
      log: { level: "info" },
      drainTimeoutMs: DEFAULT_DRAIN_TIMEOUT_MS,
      peer: DEFAULT_PEER,
      jobs: DEFAULT_JOBS,
      responses: DEFAULT_RESPONSES,
      rpc: { ...DEFAULT_RPC, cacheDir: path.join(root, "xdg-data", "hearth", "rpc-cache") },
    });
  });

  it("falls back to ~/.config and ~/.local/share when XDG variables are unset", async () => {
    const home = path.join(root, "home");
    const { config } = await loadConfig({ env: { HOME: home }, cwd: root });
    expect(config.dataDir).toBe(path.join(os.homedir(), ".local", "share", "hearth"));
    // HOME only drives "~/" in paths; the XDG fallbacks use the OS home directory.
    expect(config.modelsDir).toBe(path.join(config.dataDir, "models"));
  });
});

describe("file and flags", () => {
  it("reads every section of the default config file", async () => {
    const file = writeDefaultConfig(`
host = "::1"
port = 5000
allowed_hosts = ["hearth.lan"]
drain_timeout = "1m30s"
models_dir = "models-here"

[models]
aliases = { chat = "tiny-model" }
extra_paths = ["~/extra/a.gguf", "/abs/b.gguf"]

[limits]
queue_depth = 8
keep_alive = "10m"
sse_keep_alive = "5s"

[runner]
threads = 2
gpu_layers = 0
load_timeout = "30s"

[log]
level = "debug"
pretty = false

[jobs]
max_input_bytes = 1000
in_flight_per_node = 2
refresh_interval = "1s"
`);
    const { config, configPath } = await load();
    expect(configPath).toBe(file);
    expect(config.host).toBe("::1");
    expect(config.port).toBe(5000);
    expect(config.allowedHosts).toEqual(["hearth.lan"]);
    expect(config.drainTimeoutMs).toBe(90_000);
    // Relative paths in the file are relative to the file's directory.
    expect(config.modelsDir).toBe(path.join(path.dirname(file), "models-here"));
    expect(config.models).toEqual({ ...DEFAULT_MODEL_SHARING, aliases: { chat: "tiny-model" }, extraPaths: [path.join(root, "home", "extra", "a.gguf"), "/abs/b.gguf"] });
    expect(config.limits).toEqual({ ...DEFAULT_LIMITS, queueDepth: 8, keepAliveMs: 600_000, sseKeepAliveMs: 5000 });
    expect(config.runner).toEqual({ ...DEFAULT_RUNNER, threads: 2, gpuLayers: 0, loadTimeoutMs: 30_000 });
    expect(config.log).toEqual({ level: "debug", pretty: false });
    expect(config.jobs).toEqual({ ...DEFAULT_JOBS, maxInputBytes: 1000, inFlightPerNode: 2, refreshIntervalMs: 1000 });
  });

  it("flags override the file, which overrides the defaults", async () => {
    writeDefaultConfig(`port = 5000\nhost = "127.0.0.2"\n[limits]\nparallel_slots = 2\nqueue_depth = 9\n[log]\nlevel = "warn"\n`);
    const { config } = await load({ flags: { port: "6000", parallel: "3", logLevel: "error", keepAlive: "2s", modelsDir: "rel/models" } });
    expect(config.port).toBe(6000);
    expect(config.host).toBe("127.0.0.2");
    expect(config.limits.parallelSlots).toBe(3);
    expect(config.limits.queueDepth).toBe(9);
    expect(config.limits.keepAliveMs).toBe(2000);
    expect(config.log.level).toBe("error");
    // Relative flag paths are relative to the working directory.
    expect(config.modelsDir).toBe(path.join(root, "rel", "models"));
  });

  it("data_dir moves the models dir with it unless models_dir is set", async () => {
    const { config } = await load({ flags: { dataDir: "/srv/hearth" } });
    expect(config.dataDir).toBe("/srv/hearth");
    expect(config.modelsDir).toBe("/srv/hearth/models");
  });

  it("--config reads the named file instead of the default one", async () => {
    writeDefaultConfig("port = 5000\n");
    const other = writeFile("other.toml", "port = 7000\n");
    const { config, configPath } = await load({ configFile: other });
    expect(configPath).toBe(other);
    expect(config.port).toBe(7000);
  });

  it("a missing --config file is an error, a missing default file is not", async () => {
    const error = await configError({ configFile: "nope.toml" });
    expect(error.message).toContain(path.join(root, "nope.toml"));
    expect(error.message).toContain("no such file");
    await expect(load()).resolves.toMatchObject({ configPath: undefined, config: { port: DEFAULT_PORT } });
  });
});

describe("validation names the key and the reason", () => {
  const cases: [toml: string, message: string][] = [
    ["[limits]\nqueue_depth = -3", "limits.queue_depth: expected a positive integer, got -3"],
    ["[limits]\nqueue_depth = 2.5", "limits.queue_depth: expected a positive integer, got 2.5"],
    ['[limits]\nqueue_depth = "64"', 'limits.queue_depth: expected a positive integer, got "64"'],
    ["[limits]\nmax_body_bytes = 0", "limits.max_body_bytes: expected a positive integer, got 0"],
    ["[limits]\nparallel_slots = 0", "limits.parallel_slots: expected a positive integer, got 0"],
    ["[limits]\ncontext_size = -1", "limits.context_size: expected a positive integer, got -1"],
    ["[limits]\nmax_embedding_inputs = true", "limits.max_embedding_inputs: expected a positive integer, got true"],
    ["[limits]\nretry_after_seconds = 0", "limits.retry_after_seconds: expected a positive integer, got 0"],
    ["[limits]\nkeep_alive = 300", "limits.keep_alive: expected a duration with a unit"],
    ['[limits]\nkeep_alive = "5 minutes"', 'limits.keep_alive: expected a duration with a unit, like "500ms", "30s", "5m" or "1h", got "5 minutes"'],
    ['[limits]\nsse_keep_alive = "x"', 'limits.sse_keep_alive: expected a duration with a unit, like "500ms", "30s", "5m" or "1h", got "x"'],
    ["[runner]\nthreads = -1", "runner.threads: expected an integer >= 0, got -1"],
    ['[runner]\ngpu_layers = "all"', 'runner.gpu_layers: expected "auto" or an integer >= 0, got "all"'],
    ["[runner]\nbatch_size = 0", "runner.batch_size: expected a positive integer, got 0"],
    ['[runner]\nload_timeout = "soon"', 'runner.load_timeout: expected a duration with a unit, like "500ms", "30s", "5m" or "1h", got "soon"'],
    ["[runner]\nstop_timeout = 5", "runner.stop_timeout: expected a duration with a unit, like \"500ms\", \"30s\", \"5m\" or \"1h\", got 5"],
    ["port = 70000", "port: expected a port number from 0 to 65535, got 70000"],
    ['port = "http"', 'port: expected a port number from 0 to 65535, got "http"'],
    ['host = "http://x"', 'host: expected a host name or IP address, like "127.0.0.1" or "0.0.0.0", got "http://x"'],
    ['models_dir = ""', 'models_dir: expected a directory path, got ""'],
    ["data_dir = 3", "data_dir: expected a directory path, got 3"],
    ["api_key_file = []", "api_key_file: expected a file path, got an array"],
    ['allowed_hosts = "x"', 'allowed_hosts: expected an array of host names, got "x"'],
    ['drain_timeout = "forever"', 'drain_timeout: expected a duration with a unit, like "500ms", "30s", "5m" or "1h", got "forever"'],
    ['[models]\naliases = { chat = "" }', 'models.aliases.chat: expected a model id, got ""'],
    ['[models]\nextra_paths = ["a.gguf", 5]', "models.extra_paths[1]: expected a path to a .gguf file, got 5"],
    ['[log]\nlevel = "loud"', 'log.level: expected one of "trace", "debug", "info", "warn", "error", "fatal", "silent", got "loud"'],
    ['[log]\npretty = "yes"', 'log.pretty: expected true or false, got "yes"'],
    ["limits = 5", "limits: expected a table, like [limits], got 5"],
  ];

  it.each(cases)("%j -> %s", async (toml, message) => {
    writeDefaultConfig(toml);
    const error = await configError({});
    expect(error.message).toContain(message);
    expect(error.message).toContain(path.join(root, "xdg-config", "hearth", "config.toml"));
  });

  it("reports every problem at once, one per line", async () => {
    writeDefaultConfig("port = -1\n[limits]\nqueue_depth = 0\n");
    const error = await configError({});
    expect(error.message.split("\n")).toEqual([
      `invalid configuration in ${path.join(root, "xdg-config", "hearth", "config.toml")}:`,
      "  port: expected a port number from 0 to 65535, got -1",
      "  limits.queue_depth: expected a positive integer, got 0",
    ]);
    expect(error.param).toBe("port");
  });

  it("an unknown key is an error naming the key, with a suggestion for a typo", async () => {
    writeDefaultConfig("[limits]\nqueue_dept = 3\n");
    const error = await configError({});
    expect(error.message).toContain('limits.queue_dept: unknown key (did you mean "queue_depth"?)');
  });

  it("unknown top-level keys and tables are errors too", async () => {
    writeDefaultConfig('colour = "blue"\n[limitz]\nx = 1\n');
    const error = await configError({});
    expect(error.message).toContain("colour: unknown key");
    expect(error.message).toContain('limitz: unknown key (did you mean "limits"?)');
  });

  it("an alias may not point at another alias", async () => {
    writeDefaultConfig('[models]\naliases = { a = "b", b = "tiny" }\n');
    const error = await configError({});
    expect(error.message).toContain('models.aliases.a: alias "a" points to alias "b"; aliases resolve one level only');
  });

  it("a bad flag is named by its flag spelling", async () => {
    const error = await configError({ flags: { port: "abc" } });
    expect(error.message).toBe('--port: expected a port number from 0 to 65535, got "abc" (on the command line)');
    const parallel = await configError({ flags: { parallel: "0" } });
    expect(parallel.message).toContain("--parallel: expected a positive integer, got 0");
    const keepAlive = await configError({ flags: { keepAlive: "10" } });
    expect(keepAlive.message).toContain('--keep-alive: expected a duration with a unit, like "500ms", "30s", "5m" or "1h", got "10"');
    const level = await configError({ flags: { logLevel: "chatty" } });
    expect(level.message).toContain('--log-level: expected one of "trace"');
  });
});

describe("TOML syntax errors", () => {
  it("report the file, line and column", async () => {
    const file = writeDefaultConfig('port = 4327\n[limits]\nqueue_depth = = 3\n');
    const error = await configError({});
    expect(error.message).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:3:\\d+: TOML syntax error: `));
    expect(error.message).toContain("queue_depth = = 3");
  });

  it("a duplicated key is a syntax error at its line", async () => {
    const file = writeDefaultConfig("port = 1\nport = 2\n");
    const error = await configError({});
    expect(error.message.startsWith(`${file}:2:`)).toBe(true);
  });
});

describe("API key", () => {
  it("reads and trims api_key_file, resolved relative to the config file", async () => {
    writeFile("xdg-config/hearth/key", "  s3cret-key\n");
    writeDefaultConfig('api_key_file = "key"\n');
    const { config, apiKeySource, warnings } = await load();
    expect(config.apiKey).toBe("s3cret-key");
    expect(apiKeySource).toBe("api_key_file");
    expect(warnings).toEqual([]);
  });

  it("warns when the key file is readable by others, without printing the key", async () => {
    const keyFile = writeFile("key", "s3cret-key\n", 0o644);
    const { config, warnings } = await load({ flags: { apiKeyFile: keyFile } });
    expect(config.apiKey).toBe("s3cret-key");
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain("readable by other users (mode 644)");
    expect(warnings[0]).not.toContain("s3cret");
  });

  it("an empty key file is an error", async () => {
    const keyFile = writeFile("key", " \n\n");
    const error = await configError({ flags: { apiKeyFile: keyFile } });
    expect(error.message).toBe(`--api-key-file: the API key file ${keyFile} is empty`);
  });

  it("a missing key file is an error naming the file", async () => {
    writeDefaultConfig('api_key_file = "/nonexistent/key"\n');
    const error = await configError({});
    expect(error.message).toContain("api_key_file");
    expect(error.message).toContain("cannot read the API key file /nonexistent/key: no such file");
  });

  it("a key with spaces or several lines is refused", async () => {
    const keyFile = writeFile("key", "two words\n");
    const error = await configError({ flags: { apiKeyFile: keyFile } });
    expect(error.message).toContain("one line of printable ASCII");
  });

  it("precedence is --api-key-file, then HEARTH_API_KEY, then api_key_file", async () => {
    writeFile("file-key", "from-config");
    writeFile("flag-key", "from-flag");
    writeDefaultConfig(`api_key_file = "${path.join(root, "file-key")}"\n`);
    expect((await load()).config.apiKey).toBe("from-config");
    env["HEARTH_API_KEY"] = " from-env ";
    const fromEnv = await load();
    expect(fromEnv.config.apiKey).toBe("from-env");
    expect(fromEnv.apiKeySource).toBe("HEARTH_API_KEY");
    const fromFlag = await load({ flags: { apiKeyFile: path.join(root, "flag-key") } });
    expect(fromFlag.config.apiKey).toBe("from-flag");
    expect(fromFlag.apiKeySource).toBe("--api-key-file");
  });
});

describe("binding beyond loopback", () => {
  it("is refused without an API key", async () => {
    const { config } = await load({ flags: { host: "0.0.0.0" } });
    expect(() => assertSafeToServe(config)).toThrow(HearthError);
    expect(() => assertSafeToServe(config)).toThrow(
      expect.objectContaining({ code: "HEARTH_CONFIG_INVALID", message: expect.stringContaining("refusing to listen on 0.0.0.0 without an API key") }),
    );
  });

  it("is allowed with an API key, and loopback never needs one", async () => {
    env["HEARTH_API_KEY"] = "k";
    const { config } = await load({ flags: { host: "0.0.0.0" } });
    expect(() => assertSafeToServe(config)).not.toThrow();
    delete env["HEARTH_API_KEY"];
    for (const host of ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"]) {
      const loaded = await load({ flags: { host } });
      expect(() => assertSafeToServe(loaded.config)).not.toThrow();
    }
  });

  it("classifies addresses", () => {
    for (const host of ["127.0.0.1", "127.255.0.1", "::1", "[::1]", "localhost", "LOCALHOST", "a.localhost", "::ffff:127.0.0.1"]) {
      expect(isLoopbackHost(host), host).toBe(true);
    }
    for (const host of ["0.0.0.0", "::", "192.168.1.4", "10.0.0.1", "hearth.lan", "::ffff:10.0.0.1", "128.0.0.1"]) {
      expect(isLoopbackHost(host), host).toBe(false);
    }
  });
});

describe("durations", () => {
  it("parse with units and compound forms, and refuse bare numbers", () => {
    expect(parseDuration("500ms")).toBe(500);
    expect(parseDuration("30s")).toBe(30_000);
    expect(parseDuration("5m")).toBe(300_000);
    expect(parseDuration("1h30m")).toBe(5_400_000);
    expect(parseDuration("1.5s")).toBe(1500);
    expect(parseDuration("0s")).toBe(0);
    for (const bad of ["", "300", "5 m", "m", "-1s", "5d", "1s2"]) expect(parseDuration(bad), bad).toBeUndefined();
  });

  it("format back to the shortest exact unit", () => {
    expect(formatDuration(300_000)).toBe("5m");
    expect(formatDuration(1500)).toBe("1500ms");
    expect(formatDuration(7_200_000)).toBe("2h");
    expect(formatDuration(0)).toBe("0s");
    for (const ms of [1, 999, 1000, 61_000, 3_600_000]) expect(parseDuration(formatDuration(ms))).toBe(ms);
  });
});
