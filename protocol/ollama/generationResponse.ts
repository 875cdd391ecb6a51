/**
 * Ollama's answers to /api/chat and /api/generate: one body, or NDJSON chunks.
 *
 *   chat chunk      {model, created_at, message: {role: "assistant", content, thinking?}, done: false}
 *   generate chunk  {model, created_at, response, thinking?, done: false}
 *   tool calls      one chat chunk with `message.tool_calls` after the text, before the last
 *   last chunk      empty text, done: true, done_reason, and the counters below
 *
 * `done_reason` is "stop" or "length". A completed tool call ends with "stop" and the calls
 * in `message.tool_calls`, as Ollama's do; a call cut off by `num_predict` ends with "length"
 * and no calls. Tool calls are `{id, function: {index, name, arguments: {...}}}`, the arguments
 * an object and `index` the call's place among the answer's calls (0, 1, ...), which clients that
 * turn Ollama's chunks into OpenAI deltas (Open WebUI) key calls by: without it, two parallel
 * calls would merge into one. `id` is the call's id (`call_...`), as Ollama sends since 0.12.10;
 * a client may send it back in the call and in its tool message's `tool_call_id`.
 * Counters: prompt_eval_count and eval_count are the prompt and generated tokens (thoughts
 * included); the durations are nanoseconds (OllamaTimings says what each one measures).
 * `created_at` is RFC 3339 (UTC, milliseconds). Hearth returns no `context`.
 *
 * Pure: no I/O.
 */

import type { ChunkSequence, StreamFrame } from "../generationStream.js";
import type { FinishReason, GenerationDelta, GenerationResult, ToolCall } from "../inference.js";

/** Milliseconds a request spent in each phase; they add up to totalMs. */
export interface OllamaTimings {
  totalMs: number;
  /** Waiting for a slot and for the model to load (and the trip to a peer), before the prompt is read. */
  loadMs: number;
  /** Reading the prompt and sampling the first token. */
  promptEvalMs: number;
  /** Generating the tokens after the first. */
  evalMs: number;
}

/** What every answer of one request shares. */
export interface OllamaAnswerContext {
  /** The name the client sent. */
  model: string;
  /** RFC 3339 time of now, for `created_at`. */
  now(): string;
  /** The phases of the request, read when it finishes. */
  timings(result: GenerationResult): OllamaTimings;
}

export type OllamaDoneReason = "stop" | "length" | "load" | "unload";

export interface OllamaToolCall {
  id: string;
  function: { index: number; name: string; arguments: Record<string, unknown> };
}

export interface OllamaCounters {
  total_duration: number;
  load_duration: number;
  prompt_eval_count: number;
  prompt_eval_duration: number;
  eval_count: number;
  eval_duration: number;
}

export interface OllamaChatMessage {
  role: "assistant";
  content: string;
  thinking?: string;
  tool_calls?: OllamaToolCall[];
}

export interface OllamaChatAnswer extends Partial<OllamaCounters> {
  model: string;
  created_at: string;
  message: OllamaChatMessage;
  done: boolean;
  done_reason?: OllamaDoneReason;
}

export interface OllamaGenerateAnswer extends Partial<OllamaCounters> {
  model: string;
  created_at: string;
  response: string;
  thinking?: string;
  done: boolean;
  done_reason?: OllamaDoneReason;
}

export function doneReasonOf(reason: FinishReason): "stop" | "length" {
  return reason === "length" ? "length" : "stop";
}

/** An internal call (arguments as JSON text) as Ollama sends it (arguments as an object), `index` its place among the calls. */
export function toOllamaToolCall(call: ToolCall, index: number): OllamaToolCall {
  return { id: call.id, function: { index, name: call.name, arguments: argumentsObject(call.arguments) } };
}

function argumentsObject(text: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value === "object" && value !== null && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // The runner writes calls as JSON; anything else has no arguments to show.
  }
  return {};
}

const NS_PER_MS = 1_000_000;

function nanoseconds(ms: number): number {
  return Math.max(0, Math.round(ms * NS_PER_MS));
}

export function countersOf(result: GenerationResult, timings: OllamaTimings): OllamaCounters {
  return {
    total_duration: nanoseconds(timings.totalMs),
    load_duration: nanoseconds(timings.loadMs),
    prompt_eval_count: result.usage.promptTokens,
    prompt_eval_duration: nanoseconds(timings.promptEvalMs),
    eval_count: result.usage.completionTokens,
    eval_duration: nanoseconds(timings.evalMs),
  };
}

function finalFields(context: OllamaAnswerContext, result: GenerationResult): { done: true; done_reason: OllamaDoneReason } & OllamaCounters {
  return { done: true, done_reason: doneReasonOf(result.finishReason), ...countersOf(result, context.timings(result)) };
}

export function buildChatAnswer(context: OllamaAnswerContext, result: GenerationResult): OllamaChatAnswer {
  const message: OllamaChatMessage = { role: "assistant", content: result.text };
  if (result.reasoning !== "") message.thinking = result.reasoning;
  if (result.toolCalls.length > 0) message.tool_calls = result.toolCalls.map((call, index) => toOllamaToolCall(call, index));
  return { model: context.model, created_at: context.now(), message, ...finalFields(context, result) };
}

export function buildGenerateAnswer(context: OllamaAnswerContext, result: GenerationResult): OllamaGenerateAnswer {
  const thinking = result.reasoning === "" ? {} : { thinking: result.reasoning };
  return { model: context.model, created_at: context.now(), response: result.text, ...thinking, ...finalFields(context, result) };
}

/** The answer to a request without messages or prompt: the model was loaded, or unloaded. */
export function loadChatAnswer(model: string, createdAt: string, reason: "load" | "unload"): OllamaChatAnswer {
  return { model, created_at: createdAt, message: { role: "assistant", content: "" }, done: true, done_reason: reason };
}

export function loadGenerateAnswer(model: string, createdAt: string, reason: "load" | "unload"): OllamaGenerateAnswer {
  return { model, created_at: createdAt, response: "", done: true, done_reason: reason };
}

export class ChatChunks implements ChunkSequence {
  constructor(private readonly context: OllamaAnswerContext) {}

  delta(delta: GenerationDelta): StreamFrame[] {
    if (delta.text === "") return [];
    const message: OllamaChatMessage = delta.part === "reasoning" ? { role: "assistant", content: "", thinking: delta.text } : { role: "assistant", content: delta.text };
    return [{ data: this.chunk(message) }];
  }

  finish(result: GenerationResult): StreamFrame[] {
    const frames: StreamFrame[] = [];
    if (result.toolCalls.length > 0) frames.push({ data: this.chunk({ role: "assistant", content: "", tool_calls: result.toolCalls.map((call, index) => toOllamaToolCall(call, index)) }) });
    const last: OllamaChatAnswer = { model: this.context.model, created_at: this.context.now(), message: { role: "assistant", content: "" }, ...finalFields(this.context, result) };
    frames.push({ data: last });
    return frames;
  }

  private chunk(message: OllamaChatMessage): OllamaChatAnswer {
    return { model: this.context.model, created_at: this.context.now(), message, done: false };
  }
}

export class GenerateChunks implements ChunkSequence {
  constructor(private readonly context: OllamaAnswerContext) {}

  delta(delta: GenerationDelta): StreamFrame[] {
    if (delta.text === "") return [];
    const base = { model: this.context.model, created_at: this.context.now() };
    const chunk: OllamaGenerateAnswer = delta.part === "reasoning" ? { ...base, response: "", thinking: delta.text, done: false } : { ...base, response: delta.text, done: false };
    return [{ data: chunk }];
  }

  finish(result: GenerationResult): StreamFrame[] {
    const last: OllamaGenerateAnswer = { model: this.context.model, created_at: this.context.now(), response: "", ...finalFields(this.context, result) };
    return [{ data: last }];
  }
}
