/**
 * Ollama's error shape: `{"error":"message"}` with the HTTP status. Hearth's stable code rides
 * along as `code`, which Ollama clients ignore.
 *
 * Pure: no I/O.
 */

import type { HearthError } from "../errors.js";

export interface OllamaErrorBody {
  error: string;
  code: string;
}

export function toOllamaErrorBody(error: HearthError): OllamaErrorBody {
  return { error: error.message, code: error.code };
}
