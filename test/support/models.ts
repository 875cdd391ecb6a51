/**
 * Synthetic models for tests, generated once per machine and shared by every test process.
 *
 * Files live in os.tmpdir()/hearth-test-models, named by a hash of the synth options and the
 * synth format version, so a change to either yields a new file instead of a stale one.
 * Concurrent callers each write a uniquely named temp file that the GGUF writer renames into
 * place; rename is atomic, so a reader never sees a half-written model and the loser of a
 * race simply replaces an identical file.
 */

import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { SCRIPTED_FORMAT_VERSION, writeScriptedModel, type ScriptedFamily } from "../../daemon/gguf/scriptedModel.js";
import { SYNTH_FORMAT_VERSION, SYNTH_PRESETS, writeSyntheticModel, type SynthOptions, type SynthPreset } from "../../daemon/gguf/synth.js";

export const TEST_MODELS_DIR = path.join(os.tmpdir(), "hearth-test-models");

/** Options accepted by ensureModel: a preset name, or a preset plus overrides. */
export type TestModelSpec = SynthPreset | (Partial<SynthOptions> & { preset?: SynthPreset });

function resolveSpec(spec: TestModelSpec): SynthOptions {
  const { preset = "tiny", ...overrides } = typeof spec === "string" ? { preset: spec } : spec;
  return { ...SYNTH_PRESETS[preset], seed: 1, ...overrides };
}

function cacheKey(options: SynthOptions): string {
  // Sorted keys so equal options always hash equally, whatever order they were spelled in.
  const canonical = JSON.stringify(Object.fromEntries(Object.entries(options).sort(([a], [b]) => a.localeCompare(b))));
  return createHash("sha256").update(`${SYNTH_FORMAT_VERSION}\n${canonical}`).digest("hex").slice(0, 12);
}

const inFlight = new Map<string, Promise<string>>();

/** Path of a cached synthetic model matching `spec`, generating it on first use. */
export async function ensureModel(spec: TestModelSpec = "tiny", baseName = typeof spec === "string" ? spec : (spec.preset ?? "custom")): Promise<string> {
  const options = resolveSpec(spec);
  const target = path.join(TEST_MODELS_DIR, `${baseName}-${cacheKey(options)}.gguf`);
  let pending = inFlight.get(target);
  if (!pending) {
    pending = generateOnce(target, options);
    inFlight.set(target, pending);
    pending.catch(() => inFlight.delete(target));
  }
  return pending;
}

async function generateOnce(target: string, options: SynthOptions): Promise<string> {
  try {
    await fs.promises.access(target, fs.constants.R_OK);
    return target;
  } catch {
    // Not there yet: generate below.
  }
  await fs.promises.mkdir(TEST_MODELS_DIR, { recursive: true });
  // The writer renames a finished temp file into place, so racing processes are safe.
  await writeSyntheticModel(target, options);
  return target;
}

/** The tiny F32 model (seed 1) most tests use. */
export function ensureTinyModel(): Promise<string> {
  return ensureModel("tiny");
}

/**
 * Path of a cached scripted model (daemon/gguf/scriptedModel.ts) whose greedy answer to any
 * conversation is `script`; `name` becomes the file's (and so the model id's) prefix. `layers`
 * above 1 adds pass-through blocks in front of the scripted one, so the model can be split;
 * `family` is the chat template family (daemon/gguf/scriptedModel.ts).
 */
export async function ensureScriptedModel(name: string, script: string, layers = 1, family: ScriptedFamily = "qwen3"): Promise<string> {
  // qwen3 keeps the key it had before families existed, so its cached files stay valid.
  const familyLine = family === "qwen3" ? "" : `family=${family}\n`;
  const key = createHash("sha256").update(`${SCRIPTED_FORMAT_VERSION}\n${layers}\n${familyLine}${script}`).digest("hex").slice(0, 12);
  const target = path.join(TEST_MODELS_DIR, `${name}-${key}.gguf`);
  let pending = inFlight.get(target);
  if (!pending) {
    pending = (async () => {
      if (fs.existsSync(target)) return target;
      await fs.promises.mkdir(TEST_MODELS_DIR, { recursive: true });
      await writeScriptedModel(target, { script, name, layers, family });
      return target;
    })();
    inFlight.set(target, pending);
    pending.catch(() => inFlight.delete(target));
  }
  return pending;
}
