/**
 * POST /api/copy and DELETE /api/delete, on this node's names for its models.
 *
 * Copy makes `destination` (without `:latest`) a stored alias of the model `source` names on
 * this node (daemon/models/AliasStore.ts), replacing an alias of that name; it never copies a
 * file. Delete removes a stored alias, or the model's file when it sits directly in the models
 * dir and no alias names it (LocalModelAdmin.remove). Both answer 200 with an empty body, as
 * Ollama does; a name that means nothing here is 404 "model 'x' not found".
 */

import { errors } from "../../../../protocol/errors.js";
import { parseCopyRequest, parseModelRequest } from "../../../../protocol/ollama/manage.js";
import { canonicalName, nameCandidates } from "../../../../protocol/ollama/names.js";
import type { RequestContext } from "../../context.js";
import { sendText } from "../../responses.js";
import { localModelId, localModelsOf, notFound, resolveOllamaModel } from "./modelNames.js";
import { readOllamaBody } from "./requestBody.js";

export async function handleOllamaCopy(context: RequestContext): Promise<void> {
  const localModels = localModelsOf(context);
  const { source, destination } = parseCopyRequest(await readOllamaBody(context));
  const resolved = await resolveOllamaModel(context.services.engine, source);
  const modelId = await localModelId(localModels, resolved.name);
  if (modelId === undefined) {
    throw errors.modelNotFound(`model '${source.slice(0, 200)}' is not on this node, so it cannot be copied here; pull it first (POST /api/pull)`, { param: "source" });
  }
  await localModels.createAlias(canonicalName(destination), modelId);
  sendText(context.res, 200, "", "text/plain; charset=utf-8");
}

export async function handleOllamaDelete(context: RequestContext): Promise<void> {
  const localModels = localModelsOf(context);
  const { model } = parseModelRequest(await readOllamaBody(context));
  for (const candidate of nameCandidates(model)) {
    if ((await localModels.remove(candidate)) !== undefined) {
      sendText(context.res, 200, "", "text/plain; charset=utf-8");
      return;
    }
  }
  throw notFound(model);
}
