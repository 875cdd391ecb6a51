/**
 * GET /hearth/v1/plan?model=ID: how this node would place the model now (docs/splitting.md),
 * without loading anything: `hearth plan`. Optional `nodes` and `layers` (comma-separated,
 * same meaning as the `hearth.placement` request extension) evaluate a forced placement.
 * A refusal is not an error here: the report carries it with its numbers. The shape is
 * PlanReport of protocol/api/plan.ts.
 */

import type { PlanReport } from "../../../protocol/api/plan.js";
import { errors } from "../../../protocol/errors.js";
import { parsePlacement } from "../../../protocol/openai/hearthExtension.js";
import type { RequestContext } from "../context.js";
import { sendJson } from "../responses.js";

const MAX_MODEL_NAME = 256;

export async function handlePlan({ req, res, services }: RequestContext): Promise<void> {
  const plans = services.plans;
  if (plans === undefined) throw errors.notFound("This API runs without a cluster router.");
  const query = new URL(req.url ?? "/", "http://hearth.invalid").searchParams;
  const model = query.get("model");
  if (model === null || model === "" || model.length > MAX_MODEL_NAME) {
    throw errors.invalidRequest(`Query parameter 'model' is required (at most ${MAX_MODEL_NAME} characters).`, { param: "model" });
  }
  const nodes = query.get("nodes");
  const layers = query.get("layers");
  const placement =
    nodes === null && layers === null
      ? undefined
      : parsePlacement({ nodes: (nodes ?? "").split(",").filter((node) => node !== ""), layers: (layers ?? "").split(",").filter((count) => count !== "").map(Number) }, "placement");
  const report: PlanReport = await plans.planReport(model, placement);
  sendJson(res, 200, report);
}
