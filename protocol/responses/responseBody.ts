/**
 * Response objects (`object: "response"`) and their output items, built from a finished
 * generation, for the non-streamed answer, the events of a stream, and the store.
 *
 * Output, in order: a `reasoning` item when the model thought (the thoughts as
 * `content: [{type:"reasoning_text"}]`; `summary` stays empty, since Hearth has no summariser),
 * a `message` item with one `output_text` part, then one `function_call` item per call. A
 * generation cut off by the token limit is `status: "incomplete"` with
 * `incomplete_details: {reason: "max_output_tokens"}` and carries no call (the runner returns
 * none that was cut off). `output_text` is not sent: the openai SDK computes it.
 *
 * Pure: no I/O.
 */

import type { GenerationResult, ToolCall } from "../inference.js";
import type { ResponseMeta } from "../generationStream.js";
import { outputItemIds } from "./ids.js";
import type { ResponseEcho } from "./request.js";

export type ItemStatus = "in_progress" | "completed" | "incomplete";
export type ResponseStatus = "in_progress" | "completed" | "incomplete" | "failed";

export interface ReasoningOutputItem {
  type: "reasoning";
  id: string;
  summary: { type: "summary_text"; text: string }[];
  content: { type: "reasoning_text"; text: string }[];
  encrypted_content: null;
  status: ItemStatus;
}

export interface OutputTextContent {
  type: "output_text";
  text: string;
  annotations: [];
  logprobs: [];
}

export interface MessageOutputItem {
  type: "message";
  id: string;
  role: "assistant";
  content: OutputTextContent[];
  status: ItemStatus;
}

export interface FunctionCallOutputItem {
  type: "function_call";
  id: string;
  call_id: string;
  name: string;
  arguments: string;
  status: ItemStatus;
}

export type OutputItem = ReasoningOutputItem | MessageOutputItem | FunctionCallOutputItem;

export interface ResponsesUsage {
  input_tokens: number;
  input_tokens_details: { cached_tokens: number };
  output_tokens: number;
  output_tokens_details: { reasoning_tokens: number };
  total_tokens: number;
}

export interface ResponseBody extends ResponseEcho {
  id: string;
  object: "response";
  created_at: number;
  completed_at: number | null;
  status: ResponseStatus;
  background: false;
  error: { code: string; message: string } | null;
  incomplete_details: { reason: "max_output_tokens" } | null;
  model: string;
  output: OutputItem[];
  usage: ResponsesUsage | null;
}

export function toResponsesUsage(result: Pick<GenerationResult, "usage" | "cachedPromptTokens">): ResponsesUsage {
  const { promptTokens, completionTokens, reasoningTokens } = result.usage;
  return {
    input_tokens: promptTokens,
    input_tokens_details: { cached_tokens: result.cachedPromptTokens },
    output_tokens: completionTokens,
    output_tokens_details: { reasoning_tokens: reasoningTokens },
    total_tokens: promptTokens + completionTokens,
  };
}

/**
 * The calls a response returns: `parallel_tool_calls: false` keeps the first the model made,
 * `max_tool_calls` the first that many. Chat templates have no switch for either, so the
 * model's later calls are not returned (nor kept in the stored conversation).
 */
export function returnedCalls(result: Pick<GenerationResult, "toolCalls">, echo: Pick<ResponseEcho, "parallel_tool_calls" | "max_tool_calls">): ToolCall[] {
  let limit = echo.max_tool_calls ?? Number.POSITIVE_INFINITY;
  if (!echo.parallel_tool_calls) limit = Math.min(limit, 1);
  return result.toolCalls.slice(0, limit);
}

export function isIncomplete(result: Pick<GenerationResult, "finishReason">): boolean {
  return result.finishReason === "length";
}

/** Whether the output has a message item: when there is text, or when nothing else answers. */
export function hasMessageItem(result: Pick<GenerationResult, "text" | "finishReason">, calls: readonly ToolCall[]): boolean {
  return result.text !== "" || (calls.length === 0 && !isIncomplete(result));
}

export function reasoningItem(responseId: string, text: string, status: ItemStatus): ReasoningOutputItem {
  return { type: "reasoning", id: outputItemIds(responseId).reasoning, summary: [], content: text === "" ? [] : [{ type: "reasoning_text", text }], encrypted_content: null, status };
}

export function outputText(text: string): OutputTextContent {
  return { type: "output_text", text, annotations: [], logprobs: [] };
}

export function messageItem(responseId: string, text: string | undefined, status: ItemStatus): MessageOutputItem {
  return { type: "message", id: outputItemIds(responseId).message, role: "assistant", content: text === undefined ? [] : [outputText(text)], status };
}

export function functionCallItem(responseId: string, call: ToolCall, index: number, status: ItemStatus, args = call.arguments): FunctionCallOutputItem {
  return { type: "function_call", id: outputItemIds(responseId).functionCall(index), call_id: call.id, name: call.name, arguments: args, status };
}

/** The output items of a finished generation, in order. */
export function outputItems(responseId: string, result: GenerationResult, echo: ResponseEcho): OutputItem[] {
  const calls = returnedCalls(result, echo);
  const status: ItemStatus = isIncomplete(result) ? "incomplete" : "completed";
  const items: OutputItem[] = [];
  if (result.reasoning !== "") items.push(reasoningItem(responseId, result.reasoning, "completed"));
  if (hasMessageItem(result, calls)) items.push(messageItem(responseId, result.text, status));
  calls.forEach((call, index) => items.push(functionCallItem(responseId, call, index, "completed")));
  return items;
}

function baseBody(meta: ResponseMeta, echo: ResponseEcho): Omit<ResponseBody, "status" | "output" | "usage" | "completed_at" | "error" | "incomplete_details"> {
  return { id: meta.id, object: "response", created_at: meta.created, background: false, model: meta.model, ...echo };
}

/** The response before any output: what `response.created` and `response.in_progress` carry. */
export function inProgressResponse(meta: ResponseMeta, echo: ResponseEcho): ResponseBody {
  return { ...baseBody(meta, echo), status: "in_progress", completed_at: null, error: null, incomplete_details: null, output: [], usage: null };
}

/** A finished response; `output` defaults to the canonical items of `result`. */
export function finishedResponse(meta: ResponseMeta, echo: ResponseEcho, result: GenerationResult, completedAt: number, output = outputItems(meta.id, result, echo)): ResponseBody {
  const incomplete = isIncomplete(result);
  return {
    ...baseBody(meta, echo),
    status: incomplete ? "incomplete" : "completed",
    completed_at: completedAt,
    error: null,
    incomplete_details: incomplete ? { reason: "max_output_tokens" } : null,
    output,
    usage: toResponsesUsage(result),
  };
}

/** A response that failed after its stream began: `response.failed` carries it. */
export function failedResponse(meta: ResponseMeta, echo: ResponseEcho, error: { code: string; message: string }, output: OutputItem[]): ResponseBody {
  return { ...baseBody(meta, echo), status: "failed", completed_at: null, error, incomplete_details: null, output, usage: null };
}
