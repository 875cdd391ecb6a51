/**
 * What Ollama clients ask about models and the server:
 *   GET  /api/tags     every model of the cluster (like /v1/models), one entry per name (id and aliases)
 *   POST /api/show     one model: details, GGUF facts, chat template, capabilities
 *   GET  /api/ps       the models loaded on this node, with when keep-alive unloads them
 *   GET  /api/version  the Ollama API version Hearth speaks (OLLAMA_API_VERSION), and Hearth's own
 */

import { buildShowAnswer, psEntry, tagsEntries } from "../../../../protocol/ollama/models.js";
import { parseModelRequest } from "../../../../protocol/ollama/manage.js";
import type { ModelInfo } from "../../../engine/types.js";
import type { RequestContext } from "../../context.js";
import { sendJson } from "../../responses.js";
import { localModelId, resolveOllamaModel } from "./modelNames.js";
import { readOllamaBody } from "./requestBody.js";

/**
 * Reported as `version`. Clients gate features on it (Continue, Raycast and VS Code's Copilot
 * want at least 0.6.4 or 0.6.5); this is the Ollama release whose API Hearth follows (`think`,
 * `message.thinking`, tool calls streamed in chunks, `tool_name`, and ids on tool calls, which
 * came in 0.12.10). Hearth's own version is `hearth`.
 */
export const OLLAMA_API_VERSION = "0.12.10";

export async function handleOllamaTags(context: RequestContext): Promise<void> {
  const models = await context.services.engine.listModels();
  sendJson(context.res, 200, { models: models.flatMap((model) => tagsEntries(model)) });
}

export async function handleOllamaShow(context: RequestContext): Promise<void> {
  const { model } = parseModelRequest(await readOllamaBody(context));
  const resolved = await resolveOllamaModel(context.services.engine, model);
  const localModels = context.services.localModels;
  const localId = localModels === undefined ? undefined : await localModelId(localModels, resolved.name);
  const gguf = localId === undefined ? undefined : await localModels?.details(localId);
  sendJson(context.res, 200, buildShowAnswer(resolved.info, gguf, context.services.config.limits.contextSize));
}

export async function handleOllamaPs(context: RequestContext): Promise<void> {
  const { engine, config } = context.services;
  const models = await engine.listModels();
  const seen = new Set<string>();
  const entries = [];
  for (const loaded of engine.stats().loaded) {
    if (seen.has(loaded.modelId)) continue;
    seen.add(loaded.modelId);
    const info: ModelInfo = models.find((model) => model.id === loaded.modelId) ?? { id: loaded.modelId, aliases: [], sizeBytes: 0, createdAt: 0 };
    entries.push(psEntry(info, loaded, config.limits.contextSize));
  }
  sendJson(context.res, 200, { models: entries });
}

export function handleOllamaVersion(context: RequestContext): Promise<void> {
  sendJson(context.res, 200, { version: OLLAMA_API_VERSION, hearth: context.services.version });
  return Promise.resolve();
}
