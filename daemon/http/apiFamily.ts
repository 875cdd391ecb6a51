/**
 * Which API family a request speaks, so that every error it gets (a guard's, a handler's, an
 * unknown path's) comes in that family's shape. Ollama lives under /api/, Anthropic's Messages
 * under /v1/messages; /v1/models is shared, and Anthropic's clients always send
 * `anthropic-version`, which tells them apart.
 */

import type { IncomingHttpHeaders } from "node:http";
import type { HearthError } from "../../protocol/errors.js";
import { toAnthropicErrorBody } from "../../protocol/anthropic/errorBody.js";
import { toOllamaErrorBody } from "../../protocol/ollama/errorBody.js";

export type ApiFamily = "openai" | "anthropic" | "ollama";

export function apiFamilyOf(path: string, headers: IncomingHttpHeaders): ApiFamily {
  if (path === "/api" || path.startsWith("/api/")) return "ollama";
  if (path === "/v1/messages" || path.startsWith("/v1/messages/")) return "anthropic";
  if (path.startsWith("/v1/") && headers["anthropic-version"] !== undefined) return "anthropic";
  return "openai";
}

export function errorBodyFor(family: ApiFamily, error: HearthError): object {
  switch (family) {
    case "anthropic":
      return toAnthropicErrorBody(error);
    case "ollama":
      return toOllamaErrorBody(error);
    case "openai":
      return error.toOpenAiBody();
  }
}
