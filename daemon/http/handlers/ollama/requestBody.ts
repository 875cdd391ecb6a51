/**
 * Reading an Ollama request body. Ollama's own documentation sends JSON with `curl -d`, which
 * labels it application/x-www-form-urlencoded, and Ollama reads it regardless, so for /api/*
 * the media type is not checked when the request has no `Origin` header (curl, scripts, servers
 * such as Open WebUI's backend). A browser page always sends `Origin` on a cross-site POST;
 * those requests still need application/json, which a page can only send after a CORS
 * preflight that Hearth never grants, so a foreign page cannot drive the API through a browser.
 */

import { isJsonContentType, parseJsonObject, readBodyBytes, readJsonBody } from "../../requestBody.js";
import type { RequestContext } from "../../context.js";

export async function readOllamaBody(context: RequestContext): Promise<Record<string, unknown>> {
  const { req } = context;
  const maxBytes = context.services.config.limits.maxBodyBytes;
  if (req.headers.origin === undefined && !isJsonContentType(req.headers["content-type"])) {
    return parseJsonObject(await readBodyBytes(req, maxBytes));
  }
  return readJsonBody(req, { maxBytes });
}
