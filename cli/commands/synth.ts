/**
 * `hearth synth <out>`: writes a synthetic random-weight llama model (LocalMachine.synth,
 * cli/localMachine.ts), or with `--script <file>` a scripted model whose greedy answer to any
 * conversation is that file's text, in the chat template family `--template` names: qwen3
 * (thoughts in `<think>`, tool calls in `<tool_call>` tags) or llama3 (Llama 3.1, tool calls as
 * `<function=name>{...}</function><|eom_id|>`).
 *
 * Nothing can be downloaded on test machines, so this is how a model gets into a models dir
 * there. A preset gives the shape; explicit flags override single fields of it. The file
 * appears atomically, so a running daemon never lists half of it.
 */

import fs from "node:fs";
import path from "node:path";
import type { Command } from "commander";
import { errors, HearthError } from "../../protocol/errors.js";
import type { LocalMachine, SynthSpec, SyntheticModels } from "../localMachine.js";
import { formatBytes, formatCount, printJson } from "../output.js";

/** Files at least this big get a progress line on a terminal; smaller ones finish too fast to need it. */
const PROGRESS_MIN_BYTES = 64 * 1024 * 1024;
const PROGRESS_REDRAW_MS = 200;
const DEFAULT_SEED = 1;

interface SynthCommandOptions {
  preset: string;
  layers?: string;
  embd?: string;
  ff?: string;
  heads?: string;
  kvHeads?: string;
  ctx?: string;
  quant?: string;
  seed?: string;
  textOnly?: boolean;
  script?: string;
  template?: string;
  json?: boolean;
}

/** Each integer flag, the SynthSpec field it sets, and its spelling for messages. */
const INTEGER_FLAGS = [
  ["layers", "layers", "--layers"],
  ["embd", "embd", "--embd"],
  ["ff", "ff", "--ff"],
  ["heads", "heads", "--heads"],
  ["kvHeads", "kvHeads", "--kv-heads"],
  ["ctx", "contextLength", "--ctx"],
  ["seed", "seed", "--seed"],
] as const satisfies readonly (readonly [keyof SynthCommandOptions, keyof SynthSpec, string])[];

const FLAG_OF: Partial<Record<keyof SynthSpec, string>> = Object.fromEntries(INTEGER_FLAGS.map(([, key, flag]) => [key, flag]));
FLAG_OF.quant = "--quant";

export function registerSynthCommand(program: Command, machine: LocalMachine): void {
  const { presets, quants } = machine.synth;
  program
    .command("synth")
    .description("write a synthetic random-weight GGUF model (for tests and benchmarks)")
    .argument("<out>", "output file, ending in .gguf")
    .option("--preset <name>", `shape preset: ${Object.keys(presets).join(", ")}`, "tiny")
    .option("--layers <n>", "number of transformer blocks")
    .option("--embd <n>", "embedding length")
    .option("--ff <n>", "feed-forward length")
    .option("--heads <n>", "attention heads")
    .option("--kv-heads <n>", "key/value heads (grouped-query attention)")
    .option("--ctx <n>", "training context length written to the metadata")
    .option("--quant <type>", `weight type: ${quants.join(", ")}`)
    .option("--seed <n>", `random seed (same seed, same file; default ${DEFAULT_SEED})`)
    .option("--text-only", "greedy output is printable text only (zeroes other tokens' output rows)")
    .option("--script <file>", "write a scripted model that answers every conversation with this file's text (no shape flags but --layers)")
    .option("--template <family>", "chat template family of a scripted model: qwen3 (default; thoughts, Hermes tool calls) or llama3 (Llama 3.1)")
    .option("--json", "print one JSON object for scripts")
    .action((out: string, flags: SynthCommandOptions) => runSynth(machine.synth, out, flags));
}

/** Strict decimal integer; anything else is a usage error naming the flag. */
function parseIntegerFlag(text: string, flag: string, param: keyof SynthSpec): number {
  const value = Number(text);
  if (!/^\s*\d+\s*$/.test(text) || !Number.isSafeInteger(value)) {
    throw errors.cliUsage(`${flag} must be a non-negative integer (got ${JSON.stringify(text)})`, { param });
  }
  return value;
}

export function synthOptionsFromFlags(flags: SynthCommandOptions, synth: Pick<SyntheticModels, "presets" | "quants" | "validate">): { preset: string; options: SynthSpec } {
  const preset = Object.hasOwn(synth.presets, flags.preset) ? synth.presets[flags.preset] : undefined;
  if (preset === undefined) {
    throw errors.cliUsage(`--preset must be one of ${Object.keys(synth.presets).join(", ")} (got ${JSON.stringify(flags.preset)})`, { param: "preset" });
  }
  const options: SynthSpec = { ...preset, seed: DEFAULT_SEED };
  for (const [flagKey, key, flag] of INTEGER_FLAGS) {
    const text = flags[flagKey];
    if (text !== undefined) options[key] = parseIntegerFlag(text, flag, key);
  }
  if (flags.quant !== undefined) {
    const quant = flags.quant.toLowerCase();
    if (!synth.quants.includes(quant)) throw errors.cliUsage(`--quant must be one of ${synth.quants.join(", ")} (got ${JSON.stringify(flags.quant)})`, { param: "quant" });
    options.quant = quant;
  }
  if (flags.textOnly === true) options.textOnlyOutput = true;
  synth.validate(options, (key) => FLAG_OF[key] ?? key);
  return { preset: flags.preset, options };
}

function progressReporter(): ((written: number, total: number) => void) | undefined {
  if (!process.stderr.isTTY) return undefined;
  let lastDraw = 0;
  return (written, total) => {
    if (total < PROGRESS_MIN_BYTES) return;
    const now = Date.now();
    if (written < total && now - lastDraw < PROGRESS_REDRAW_MS) return;
    lastDraw = now;
    const percent = Math.floor((written / total) * 100);
    process.stderr.write(`\rwriting ${percent}% (${formatBytes(written)} of ${formatBytes(total)})\x1b[K`);
    if (written >= total) process.stderr.write("\r\x1b[K");
  };
}

/** The shape flags a scripted model has no use for (its shape follows from the script; --layers adds pass-through blocks). */
const SHAPE_FLAGS = [...INTEGER_FLAGS.filter(([flagKey]) => flagKey !== "layers").map(([flagKey, , flag]) => [flagKey, flag] as const), ["quant", "--quant"], ["textOnly", "--text-only"]] as const;

async function outputTarget(out: string): Promise<string> {
  if (!out.toLowerCase().endsWith(".gguf")) {
    throw errors.cliUsage(`the output file must end in .gguf (got ${JSON.stringify(out)})`, { param: "out" });
  }
  const target = path.resolve(out);
  // No mkdir -p: Node 20's recursive mkdir never settles under some pseudo-filesystems (/proc),
  // and a typo in the directory is better reported than silently created.
  const directory = path.dirname(target);
  const isDirectory = await fs.promises.stat(directory).then((stat) => stat.isDirectory(), () => false);
  if (!isDirectory) throw errors.cliUsage(`directory ${directory} does not exist`, { param: "out" });
  return target;
}

async function runScriptedSynth(synth: SyntheticModels, out: string, scriptFile: string, flags: SynthCommandOptions): Promise<void> {
  const shaped = SHAPE_FLAGS.find(([flagKey]) => flags[flagKey] !== undefined);
  if (shaped !== undefined) throw errors.cliUsage(`--script cannot be combined with ${shaped[1]}: a scripted model's shape follows from its script`, { param: "script" });
  const script = await fs.promises.readFile(scriptFile, "utf8").catch((error: unknown) => {
    throw errors.cliUsage(`cannot read the script ${scriptFile}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, { param: "script" });
  });
  const target = await outputTarget(out);
  const layers = flags.layers === undefined ? undefined : parseIntegerFlag(flags.layers, "--layers", "layers");
  // The writer knows the families; an unknown one is its usage error, before anything is written.
  const result = await synth.writeScripted(target, script, { ...(layers === undefined ? {} : { layers }), ...(flags.template === undefined ? {} : { family: flags.template }) });
  if (flags.json) {
    printJson({ path: target, script: path.resolve(scriptFile), ...result });
    return;
  }
  process.stdout.write(`wrote ${target}\n  scripted (${result.family} template): ${result.generatedTokens} tokens answered, ${result.rules} rules, vocabulary ${result.vocabSize}, ${formatBytes(result.fileBytes)}\n`);
}

async function runSynth(synth: SyntheticModels, out: string, flags: SynthCommandOptions): Promise<void> {
  if (flags.script !== undefined) return runScriptedSynth(synth, out, flags.script, flags);
  if (flags.template !== undefined) throw errors.cliUsage("--template applies to a scripted model only (with --script)", { param: "template" });
  const { preset, options } = synthOptionsFromFlags(flags, synth);
  const target = await outputTarget(out);
  const started = performance.now();
  const onProgress = progressReporter();
  let result;
  try {
    result = await synth.write(target, options, onProgress);
  } catch (error) {
    if (error instanceof HearthError) throw error;
    throw errors.internal(`cannot write ${target}: ${(error as Error).message}`, { cause: error });
  }
  const seconds = (performance.now() - started) / 1000;
  if (flags.json) {
    printJson({ path: target, preset, options, parameterCount: result.parameterCount, tensorCount: result.tensorCount, sizeBytes: result.fileBytes, seconds });
    return;
  }
  const { layers, embd, ff, heads, kvHeads, contextLength, quant, seed } = options;
  process.stdout.write(
    `wrote ${target}\n` +
      `  ${preset} preset: ${quant}, ${layers} layers, embd ${embd}, ff ${ff}, heads ${heads}/${kvHeads}, ctx ${contextLength}, seed ${seed}\n` +
      `  ${formatCount(result.parameterCount)} parameters, ${formatBytes(result.fileBytes)}, ${seconds.toFixed(2)} s\n`,
  );
}
