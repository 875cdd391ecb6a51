/**
 * GET /health: readiness for supervisors and load balancers. Open without the API key;
 * 503 while the daemon is starting or shutting down.
 */

import type { RequestContext } from "../context.js";
import { sendJson } from "../responses.js";

export function handleHealth({ res, services }: RequestContext): Promise<void> {
  if (services.isReady()) sendJson(res, 200, { status: "ok" });
  else sendJson(res, 503, { status: "unavailable" });
  return Promise.resolve();
}
