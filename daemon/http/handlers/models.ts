/**
 * GET /v1/models and GET /v1/models/{id}, in OpenAI's shape, or in Anthropic's when the
 * request carries `anthropic-version` (apiFamily.ts): one cluster-wide list either way.
 */

import { buildAnthropicModel, buildAnthropicModelList, parseModelPageQuery } from "../../../protocol/anthropic/modelsResponse.js";
import { buildModelList, buildModelObject } from "../../../protocol/openai/modelsResponse.js";
import type { RequestContext } from "../context.js";
import { sendJson } from "../responses.js";

export async function handleListModels({ req, res, services, family }: RequestContext): Promise<void> {
  if (family === "anthropic") {
    // The query is checked before the list is gathered, so a bad one costs nothing.
    const page = parseModelPageQuery(new URL(req.url ?? "/", "http://hearth.invalid").searchParams);
    sendJson(res, 200, buildAnthropicModelList(await services.engine.listModels(), page));
    return;
  }
  sendJson(res, 200, buildModelList(await services.engine.listModels()));
}

export async function handleGetModel({ res, services, params, family }: RequestContext): Promise<void> {
  // The router has percent-decoded the id; the engine throws HEARTH_MODEL_NOT_FOUND.
  const model = await services.engine.resolveModel(params["id"] ?? "");
  sendJson(res, 200, family === "anthropic" ? buildAnthropicModel(model) : buildModelObject(model));
}
