/**
 * Identifiers of the Responses API: `resp_<48 hex>` for a response, and the ids of its items,
 * derived from it (`rs_…`, `msg_…`, `fc_…_<n>`) so a stored response, its stream and a later
 * GET name every item the same way.
 *
 * A response id is also the name of its file in the response store (daemon/responses/), so
 * only ids that match RESPONSE_ID_PATTERN exactly (generated here) ever reach a path: anything
 * else a client sends is an unknown response.
 *
 * Pure: no I/O.
 */

import { randomBytes } from "node:crypto";

const RESPONSE_ID_PREFIX = "resp_";
/** 24 random bytes: unguessable, so ids of one user's stored responses cannot be enumerated by another. */
const RESPONSE_ID_BYTES = 24;
export const RESPONSE_ID_PATTERN = /^resp_[0-9a-f]{48}$/;

export function newResponseId(): string {
  return `${RESPONSE_ID_PREFIX}${randomBytes(RESPONSE_ID_BYTES).toString("hex")}`;
}

export function isValidResponseId(value: unknown): value is string {
  return typeof value === "string" && RESPONSE_ID_PATTERN.test(value);
}

/** The random part of a response id, which its items' ids share. */
function idSuffix(responseId: string): string {
  return responseId.startsWith(RESPONSE_ID_PREFIX) ? responseId.slice(RESPONSE_ID_PREFIX.length) : responseId;
}

/** Ids of a response's output items. */
export function outputItemIds(responseId: string): { reasoning: string; message: string; functionCall(index: number): string } {
  const suffix = idSuffix(responseId);
  return {
    reasoning: `rs_${suffix}`,
    message: `msg_${suffix}`,
    functionCall: (index) => `fc_${suffix}_${index}`,
  };
}

/** The id given to the `index`-th input item of a response when the client sent it without one. */
export function inputItemId(responseId: string, prefix: "msg" | "fc" | "fco" | "rs", index: number): string {
  return `${prefix}_${idSuffix(responseId)}_in${index}`;
}
