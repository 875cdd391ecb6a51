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

const run = promisify(execFile);
const CHILD = path.join(import.meta.dirname, "fixtures", "kernels-child.js");

export interface KernelBenchOptions {
  threads: number;
  repeats: number;
  promptTokens: number;
  genTokens: number;
}

export const DEFAULT_KERNEL_BENCH: Omit<KernelBenchOptions, "threads"> = { repeats: 3, promptTokens: 256, genTokens: 64 };

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
  for (const quant of QUANTS) {
    const modelPath = await ensureModel(quant);
    const settings = { default: [true, true], exact: [false, false], repackOffOnly: [false, true], flashOffOnly: [true, false] } as const;
    const speeds: Record<string, Speeds> = {};
    // A model file just written is not yet in the page cache: the first load would be slower.
    await measure(modelPath, true, true, { ...options, repeats: 1 }, shim);
    for (const [name, [repack, flash]] of Object.entries(settings)) speeds[name] = await measure(modelPath, repack, flash, options, shim);
    for (const [name, value] of Object.entries(speeds)) {
      figures[`${quant}.${name}.prompt_tok_s`] = value.promptTokensPerSecond;
      figures[`${quant}.${name}.gen_tok_s`] = value.genTokensPerSecond;
    }
    figures[`ratio.${quant}.exact_vs_default.prompt`] = speeds["exact"]!.promptTokensPerSecond / speeds["default"]!.promptTokensPerSecond;
    figures[`ratio.${quant}.exact_vs_default.gen`] = speeds["exact"]!.genTokensPerSecond / speeds["default"]!.genTokensPerSecond;
    figures[`ratio.${quant}.repack_off.prompt`] = speeds["repackOffOnly"]!.promptTokensPerSecond / speeds["default"]!.promptTokensPerSecond;
    figures[`ratio.${quant}.flash_off.prompt`] = speeds["flashOffOnly"]!.promptTokensPerSecond / speeds["default"]!.promptTokensPerSecond;
    figures[`ratio.${quant}.repack_off.gen`] = speeds["repackOffOnly"]!.genTokensPerSecond / speeds["default"]!.genTokensPerSecond;
    figures[`ratio.${quant}.flash_off.gen`] = speeds["flashOffOnly"]!.genTokensPerSecond / speeds["default"]!.genTokensPerSecond;
  }
  return figures;
}
