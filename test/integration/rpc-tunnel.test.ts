/**
 * Layer splitting's data path end to end on loopback: two real daemons (in this process, built
 * modules from dist/) in one cluster, a node-llama-cpp process with the RPC shim whose only RPC
 * endpoint is daemon A's tunnel listener, and the layers in the rpc-server daemon B started for A.
 * Proves:
 *   - greedy tokens through the tunnel equal local decoding;
 *   - with B holding the same GGUF, rpc.prepare pre-fills B's tensor cache and the load moves
 *     less than 1% of the offloaded weight bytes through the tunnel;
 *   - with B lacking the file, rpc.prepare answers `missing`, A logs it, the load
 *     pushes ~100% of them, and the cache files rpc-server writes itself are named by our
 *     FNV-1a of the tensors (the real server checks fnv1a.ts);
 *   - a worker that crashes does not take B down and is restarted on the next connection;
 *     rpc.release stops it.
 *
 * The model is synthetic with every weight matrix just above rpc-server's 10 MiB by-hash
 * threshold (f32, 1664 x 1664): the `small` preset has no tensor that large, so it would
 * always be pushed whole (docs/splitting.md explains the threshold).
 */

import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type * as DefaultsModule from "../../daemon/config/defaults.js";
import type { HearthConfig } from "../../daemon/config/defaults.js";
import type * as DaemonModule from "../../daemon/Daemon.js";
import type * as GgufReaderModule from "../../daemon/gguf/reader.js";
import type * as NativeModule from "../../daemon/native/nativeParts.js";
import type * as FnvModule from "../../daemon/rpc/fnv1a.js";
import type * as HelloModule from "../../daemon/rpc/rpcHello.js";
import { runCli, type CliResult } from "../support/cli.js";
import { freePort } from "../support/daemon.js";
import { captureLogs } from "../support/logs.js";
import { ensureModel } from "../support/models.js";
import { processAlive, waitFor } from "../support/wait.js";
import { testConfig } from "../support/config.js";

// Built modules are imported by path at run time: importing dist/*.d.ts would make them tsc inputs (TS5055).
const DIST = path.resolve(import.meta.dirname, "..", "..", "dist");
const defaults = (await import(path.join(DIST, "daemon/config/defaults.js"))) as typeof DefaultsModule;
const { Daemon } = (await import(path.join(DIST, "daemon/Daemon.js"))) as typeof DaemonModule;
const { readGgufHeader } = (await import(path.join(DIST, "daemon/gguf/reader.js"))) as typeof GgufReaderModule;
const { locateNativeParts, shimEnvironment } = (await import(path.join(DIST, "daemon/native/nativeParts.js"))) as typeof NativeModule;
const { Fnv1a64, goesByHash } = (await import(path.join(DIST, "daemon/rpc/fnv1a.js"))) as typeof FnvModule;
const { rpcHello } = (await import(path.join(DIST, "daemon/rpc/rpcHello.js"))) as typeof HelloModule;
const FIXTURE = path.join(DIST, "test/integration/fixtures/rpc-greedy.js");
/** The fixture's settings for this suite: "loaded" on stderr, then a pause before the context (its small traffic) exists. */
const FIXTURE_SETTINGS = { contextSize: 256, batchSize: 64, prompt: "Hearth tunnels RPC through peer links. 0123456789", loadedPauseMs: 300 };

type DaemonInstance = InstanceType<typeof DaemonModule.Daemon>;

/**
 * Every matrix above 10 MiB: attention 1664 x 1664 f32 (11.1 MB), FFN 1664 x 6656 (44 MB).
 * The output matrix (354-token vocabulary x 1664 = 2.4 MB) is below the threshold and always
 * pushed; with two blocks offloaded beside it (354 MB) it stays well under 1%.
 */
const BIG_TENSORS = { preset: "tiny" as const, layers: 3, embd: 1664, ff: 6656, heads: 13, kvHeads: 13, contextLength: 512, quant: "f32" as const };
/** llama.cpp counts the output layer as one of the offloaded layers: blk.1, blk.2 and output go to B. */
const GPU_LAYERS = 3;
const OFFLOADED_BLOCKS = [1, 2];
const TOKENS = 12;

interface GreedyResult {
  tokens: number[];
  gpuLayers: number;
  devices: string[];
  rpcBufferLines: string[];
}

let root: string;
let modelPath: string;
let otherModelPath: string;
let sha256: string;
let otherSha256: string;
let a: DaemonInstance;
let b: DaemonInstance;
let bNodeId: string;
let bCacheDir: string;
const aLogs = captureLogs("info");
const bLogs = captureLogs("debug");

function cli(args: string[]): Promise<CliResult> {
  return runCli(args, { env: { ...process.env, HOME: root } });
}

function makeConfig(name: string, peerPort: number, otherPeerPort: number, extraPaths: string[]): HearthConfig {
  return testConfig(defaults, path.join(root, name, "data"), {
    models: { extraPaths, sharePolicy: "never" },
    limits: { parallelSlots: 1, contextSize: 256 },
    runner: { threads: 1 },
    peer: { host: "127.0.0.1", port: peerPort, mdns: false, staticPeers: [`127.0.0.1:${otherPeerPort}`], dialBackoffMaxMs: 1_000 },
    rpc: { threads: 1 },
  });
}

async function clusterView(daemon: DaemonInstance): Promise<{ local: { nodeId: string; models: { id: string; sha256: string | null }[] }; peers: { nodeId: string; state: string }[] }> {
  const response = await fetch(`${daemon.address!.url}/hearth/v1/cluster`);
  return (await response.json()) as never;
}

/** Runs the fixture; `onLoaded` runs when it reports the model loaded (before any context). */
function runGreedy(model: string, gpuLayers: number, env: Record<string, string>, onLoaded?: () => Promise<void>): Promise<GreedyResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [FIXTURE, JSON.stringify({ modelPath: model, gpuLayers, tokens: TOKENS, threads: 1, ...FIXTURE_SETTINGS })], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    let loaded: Promise<void> = Promise.resolve();
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
    child.stderr.on("data", (chunk: Buffer) => {
      const text = chunk.toString("utf8");
      stderr += text;
      if (/^loaded$/m.test(text) && onLoaded !== undefined) loaded = onLoaded();
    });
    child.on("error", reject);
    child.on("close", (code) => {
      void loaded.then(() => {
        if (code !== 0) reject(new Error(`fixture exited ${code}: ${stderr.slice(-2000)}`));
        else resolve(JSON.parse(stdout.trim().split("\n").pop() ?? "{}") as GreedyResult);
      }, reject);
    });
  });
}

/** "RPC0[127.0.0.1:p] model buffer size =    10.57 MiB" -> bytes (to the log's 0.01 MiB). */
function offloadedBytes(result: GreedyResult): number {
  const line = result.rpcBufferLines.find((entry) => /model buffer size/.test(entry));
  const mib = Number(/model buffer size\s*=\s*([\d.]+) MiB/.exec(line ?? "")?.[1]);
  if (!(mib > 0)) throw new Error(`no RPC model buffer in ${JSON.stringify(result.rpcBufferLines)}`);
  return mib * 1024 * 1024;
}

async function tunnelBytes(): Promise<number> {
  const traffic = await a.rpcTunnels!.traffic(bNodeId);
  return traffic.socketToStream + traffic.streamToSocket;
}

/** Runs a split load through the tunnel; returns the result and the bytes the load moved. */
async function splitRun(model: string): Promise<{ result: GreedyResult; loadBytes: number; totalBytes: number }> {
  const endpoint = await a.rpcTunnels!.open(bNodeId);
  const env = shimEnvironment(locateNativeParts(), [endpoint], 5_000);
  const before = await tunnelBytes();
  let atLoaded = 0;
  const result = await runGreedy(model, GPU_LAYERS, env, async () => {
    atLoaded = await tunnelBytes();
  });
  return { result, loadBytes: atLoaded - before, totalBytes: (await tunnelBytes()) - before };
}

/** FNV-1a names of the by-hash tensors of the layers a split with GPU_LAYERS offloads. */
async function offloadedTensorNames(model: string): Promise<string[]> {
  const header = await readGgufHeader(model);
  const handle = await fs.promises.open(model, "r");
  try {
    const names: string[] = [];
    for (const tensor of header.tensors) {
      if (!goesByHash(tensor.byteLength) || !OFFLOADED_BLOCKS.some((block) => tensor.name.startsWith(`blk.${block}.`))) continue;
      const bytes = Buffer.alloc(tensor.byteLength);
      await handle.read(bytes, 0, tensor.byteLength, header.dataOffset + tensor.offset);
      names.push(new Fnv1a64().update(bytes).hex());
    }
    return names;
  } finally {
    await handle.close();
  }
}

let localTokens: number[];
let otherLocalTokens: number[];

beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "hearth-rpc-tunnel-"));
  modelPath = await ensureModel({ ...BIG_TENSORS, seed: 1 }, "rpc-big");
  otherModelPath = await ensureModel({ ...BIG_TENSORS, seed: 2 }, "rpc-big-other");
  localTokens = (await runGreedy(modelPath, 0, {})).tokens;
  otherLocalTokens = (await runGreedy(otherModelPath, 0, {})).tokens;

  const created = await cli(["cluster", "init", "--data-dir", path.join(root, "a", "data"), "--json"]);
  expect(created.code, created.stderr).toBe(0);
  const token = (JSON.parse(created.stdout) as { joinToken: string }).joinToken;
  const joined = await cli(["cluster", "join", token, "--data-dir", path.join(root, "b", "data"), "--json"]);
  expect(joined.code, joined.stderr).toBe(0);
  bNodeId = (JSON.parse(joined.stdout) as { nodeId: string }).nodeId;

  const [aPeer, bPeer] = [await freePort(), await freePort()];
  a = new Daemon({ config: makeConfig("a", aPeer, bPeer, [modelPath, otherModelPath]), logger: aLogs.logger, version: "0.0.0-test" });
  const bConfig = makeConfig("b", bPeer, aPeer, [modelPath]);
  bCacheDir = path.join(bConfig.rpc.cacheDir, "rpc");
  b = new Daemon({ config: bConfig, logger: bLogs.logger, version: "0.0.0-test" });
  await Promise.all([a.start(), b.start()]);
  await waitFor(async () => (await clusterView(a)).peers.some((peer) => peer.nodeId === bNodeId && peer.state === "up"), 20_000, "A sees B up");
  // B must know its model's sha256 to recognise the file A names.
  await waitFor(async () => (await clusterView(b)).local.models.some((model) => model.sha256 !== null), 30_000, "B hashed its model");
  sha256 = (await clusterView(b)).local.models[0]!.sha256!;
  otherSha256 = createHash("sha256").update(fs.readFileSync(otherModelPath)).digest("hex");
}, 240_000);

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  fs.rmSync(root, { recursive: true, force: true });
});

describe("rpc tunnel between two daemons", () => {
  it("the tunnel reaches B's worker: an RPC HELLO through A's listener answers protocol 7", async () => {
    const endpoint = await a.rpcTunnels!.open(bNodeId);
    expect(endpoint.host).toBe("127.0.0.1");
    const version = await rpcHello(endpoint.host, endpoint.port, 10_000);
    expect(version).toEqual({ major: 7, minor: 0, patch: 0 });
    const workers = b.rpcService!.pool.workers();
    expect(workers).toHaveLength(1);
    expect(workers[0]!.hostNodeId).toBe((await clusterView(a)).local.nodeId);
  }, 60_000);

  it("pre-filled: tokens equal local decoding and the load moves < 1% of the offloaded weights", async () => {
    const prepared = await a.rpcTunnels!.prepare(bNodeId, sha256);
    expect(prepared.status).toBe("prefilled");
    // 7 matrices per layer, 3 layers, plus the token embedding and output matrices (354 x 1664
    // f32, 2.4 MB each): all above the 64 KiB threshold of Hearth's native build; norms are not.
    expect(prepared.tensors).toBe(23);
    expect(prepared.cachedTensors).toBe(23);
    const { result, loadBytes, totalBytes } = await splitRun(modelPath);
    // The only RPC device is A's tunnel listener; the weights landed there.
    expect(result.devices).toHaveLength(1);
    expect(result.rpcBufferLines.some((line) => line.includes(`RPC0[${result.devices[0]!}] model buffer`))).toBe(true);
    expect(result.gpuLayers).toBe(GPU_LAYERS);
    expect(result.tokens).toEqual(localTokens);
    const offloaded = offloadedBytes(result);
    console.log(`pre-filled load: ${loadBytes} bytes through the tunnel for ${Math.round(offloaded)} offloaded weight bytes (${((100 * loadBytes) / offloaded).toFixed(3)}%); whole run ${totalBytes} bytes`);
    expect(offloaded).toBeGreaterThan(14 * 10 * 1024 * 1024);
    expect(loadBytes).toBeGreaterThan(0);
    expect(loadBytes).toBeLessThan(0.01 * offloaded);
  }, 180_000);

  it("a second prepare of the same model is warm: nothing is written", async () => {
    const again = await a.rpcTunnels!.prepare(bNodeId, sha256);
    expect(again.status).toBe("prefilled");
    expect(again.writtenBytes).toBe(0);
    expect(again.cachedTensors).toBe(23);
  }, 60_000);

  it("missing on the peer: prepare says so, the load pushes the weights, rpc-server names them by our FNV-1a", async () => {
    const prepared = await a.rpcTunnels!.prepare(bNodeId, otherSha256);
    expect(prepared.status).toBe("missing");
    const expectedNames = await offloadedTensorNames(otherModelPath);
    expect(expectedNames).toHaveLength(14);
    for (const name of expectedNames) expect(fs.existsSync(path.join(bCacheDir, name))).toBe(false);

    const { result, loadBytes } = await splitRun(otherModelPath);
    expect(result.tokens).toEqual(otherLocalTokens);
    const offloaded = offloadedBytes(result);
    console.log(`pushed load: ${loadBytes} bytes through the tunnel for ${Math.round(offloaded)} offloaded weight bytes (${((100 * loadBytes) / offloaded).toFixed(1)}%)`);
    expect(loadBytes).toBeGreaterThan(0.99 * offloaded);
    expect(loadBytes).toBeLessThan(1.05 * offloaded);
    // rpc-server cached what it was sent, under the names fnv1a.ts computes from the file.
    for (const name of expectedNames) expect(fs.existsSync(path.join(bCacheDir, name)), name).toBe(true);
  }, 180_000);

  it("a crashed worker does not take B down and is restarted on the next connection", async () => {
    const [worker] = b.rpcService!.pool.workers();
    expect(worker?.pid).toBeGreaterThan(0);
    process.kill(worker!.pid!, "SIGKILL");
    await waitFor(() => !processAlive(worker!.pid!), 10_000, "the worker to die");
    await waitFor(() => b.rpcService!.pool.workers()[0]?.crashes === 1, 10_000, "the pool to notice the crash");
    const endpoint = await a.rpcTunnels!.open(bNodeId);
    expect(await rpcHello(endpoint.host, endpoint.port, 15_000)).toEqual({ major: 7, minor: 0, patch: 0 });
    const [restarted] = b.rpcService!.pool.workers();
    expect(restarted?.pid).toBeGreaterThan(0);
    expect(restarted!.pid).not.toBe(worker!.pid);
    expect((await fetch(`${b.address!.url}/health`)).status).toBe(200);
  }, 60_000);

  it("rpc.release stops the worker and closes A's listener", async () => {
    const endpoint = await a.rpcTunnels!.open(bNodeId);
    const [worker] = b.rpcService!.pool.workers();
    await a.rpcTunnels!.release(bNodeId);
    expect(b.rpcService!.pool.workers()).toHaveLength(0);
    await waitFor(() => !processAlive(worker!.pid!), 10_000, "the released worker to exit");
    expect(await rpcHello(endpoint.host, endpoint.port, 2_000)).toBeUndefined();
  }, 60_000);
});
