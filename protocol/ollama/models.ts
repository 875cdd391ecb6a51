/**
 * Ollama's views of models: GET /api/tags (what is here), POST /api/show (one model in
 * detail), GET /api/ps (what is loaded), built from what Hearth knows of a model.
 *
 *   details       {parent_model: "", format: "gguf", family, families, parameter_size, quantization_level}
 *   tags entry    {name, model, modified_at, size, digest, details}
 *   ps entry      tags entry + {expires_at, size_vram, context_length}
 *
 * `family` is the GGUF architecture, `parameter_size` Ollama's rounding of the parameter count
 * ("8.0B", "494.03M"), `quantization_level` the tensor type holding most parameters. `digest` is
 * the file's sha256 once it is known (a cluster member hashes its files), else "". A model only
 * a peer holds has no GGUF facts here: its details are empty strings.
 *
 * Pure: no I/O.
 */

import type { LoadedModelStats } from "../api/status.js";
import { ollamaName } from "./names.js";

/** What these views need of a model (the engine's ModelInfo has it all). */
export interface OllamaModelFacts {
  id: string;
  aliases: readonly string[];
  sizeBytes: number;
  /** Seconds since the epoch (0: unknown). */
  createdAt: number;
  architecture?: string;
  parameterCount?: number;
  quantization?: string;
  contextLength?: number;
  embeddingLength?: number;
  layerCount?: number;
  cluster?: { sha256: string | null };
}

export interface OllamaModelDetails {
  parent_model: string;
  format: "gguf";
  family: string;
  families: string[] | null;
  parameter_size: string;
  quantization_level: string;
}

export interface OllamaTagsEntry {
  name: string;
  model: string;
  modified_at: string;
  size: number;
  digest: string;
  details: OllamaModelDetails;
}

export interface OllamaPsEntry extends OllamaTagsEntry {
  expires_at: string;
  size_vram: number;
  context_length: number;
}

/** Ollama's human form of a parameter count: "8.0B", "494.03M", "135K", "42". */
export function humanParameterCount(count: number): string {
  const format = (value: number, decimals: number, unit: string): string => (Number.isInteger(value) ? `${value}${unit}` : `${value.toFixed(decimals)}${unit}`);
  if (count >= 1e9) return format(count / 1e9, 1, "B");
  if (count >= 1e6) return format(count / 1e6, 2, "M");
  if (count >= 1e3) return `${Math.round(count / 1e3)}K`;
  return String(count);
}

export function detailsOf(model: OllamaModelFacts): OllamaModelDetails {
  const family = model.architecture ?? "";
  return {
    parent_model: "",
    format: "gguf",
    family,
    families: family === "" ? null : [family],
    parameter_size: model.parameterCount === undefined || model.parameterCount === 0 ? "" : humanParameterCount(model.parameterCount),
    quantization_level: model.quantization ?? "",
  };
}

export function digestOf(model: OllamaModelFacts): string {
  return model.cluster?.sha256 ?? "";
}

function isoSeconds(seconds: number): string {
  return new Date(seconds * 1000).toISOString();
}

/** One entry per name a model answers to: its id, then each alias (a copy made with /api/copy is one). */
export function tagsEntries(model: OllamaModelFacts): OllamaTagsEntry[] {
  const details = detailsOf(model);
  return [model.id, ...model.aliases].map((name) => ({
    name: ollamaName(name),
    model: ollamaName(name),
    modified_at: isoSeconds(model.createdAt),
    size: model.sizeBytes,
    digest: digestOf(model),
    details,
  }));
}

/** The far future Ollama shows for a model kept loaded for ever. */
const FOREVER_ISO = "2318-01-01T00:00:00.000Z";

export function psEntry(model: OllamaModelFacts, loaded: Pick<LoadedModelStats, "expiresAt">, contextLength: number): OllamaPsEntry {
  const [entry] = tagsEntries({ ...model, aliases: [] });
  const expiresAt = loaded.expiresAt === undefined || loaded.expiresAt === null ? FOREVER_ISO : new Date(loaded.expiresAt).toISOString();
  // Hearth does not measure how much of a model sits in GPU memory.
  return { ...entry!, expires_at: expiresAt, size_vram: 0, context_length: contextLength };
}

/** Capabilities Ollama clients look for, from what the GGUF says. */
export function capabilitiesOf(model: OllamaModelFacts, gguf: { chatTemplate: string | undefined; infill: boolean } | undefined): string[] {
  if (model.architecture !== undefined && EMBEDDING_ONLY_ARCHITECTURES.has(model.architecture)) return ["embedding"];
  const capabilities = ["completion"];
  const template = gguf?.chatTemplate ?? "";
  if (template.includes("tools")) capabilities.push("tools");
  if (template.includes("<think>") || template.includes("enable_thinking") || template.includes("reasoning_content")) capabilities.push("thinking");
  if (gguf?.infill === true) capabilities.push("insert");
  return capabilities;
}

/** Encoder architectures llama.cpp runs for embeddings only. */
const EMBEDDING_ONLY_ARCHITECTURES: ReadonlySet<string> = new Set(["bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "t5encoder", "modern-bert", "neo-bert"]);

export interface OllamaShowAnswer {
  license: string;
  modelfile: string;
  parameters: string;
  template: string;
  details: OllamaModelDetails;
  model_info: Record<string, string | number>;
  capabilities: string[];
  modified_at: string;
}

/**
 * /api/show. `template` is the GGUF's own chat template (Jinja, which Hearth renders), not an
 * Ollama Go template; `parameters` names the context each request gets (`num_ctx`), which is
 * Hearth's `limits.context_size`, not the model's training context (in `model_info`).
 */
export function buildShowAnswer(model: OllamaModelFacts, gguf: { chatTemplate: string | undefined; infill: boolean } | undefined, contextSize: number): OllamaShowAnswer {
  const info: Record<string, string | number> = {};
  const arch = model.architecture;
  if (arch !== undefined) info["general.architecture"] = arch;
  if (model.parameterCount !== undefined) info["general.parameter_count"] = model.parameterCount;
  if (arch !== undefined) {
    if (model.contextLength !== undefined) info[`${arch}.context_length`] = model.contextLength;
    if (model.embeddingLength !== undefined) info[`${arch}.embedding_length`] = model.embeddingLength;
    if (model.layerCount !== undefined) info[`${arch}.block_count`] = model.layerCount;
  }
  const template = gguf?.chatTemplate ?? "";
  return {
    license: "",
    modelfile: `# Served by Hearth; Hearth has no Modelfiles.\nFROM ${model.id}\nPARAMETER num_ctx ${contextSize}\n`,
    parameters: `num_ctx                        ${contextSize}`,
    template,
    details: detailsOf(model),
    model_info: info,
    capabilities: capabilitiesOf(model, gguf),
    modified_at: isoSeconds(model.createdAt),
  };
}
