/**
 * `hearth synth`: the presets, the quant types and the writer of synthetic random-weight
 * models (daemon/gguf/synth.ts), for the CLI to build a spec from flags and write it.
 */

import fs from "node:fs";
import { errors } from "../../protocol/errors.js";
import { SCRIPTED_FAMILIES, isScriptedFamily, writeScriptedModel, type ScriptedFamily } from "../gguf/scriptedModel.js";
import { SYNTH_PRESETS, SYNTH_QUANTS, validateSynthOptions, writeSyntheticModel, type SynthCandidate, type SynthCheckedOption, type SynthResult } from "../gguf/synth.js";

export const synth = {
  presets: SYNTH_PRESETS,
  quants: SYNTH_QUANTS,

  validate(spec: SynthCandidate, label: (field: SynthCheckedOption) => string): void {
    validateSynthOptions(spec, label);
  },

  write(filePath: string, spec: SynthCandidate, onProgress?: (writtenBytes: number, totalBytes: number) => void): Promise<SynthResult> {
    validateSynthOptions(spec);
    return writeSyntheticModel(filePath, spec, onProgress === undefined ? {} : { onProgress });
  },

  async writeScripted(filePath: string, script: string, options: { layers?: number; family?: string } = {}): Promise<{ family: ScriptedFamily; vocabSize: number; rules: number; generatedTokens: number; fileBytes: number }> {
    const { layers, family = SCRIPTED_FAMILIES[0] } = options;
    if (!isScriptedFamily(family)) throw errors.cliUsage(`the template family must be one of ${SCRIPTED_FAMILIES.join(", ")} (got ${JSON.stringify(family)})`, { param: "family" });
    const plan = await writeScriptedModel(filePath, { script, family, ...(layers === undefined ? {} : { layers }) });
    return { family, vocabSize: plan.vocabSize, rules: plan.rules, generatedTokens: plan.generated.length, fileBytes: (await fs.promises.stat(filePath)).size };
  },
};
