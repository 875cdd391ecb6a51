/**
 * GET /health: readiness for supervisors and load balancers. Open without the API key;
 * 503 while the daemon is starting or shutting down.
 */

import type { Health } from "../../../protocol/api/health.js";
import type { RequestContext } from "../context.js";
import { sendJson } from "../responses.js";

export function handleHealth({ res, services }: RequestContext): Promise<void> {
  const ready = services.isReady();
  const body: Health = { status: ready ? "ok" : "unavailable" };
  sendJson(res, ready ? 200 : 503, body);
  return Promise.resolve();
}
