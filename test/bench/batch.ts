/**
 * Batch throughput on 1 vs 2 nodes: the same batch job submitted to n1 of a two-node cluster
 * (network namespaces, test/support/clusterNet.ts), first with n1 alone, then with n2 up too.
 * Each daemon is pinned to its own core (`taskset`, inherited by its runner), runs its runner
 * with one thread and one parallel slot, and holds the same synthetic model. Items/s is the
 * job's item count over the time from submission until GET /hearth/v1/jobs/{id} says completed;
 * each configuration runs `repeats` jobs and the fastest counts.
 *
 *   batch.items_per_s_1_node, batch.items_per_s_2_nodes, ratio.batch_2_over_1_nodes (target >= 1.8),
 *   batch.coordinator_cpu_ms_per_item (the coordinating daemon's own CPU per item, runner excluded)
 *
 * Needs root, iproute2 and taskset; without them the suite reports why and returns no figures.
 * Prints figures and asserts nothing. Run alone with
 * `node dist/test/bench/batch.js [--items N] [--max-tokens N] [--preset tiny|small] [--repeats N]`.
 */

import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import type { SynthPreset } from "../../daemon/gguf/synth.js";
import { ClusterNet, sleep, type ClusterNode, type ClusterView } from "../support/clusterNet.js";
import { ensureModel } from "../support/models.js";
import { NetnsUnavailableError, assertNetnsSupport } from "../support/netns.js";
import { requireTool } from "../support/netns-system.js";

export interface BatchBenchOptions {
  items: number;
  maxTokens: number;
  preset: SynthPreset;
  /** Jobs timed per configuration; the best counts, since a shared machine only ever slows a run down. */
  repeats: number;
}

export const DEFAULT_BATCH_BENCH: BatchBenchOptions = { items: 64, maxTokens: 48, preset: "small", repeats: 2 };

const MODEL = "bench";
const POLL_MS = 50;
const JOB_TIMEOUT_MS = 15 * 60_000;
const MESH_TIMEOUT_MS = 30_000;
/** Each node runs one item and has the next one waiting, so no core idles while a result travels. */
const NODE_CONFIG = `
[runner]
threads = 1
[limits]
context_size = 1024
[jobs]
in_flight_per_node = 2
refresh_interval = "1s"
`;

/** Pins the daemon and everything it starts later (its runner) to one core. */
async function pinToCore(node: ClusterNode, core: number, taskset: string): Promise<void> {
  const pid = node.process?.pid;
  if (pid === undefined) throw new Error(`${node.name} is not running`);
  const result = await node.host.exec(taskset, ["-a", "-c", "-p", String(core), String(pid)]);
  if (result.code !== 0) throw new Error(`taskset failed for ${node.name}: ${result.stderr}`);
}

/** One short completion pinned to `target`, so its runner is loaded before the clock starts. */
async function warm(coordinator: ClusterNode, target: ClusterNode): Promise<void> {
  const answer = await coordinator.http("POST", "/v1/completions", { model: MODEL, prompt: "warm up", max_tokens: 2, temperature: 0, hearth: { node: target.nodeId } }, 120_000);
  if (answer.status !== 200) throw new Error(`warm-up on ${target.name} failed: ${JSON.stringify(answer.body)}`);
}

async function timeJob(node: ClusterNode, options: BatchBenchOptions, tag: string): Promise<{ itemsPerSecond: number; perNode: number[] }> {
  const input = Array.from({ length: options.items }, (_, i) =>
    JSON.stringify({ custom_id: `${tag}-${i}`, method: "POST", url: "/v1/completions", body: { model: MODEL, prompt: `Story ${tag} number ${i}:`, max_tokens: options.maxTokens, temperature: 0 } }),
  ).join("\n");
  const started = performance.now();
  const submitted = await node.http("POST", "/hearth/v1/jobs", { input }, 60_000);
  if (submitted.status !== 200) throw new Error(`submit failed: ${JSON.stringify(submitted.body)}`);
  const { id } = submitted.body as { id: string };
  const deadline = started + JOB_TIMEOUT_MS;
  while (performance.now() < deadline) {
    const view = (await node.http("GET", `/hearth/v1/jobs/${id}`)).body as { status: string; request_counts: { completed: number; failed: number }; nodes: { done: number }[] };
    if (view.status === "completed") {
      const seconds = (performance.now() - started) / 1000;
      if (view.request_counts.failed > 0) throw new Error(`${view.request_counts.failed} items failed in the ${tag} run`);
      return { itemsPerSecond: options.items / seconds, perNode: view.nodes.map((entry) => entry.done) };
    }
    await sleep(POLL_MS);
  }
  throw new Error(`the ${tag} job did not finish within ${JOB_TIMEOUT_MS} ms`);
}

async function bestOf(repeats: number, run: (round: number) => Promise<{ itemsPerSecond: number; perNode: number[] }>): Promise<{ itemsPerSecond: number; perNode: number[] }> {
  let best: { itemsPerSecond: number; perNode: number[] } | undefined;
  for (let round = 0; round < Math.max(1, repeats); round++) {
    const result = await run(round);
    if (best === undefined || result.itemsPerSecond > best.itemsPerSecond) best = result;
  }
  return best!;
}

function hashesKnown(views: ClusterView[]): boolean {
  return views.every((view) => view.peers.filter((peer) => peer.state === "up").every((peer) => peer.models?.every((model) => model.sha256 !== null) === true));
}

export async function benchBatch(options: BatchBenchOptions = DEFAULT_BATCH_BENCH): Promise<Record<string, number>> {
  let taskset: string;
  try {
    assertNetnsSupport();
    taskset = requireTool("taskset");
  } catch (error) {
    if (!(error instanceof NetnsUnavailableError)) throw error;
    process.stderr.write(`batch bench skipped: ${error.message}\n`);
    return {};
  }
  const modelPath = await ensureModel({ preset: options.preset, textOnlyOutput: true }, `bench-${options.preset}-text`);
  const spec = { tinyModel: false, extraModels: { [MODEL]: modelPath }, configToml: NODE_CONFIG, args: ["--parallel", "1"] };
  const net = await ClusterNet.create({ nodes: [spec, spec], prefix: "hbb" });
  const [n1, n2] = [net.node(1), net.node(2)];
  try {
    await n1.start();
    await pinToCore(n1, 0, taskset);
    await n1.clusterView();
    await warm(n1, n1);
    const one = await bestOf(options.repeats, (round) => timeJob(n1, options, `one${round}`));

    await n2.start();
    await pinToCore(n2, 1, taskset);
    await net.waitForMesh(net.nodes, { timeoutMs: MESH_TIMEOUT_MS });
    await net.waitFor(net.nodes, hashesKnown, { timeoutMs: MESH_TIMEOUT_MS, what: "both nodes to know each other's model hash" });
    await warm(n1, n2);
    const cpuBefore = n1.cpuTimeMs();
    const two = await bestOf(options.repeats, (round) => timeJob(n1, options, `two${round}`));
    const coordinatorCpuMsPerItem = (n1.cpuTimeMs() - cpuBefore) / (options.items * Math.max(1, options.repeats));
    return {
      "batch.items": options.items,
      "batch.max_tokens": options.maxTokens,
      "batch.items_per_s_1_node": Math.round(one.itemsPerSecond * 100) / 100,
      "batch.items_per_s_2_nodes": Math.round(two.itemsPerSecond * 100) / 100,
      // How the two-node run split the items (coordinator first): stealing should keep both busy.
      "batch.items_on_coordinator_2_nodes": two.perNode[n1.nodeId < n2.nodeId ? 0 : 1] ?? 0,
      // The coordinating daemon's own CPU (not its runner's) per item in the two-node runs: what
      // dispatching, relaying and persisting costs on the core it shares with its runner.
      "batch.coordinator_cpu_ms_per_item": Math.round(coordinatorCpuMsPerItem * 10) / 10,
      "ratio.batch_2_over_1_nodes": two.itemsPerSecond / one.itemsPerSecond,
    };
  } finally {
    await net.destroy();
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({
    options: {
      items: { type: "string", default: String(DEFAULT_BATCH_BENCH.items) },
      "max-tokens": { type: "string", default: String(DEFAULT_BATCH_BENCH.maxTokens) },
      preset: { type: "string", default: DEFAULT_BATCH_BENCH.preset },
      repeats: { type: "string", default: String(DEFAULT_BATCH_BENCH.repeats) },
    },
  });
  benchBatch({ items: Number(values.items), maxTokens: Number(values["max-tokens"]), preset: values.preset as SynthPreset, repeats: Number(values.repeats) }).then(
    (figures) => {
      for (const [key, value] of Object.entries(figures)) process.stdout.write(`  ${key.padEnd(44)} ${key.startsWith("ratio.") ? `${value.toFixed(3)}x` : value}\n`);
    },
    (error: unknown) => {
      process.stderr.write(`batch bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exit(1);
    },
  );
}
