/**
 * GET /metrics: Prometheus scrape endpoint.
 */

import { PROMETHEUS_CONTENT_TYPE } from "../../metrics/prometheusText.js";
import type { RequestContext } from "../context.js";
import { sendText } from "../responses.js";

export function handleMetrics({ res, services }: RequestContext): Promise<void> {
  sendText(res, 200, services.metrics.render(), PROMETHEUS_CONTENT_TYPE);
  return Promise.resolve();
}
