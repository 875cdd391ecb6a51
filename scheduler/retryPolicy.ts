/**
 * What a failure means for where work goes next. Every rule here reads the failure's fault
 * class in the error catalogue (protocol/errors.ts; for capacity also whether it is retryable)
 * and never a list of codes, so a new code is handled by choosing its class.
 *
 * Routing (docs/architecture.md, "Routing"): a request is tried once more on another node
 * only when the node failed (fault `peer` or `runner`), never when the request did (a context
 * overflow fails the same everywhere), and only before the client saw a token: after that, a
 * second node would repeat text the client already has. A pinned request names its node, so
 * it is never moved; a caller that does its own retries (batch jobs) turns retry off.
 *
 * Batch items (daemon/jobs/JobRun.ts) and split placements (daemon/split/SplitEngine.ts) use
 * the other questions below.
 *
 * Pure: no I/O.
 */

import { faultOf, isRetryable, type HearthErrorCode } from "../protocol/errors.js";

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

/** "That node failed", not "this request is wrong": another node may serve it. */
export function isNodeFailure(code: HearthErrorCode): boolean {
  const fault = faultOf(code);
  return fault === "peer" || fault === "runner";
}

/** The node itself, or the link to it, is gone: work on it is handed to the others. */
export function isNodeLoss(code: HearthErrorCode): boolean {
  return faultOf(code) === "peer";
}

/** A node is busy right now (a full queue): rest it and try the work again without counting an attempt. */
export function isTransientCapacity(code: HearthErrorCode): boolean {
  return faultOf(code) === "resource" && isRetryable(code);
}

/** A split placement's runner failed under a job: continue it on a new placement. */
export function isRecoverableByReplacement(code: HearthErrorCode): boolean {
  return faultOf(code) === "runner";
}

export function shouldRetryElsewhere(question: RetryQuestion): boolean {
  return question.retry && !question.pinned && !question.aborted && !question.deltasSent && question.attempts < MAX_ROUTE_ATTEMPTS && isNodeFailure(question.code);
}
