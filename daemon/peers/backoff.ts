/**
 * Redial delays: exponential backoff with jitter. Doubling keeps a node that is down (or
 * refusing us) from being hammered; the random part keeps two nodes that lost each other at
 * the same moment from redialling in lockstep, which would make every attempt a
 * simultaneous dial.
 *
 * Pure: randomness is injected.
 */

export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
  /** 0-1: this fraction of each delay is randomised (0.5: between 50 % and 100 % of the base). */
  jitter: number;
}

/** Delay before attempt number `failures + 1`, after `failures` consecutive failures (>= 1). */
export function backoffDelay(failures: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const exponent = Math.min(Math.max(failures, 1) - 1, 30);
  const base = Math.min(policy.maxMs, policy.initialMs * 2 ** exponent);
  const jitter = Math.min(Math.max(policy.jitter, 0), 1);
  return Math.round(base * (1 - jitter * random()));
}
