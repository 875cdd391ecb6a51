/**
 * A response as the response store (daemon/responses/ResponseStore.ts) keeps it: the body GET
 * returns, the input items GET …/input_items lists, and the conversation a later request with
 * `previous_response_id` continues (the history before this input, this input, and this
 * response's output as an assistant turn; instructions are not part of it). Each record is
 * complete in itself, so expiring or deleting one never breaks another.
 *
 * Pure: no I/O.
 */

import { z } from "zod";
import type { ChatMessage, GenerationResult } from "../inference.js";
import { RESPONSE_ID_PATTERN, inputItemId } from "./ids.js";
import { withItemIds, type InputItem, type ListedInputItem } from "./inputItems.js";
import type { ResponseEcho } from "./request.js";
import { returnedCalls, type ResponseBody } from "./responseBody.js";

export const STORED_RESPONSE_VERSION = 1;

export interface StoredResponse {
  version: typeof STORED_RESPONSE_VERSION;
  id: string;
  /** Epoch ms at which it was stored (its age counts from here). */
  storedAt: number;
  response: ResponseBody;
  inputItems: ListedInputItem[];
  conversation: ChatMessage[];
}

/** The assistant turn a response adds to its conversation: what the client was given. */
export function assistantTurn(result: GenerationResult, echo: ResponseEcho): ChatMessage {
  const turn: ChatMessage = { role: "assistant", content: result.text };
  if (result.reasoning !== "") turn.reasoning = result.reasoning;
  const calls = returnedCalls(result, echo);
  if (calls.length > 0) turn.toolCalls = calls.map((call) => ({ ...call }));
  return turn;
}

export function storedResponse(options: {
  response: ResponseBody;
  input: readonly InputItem[];
  conversation: readonly ChatMessage[];
  result: GenerationResult;
  echo: ResponseEcho;
  storedAt: number;
}): StoredResponse {
  const { response } = options;
  return {
    version: STORED_RESPONSE_VERSION,
    id: response.id,
    storedAt: options.storedAt,
    response,
    inputItems: withItemIds(options.input, (prefix, index) => inputItemId(response.id, prefix, index)),
    conversation: [...options.conversation, assistantTurn(options.result, options.echo)],
  };
}

const chatMessageSchema = z.object({
  role: z.enum(["system", "user", "assistant", "tool"]),
  content: z.string(),
  toolCalls: z.array(z.object({ id: z.string(), name: z.string(), arguments: z.string() })).optional(),
  toolCallId: z.string().optional(),
  reasoning: z.string().optional(),
});

/**
 * What a record read back must look like. The body and items were built by Hearth and are
 * passed through; the conversation goes into a job, so it is checked field by field.
 */
export const storedResponseSchema = z.object({
  version: z.literal(STORED_RESPONSE_VERSION),
  id: z.string().regex(RESPONSE_ID_PATTERN),
  storedAt: z.number(),
  response: z.looseObject({ id: z.string().regex(RESPONSE_ID_PATTERN), object: z.literal("response") }),
  inputItems: z.array(z.looseObject({ id: z.string(), type: z.string() })),
  conversation: z.array(chatMessageSchema),
});

/** A record read back from disk, or undefined when it is not one (or not the one asked for). */
export function parseStoredResponse(value: unknown, id: string): StoredResponse | undefined {
  const parsed = storedResponseSchema.safeParse(value);
  if (!parsed.success || parsed.data.id !== id || parsed.data.response.id !== id) return undefined;
  // The schema checked what a job reads; the rest is Hearth's own output, passed through as written.
  return parsed.data as unknown as StoredResponse;
}
