/**
 * What exact answers cost on one machine (scheduler/exactDecoding.ts): prompt and generation
 * speed of node-llama-cpp called directly with the CPU backend's repacked weights on and off
 * (HEARTH_CPU_REPACK through the shim, as Hearth's runners load it) and flash attention on and
 * off, for every quantization the synthetic writer makes, all measured side by side in one run.
 * rpc-server never repacks, so "repack off" is also what a split's peers compute with.
 */

import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { writeSyntheticModel, type SynthOptions } from "../../daemon/gguf/synth.js";
import { locateNativeParts, NATIVE_ENV } from "../../daemon/native/nativeParts.js";
import { median } from "./stats.js";

const run = promisify(execFile);
const CHILD = path.join(import.meta.dirname, "fixtures", "kernels-child.js");

export interface KernelBenchOptions {
  threads: number;
  repeats: number;
  promptTokens: number;
  genTokens: number;
}

/** `repeats`: rounds; each round runs every setting once, in its own process. */
export const DEFAULT_KERNEL_BENCH: Omit<KernelBenchOptions, "threads"> = { repeats: 5, promptTokens: 256, genTokens: 128 };
/** Prompt and generation runs inside one process; it reports the best of them (the rest is warm-up). */
const REPEATS_PER_PROCESS = 2;

/** Wide enough for llama.cpp's repacked and tiled kernels (multiples of their block sizes). */
const SHAPE: Partial<SynthOptions> = { layers: 8, embd: 1024, ff: 4096, heads: 8, kvHeads: 4, contextLength: 4096, seed: 7 };
const QUANTS = ["f16", "q8_0", "q4_0", "q4_k"] as const;

async function ensureModel(quant: (typeof QUANTS)[number]): Promise<string> {
  const dir = path.join(os.tmpdir(), "hearth-bench-models");
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `kernels-${quant}.gguf`);
  if (!fs.existsSync(file)) await writeSyntheticModel(file, { ...SHAPE, quant } as SynthOptions);
  return file;
}

interface Speeds {
  promptTokensPerSecond: number;
  genTokensPerSecond: number;
}

async function measure(modelPath: string, repack: boolean, flashAttention: boolean, options: KernelBenchOptions, shim: string): Promise<Speeds> {
  const env = { ...process.env, [NATIVE_ENV.backendPath]: shim, ...(repack ? {} : { HEARTH_CPU_REPACK: "off" }) };
  const { stdout } = await run(process.execPath, [CHILD, JSON.stringify({ modelPath, flashAttention, threads: options.threads, promptTokens: options.promptTokens, genTokens: options.genTokens, repeats: options.repeats })], { env, maxBuffer: 1 << 20 });
  return JSON.parse(stdout.trim().split("\n").at(-1)!) as Speeds;
}

export async function benchKernels(options: KernelBenchOptions): Promise<Record<string, number>> {
  let shim: string;
  try {
    shim = locateNativeParts().shimLibrary;
  } catch (error) {
    process.stderr.write(`kernels bench skipped: ${(error as Error).message}\n`);
    return {};
  }
  const figures: Record<string, number> = {};
  const settings = { default: [true, true], exact: [false, false], repackOffOnly: [false, true], flashOffOnly: [true, false] } as const;
  type Setting = keyof typeof settings;
  for (const quant of QUANTS) {
    const modelPath = await ensureModel(quant);
    // A model file just written is not yet in the page cache: the first load would be slower.
    await measure(modelPath, true, true, { ...options, repeats: 1 }, shim);
    // Rounds of one process per setting, back to back: this machine drifts over minutes, and a
    // ratio within a round cancels what the rounds share.
    const rounds: Array<Record<Setting, Speeds>> = [];
    for (let round = 0; round < options.repeats; round++) {
      const speeds = {} as Record<Setting, Speeds>;
      for (const [name, [repack, flash]] of Object.entries(settings) as Array<[Setting, readonly [boolean, boolean]]>) {
        speeds[name] = await measure(modelPath, repack, flash, { ...options, repeats: REPEATS_PER_PROCESS }, shim);
      }
      rounds.push(speeds);
    }
    for (const name of Object.keys(settings) as Setting[]) {
      figures[`${quant}.${name}.prompt_tok_s`] = median(rounds.map((round) => round[name].promptTokensPerSecond));
      figures[`${quant}.${name}.gen_tok_s`] = median(rounds.map((round) => round[name].genTokensPerSecond));
    }
    const ratio = (name: Setting, rate: keyof Speeds): number => median(rounds.map((round) => round[name][rate] / round.default[rate]));
    figures[`ratio.${quant}.exact_vs_default.prompt`] = ratio("exact", "promptTokensPerSecond");
    figures[`ratio.${quant}.exact_vs_default.gen`] = ratio("exact", "genTokensPerSecond");
    figures[`ratio.${quant}.repack_off.prompt`] = ratio("repackOffOnly", "promptTokensPerSecond");
    figures[`ratio.${quant}.flash_off.prompt`] = ratio("flashOffOnly", "promptTokensPerSecond");
    figures[`ratio.${quant}.repack_off.gen`] = ratio("repackOffOnly", "genTokensPerSecond");
    figures[`ratio.${quant}.flash_off.gen`] = ratio("flashOffOnly", "genTokensPerSecond");
  }
  return figures;
}
