/**
 * Anthropic's error shape: `{"type":"error","error":{"type":…,"message":…}}`, its type named
 * after the status as Anthropic names them. Hearth's stable code rides along as `hearth_code`,
 * which Anthropic clients ignore.
 *
 * Pure: no I/O.
 */

import type { HearthError } from "../errors.js";

export type AnthropicErrorType =
  | "invalid_request_error"
  | "authentication_error"
  | "permission_error"
  | "not_found_error"
  | "request_too_large"
  | "rate_limit_error"
  | "timeout_error"
  | "api_error"
  | "overloaded_error";

export interface AnthropicErrorBody {
  type: "error";
  error: { type: AnthropicErrorType; message: string; hearth_code: string };
}

export function anthropicErrorType(status: number): AnthropicErrorType {
  switch (status) {
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 404:
      return "not_found_error";
    case 413:
      return "request_too_large";
    case 429:
      return "rate_limit_error";
    // Hearth's 503s (shutting down, a runner lost, no peer) are all "try again shortly".
    case 503:
    case 529:
      return "overloaded_error";
    case 504:
      return "timeout_error";
    default:
      return status >= 500 ? "api_error" : "invalid_request_error";
  }
}

export function toAnthropicErrorBody(error: HearthError): AnthropicErrorBody {
  return { type: "error", error: { type: anthropicErrorType(error.status), message: error.message, hearth_code: error.code } };
}
