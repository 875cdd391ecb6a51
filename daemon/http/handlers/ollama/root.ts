/**
 * GET / (and HEAD /): answers as Ollama's server does, `200 Ollama is running`, so clients that
 * probe for an Ollama server find one. A dashboard for browsers would be passed in here:
 * `createRootHandler(handleDashboard)` then serves it to requests that accept text/html, and
 * probes keep Ollama's answer.
 */

import type { Handler, RequestContext } from "../../context.js";
import { sendText } from "../../responses.js";

export const OLLAMA_PROBE_ANSWER = "Ollama is running";

function wantsHtml(context: RequestContext): boolean {
  return (context.req.headers.accept ?? "").toLowerCase().includes("text/html");
}

export function createRootHandler(page?: Handler): Handler {
  return (context) => {
    if (page !== undefined && wantsHtml(context)) return page(context);
    sendText(context.res, 200, OLLAMA_PROBE_ANSWER, "text/plain; charset=utf-8");
    return Promise.resolve();
  };
}
