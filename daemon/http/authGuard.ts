/**
 * API key check for /v1, /hearth, /api (Ollama) and /metrics.
 *
 * The key comes as `Authorization: Bearer <key>` (OpenAI and Ollama clients) or as
 * `x-api-key: <key>` (Anthropic clients); either is accepted everywhere.
 *
 * The key is compared through fixed-length digests with timingSafeEqual, so neither the
 * content nor the length of the expected key leaks through response timing. /health stays
 * open so supervisors can probe readiness without the key. The key is never logged.
 */

import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";

const PROTECTED_PREFIXES = ["/v1/", "/hearth/", "/api/"];
const PROTECTED_PATHS = new Set(["/v1", "/hearth", "/api", "/metrics"]);

export function requiresApiKey(path: string): boolean {
  return PROTECTED_PATHS.has(path) || PROTECTED_PREFIXES.some((prefix) => path.startsWith(prefix));
}

function digest(value: string): Buffer {
  return createHash("sha256").update(value, "utf8").digest();
}

/** The token of an `Authorization: Bearer <token>` header, if that is what it is. */
export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const match = /^bearer[ \t]+(.*?)[ \t]*$/i.exec(header);
  const token = match?.[1];
  return token === undefined || token === "" ? undefined : token;
}

export function hasValidApiKey(headers: Pick<IncomingHttpHeaders, "authorization"> & { "x-api-key"?: string | string[] | undefined }, apiKey: string): boolean {
  const header = headers["x-api-key"];
  const token = bearerToken(headers.authorization) ?? (typeof header === "string" && header !== "" ? header : undefined);
  if (token === undefined) return false;
  return timingSafeEqual(digest(token), digest(apiKey));
}
