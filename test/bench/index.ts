/**
 * `npm run bench`: every Hearth benchmark, printed as figures and side-by-side ratios.
 *
 * Usage: npm run bench -- [--preset 1b|small|tiny] [--threads N] [--repeats N] [--only foundation|adapters|kernels|resume|cluster|batch|transfer|tunnel|split] [--json]
 * Benchmark models are generated once and cached in the OS temp dir.
 */

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { SYNTH_PRESETS, writeSyntheticModel, type SynthPreset } from "../../daemon/gguf/synth.js";
import { benchAdapters } from "./adapters.js";
import { benchBatch } from "./batch.js";
import { benchCluster } from "./cluster.js";
import { benchFoundation } from "./foundation.js";
import { DEFAULT_KERNEL_BENCH, benchKernels } from "./kernels.js";
import { DEFAULT_RESUME_POINTS, benchResume } from "./resume.js";
import { DEFAULT_SPLIT_BENCH, benchSplit } from "./split.js";
import { benchTransfer } from "./transfer.js";
import { runTunnelBench } from "./tunnel.js";

async function ensureBenchModel(preset: SynthPreset): Promise<string> {
  const dir = path.join(os.tmpdir(), "hearth-bench-models");
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${preset}-seed1-text.gguf`);
  if (!fs.existsSync(file)) {
    process.stderr.write(`generating the ${preset} synthetic model at ${file} ...\n`);
    const started = performance.now();
    // Text-only output: every generated token is one visible streamed chunk, so both sides
    // time the same events, and a random model cannot stop early on a control token.
    await writeSyntheticModel(file, { ...SYNTH_PRESETS[preset], seed: 1, textOnlyOutput: true });
    process.stderr.write(`generated in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
  }
  return file;
}

function formatValue(key: string, value: number): string {
  if (key.startsWith("ratio.")) return `${value.toFixed(3)}x`;
  if (Number.isInteger(value)) return String(value);
  return value.toFixed(2);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      preset: { type: "string", default: "1b" },
      threads: { type: "string", default: String(Math.min(os.availableParallelism(), 4)) },
      repeats: { type: "string", default: "3" },
      only: { type: "string" },
      json: { type: "boolean", default: false },
    },
  });
  if (!Object.hasOwn(SYNTH_PRESETS, values.preset)) throw new Error(`unknown preset ${values.preset}; use one of ${Object.keys(SYNTH_PRESETS).join(", ")}`);
  const suites = ["foundation", "adapters", "kernels", "resume", "cluster", "batch", "transfer", "tunnel", "split"];
  if (values.only !== undefined && !suites.includes(values.only)) throw new Error(`unknown suite ${values.only}; use one of ${suites.join(", ")}`);
  const wanted = (suite: string): boolean => values.only === undefined || values.only === suite;
  const preset = values.preset as SynthPreset;
  const results: Record<string, Record<string, number>> = {};
  if (wanted("foundation")) results["foundation"] = await benchFoundation({
    modelPath: await ensureBenchModel(preset),
    threads: Number(values.threads),
    parallelSlots: 4,
    contextSize: 2048,
    promptChars: 256,
    genTokens: 48,
    repeats: Number(values.repeats),
  });
  // Each API family's adapter against Chat Completions on one daemon, the same greedy answer streamed side by side.
  if (wanted("adapters")) results["adapters"] = await benchAdapters({ modelPath: await ensureBenchModel(preset), threads: Number(values.threads), genTokens: 48, repeats: Number(values.repeats) });
  // Repacked weights and flash attention on and off: the cost of exact answers (node-llama-cpp direct, one process per setting).
  if (wanted("kernels")) results["kernels"] = await benchKernels({ ...DEFAULT_KERNEL_BENCH, threads: Number(values.threads) });
  // Continuing a generation after 50, 200 and 1000 tokens: exact replay vs one-batch re-evaluation, in a real runner.
  if (wanted("resume")) results["resume"] = await benchResume({ modelPath: await ensureBenchModel(preset), threads: Number(values.threads), repeats: Math.min(Number(values.repeats), 2), generatedTokens: DEFAULT_RESUME_POINTS });
  // Real daemons in network namespaces (needs root); reports why and adds nothing without them.
  if (wanted("cluster")) results["cluster"] = await benchCluster();
  // Batch throughput on 1 vs 2 nodes, each daemon pinned to its own core (needs root and taskset).
  if (wanted("batch")) results["batch"] = await benchBatch();
  // The bench model crossing between two namespaces over the peer link vs raw TCP (needs root).
  if (wanted("transfer")) results["transfer"] = await benchTransfer({ modelPath: await ensureBenchModel(preset), repeats: Math.min(Number(values.repeats), 2) });
  // A tunnelled RPC round trip vs a direct one (real peer links, no model; taskset pins if present).
  if (wanted("tunnel")) results["tunnel"] = await runTunnelBench(2_000);
  // One model's layers over 2 nodes: Hearth vs bare llama.cpp RPC vs local, with delays, load times and link bytes (needs root, taskset, native parts).
  // `repeats` times each load; the speed rounds keep their own default (paired ratios need more of them).
  if (wanted("split")) results["split"] = await benchSplit({ ...DEFAULT_SPLIT_BENCH, modelPath: await ensureBenchModel(preset), repeats: Number(values.repeats) });
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ preset, threads: Number(values.threads), results }, null, 2)}\n`);
    return;
  }
  process.stdout.write(`Hearth benchmarks — model ${preset}, ${values.threads} threads\n`);
  for (const [suite, figures] of Object.entries(results)) {
    process.stdout.write(`\n${suite}\n`);
    for (const [key, value] of Object.entries(figures)) process.stdout.write(`  ${key.padEnd(34)} ${formatValue(key, value)}\n`);
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
  process.exit(1);
});
