/**
 * GET /v1/models and GET /v1/models/{id}.
 */

import { buildModelList, buildModelObject } from "../../../protocol/openai/modelsResponse.js";
import type { RequestContext } from "../context.js";
import { sendJson } from "../responses.js";

export async function handleListModels({ res, services }: RequestContext): Promise<void> {
  sendJson(res, 200, buildModelList(await services.engine.listModels()));
}

export async function handleGetModel({ res, services, params }: RequestContext): Promise<void> {
  // The router has percent-decoded the id; the engine throws HEARTH_MODEL_NOT_FOUND.
  const model = await services.engine.resolveModel(params["id"] ?? "");
  sendJson(res, 200, buildModelObject(model));
}
