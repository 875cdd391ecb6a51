/**
 * Normalised inference jobs and their results.
 *
 * The HTTP layer turns OpenAI request bodies into these plain objects; the engine (and, in
 * later issues, a remote peer) executes them. They are the one shape a generation has
 * everywhere inside Hearth, so they must stay structured-clone and msgpack friendly:
 * plain objects, arrays, strings, numbers, booleans and null only.
 *
 * Pure: no I/O.
 */

import type { PlacementSummary } from "./api/plan.js";

export type ChatRole = "system" | "user" | "assistant" | "tool";

export interface ToolCall {
  id: string;
  name: string;
  /** The arguments as a JSON text, exactly as OpenAI returns them. */
  arguments: string;
}

export interface ChatMessage {
  role: ChatRole;
  content: string;
  /** Assistant messages may carry the tool calls they made. */
  toolCalls?: ToolCall[];
  /** Tool messages answer one tool call. */
  toolCallId?: string;
  /** An assistant turn's thoughts, as a reasoning model wrote them (templates usually leave past ones out). */
  reasoning?: string;
}

export interface ToolDefinition {
  name: string;
  description?: string;
  /** JSON schema of the parameters (object schema). */
  parameters?: Record<string, unknown>;
}

export type ToolChoice = "auto" | "none" | "required" | { name: string };

export type ResponseFormat =
  | { type: "text" }
  | { type: "json_object" }
  | { type: "json_schema"; name: string; schema: Record<string, unknown> };

export interface SamplingOptions {
  /** Upper bound on generated tokens; undefined means "until the context is full". */
  maxTokens?: number;
  /** 0 means greedy. */
  temperature: number;
  topP?: number;
  seed?: number;
  /** Generation stops before any of these strings; they are not included in the output. */
  stop: string[];
  /** OpenAI's frequency_penalty (-2..2); absent when 0. Engines that cannot apply it ignore it. */
  frequencyPenalty?: number;
  /** OpenAI's presence_penalty (-2..2); absent when 0. Engines that cannot apply it ignore it. */
  presencePenalty?: number;
  /** Sample only among the k likeliest tokens; absent means no limit. */
  topK?: number;
  /** llama.cpp's multiplicative repeat penalty (Ollama's repeat_penalty); absent or 1 means none. */
  repeatPenalty?: number;
}

/**
 * Whether a reasoning model may think before it answers. "auto" leaves it to the model and its
 * chat template; "off" closes a thought the moment it opens, so the model answers at once.
 */
export type ThinkingMode = "auto" | "off";

export interface ChatJob {
  kind: "chat";
  model: string;
  messages: ChatMessage[];
  sampling: SamplingOptions;
  responseFormat: ResponseFormat;
  tools: ToolDefinition[];
  toolChoice: ToolChoice;
  thinking: ThinkingMode;
  /** false: the answer holds at most one tool call (Anthropic's disable_parallel_tool_use); absent: as many as the model makes. */
  parallelToolCalls?: boolean;
}

export interface CompletionJob {
  kind: "completion";
  model: string;
  prompt: string;
  sampling: SamplingOptions;
  /** OpenAI's `echo`: prepend the prompt to the returned text. */
  echo: boolean;
  /** Text after the insertion point: the model fills in between `prompt` and it (fill-in-the-middle). */
  suffix?: string;
}

export interface EmbeddingJob {
  kind: "embedding";
  model: string;
  inputs: string[];
}

export type GenerationJob = ChatJob | CompletionJob;
export type InferenceJob = GenerationJob | EmbeddingJob;

/**
 * Why generation ended. "tool_calls" only when every call was completed; a call cut off by the
 * token limit ends with "length", so a client never runs a half-written call.
 */
export type FinishReason = "stop" | "length" | "tool_calls";

export interface Usage {
  promptTokens: number;
  /** Every generated token, the reasoning ones included. */
  completionTokens: number;
  /** Generated tokens that were part of the model's thoughts. */
  reasoningTokens: number;
}

export interface GenerationResult {
  text: string;
  /** The model's thoughts, apart from the answer; "" when it had none. */
  reasoning: string;
  toolCalls: ToolCall[];
  finishReason: FinishReason;
  /** The client's stop string that ended generation, when one did (finishReason "stop"). */
  stopSequence?: string;
  usage: Usage;
  /** Prompt tokens served from a reused KV cache prefix instead of being evaluated. */
  cachedPromptTokens: number;
  /** Milliseconds from job start to the first generated token (absent when none was produced). */
  timeToFirstTokenMs?: number;
  /** The node that ran the job; set by the cluster router (daemon/routing/). */
  nodeId?: string;
  /** Where the router decided to run it, and why (scheduler/decision.ts); the `hearth` response extension. */
  placement?: PlacementSummary;
}

/** Which part of a generation a streamed piece belongs to. */
export type GenerationPart = "answer" | "reasoning";

/** One streamed piece of a generation, in order. */
export interface GenerationDelta {
  part: GenerationPart;
  text: string;
}

export interface EmbeddingResult {
  /** One vector per input, in input order. */
  vectors: number[][];
  promptTokens: number;
  /** The node that ran the job; set by the cluster router (daemon/routing/). */
  nodeId?: string;
}
