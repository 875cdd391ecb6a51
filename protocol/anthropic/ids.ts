/**
 * Identifiers of Anthropic response objects: messages (`msg_…`) and tool uses (`toolu_…`).
 *
 * A tool use's id is the internal call's id under Anthropic's prefix, so a call keeps one id
 * whichever family reports it. Clients only send ids back (`tool_use_id`), never parse them.
 */

import { randomBytes } from "node:crypto";

export function newMessageId(): string {
  return `msg_${randomBytes(12).toString("hex")}`;
}

/** The runner names calls `call_…`; the part after that prefix is kept. */
export function toolUseId(callId: string): string {
  return `toolu_${callId.startsWith("call_") ? callId.slice("call_".length) : callId}`;
}
