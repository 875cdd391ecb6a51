/**
 * The Daemon composition in-process (built JS from dist/, since runners are child
 * processes): what start() creates, how a failed start cleans up, and the shutdown order
 * seen from outside: readiness goes to 503 while in-flight generations drain, and only then
 * does HTTP close.
 */

import fs from "node:fs";
import type { AddressInfo } from "node:net";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { pino } from "pino";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import type * as DefaultsModule from "../../daemon/config/defaults.js";
import type { HearthConfig } from "../../daemon/config/defaults.js";
import type * as DaemonModule from "../../daemon/Daemon.js";
import type * as ErrorsModule from "../../protocol/errors.js";
import { ensureTinyModel } from "../support/models.js";
import { isListening } from "../support/wait.js";
import { rejectionOf } from "../support/thrown.js";
import { testConfig, type TestConfigOverrides } from "../support/config.js";

// The built modules run (runners are forked from dist/); types come from the sources, because
// importing dist/*.d.ts makes them compiler inputs that tsc then refuses to overwrite (TS5055).
const DIST = path.resolve(import.meta.dirname, "..", "..", "dist");
const defaults = (await import(path.join(DIST, "daemon/config/defaults.js"))) as typeof DefaultsModule;
const { Daemon } = (await import(path.join(DIST, "daemon/Daemon.js"))) as typeof DaemonModule;
const { HearthError } = (await import(path.join(DIST, "protocol/errors.js"))) as typeof ErrorsModule;
type Daemon = DaemonModule.Daemon;
type HearthError = ErrorsModule.HearthError;

const logger = pino({ level: process.env["HEARTH_TEST_LOG"] ?? "silent" });
const roots: string[] = [];
const daemons: Daemon[] = [];

afterEach(async () => {
  await Promise.all(daemons.splice(0).map((daemon) => daemon.stop()));
});

afterAll(() => {
  for (const root of roots) fs.rmSync(root, { recursive: true, force: true });
});

function makeConfig(overrides: TestConfigOverrides = {}): HearthConfig {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "hearth-daemon-it-"));
  roots.push(root);
  return testConfig(defaults, path.join(root, "data"), { limits: { parallelSlots: 1, contextSize: 2048 }, runner: { threads: 2 }, drainTimeoutMs: 30_000, ...overrides });
}

function track(daemon: Daemon): Daemon {
  daemons.push(daemon);
  return daemon;
}

describe("Daemon start", () => {
  it("creates the data dir private to the user and the models dir, then listens", async () => {
    const config = makeConfig();
    const daemon = track(new Daemon({ config, logger, version: "1.2.3" }));
    const address = await daemon.start();
    expect(address.url).toBe(`http://127.0.0.1:${address.port}`);
    expect(daemon.address).toEqual(address);
    expect(fs.statSync(config.dataDir).mode & 0o777).toBe(0o700);
    expect(fs.statSync(config.modelsDir).isDirectory()).toBe(true);
    const status = (await (await fetch(`${address.url}/hearth/v1/status`)).json()) as { version: string };
    expect(status.version).toBe("1.2.3");
    await daemon.stop();
    expect(await isListening(address.port)).toBe(false);
  });

  it("a port in use fails with HEARTH_CONFIG_INVALID naming the address", async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    const port = (blocker.address() as AddressInfo).port;
    try {
      const daemon = track(new Daemon({ config: makeConfig({ port }), logger, version: "t" }));
      const error = await rejectionOf(daemon.start(), HearthError);
      expect(error.code).toBe("HEARTH_CONFIG_INVALID");
      expect(error.message).toBe(`cannot listen on 127.0.0.1:${port}: the address is already in use (is another hearth serve running? choose another --port)`);
      expect(daemon.address).toBeUndefined();
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });

  it("an uncreatable data dir fails before anything listens", async () => {
    const config = makeConfig();
    fs.mkdirSync(path.dirname(config.dataDir), { recursive: true });
    const blockingFile = path.join(path.dirname(config.dataDir), "a-file");
    fs.writeFileSync(blockingFile, "");
    const daemon = track(new Daemon({ config: { ...config, dataDir: path.join(blockingFile, "data") }, logger, version: "t" }));
    const error = await rejectionOf(daemon.start(), HearthError);
    expect(error.code).toBe("HEARTH_CONFIG_INVALID");
    expect(error.message).toMatch(/^data_dir: cannot create .*a-file\/data: /);
  });

  it("start twice is a programming error; stop during start stops what start built", async () => {
    const daemon = track(new Daemon({ config: makeConfig(), logger, version: "t" }));
    const starting = daemon.start();
    expect(() => daemon.start()).toThrow(HearthError);
    const stopping = daemon.stop();
    const address = await starting;
    await stopping;
    expect(await isListening(address.port)).toBe(false);
    // stop() is idempotent.
    await daemon.stop();
  });
});

describe("Daemon shutdown order", () => {
  it("readiness turns 503 while a generation drains; the stream completes before HTTP closes", async () => {
    const config = makeConfig();
    fs.mkdirSync(config.modelsDir, { recursive: true });
    fs.copyFileSync(await ensureTinyModel(), path.join(config.modelsDir, "tiny.gguf"));
    const daemon = track(new Daemon({ config, logger, version: "t" }));
    const { url, port } = await daemon.start();
    const request = { model: "tiny", messages: [{ role: "user", content: "Tell me a story" }], max_tokens: 100, temperature: 0 };
    const post = (body: unknown): Promise<Response> => fetch(`${url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    // The same greedy request, undisturbed: what the drained stream must still deliver.
    const undisturbed = ((await (await post(request)).json()) as { choices: { message: { content: string }; finish_reason: string }[] }).choices[0]!;

    const response = await post({ ...request, stream: true });
    expect(response.status).toBe(200);
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let text = "";
    while (!text.includes('"content"')) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value as Uint8Array, { stream: true });
    }

    let stopped = false;
    const stopping = daemon.stop().then(() => (stopped = true));
    // The HTTP server is still open during the drain, and says it is not ready.
    const health = await fetch(`${url}/health`);
    expect(health.status).toBe(503);
    expect(stopped).toBe(false);

    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value as Uint8Array, { stream: true });
    }
    expect(text.trimEnd().endsWith("data: [DONE]")).toBe(true);
    const chunks = text
      .split("\n")
      .filter((line) => line.startsWith("data: {"))
      .map((line) => JSON.parse(line.slice("data: ".length)) as { choices: { delta: { content?: string }; finish_reason: string | null }[] });
    expect(chunks.map((chunk) => chunk.choices[0]?.delta.content ?? "").join("")).toBe(undisturbed.message.content);
    expect(chunks.at(-1)?.choices[0]?.finish_reason).toBe(undisturbed.finish_reason);
    await stopping;
    expect(await isListening(port)).toBe(false);
  });
});
