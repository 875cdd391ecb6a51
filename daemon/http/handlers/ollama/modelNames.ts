/**
 * Which Hearth model an Ollama model name means (protocol/ollama/names.ts: `tiny:latest` is
 * `tiny`), resolved cluster-wide, with Ollama's wording when it means none.
 */

import { errors, HearthError } from "../../../../protocol/errors.js";
import { modelNotFoundMessage, nameCandidates } from "../../../../protocol/ollama/names.js";
import type { InferenceEngine, ModelInfo } from "../../../engine/types.js";
import type { RequestContext } from "../../context.js";
import type { LocalModelsSource } from "../../../models/LocalModelAdmin.js";

export interface ResolvedOllamaModel {
  /** The Hearth name that resolved (an id or alias), to put in the internal job. */
  name: string;
  info: ModelInfo;
}

export function notFound(name: string): HearthError {
  return errors.modelNotFound(modelNotFoundMessage(name), { param: "model" });
}

function isNotFound(error: unknown): boolean {
  return error instanceof HearthError && error.code === "HEARTH_MODEL_NOT_FOUND";
}

/** Throws HEARTH_MODEL_NOT_FOUND as "model 'x' not found". */
export async function resolveOllamaModel(engine: InferenceEngine, name: string): Promise<ResolvedOllamaModel> {
  for (const candidate of nameCandidates(name)) {
    try {
      return { name: candidate, info: await engine.resolveModel(candidate) };
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }
  throw notFound(name);
}

/** This node's id for the model an Ollama name means, when this node holds its file. */
export async function localModelId(localModels: LocalModelsSource, name: string): Promise<string | undefined> {
  for (const candidate of nameCandidates(name)) {
    const id = await localModels.localId(candidate);
    if (id !== undefined) return id;
  }
  return undefined;
}

export function localModelsOf(context: RequestContext): LocalModelsSource {
  const localModels = context.services.localModels;
  if (localModels === undefined) throw errors.notFound("This API runs without a daemon around it, so it cannot manage models.");
  return localModels;
}
