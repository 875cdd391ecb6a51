/**
 * Identifiers for OpenAI response objects (`chatcmpl-…`, `cmpl-…`).
 *
 * They only need to be unique enough for a client to tell responses apart in logs; they are
 * not secrets and not used for lookups.
 */

import { randomBytes } from "node:crypto";

export type ResponseIdPrefix = "chatcmpl" | "cmpl";

export function newResponseId(prefix: ResponseIdPrefix): string {
  return `${prefix}-${randomBytes(12).toString("hex")}`;
}

/** OpenAI's `created`: whole seconds since the epoch. */
export function unixSeconds(nowMs: number = Date.now()): number {
  return Math.floor(nowMs / 1000);
}
