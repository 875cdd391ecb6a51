/**
 * Turns anything a handler throws into the response a client sees.
 *
 * A HearthError keeps its status and becomes the error body of the request's API family
 * (apiFamily.ts); 429 and 503 carry
 * `retry-after` when the error says how long to wait (the openai client honours it).
 * Anything else is a bug: it is logged with its stack and answered with a generic 500, so
 * internals never reach the client.
 */

import type { ServerResponse } from "node:http";
import type { Logger } from "pino";
import { errors, HearthError } from "../../protocol/errors.js";
import { errorBodyFor, type ApiFamily } from "./apiFamily.js";
import { canWrite, sendJson } from "./responses.js";

export interface ErrorResponse {
  status: number;
  body: object;
  headers: Record<string, string>;
}

export function toHearthError(error: unknown): HearthError {
  return error instanceof HearthError ? error : errors.internal();
}

export function errorResponse(error: HearthError, family: ApiFamily = "openai"): ErrorResponse {
  const headers: Record<string, string> = {};
  if ((error.status === 429 || error.status === 503) && error.retryAfterSeconds !== undefined) {
    headers["retry-after"] = String(Math.max(0, Math.ceil(error.retryAfterSeconds)));
  }
  return { status: error.status, body: errorBodyFor(family, error), headers };
}

/** Logs what deserves a log line; returns the error as the client will see it. */
export function logAndConvert(error: unknown, log: Logger): HearthError {
  const hearthError = toHearthError(error);
  if (!(error instanceof HearthError)) {
    log.error({ err: error }, "unexpected error while handling a request");
  } else if (error.status >= 500) {
    log.warn({ code: error.code, err: error }, "request failed");
  } else {
    log.debug({ code: error.code, param: error.param }, "request rejected");
  }
  return hearthError;
}

export function sendError(res: ServerResponse, error: unknown, log: Logger, family: ApiFamily = "openai"): void {
  const hearthError = logAndConvert(error, log);
  if (!canWrite(res)) return;
  if (res.headersSent) {
    // Too late for a status: cut the response so the client sees a failure, not a truncated success.
    res.destroy();
    return;
  }
  const { status, body, headers } = errorResponse(hearthError, family);
  sendJson(res, status, body, headers);
}
