/**
 * The `hearth` executable end to end: the built dist/cli/main.js run as a child process,
 * with HOME and the XDG dirs pointed at temp dirs so nothing touches the real home. Covers
 * usage errors and exit codes, `models` and `pull` without a daemon, a real `serve` with the
 * synthetic tiny model driven by `run` and `status`, and the signal handling of `serve`.
 */

import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO_ROOT, runCli, startCli, type CliProcess, type CliResult } from "../support/cli.js";
import { ensureTinyModel } from "../support/models.js";
import { freePort } from "../support/daemon.js";
import { isListening, processAlive, waitFor } from "../support/wait.js";

interface TestHome {
  root: string;
  env: NodeJS.ProcessEnv;
  modelsDir: string;
  configFile: string;
}

const homes: string[] = [];

function makeHome(): TestHome {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "hearth-cli-it-"));
  homes.push(root);
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: root, XDG_CONFIG_HOME: path.join(root, "config"), XDG_DATA_HOME: path.join(root, "data") };
  for (const name of ["HEARTH_API_KEY", "HEARTH_URL", "HF_ENDPOINT", "MODEL_ENDPOINT", "HF_TOKEN"]) delete env[name];
  const modelsDir = path.join(root, "data", "hearth", "models");
  fs.mkdirSync(modelsDir, { recursive: true });
  const configFile = path.join(root, "config", "hearth", "config.toml");
  fs.mkdirSync(path.dirname(configFile), { recursive: true });
  return { root, env, modelsDir, configFile };
}

afterAll(() => {
  for (const root of homes) fs.rmSync(root, { recursive: true, force: true });
});

function hearth(args: string[], env: NodeJS.ProcessEnv, timeoutMs = 30_000): Promise<CliResult> {
  return runCli(args, { env, timeoutMs });
}

async function installTinyModel(modelsDir: string, name = "tiny"): Promise<string> {
  const target = path.join(modelsDir, `${name}.gguf`);
  fs.copyFileSync(await ensureTinyModel(), target);
  return target;
}

describe("usage errors and exit codes", () => {
  const home = makeHome();

  it("an unknown command exits 2 with a usage error", async () => {
    const result = await hearth(["frobnicate"], home.env);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("error [HEARTH_CLI_USAGE]: unknown command 'frobnicate'");
    expect(result.stdout).toBe("");
  });

  it("an unknown option or a bad option value exits 2 naming it", async () => {
    const unknown = await hearth(["models", "--colour"], home.env);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("error [HEARTH_CLI_USAGE]: unknown option '--colour'");
    const badValue = await hearth(["run", "tiny", "hi", "--max-tokens", "lots"], home.env);
    expect(badValue.code).toBe(2);
    expect(badValue.stderr).toContain("'--max-tokens <n>' argument 'lots' is invalid");
    const missing = await hearth(["run"], home.env);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("missing required argument 'model'");
  });

  it("--help and --version exit 0", async () => {
    const help = await hearth(["--help"], home.env);
    expect(help.code).toBe(0);
    for (const command of ["serve", "run", "models", "pull", "status", "synth"]) expect(help.stdout).toContain(command);
    const version = await hearth(["--version"], home.env);
    expect(version.code).toBe(0);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it("an invalid config file is a config error (exit 2) for client commands too", async () => {
    fs.writeFileSync(home.configFile, "[limits]\nqueue_depth = -3\n");
    try {
      const result = await hearth(["models"], home.env);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain("error [HEARTH_CONFIG_INVALID]: limits.queue_depth: expected a positive integer, got -3");
    } finally {
      fs.rmSync(home.configFile);
    }
  });
});

describe("without a daemon", () => {
  const home = makeHome();

  it("models --json lists a tiny model read from the models dir", async () => {
    const modelPath = await installTinyModel(home.modelsDir);
    const result = await hearth(["models", "--json"], home.env);
    expect(result.code).toBe(0);
    const models = JSON.parse(result.stdout) as Record<string, unknown>[];
    expect(models).toHaveLength(1);
    expect(models[0]).toMatchObject({ id: "tiny", path: modelPath, architecture: "llama", quantization: "F32", sizeBytes: fs.statSync(modelPath).size });
    expect(models[0]!["parameterCount"]).toBeGreaterThan(1_000_000);

    const table = await hearth(["models"], home.env);
    expect(table.code).toBe(0);
    expect(table.stdout.split("\n")[0]).toMatch(/^ID\s+SIZE\s+ARCH\s+PARAMS\s+QUANT\s+PATH$/);
    expect(table.stdout).toMatch(/^tiny\s+6\.4 MiB\s+llama\s+1\.7M\s+F32\s+\//m);
  });

  it("models in an empty dir prints nothing on stdout and a hint on stderr", async () => {
    const empty = path.join(home.root, "empty");
    const result = await hearth(["models", "--models-dir", empty], home.env);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe("");
    expect(result.stderr).toContain(`no models in ${empty}`);
    const json = await hearth(["models", "--json", "--models-dir", empty], home.env);
    expect(JSON.parse(json.stdout)).toEqual([]);
  });

  it("run exits 3 naming the URL it tried and how to start a daemon", async () => {
    const port = await freePort();
    fs.writeFileSync(home.configFile, `port = ${port}\n`);
    try {
      const result = await hearth(["run", "tiny", "hello"], home.env);
      expect(result.code).toBe(3);
      expect(result.stderr).toContain(`error [HEARTH_DAEMON_UNREACHABLE]: no Hearth daemon answers at http://127.0.0.1:${port} (connection refused)`);
      expect(result.stderr).toContain("start one with: hearth serve");
      expect(result.stdout).toBe("");
    } finally {
      fs.rmSync(home.configFile);
    }
  });

  it("status exits 3 and still prints JSON for scripts", async () => {
    const port = await freePort();
    const result = await hearth(["status", "--json", "--url", `http://127.0.0.1:${port}`], home.env);
    expect(result.code).toBe(3);
    expect(JSON.parse(result.stdout)).toMatchObject({ up: false, url: `http://127.0.0.1:${port}` });
  });
});

describe("pull", () => {
  const home = makeHome();
  let server: http.Server;
  let endpoint: string;
  const requests: string[] = [];

  // A stand-in for the Hugging Face file server: HEAD, GET and byte ranges over one file.
  beforeAll(async () => {
    const source = await ensureTinyModel();
    const size = fs.statSync(source).size;
    server = http.createServer((req, res) => {
      const urlPath = (req.url ?? "").split("?")[0];
      requests.push(`${req.method} ${urlPath}`);
      const slow = urlPath === "/someone/tiny-GGUF/resolve/main/slow.gguf";
      if (urlPath !== "/someone/tiny-GGUF/resolve/main/tiny-pulled.gguf" && !slow) {
        res.statusCode = 404;
        res.end("Entry not found");
        return;
      }
      res.setHeader("accept-ranges", "bytes");
      res.setHeader("content-type", "application/octet-stream");
      const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
      let start = 0;
      let end = size - 1;
      if (range) {
        start = Number(range[1]);
        end = range[2] ? Math.min(Number(range[2]), size - 1) : size - 1;
        res.statusCode = 206;
        res.setHeader("content-range", `bytes ${start}-${end}/${size}`);
      }
      res.setHeader("content-length", end - start + 1);
      if (req.method === "HEAD") res.end();
      else if (!slow) fs.createReadStream(source, { start, end }).pipe(res);
      else {
        // 64 KiB every 100 ms: slow enough to interrupt mid-transfer.
        let position = start;
        const timer = setInterval(() => {
          const next = Math.min(end + 1, position + 64 * 1024);
          res.write(fs.readFileSync(source).subarray(position, next));
          position = next;
          if (position > end) {
            clearInterval(timer);
            res.end();
          }
        }, 100);
        res.on("close", () => clearInterval(timer));
      }
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });

  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  it("refuses a malformed URI as a usage error before touching the network", async () => {
    requests.length = 0;
    for (const uri of ["someone/tiny-GGUF/tiny.gguf", "hf:someone/tiny-GGUF", "hf:someone/tiny-GGUF/../../etc/passwd.gguf", "hf:someone/tiny-GGUF/model.bin"]) {
      const result = await hearth(["pull", uri], { ...home.env, HF_ENDPOINT: endpoint });
      expect(result.code, uri).toBe(2);
      expect(result.stderr, uri).toContain("error [HEARTH_CLI_USAGE]");
    }
    expect(requests).toEqual([]);
  });

  it("downloads hf:user/repo/file.gguf into the models dir, where models then lists it", async () => {
    const modelsDir = path.join(home.root, "pulled");
    const result = await hearth(["pull", "hf:someone/tiny-GGUF/tiny-pulled.gguf", "--models-dir", modelsDir], { ...home.env, HF_ENDPOINT: endpoint });
    expect(result.stderr).not.toContain("error");
    expect(result.code).toBe(0);
    const saved = path.join(modelsDir, "tiny-pulled.gguf");
    expect(result.stdout.trim()).toBe(saved);
    expect(fs.readFileSync(saved).equals(fs.readFileSync(await ensureTinyModel()))).toBe(true);
    const listed = await hearth(["models", "--json", "--models-dir", modelsDir], home.env);
    expect((JSON.parse(listed.stdout) as { id: string }[]).map((model) => model.id)).toEqual(["tiny-pulled"]);
  });

  it("Ctrl-C during a transfer exits 130 and leaves no model file in the models dir", async () => {
    const modelsDir = path.join(home.root, "interrupted");
    const pull = startCli(["pull", "hf:someone/tiny-GGUF/slow.gguf", "--models-dir", modelsDir], { env: { ...home.env, HF_ENDPOINT: endpoint } });
    await waitFor(() => requests.some((request) => request === "GET /someone/tiny-GGUF/resolve/main/slow.gguf"), 15_000, "the transfer to start", 50);
    await sleep(300);
    pull.child.kill("SIGINT");
    expect((await pull.exited).code).toBe(130);
    expect(pull.stderr()).toContain("error [HEARTH_CANCELLED]: download of hf:someone/tiny-GGUF/slow.gguf cancelled");
    const listed = await hearth(["models", "--json", "--models-dir", modelsDir], home.env);
    expect(JSON.parse(listed.stdout)).toEqual([]);
  });

  it("a file the server does not have fails fast with HEARTH_DOWNLOAD_FAILED", async () => {
    const started = Date.now();
    const result = await hearth(["pull", "hf:someone/tiny-GGUF/missing.gguf", "--models-dir", path.join(home.root, "pulled")], { ...home.env, HF_ENDPOINT: endpoint });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("error [HEARTH_DOWNLOAD_FAILED]: could not download hf:someone/tiny-GGUF/missing.gguf: no such file");
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it("an unreachable host fails fast and says the machine may be offline", async () => {
    // .invalid never resolves (RFC 2606), with or without a network.
    const result = await hearth(["pull", "hf:someone/tiny-GGUF/tiny.gguf"], { ...home.env, HF_ENDPOINT: "http://hearth-test.invalid/" });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("error [HEARTH_DOWNLOAD_FAILED]: cannot reach hearth-test.invalid to download hf:someone/tiny-GGUF/tiny.gguf");
    expect(result.stderr).toContain("is this machine offline?");
  });
});

interface ServeProcess extends CliProcess {
  port: number;
  url: string;
}

const running: ServeProcess[] = [];

afterAll(() => {
  // A failed test must not leave a daemon (and its runners) behind.
  for (const serve of running.splice(0)) if (serve.child.exitCode === null && serve.child.signalCode === null) serve.child.kill("SIGKILL");
});

function startServe(args: string[], env: NodeJS.ProcessEnv, port: number, options: { ownProcessGroup?: boolean } = {}): ServeProcess {
  // ownProcessGroup: like a shell job, so a test can signal the whole group as Ctrl-C does.
  const serve = { ...startCli(["serve", ...args], { env, ownProcessGroup: options.ownProcessGroup ?? false }), port, url: `http://127.0.0.1:${port}` };
  running.push(serve);
  return serve;
}

async function waitUntilServing(serve: ServeProcess): Promise<void> {
  let exited = false;
  void serve.exited.then(() => (exited = true));
  await waitFor(
    async () => {
      if (exited) throw new Error(`hearth serve exited early\nstdout: ${serve.stdout()}\nstderr: ${serve.stderr()}`);
      try {
        return (await fetch(`${serve.url}/health`)).ok;
      } catch {
        return false;
      }
    },
    30_000,
    "hearth serve to answer /health",
    50,
  );
}

async function exitWithin(serve: ServeProcess, timeoutMs: number): Promise<CliResult> {
  const timeout = sleep(timeoutMs).then(() => {
    throw new Error(`hearth serve did not exit within ${timeoutMs} ms\nstdout: ${serve.stdout()}\nstderr: ${serve.stderr()}`);
  });
  return Promise.race([serve.exited, timeout]);
}

function logLines(stdout: string): Record<string, unknown>[] {
  return stdout
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe("serve refuses to start half-configured", () => {
  const home = makeHome();

  it("a bad config value exits 2 naming the key, creating nothing and listening on nothing", async () => {
    const port = await freePort();
    const dataDir = path.join(home.root, "never-created");
    fs.writeFileSync(home.configFile, `port = ${port}\ndata_dir = "${dataDir}"\n[runner]\nthreads = -2\n`);
    const serve = startServe([], home.env, port);
    const { code } = await exitWithin(serve, 15_000);
    expect(code).toBe(2);
    expect(serve.stderr()).toContain(`error [HEARTH_CONFIG_INVALID]: runner.threads: expected an integer >= 0, got -2 (in ${home.configFile})`);
    expect(await isListening(port)).toBe(false);
    expect(fs.existsSync(dataDir)).toBe(false);
  });

  it("a TOML syntax error exits 2 with the line and column", async () => {
    const port = await freePort();
    fs.writeFileSync(home.configFile, `port = ${port}\n[limits\n`);
    const serve = startServe([], home.env, port);
    expect((await exitWithin(serve, 15_000)).code).toBe(2);
    expect(serve.stderr()).toContain(`error [HEARTH_CONFIG_INVALID]: ${home.configFile}:2:`);
    expect(await isListening(port)).toBe(false);
  });

  it("binding beyond loopback without an API key is refused", async () => {
    fs.rmSync(home.configFile, { force: true });
    const port = await freePort();
    const serve = startServe(["--host", "0.0.0.0", "--port", String(port)], home.env, port);
    expect((await exitWithin(serve, 15_000)).code).toBe(2);
    expect(serve.stderr()).toContain("error [HEARTH_CONFIG_INVALID]: refusing to listen on 0.0.0.0 without an API key");
    expect(await isListening(port)).toBe(false);
  });

  it("a port already in use exits 2 with a clear message", async () => {
    fs.rmSync(home.configFile, { force: true });
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    const port = (blocker.address() as AddressInfo).port;
    try {
      const serve = startServe(["--port", String(port), "--log-level", "error"], home.env, port);
      expect((await exitWithin(serve, 30_000)).code).toBe(2);
      expect(serve.stderr()).toContain(`error [HEARTH_CONFIG_INVALID]: cannot listen on 127.0.0.1:${port}: the address is already in use`);
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });
});

describe("serve with the tiny model", () => {
  const home = makeHome();
  const apiKey = "cli-integration-key";
  let port: number;
  let serve: ServeProcess;

  beforeAll(async () => {
    await installTinyModel(home.modelsDir);
    port = await freePort();
    const keyFile = path.join(home.root, "config", "hearth", "api-key");
    fs.writeFileSync(keyFile, `${apiKey}\n`, { mode: 0o600 });
    // The client commands below find the port and the key through this same file.
    fs.writeFileSync(
      home.configFile,
      [`port = ${port}`, 'api_key_file = "api-key"', "[limits]", "parallel_slots = 1", "context_size = 1024", "[runner]", "threads = 2", ""].join("\n"),
    );
    serve = startServe([], home.env, port);
    await waitUntilServing(serve);
  });

  // The log line is the behaviour here: where serve listens, as JSON when stdout is not a terminal.
  it("logs where it listens, as JSON lines when stdout is not a terminal", async () => {
    // /health can answer a moment before the line (logs are written asynchronously).
    await waitFor(() => serve.stdout().includes("listening on"), 5_000, "the listening log line", 50);
    const lines = logLines(serve.stdout());
    const listening = lines.find((line) => typeof line["msg"] === "string" && line["msg"].includes("listening on"));
    expect(listening).toMatchObject({ component: "daemon", url: `http://127.0.0.1:${port}`, models: ["tiny"], auth: true });
    expect(serve.stdout()).not.toContain(apiKey);
  });

  it("run streams the answer, and the same greedy prompt with --json gives the same text", async () => {
    const streamed = await hearth(["run", "tiny", "Hello there", "--max-tokens", "12", "--temperature", "0", "--seed", "1"], home.env, 60_000);
    expect(streamed.stderr).toBe("");
    expect(streamed.code).toBe(0);
    expect(streamed.stdout.length).toBeGreaterThan(0);
    // Tokens were written as they came, not all at the end.
    expect(streamed.stdoutChunks).toBeGreaterThan(1);

    const json = await hearth(["run", "tiny", "Hello there", "--max-tokens", "12", "--temperature", "0", "--seed", "1", "--json"], home.env, 60_000);
    expect(json.code).toBe(0);
    const completion = JSON.parse(json.stdout) as { object: string; model: string; choices: { message: { content: string } }[]; usage: { completion_tokens: number } };
    expect(completion.object).toBe("chat.completion");
    expect(completion.choices[0]!.message.content).toBe(streamed.stdout);
    expect(completion.usage.completion_tokens).toBeGreaterThan(0);
    expect(completion.usage.completion_tokens).toBeLessThanOrEqual(12);
  });

  it("run reports an unknown model as a runtime failure with the daemon's code", async () => {
    const result = await hearth(["run", "no-such-model", "hi"], home.env);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^error \[HEARTH_MODEL_NOT_FOUND\]: /);
  });

  it("a client without the API key is refused (exit 1, HEARTH_UNAUTHORIZED)", async () => {
    const emptyConfig = path.join(home.root, "no-key.toml");
    fs.writeFileSync(emptyConfig, "");
    const result = await hearth(["run", "tiny", "hi", "--config", emptyConfig, "--url", serve.url], home.env);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("error [HEARTH_UNAUTHORIZED]");
  });

  it("status --json shows the daemon up with its version and the loaded model", async () => {
    const result = await hearth(["status", "--json"], home.env);
    expect(result.code).toBe(0);
    const status = JSON.parse(result.stdout) as { up: boolean; url: string; health: unknown; status: { version: string; models: { modelId: string; pid: number; state: string }[] } };
    const manifest = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "package.json"), "utf8")) as { version: string };
    expect(status).toMatchObject({ up: true, url: `http://127.0.0.1:${port}`, health: { status: "ok" } });
    expect(status.status.version).toBe(manifest.version);
    expect(status.status.models).toEqual([expect.objectContaining({ modelId: "tiny", state: "ready", pid: expect.any(Number) })]);

    const human = await hearth(["status"], home.env);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain(`up: hearth ${manifest.version} at http://127.0.0.1:${port} (ok`);
    expect(human.stdout).toMatch(/^tiny\s+ready\s+0\s+0\s+\d+$/m);
  });

  it("SIGTERM shuts down gracefully: exit 0, the runner child gone, the port closed", async () => {
    const status = JSON.parse((await hearth(["status", "--json"], home.env)).stdout) as { status: { models: { pid: number }[] } };
    const runnerPid = status.status.models[0]!.pid;
    expect(processAlive(runnerPid)).toBe(true);

    serve.child.kill("SIGTERM");
    const { code, signal } = await exitWithin(serve, 30_000);
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    await waitFor(() => !processAlive(runnerPid), 5_000, "the runner to exit", 50);
    expect(await isListening(port)).toBe(false);
  });
});

describe("serve under a second signal", () => {
  const home = makeHome();

  it("a second SIGINT during a slow shutdown forces the exit at once", async () => {
    await installTinyModel(home.modelsDir);
    const port = await freePort();
    // A long drain timeout and a long generation make the graceful shutdown slow.
    fs.writeFileSync(home.configFile, [`port = ${port}`, 'drain_timeout = "5m"', "[limits]", "parallel_slots = 1", "context_size = 4096", ""].join("\n"));
    const serve = startServe([], home.env, port);
    await waitUntilServing(serve);

    const generation = startCli(["run", "tiny", "Tell me a long story", "--max-tokens", "4000", "--temperature", "0"], { env: home.env });
    try {
      await waitFor(() => generation.stdout().length > 0, 60_000, "the first streamed tokens", 50);
      const status = JSON.parse((await hearth(["status", "--json"], home.env)).stdout) as { status: { models: { pid: number }[] } };
      const runnerPid = status.status.models[0]!.pid;

      serve.child.kill("SIGINT");
      await sleep(500);
      // Still draining the generation: this is the slow shutdown a person would interrupt.
      expect(serve.child.exitCode).toBeNull();

      const forcedAt = Date.now();
      serve.child.kill("SIGINT");
      const { code } = await exitWithin(serve, 5_000);
      expect(code).toBe(130);
      expect(Date.now() - forcedAt).toBeLessThan(3_000);
      // The runner sees its IPC channel close and exits too: no orphan keeps the model loaded.
      await waitFor(() => !processAlive(runnerPid), 10_000, "the orphaned runner to exit", 50);
    } finally {
      generation.child.kill("SIGKILL");
      await generation.exited;
    }
  });
});

describe("interrupting", () => {
  const home = makeHome();

  beforeAll(async () => {
    await installTinyModel(home.modelsDir);
  });

  it("Ctrl-C on run (SIGINT) stops it with exit 130 and the daemon cancels the generation", async () => {
    const port = await freePort();
    fs.writeFileSync(home.configFile, [`port = ${port}`, "[limits]", "parallel_slots = 1", "context_size = 4096", ""].join("\n"));
    const serve = startServe([], home.env, port);
    await waitUntilServing(serve);

    const run = startCli(["run", "tiny", "Tell me a long story", "--max-tokens", "4000", "--temperature", "0"], { env: home.env });
    await waitFor(() => run.stdout().length > 0, 60_000, "the first streamed tokens", 50);
    run.child.kill("SIGINT");
    const runExit = await run.exited;
    expect(runExit.code).toBe(130);
    expect(runExit.stderr).toBe("");

    // The closed connection cancels the job: the model goes idle long before 4000 tokens.
    await waitFor(
      async () => {
        const status = JSON.parse((await hearth(["status", "--json"], home.env)).stdout) as { status: { models: { running: number }[] } };
        return status.status.models.every((model) => model.running === 0);
      },
      10_000,
      "the generation to be cancelled",
      50,
    );
    serve.child.kill("SIGTERM");
    expect((await exitWithin(serve, 30_000)).code).toBe(0);
  });

  it("Ctrl-C at a terminal (SIGINT to the whole process group) drains the generation in flight", async () => {
    const port = await freePort();
    fs.writeFileSync(home.configFile, [`port = ${port}`, 'drain_timeout = "2m"', "[limits]", "parallel_slots = 1", "context_size = 1024", ""].join("\n"));
    const serve = startServe([], home.env, port, { ownProcessGroup: true });
    await waitUntilServing(serve);

    const run = startCli(["run", "tiny", "Hello", "--max-tokens", "40", "--temperature", "0"], { env: home.env });
    await waitFor(() => run.stdout().length > 0, 60_000, "the first streamed tokens", 50);

    // A terminal's Ctrl-C reaches every process of the foreground group, runners included.
    process.kill(-serve.child.pid!, "SIGINT");
    const runExit = await run.exited;
    expect(runExit.code).toBe(0);
    expect(runExit.stderr).toBe("");
    expect((await exitWithin(serve, 60_000)).code).toBe(0);
  });
});
