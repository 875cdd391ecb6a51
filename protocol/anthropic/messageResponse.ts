/**
 * Non-streamed Anthropic `message` bodies, and what the stream shares with them: the stop
 * reason, the usage and the content blocks of a finished generation.
 *
 * - `stop_reason` is "tool_use" only when every call was completed (finishReason
 *   "tool_calls"), "max_tokens" when the token limit ended it (a call cut off by the limit is
 *   never returned), "stop_sequence" with `stop_sequence` set when one of the client's stop
 *   strings ended it, else "end_turn".
 * - Anthropic counts `input_tokens` apart from the prompt tokens read from a cache; Hearth's
 *   KV-cache reuse is that cache, so `input_tokens + cache_read_input_tokens` is the prompt.
 *   Nothing is written to a cache on request, so `cache_creation_input_tokens` is 0.
 * - A thinking block's `signature` proves to Anthropic's servers that they wrote the thought;
 *   locally there is nothing to prove, so it is THINKING_SIGNATURE (empty), and signatures
 *   sent back are not checked.
 *
 * Pure: no I/O.
 */

import { errors } from "../errors.js";
import type { GenerationResult, ToolCall } from "../inference.js";
import type { ResponseMeta } from "../generationStream.js";
import { toolUseId } from "./ids.js";

export const THINKING_SIGNATURE = "";

export type AnthropicStopReason = "end_turn" | "max_tokens" | "stop_sequence" | "tool_use";

export interface AnthropicUsage {
  input_tokens: number;
  output_tokens: number;
  cache_read_input_tokens: number;
  cache_creation_input_tokens: number;
}

export interface ThinkingContentBlock {
  type: "thinking";
  thinking: string;
  signature: string;
}

export interface TextContentBlock {
  type: "text";
  text: string;
}

export interface ToolUseContentBlock {
  type: "tool_use";
  id: string;
  name: string;
  input: Record<string, unknown>;
}

export type AnthropicContentBlock = ThinkingContentBlock | TextContentBlock | ToolUseContentBlock;

export interface AnthropicMessageBody {
  id: string;
  type: "message";
  role: "assistant";
  model: string;
  content: AnthropicContentBlock[];
  stop_reason: AnthropicStopReason;
  stop_sequence: string | null;
  usage: AnthropicUsage;
}

export function stopOf(result: Pick<GenerationResult, "finishReason" | "stopSequence">): { stop_reason: AnthropicStopReason; stop_sequence: string | null } {
  switch (result.finishReason) {
    case "tool_calls":
      return { stop_reason: "tool_use", stop_sequence: null };
    case "length":
      return { stop_reason: "max_tokens", stop_sequence: null };
    case "stop":
      return result.stopSequence === undefined ? { stop_reason: "end_turn", stop_sequence: null } : { stop_reason: "stop_sequence", stop_sequence: result.stopSequence };
  }
}

export function toAnthropicUsage(result: Pick<GenerationResult, "usage" | "cachedPromptTokens">): AnthropicUsage {
  const cached = Math.min(result.cachedPromptTokens, result.usage.promptTokens);
  return {
    input_tokens: result.usage.promptTokens - cached,
    output_tokens: result.usage.completionTokens,
    cache_read_input_tokens: cached,
    cache_creation_input_tokens: 0,
  };
}

/** The calls a client may run: only those of an answer that ended with them. */
export function returnedToolCalls(result: Pick<GenerationResult, "finishReason" | "toolCalls">): ToolCall[] {
  return result.finishReason === "tool_calls" ? result.toolCalls : [];
}

/** A call's arguments as the object Anthropic's `input` is; the runner writes them as a JSON object. */
export function toolInput(call: ToolCall): Record<string, unknown> {
  let input: unknown;
  try {
    input = JSON.parse(call.arguments);
  } catch (error) {
    throw errors.internal(`The arguments of tool call ${call.id} are not JSON.`, { cause: error });
  }
  if (typeof input !== "object" || input === null || Array.isArray(input)) throw errors.internal(`The arguments of tool call ${call.id} are not a JSON object.`);
  return input as Record<string, unknown>;
}

export function toolUseBlock(call: ToolCall): ToolUseContentBlock {
  return { type: "tool_use", id: toolUseId(call.id), name: call.name, input: toolInput(call) };
}

export function contentBlocks(result: GenerationResult): AnthropicContentBlock[] {
  const blocks: AnthropicContentBlock[] = [];
  if (result.reasoning !== "") blocks.push({ type: "thinking", thinking: result.reasoning, signature: THINKING_SIGNATURE });
  if (result.text !== "") blocks.push({ type: "text", text: result.text });
  blocks.push(...returnedToolCalls(result).map(toolUseBlock));
  return blocks;
}

export function buildMessage(meta: ResponseMeta, result: GenerationResult): AnthropicMessageBody {
  return {
    id: meta.id,
    type: "message",
    role: "assistant",
    model: meta.model,
    content: contentBlocks(result),
    ...stopOf(result),
    usage: toAnthropicUsage(result),
  };
}
