/**
 * Non-streamed `chat.completion` response bodies.
 *
 * Pure: no I/O.
 */

import type { FinishReason, GenerationResult, ToolCall } from "../inference.js";
import type { ResponseMeta } from "../generationStream.js";
import { toOpenAiUsage, type OpenAiUsage } from "./usage.js";

export interface OpenAiToolCall {
  id: string;
  type: "function";
  function: { name: string; arguments: string };
}

export interface ChatCompletionBody {
  id: string;
  object: "chat.completion";
  created: number;
  model: string;
  choices: [
    {
      index: 0;
      message: { role: "assistant"; content: string | null; reasoning_content?: string; tool_calls?: OpenAiToolCall[]; refusal: null };
      finish_reason: FinishReason;
      logprobs: null;
    },
  ];
  usage: OpenAiUsage;
}

export function toOpenAiToolCall(call: ToolCall): OpenAiToolCall {
  return { id: call.id, type: "function", function: { name: call.name, arguments: call.arguments } };
}

export function buildChatCompletion(meta: ResponseMeta, result: GenerationResult): ChatCompletionBody {
  const hasToolCalls = result.toolCalls.length > 0;
  const message: ChatCompletionBody["choices"][0]["message"] = {
    role: "assistant",
    // OpenAI sends null content when the model only called tools.
    content: hasToolCalls && result.text === "" ? null : result.text,
    refusal: null,
  };
  if (result.reasoning !== "") message.reasoning_content = result.reasoning;
  if (hasToolCalls) message.tool_calls = result.toolCalls.map(toOpenAiToolCall);
  return {
    id: meta.id,
    object: "chat.completion",
    created: meta.created,
    model: meta.model,
    choices: [{ index: 0, message, finish_reason: result.finishReason, logprobs: null }],
    usage: toOpenAiUsage(result),
  };
}
