/**
 * When a routed request may be tried again on another node (docs/architecture.md, "Routing").
 *
 * Only a failure of the node itself qualifies, never one of the request (a context overflow
 * fails the same way everywhere), and only before the client saw a token: after that, a
 * second node would repeat text the client already has. A pinned request names its node, so
 * it is never moved; a caller that does its own retries (batch jobs) turns retry off.
 *
 * Pure: no I/O.
 */

import type { HearthErrorCode } from "../../protocol/errors.js";

/**
 * Codes that say "that node failed", not "this request is wrong". A lost link arrives as
 * HEARTH_PEER_UNAVAILABLE; a node that began shutting down as the job reached it answers
 * HEARTH_SHUTTING_DOWN, and another node can still serve the job.
 */
export const NODE_FAILURE_CODES: ReadonlySet<HearthErrorCode> = new Set<HearthErrorCode>([
  "HEARTH_PEER_UNAVAILABLE",
  "HEARTH_PEER_TIMEOUT",
  "HEARTH_RUNNER_FAILED",
  "HEARTH_SHUTTING_DOWN",
]);

export function isNodeFailure(code: HearthErrorCode): boolean {
  return NODE_FAILURE_CODES.has(code);
}

/** At most this many attempts per request: the first node and one other. */
export const MAX_ROUTE_ATTEMPTS = 2;

export interface RetryQuestion {
  code: HearthErrorCode;
  /** Attempts made so far, the failed one included. */
  attempts: number;
  /** Whether any delta of the failed attempt reached the caller. */
  deltasSent: boolean;
  pinned: boolean;
  /** RouteOptions.retry (default true). */
  retry: boolean;
  /** The caller gave up (client disconnect). */
  aborted: boolean;
}

export function shouldRetryElsewhere(question: RetryQuestion): boolean {
  return (
    question.retry &&
    !question.pinned &&
    !question.aborted &&
    !question.deltasSent &&
    question.attempts < MAX_ROUTE_ATTEMPTS &&
    NODE_FAILURE_CODES.has(question.code)
  );
}
