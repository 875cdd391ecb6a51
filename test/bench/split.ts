/**
 * Layer-split benchmark (issue 5): one model's layers over two nodes, through Hearth and
 * through bare llama.cpp RPC, against the whole model on one node. Two real daemons in network
 * namespaces (test/support/clusterNet.ts), each holding the bench model, each pinned to its own
 * core (`taskset`, inherited by its runner and its rpc-server worker) and running one thread
 * (`[runner] threads = 1`, `[rpc] threads = 1`). Prints figures; asserts nothing.
 *
 * Configurations, measured in `rounds` rounds; each round runs every configuration once, back
 * to back, in an order that rotates from round to round:
 *   local   the whole model in n1's runner (a request pinned to n1: `hearth.node`);
 *   hearth  a forced half/half split (`hearth.placement`): n1's runner holds the first half,
 *           n2's rpc-server worker the rest and the output layer, reached through the tunnel
 *           over the authenticated peer link (docs/splitting.md);
 *   bare    the same split with the same native build and the same llama.cpp settings, but
 *           bare: a node-llama-cpp process in n1's namespace (fixtures/split-bareRpc.ts) whose
 *           RPC shim points straight at a plain rpc-server in n2's namespace, bound to n2's
 *           address (which Hearth never does: only this benchmark exposes an rpc-server), on
 *           direct TCP, no daemon, no TLS.
 * Warm-up first: `warmTokens` tokens through each configuration (the figures `warmup.*`). A
 * fresh daemon relays its first split tokens in unoptimised JavaScript (V8 compiles the tunnel's
 * path after some hundred frames, and a run of 32 tokens at 10 tok/s never gets there), so
 * without it the rounds would time a daemon that a user only ever meets for its first minute.
 * Each run: a fresh prompt of `promptChars` tokens (no prefix reuse), then `genTokens` greedy
 * tokens. Prompt tok/s = prompt tokens / time to the first token; generation tok/s = tokens
 * after the first / time from the first to the last (as test/bench/foundation.ts). Hearth's
 * runs are timed by a streaming client inside n1's namespace (fixtures/split-streamClient.ts),
 * so they include the HTTP API and SSE, as a user sees them.
 *
 *   ratio.tg_hearth_over_local   target >= 0.85
 *   ratio.tg_hearth_over_bare    target >= 0.95
 *                                Both ratios are paired: each round's Hearth rate over the same
 *                                round's local (bare) rate, measured minutes apart at most, and
 *                                the median over the rounds. This machine's speed drifts by
 *                                +-20 % over minutes; the pairs cancel the drift that a ratio
 *                                of two medians keeps. `.min` / `.max`: the extreme rounds.
 *   hearth.predicted_tg_tok_s    what the planner (scheduler/splitThroughput.ts) predicts for
 *                                this split once n1's speed score is known
 *   delay<N>ms.*                 hearth and bare again with N ms added one-way on each node's
 *                                link (a round trip between them grows by 2N). This kernel has
 *                                no netem: the harness's user-space delay line holds frames
 *                                (test/support/netns-delayLine.ts); it runs unpinned, so it
 *                                shares the two cores with the nodes.
 *   load.*                       from the request that creates the split placement to its
 *                                first token, minus the same request answered warm:
 *                                cold_push     n2 may not pre-fill ([rpc] prefill = false) and
 *                                              its tensor cache is empty: the weights cross;
 *                                cold_prefill  n2 holds the same GGUF, cache empty: rpc.prepare
 *                                              hashes and writes its own copy first;
 *                                cached        cache already filled: the load sends hashes.
 *                                `*_sent_pct` is what n1 sent over its link during the load,
 *                                as a share of the weight bytes placed on n2 (target for
 *                                cached: < 1 %).
 *   bytes_per_token.*            bytes on the link per generated token, each direction
 *                                (to_peer = n1 -> n2), from n1's eth0 counters (headers
 *                                included): a long and a short run differenced, so the prompt's
 *                                share cancels, with idle traffic (heartbeats) subtracted.
 *   llama_defaults.*             local and hearth again, the host restarted with llama.cpp's own
 *                                kernel settings (LLAMA_DEFAULTS_RUNNER); `ratio.*_exact_over_
 *                                llama_defaults.*` is what exact answers cost (below 1: slower)
 *   daemon_cpu_ms_per_tok.*      the daemon processes' own CPU per generated token (differenced
 *                                the same way): what the API, SSE and, split, the tunnel relay
 *                                cost on the cores the runner and the rpc-server need too.
 * The log shows every run, with the median and longest gap between tokens (stalls). With
 * `--model` pointing at the `tiny` preset the compute per token is ~2 ms, so the same suite
 * shows the latency the relay adds per token, and how many round trips a token waits for.
 *
 * Needs root, iproute2, taskset, python3 (for the delay line) and the native parts (`npm run
 * build:native`); without them the suite reports why and returns no figures. Run alone with
 * `node dist/test/bench/split.js --model FILE [--repeats N] [--rounds N] [--warm-tokens N] [--prompt-chars N] [--gen-tokens N] [--delays 1,5] [--skip-loads] [--skip-kernels]`.
 */

import type { ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { describeGguf, readGgufHeader } from "../../daemon/gguf/reader.js";
import { locateNativeParts, rpcServerLaunch, shimEnvironment, type NativeParts } from "../../daemon/native/nativeParts.js";
import { HearthError } from "../../protocol/errors.js";
import { modelLayoutFromGguf, sumOf } from "../../scheduler/modelLayout.js";
import type { LayerSplitPlan, SplitPlanResult } from "../../scheduler/splitPlan.js";
import { ClusterNet, HTTP_PORT, REPO_ROOT, sleep, type ClusterNode, type ClusterView } from "../support/clusterNet.js";
import { NetnsUnavailableError, assertNetnsSupport } from "../support/netns.js";
import { requirePython, requireTool } from "../support/netns-system.js";
import { median } from "./stats.js";

export interface SplitBenchOptions {
  /** The GGUF split (the bench model, `1b` preset). */
  modelPath: string;
  /** Loads timed per kind of load; medians are reported. */
  repeats: number;
  /** Speed rounds: each runs every configuration once; paired ratios, medians over the rounds. */
  rounds: number;
  /** Tokens generated through each configuration before the rounds (see the header). */
  warmTokens: number;
  /** Prompt length in characters (one token each with the synthetic tokenizer). */
  promptChars: number;
  genTokens: number;
  /** One-way delays added on each link for the latency figures, in ms. */
  delaysMs: number[];
  /** Measure the load times (the longest part); off: the peer pre-fills, and only speeds are measured. */
  loads: boolean;
  /** Measure local and split again with llama.cpp's kernel settings on the host (the `llama_defaults.*` figures). */
  kernels: boolean;
}

export const DEFAULT_SPLIT_BENCH: Omit<SplitBenchOptions, "modelPath"> = { repeats: 3, rounds: 6, warmTokens: 128, promptChars: 128, genTokens: 48, delaysMs: [1, 5], loads: true, kernels: true };

const MODEL = "bench";
const CONTEXT_SIZE = 1024;
const BATCH_SIZE = 512;
/** Port of the bare rpc-server, on n2's namespace address (only this benchmark exposes one). */
const BARE_RPC_PORT = 50_052;
const HOST_CORE = 0;
const PEER_CORE = 1;
/** Generated tokens of the short runs the per-token bytes are differenced against. */
const SHORT_RUN_TOKENS = 2;
const IDLE_WINDOW_MS = 5_000;
const MESH_TIMEOUT_MS = 90_000;
const HASH_TIMEOUT_MS = 5 * 60_000;
const RUN_TIMEOUT_MS = 5 * 60_000;
const BARE_START_TIMEOUT_MS = 5 * 60_000;
const RPC_SERVER_START_TIMEOUT_MS = 20_000;
/** Longest wait for a daemon's start-up work (GPU probe) and the first speed measurement. */
const SETTLE_TIMEOUT_MS = 60_000;

/** `runner` adds settings to the host's [runner] table. */
const hostToml = (runner = ""): string => `
[runner]
threads = 1
${runner}
[limits]
parallel_slots = 1
context_size = ${CONTEXT_SIZE}
keep_alive = "30m"
[rpc]
threads = 1
`;

/**
 * What the host's runner computes with for the `llama_defaults.*` figures: llama.cpp's own
 * kernel choices (flash attention "auto", sequences decoded together, repacked weights) instead
 * of exact batching's. The peer is unchanged: rpc-server never repacks.
 */
const LLAMA_DEFAULTS_RUNNER = `batching = "throughput"\nrepack_weights = true`;

const peerToml = (prefill: boolean): string => `
[runner]
threads = 1
[rpc]
threads = 1
prefill = ${prefill}
`;

const BASE_TEXT = "The quick brown fox jumps over the lazy dog while the hearth keeps the house warm. ";

/** A prompt of exactly `chars` characters whose start differs per tag, so no run reuses another's prefix. */
function promptFor(tag: string, chars: number): string {
  return `${tag} ${BASE_TEXT.repeat(Math.ceil(chars / BASE_TEXT.length) + 1)}`.slice(0, chars);
}

const round = (value: number, digits = 2): number => Math.round(value * 10 ** digits) / 10 ** digits;
const log = (line: string): void => {
  process.stderr.write(`[split] ${line}\n`);
};

// ---- one timed run ---------------------------------------------------------------------------

interface Timing {
  promptTokens: number;
  completionTokens: number;
  ttftMs: number;
  genMs: number;
  totalMs: number;
  /** Between consecutive tokens (Hearth: text chunks), for the stall diagnostics in the log. */
  gapsMs: number[];
}

const ppRate = (t: Timing): number => t.promptTokens / (t.ttftMs / 1000);
const tgRate = (t: Timing): number => (t.completionTokens - 1) / (t.genMs / 1000);

/** What a run cost besides its time: bytes through n1's eth0 (idle traffic subtracted), and the daemons' own CPU. */
interface Cost {
  /** n1 -> n2 and back, TCP/IP headers included. */
  toPeer: number;
  fromPeer: number;
  /** CPU time of each daemon process itself (its runner and rpc-server workers are children, not counted). */
  hostDaemonCpuMs: number;
  peerDaemonCpuMs: number;
}

interface Measured {
  timing: Timing;
  cost: Cost;
}

interface IdleRate {
  txPerMs: number;
  rxPerMs: number;
}

/** Runs `body` while watching n1's link counters and both daemons' CPU; what heartbeats would have sent anyway is taken off. */
async function observe<T>(setup: Setup, body: () => Promise<T>): Promise<{ result: T; cost: Cost }> {
  const { host, peer, idle } = setup;
  const before = { link: host.netDev(), hostCpu: host.cpuTimeMs(), peerCpu: peer.cpuTimeMs() };
  const started = performance.now();
  const result = await body();
  const ms = performance.now() - started;
  const link = host.netDev();
  return {
    result,
    cost: {
      toPeer: link.txBytes - before.link.txBytes - idle.txPerMs * ms,
      fromPeer: link.rxBytes - before.link.rxBytes - idle.rxPerMs * ms,
      hostDaemonCpuMs: host.cpuTimeMs() - before.hostCpu,
      peerDaemonCpuMs: peer.cpuTimeMs() - before.peerCpu,
    },
  };
}

async function measureIdle(host: ClusterNode): Promise<IdleRate> {
  const before = host.netDev();
  const started = performance.now();
  await sleep(IDLE_WINDOW_MS);
  const ms = performance.now() - started;
  const after = host.netDev();
  return { txPerMs: (after.txBytes - before.txBytes) / ms, rxPerMs: (after.rxBytes - before.rxBytes) / ms };
}

/** One streamed completion through n1's daemon, timed inside n1's namespace. */
async function hearthCompletion(host: ClusterNode, body: Record<string, unknown>): Promise<Timing> {
  const fixture = path.join(REPO_ROOT, "dist", "test", "bench", "fixtures", "split-streamClient.js");
  const run = await host.host.exec(process.execPath, [fixture, String(HTTP_PORT), JSON.stringify({ body, timeoutMs: RUN_TIMEOUT_MS })], { timeoutMs: RUN_TIMEOUT_MS + 10_000 });
  const line = run.stdout.trim().split("\n").pop() ?? "";
  let answer: { ok?: boolean; error?: string; status?: number } & Partial<Timing>;
  try {
    answer = JSON.parse(line) as typeof answer;
  } catch {
    throw new Error(`the stream client printed no result: ${run.stdout}${run.stderr}`);
  }
  if (answer.ok !== true) throw new Error(`completion failed (${answer.status ?? "no status"}): ${answer.error ?? "unknown error"}\n${host.logTail(20)}`);
  return answer as Timing;
}

// ---- bare llama.cpp RPC ----------------------------------------------------------------------

/** The baseline: a plain rpc-server in n2's namespace and a node-llama-cpp client in n1's. */
class BareRpc {
  readonly #client: ChildProcess;
  readonly #waiters = new Map<number, { resolve: (timing: Timing) => void; reject: (error: Error) => void }>();
  #nextId = 1;
  #stderr = "";
  #exited: string | undefined;
  loadMs = 0;

  private constructor(client: ChildProcess) {
    this.#client = client;
  }

  static async start(parts: NativeParts, host: ClusterNode, peer: ClusterNode, modelPath: string, llama: { gpuLayers: number; reportedMiB: number[] }): Promise<BareRpc> {
    const launch = rpcServerLaunch(parts, { port: BARE_RPC_PORT, threads: 1, tensorCacheDir: path.join(peer.dataDir, "rpc-cache") });
    // rpcServerLaunch binds 127.0.0.1 (Hearth's rule); the baseline is direct TCP between namespaces.
    const args = launch.args.map((arg, index) => (index > 0 && launch.args[index - 1] === "-H" ? peer.address : arg));
    const server = peer.host.spawn(launch.command, args, { core: PEER_CORE, cwd: launch.cwd, env: launch.env });
    await waitForOutput(server, "transport", RPC_SERVER_START_TIMEOUT_MS, "the bare rpc-server");

    const fixture = path.join(REPO_ROOT, "dist", "test", "bench", "fixtures", "split-bareRpc.js");
    const env = { ...process.env, ...shimEnvironment(parts, [{ host: peer.address, port: BARE_RPC_PORT, memoryMiB: llama.reportedMiB[0]! }]) };
    const options = { modelPath, gpuLayers: llama.gpuLayers, contextSize: CONTEXT_SIZE, batchSize: BATCH_SIZE, threads: 1 };
    const client = host.host.spawn(process.execPath, [fixture, JSON.stringify(options)], { core: HOST_CORE, env });
    const bare = new BareRpc(client);
    const ready = new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the bare RPC client did not load within ${BARE_START_TIMEOUT_MS} ms: ${bare.#stderr}`)), BARE_START_TIMEOUT_MS);
      client.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
        bare.#stderr = (bare.#stderr + chunk).slice(-4_000);
      });
      createInterface({ input: client.stdout! }).on("line", (line) => {
        let message: { event?: string; id?: number; loadMs?: number; error?: string } & Partial<Timing>;
        try {
          message = JSON.parse(line) as typeof message;
        } catch {
          return;
        }
        if (message.event === "ready") {
          clearTimeout(timer);
          resolve(message.loadMs ?? 0);
          return;
        }
        const waiter = message.id === undefined ? undefined : bare.#waiters.get(message.id);
        if (waiter === undefined) return;
        bare.#waiters.delete(message.id!);
        if (message.error !== undefined) waiter.reject(new Error(`bare RPC run failed: ${message.error}`));
        else waiter.resolve({ ...(message as Timing), totalMs: message.ttftMs! + message.genMs! });
      });
      client.once("exit", (code, signal) => {
        clearTimeout(timer);
        bare.#exited = `the bare RPC client exited with ${signal ?? String(code)}: ${bare.#stderr}`;
        reject(new Error(bare.#exited));
        for (const waiter of bare.#waiters.values()) waiter.reject(new Error(bare.#exited));
        bare.#waiters.clear();
      });
    });
    bare.loadMs = await ready;
    return bare;
  }

  run(prompt: string, maxTokens: number): Promise<Timing> {
    if (this.#exited !== undefined) return Promise.reject(new Error(this.#exited));
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#waiters.set(id, { resolve, reject });
      this.#client.stdin!.write(`${JSON.stringify({ id, prompt, maxTokens })}\n`);
    });
  }
}

function waitForOutput(child: ChildProcess, text: string, timeoutMs: number, what: string): Promise<void> {
  let output = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not start within ${timeoutMs} ms: ${output}`)), timeoutMs);
    const onData = (chunk: Buffer): void => {
      output = (output + chunk.toString()).slice(-4_000);
      if (output.includes(text)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited with ${signal ?? String(code)}: ${output}`));
    });
  });
}

// ---- the cluster -----------------------------------------------------------------------------

/** Pins the daemon and everything it starts later (runners, rpc-server workers) to one core. */
async function pinToCore(node: ClusterNode, core: number): Promise<void> {
  const pid = node.process?.pid;
  if (pid === undefined) throw new Error(`${node.name} is not running`);
  const result = await node.host.exec(requireTool("taskset"), ["-a", "-c", "-p", String(core), String(pid)]);
  if (result.code !== 0) throw new Error(`taskset failed for ${node.name}: ${result.stderr}`);
}

/** Both nodes up for each other, each knowing the other's hash of the bench model. */
function linkedAndHashed(views: ClusterView[]): boolean {
  return views.every(
    (view) =>
      view.local.models.some((model) => model.id === MODEL && model.sha256 !== null) &&
      view.peers.some((peer) => peer.state === "up" && (peer.models ?? []).some((model) => model.id === MODEL && model.sha256 !== null)),
  );
}

/**
 * Starts the daemon pinned, then waits out its start-up GPU probe (a node-llama-cpp child on the
 * same core for a second or two), so a load timed next does not pay for it.
 */
async function startPinned(node: ClusterNode, core: number, args: string[]): Promise<void> {
  await node.start({ args });
  await pinToCore(node, core);
  const probes = (): number => node.logLines().filter((line) => line.msg === "GPU probe done" || (line.msg ?? "").includes("GPU probe failed")).length;
  const deadline = performance.now() + SETTLE_TIMEOUT_MS;
  while (probes() < node.starts && performance.now() < deadline) await sleep(100);
}

// ---- the benchmark ---------------------------------------------------------------------------

type Config = "local" | "hearth" | "bare";

interface Setup {
  net: ClusterNet;
  host: ClusterNode;
  peer: ClusterNode;
  hostArgs: string[];
  peerArgs: string[];
  placement: { nodes: string[]; layers: number[] };
  idle: IdleRate;
}

/** The host's plan for the forced placement (GET /hearth/v1/plan): the llama.cpp settings the bare client copies, and the prediction. */
async function forcedPlan(setup: Setup): Promise<LayerSplitPlan> {
  const query = `/hearth/v1/plan?model=${MODEL}&nodes=${setup.placement.nodes.join(",")}&layers=${setup.placement.layers.join(",")}`;
  const report = await setup.host.http("GET", query);
  const plan = (report.body as { plan?: SplitPlanResult }).plan;
  if (report.status !== 200 || plan === undefined || !plan.ok || !plan.split) throw new Error(`no split plan for the forced placement: ${JSON.stringify(report.body).slice(0, 500)}`);
  return plan;
}

function completionBody(setup: Setup, config: "local" | "hearth", prompt: string, maxTokens: number): Record<string, unknown> {
  const hearth = config === "local" ? { node: setup.host.nodeId } : { placement: setup.placement };
  return { model: MODEL, prompt, max_tokens: maxTokens, temperature: 0, hearth };
}

async function waitLinked(setup: Setup): Promise<void> {
  await setup.net.waitFor([setup.host, setup.peer], linkedAndHashed, { timeoutMs: MESH_TIMEOUT_MS, what: "both nodes linked, each knowing the other's bench model hash" });
}

/** Time and link bytes of the request that realises the split placement (load + first token), minus the same request answered warm. */
async function measureLoad(setup: Setup): Promise<{ ms: number; sent: number }> {
  const body = completionBody(setup, "hearth", "Load me.", 1);
  const first = await observe(setup, () => hearthCompletion(setup.host, body));
  const warm = await hearthCompletion(setup.host, body);
  return { ms: first.result.totalMs - warm.totalMs, sent: first.cost.toPeer };
}

/**
 * `times` loads of the split, each on a freshly started host daemon (a restart is the only way
 * to drop a placement before keep-alive), `between` run while the host is down; medians.
 */
async function timeLoads(setup: Setup, label: string, times: number, offloadedBytes: number, figures: Record<string, number>, between?: () => void): Promise<void> {
  const loads: { ms: number; sent: number }[] = [];
  for (let i = 0; i < times; i++) {
    if (i > 0) await restart(setup, [setup.host], between);
    const load = await measureLoad(setup);
    loads.push(load);
    log(`load ${label} ${i + 1}/${times}: ${(load.ms / 1000).toFixed(2)} s, ${(load.sent / 1e6).toFixed(2)} MB sent to the peer`);
  }
  const sent = median(loads.map((load) => load.sent));
  figures[`load.${label}_s`] = round(median(loads.map((load) => load.ms)) / 1000);
  figures[`load.${label}_sent_MB`] = round(sent / 1e6);
  figures[`load.${label}_sent_pct`] = round((100 * sent) / offloadedBytes, 3);
}

async function restart(setup: Setup, nodes: readonly ClusterNode[], between?: () => void): Promise<void> {
  for (const node of nodes) await node.stop();
  between?.();
  for (const node of nodes) await startPinned(node, node === setup.host ? HOST_CORE : PEER_CORE, node === setup.host ? setup.hostArgs : setup.peerArgs);
  await waitLinked(setup);
}

/**
 * Cold with pushed weights (the peer starts with pre-fill off and an empty cache, emptied again
 * before each load), cold with pre-fill (on, emptied before each load), then cached.
 */
async function loadFigures(setup: Setup, times: number, offloadedBytes: number, figures: Record<string, number>): Promise<void> {
  // Tensor files and the pre-fill index; the peer's worker is stopped while the host is down.
  const emptyCache = (): void => fs.rmSync(path.join(setup.peer.dataDir, "rpc-cache"), { recursive: true, force: true });
  log("load: cold, weights pushed (peer pre-fill off, empty cache)");
  await timeLoads(setup, "cold_push", times, offloadedBytes, figures, emptyCache);

  log("load: cold, the peer pre-fills from its own copy (empty cache)");
  await restart(setup, [setup.host, setup.peer], () => {
    emptyCache();
    fs.writeFileSync(setup.peer.configPath, peerToml(true));
  });
  await timeLoads(setup, "cold_prefill", times, offloadedBytes, figures, emptyCache);

  log("load: cached (the peer holds the same GGUF, cache filled)");
  await restart(setup, [setup.host]);
  await timeLoads(setup, "cached", times, offloadedBytes, figures);
}

interface Runner {
  run(config: Config, tag: string, maxTokens: number): Promise<Measured>;
}

function makeRunner(setup: Setup, bare: BareRpc, promptChars: number): Runner {
  return {
    async run(config, tag, maxTokens) {
      const prompt = promptFor(tag, promptChars);
      const { result, cost } = await observe(setup, () =>
        config === "bare" ? bare.run(prompt, maxTokens) : hearthCompletion(setup.host, completionBody(setup, config, prompt, maxTokens)),
      );
      if (result.completionTokens !== maxTokens) throw new Error(`${config} run ${tag} produced ${result.completionTokens} of ${maxTokens} tokens`);
      return { timing: result, cost };
    },
  };
}

/** `rounds` rounds over `configs`, each round starting one further along, so no configuration always runs first. */
async function alternate(runner: Runner, configs: readonly Config[], rounds: number, genTokens: number, label: string): Promise<Map<Config, Measured[]>> {
  const results = new Map<Config, Measured[]>(configs.map((config) => [config, []]));
  for (let roundIndex = 0; roundIndex < rounds; roundIndex++) {
    for (let i = 0; i < configs.length; i++) {
      const config = configs[(roundIndex + i) % configs.length]!;
      const measured = await runner.run(config, `${label}${roundIndex}${config[0]}`, genTokens);
      results.get(config)!.push(measured);
      const { timing } = measured;
      const gaps = `gap median ${median(timing.gapsMs).toFixed(1)} max ${Math.max(...timing.gapsMs).toFixed(1)} ms`;
      log(`${label} round ${roundIndex} ${config}: pp ${ppRate(timing).toFixed(1)} tok/s (${timing.promptTokens} in ${Math.round(timing.ttftMs)} ms), tg ${tgRate(timing).toFixed(2)} tok/s (${gaps})`);
    }
  }
  return results;
}

/** Median rates of one configuration over the rounds. */
function rates(results: Map<Config, Measured[]>, config: Config): { pp: number; tg: number } {
  const runs = results.get(config)!;
  return { pp: median(runs.map((run) => ppRate(run.timing))), tg: median(runs.map((run) => tgRate(run.timing))) };
}

/** Each round's `numerator` rate over the same round's `denominator` rate, into `figures` as median, `.min` and `.max`. */
function pairedRatio(results: Map<Config, Measured[]>, numerator: Config, denominator: Config, rate: (timing: Timing) => number, key: string, figures: Record<string, number>): void {
  const below = results.get(denominator)!;
  const ratios = results.get(numerator)!.map((run, index) => rate(run.timing) / rate(below[index]!.timing));
  figures[key] = median(ratios);
  figures[`${key}.min`] = Math.min(...ratios);
  figures[`${key}.max`] = Math.max(...ratios);
  log(`${key} by round: ${ratios.map((ratio) => ratio.toFixed(3)).join(" ")}`);
}

/** The delayed runs compare Hearth with bare only, and with fewer rounds: half, at least 3. */
const delayRounds = (rounds: number): number => Math.max(3, Math.ceil(rounds / 2));

async function speedFigures(setup: Setup, bare: BareRpc, options: SplitBenchOptions, figures: Record<string, number>): Promise<void> {
  const runner = makeRunner(setup, bare, options.promptChars);
  for (const config of ["local", "hearth", "bare"] as const) {
    log(`warming up ${config}: ${options.warmTokens} tokens`);
    const { timing } = await runner.run(config, `warm-${config[0]}`, Math.max(2, options.warmTokens));
    figures[`warmup.${config}.tg_tok_s`] = round(tgRate(timing));
  }
  // The host measures its speed score once the whole model is loaded and idle: not during a timed run.
  await setup.net.waitFor([setup.host], ([view]) => (view!.local.speedScores ?? {})[MODEL] !== undefined, { timeoutMs: SETTLE_TIMEOUT_MS, what: "n1's speed score of the bench model" });
  // The planner's throughput model against the measurement (n2 has no score: it counts as fast as n1).
  figures["hearth.predicted_tg_tok_s"] = (await forcedPlan(setup)).predictedTokensPerSecond;

  const results = await alternate(runner, ["local", "hearth", "bare"], options.rounds, options.genTokens, "r");
  for (const config of ["local", "hearth", "bare"] as const) {
    const { pp, tg } = rates(results, config);
    figures[`${config}.pp_tok_s`] = round(pp);
    figures[`${config}.tg_tok_s`] = round(tg);
  }
  pairedRatio(results, "hearth", "local", tgRate, "ratio.tg_hearth_over_local", figures);
  pairedRatio(results, "hearth", "bare", tgRate, "ratio.tg_hearth_over_bare", figures);
  pairedRatio(results, "hearth", "local", ppRate, "ratio.pp_hearth_over_local", figures);
  pairedRatio(results, "hearth", "bare", ppRate, "ratio.pp_hearth_over_bare", figures);

  // Per generated token: the long runs' median minus a short run's, over the extra tokens, so
  // the prompt's share cancels. The daemons' CPU shows what relaying the tunnel costs on the
  // cores the runner and the rpc-server also need (local: the API and SSE alone).
  for (const config of ["local", "hearth", "bare"] as const) {
    const short = await runner.run(config, `s${config[0]}`, SHORT_RUN_TOKENS);
    const long = results.get(config)!;
    const perToken = (pick: (cost: Cost) => number): number => (median(long.map((run) => pick(run.cost))) - pick(short.cost)) / (options.genTokens - SHORT_RUN_TOKENS);
    if (config !== "local") {
      figures[`bytes_per_token.${config}.to_peer`] = Math.round(perToken((cost) => cost.toPeer));
      figures[`bytes_per_token.${config}.from_peer`] = Math.round(perToken((cost) => cost.fromPeer));
    }
    if (config !== "bare") {
      figures[`daemon_cpu_ms_per_tok.${config}.host`] = round(perToken((cost) => cost.hostDaemonCpuMs));
      if (config === "hearth") figures["daemon_cpu_ms_per_tok.hearth.peer"] = round(perToken((cost) => cost.peerDaemonCpuMs));
    }
  }

  for (const delayMs of options.delaysMs) {
    log(`adding ${delayMs} ms one-way on each link`);
    await Promise.all([setup.host.host.setDelay(delayMs), setup.peer.host.setDelay(delayMs)]);
    try {
      const delayed = await alternate(runner, ["hearth", "bare"], delayRounds(options.rounds), options.genTokens, `d${delayMs}-`);
      for (const config of ["hearth", "bare"] as const) {
        const { pp, tg } = rates(delayed, config);
        figures[`delay${delayMs}ms.${config}.pp_tok_s`] = round(pp);
        figures[`delay${delayMs}ms.${config}.tg_tok_s`] = round(tg);
      }
      pairedRatio(delayed, "hearth", "bare", tgRate, `ratio.tg_hearth_over_bare.delay${delayMs}ms`, figures);
    } finally {
      await Promise.all([setup.host.host.setDelay(0), setup.peer.host.setDelay(0)]);
    }
  }
}

/**
 * Local and split again after restarting the host with llama.cpp's kernel settings
 * (LLAMA_DEFAULTS_RUNNER), beside the exact figures measured before: what exact answers cost,
 * locally and split. The two phases are minutes apart, so these ratios are of medians, not paired.
 */
async function llamaDefaultsFigures(setup: Setup, runner: Runner, options: SplitBenchOptions, figures: Record<string, number>): Promise<void> {
  log(`restarting the host with llama.cpp's kernel settings (${LLAMA_DEFAULTS_RUNNER.replace("\n", ", ")})`);
  await restart(setup, [setup.host], () => fs.writeFileSync(setup.host.configPath, hostToml(LLAMA_DEFAULTS_RUNNER)));
  for (const config of ["local", "hearth"] as const) {
    log(`warming up ${config} with llama.cpp's kernel settings: ${options.warmTokens} tokens`);
    await runner.run(config, `kwarm-${config[0]}`, Math.max(2, options.warmTokens));
  }
  const results = await alternate(runner, ["local", "hearth"], options.rounds, options.genTokens, "k");
  for (const config of ["local", "hearth"] as const) {
    const { pp, tg } = rates(results, config);
    figures[`llama_defaults.${config}.pp_tok_s`] = round(pp);
    figures[`llama_defaults.${config}.tg_tok_s`] = round(tg);
    figures[`ratio.pp_exact_over_llama_defaults.${config}`] = figures[`${config}.pp_tok_s`]! / pp;
    figures[`ratio.tg_exact_over_llama_defaults.${config}`] = figures[`${config}.tg_tok_s`]! / tg;
  }
}

export async function benchSplit(options: SplitBenchOptions): Promise<Record<string, number>> {
  let parts: NativeParts;
  try {
    assertNetnsSupport();
    requireTool("taskset");
    requirePython();
    parts = locateNativeParts();
  } catch (error) {
    if (error instanceof NetnsUnavailableError || (error instanceof HearthError && error.code === "HEARTH_NATIVE_MISSING")) {
      process.stderr.write(`split bench skipped: ${error.message}\n`);
      return {};
    }
    throw error;
  }
  const description = describeGguf(await readGgufHeader(options.modelPath));
  const layers = description.layerBytes.length;
  const hostLayers = Math.floor(layers / 2);
  const layout = modelLayoutFromGguf(description, { contextSize: CONTEXT_SIZE, batchSize: BATCH_SIZE });
  // What llama.cpp puts on the peer: its blocks and the output layer (the tied embedding again here).
  const offloadedBytes = sumOf(layout.layerWeightBytes.slice(hostLayers)) + layout.outputBytes;
  const figures: Record<string, number> = { "split.layers_host": hostLayers, "split.layers_peer": layers - hostLayers, "split.offloaded_weight_MB": round(offloadedBytes / 1e6) };

  const modelPath = path.resolve(options.modelPath);
  const spec = { tinyModel: false, extraModels: { [MODEL]: modelPath } };
  const net = await ClusterNet.create({ nodes: [{ ...spec, configToml: hostToml() }, { ...spec, configToml: peerToml(!options.loads) }], prefix: "hbs" });
  let bare: BareRpc | undefined;
  try {
    const [host, peer] = [net.node(1), net.node(2)];
    const hostArgs = ["--no-mdns", "--parallel", "1"];
    const peerArgs = ["--no-mdns", "--peer", host.peerAddress];
    await startPinned(host, HOST_CORE, hostArgs);
    await startPinned(peer, PEER_CORE, peerArgs);
    log("waiting for both nodes to link and hash the bench model");
    await net.waitFor([host, peer], linkedAndHashed, { timeoutMs: HASH_TIMEOUT_MS, what: "both nodes linked, each knowing the other's bench model hash" });
    await Promise.all([host.clusterView(), peer.clusterView()]);
    const setup: Setup = { net, host, peer, hostArgs, peerArgs, placement: { nodes: [host.nodeId, peer.nodeId], layers: [hostLayers, layers - hostLayers] }, idle: await measureIdle(host) };
    figures["idle.link_bytes_per_s"] = Math.round((setup.idle.txPerMs + setup.idle.rxPerMs) * 1000);

    if (options.loads) await loadFigures(setup, options.repeats, offloadedBytes, figures);

    const plan = await forcedPlan(setup);
    log(`starting bare RPC: rpc-server on ${peer.address}:${BARE_RPC_PORT}, client with gpuLayers ${plan.llama.gpuLayers}`);
    bare = await BareRpc.start(parts, host, peer, modelPath, plan.llama);
    figures["load.bare_cached_s"] = round(bare.loadMs / 1000);

    await speedFigures(setup, bare, options, figures);
    if (options.kernels) await llamaDefaultsFigures(setup, makeRunner(setup, bare, options.promptChars), options, figures);
  } finally {
    await net.destroy();
  }
  return figures;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({
    options: {
      model: { type: "string" },
      repeats: { type: "string", default: String(DEFAULT_SPLIT_BENCH.repeats) },
      rounds: { type: "string", default: String(DEFAULT_SPLIT_BENCH.rounds) },
      "warm-tokens": { type: "string", default: String(DEFAULT_SPLIT_BENCH.warmTokens) },
      "prompt-chars": { type: "string", default: String(DEFAULT_SPLIT_BENCH.promptChars) },
      "gen-tokens": { type: "string", default: String(DEFAULT_SPLIT_BENCH.genTokens) },
      delays: { type: "string", default: DEFAULT_SPLIT_BENCH.delaysMs.join(",") },
      "skip-loads": { type: "boolean", default: false },
      "skip-kernels": { type: "boolean", default: false },
    },
  });
  if (values.model === undefined) throw new Error("usage: split.js --model FILE [--repeats N] [--rounds N] [--warm-tokens N] [--prompt-chars N] [--gen-tokens N] [--delays 1,5] [--skip-loads] [--skip-kernels]");
  benchSplit({
    modelPath: values.model,
    repeats: Number(values.repeats),
    rounds: Number(values.rounds),
    warmTokens: Number(values["warm-tokens"]),
    promptChars: Number(values["prompt-chars"]),
    genTokens: Number(values["gen-tokens"]),
    delaysMs: values.delays.split(",").filter((entry) => entry !== "").map(Number),
    loads: !values["skip-loads"],
    kernels: !values["skip-kernels"],
  }).then(
    (figures) => {
      for (const [key, value] of Object.entries(figures)) process.stdout.write(`  ${key.padEnd(44)} ${key.startsWith("ratio.") ? `${value.toFixed(3)}x` : value}\n`);
    },
    (error: unknown) => {
      process.stderr.write(`split bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exit(1);
    },
  );
}
