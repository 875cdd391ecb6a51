/**
 * Streamed `chat.completion.chunk` objects for one chat generation.
 *
 * Order, as OpenAI sends it: a first chunk whose delta carries `role: "assistant"`, content
 * deltas (a reasoning model's thoughts as `reasoning_content` deltas, the field llama-server,
 * vLLM and DeepSeek use), then (when the model called tools) one chunk with every `delta.tool_calls`, then a
 * chunk with an empty delta and the finish_reason, and with `include_usage` a last chunk
 * with `choices: []` and the usage. finish_reason is null on every chunk but the finishing
 * one; with `include_usage` every other chunk carries `usage: null`, as OpenAI's do.
 *
 * Pure: no I/O.
 */

import type { ChunkSequence, ResponseMeta, StreamFrame } from "../generationStream.js";
import { unnamedFrames } from "../generationStream.js";
import type { FinishReason, GenerationDelta, GenerationResult } from "../inference.js";
import { toOpenAiToolCall, type OpenAiToolCall } from "./chatResponse.js";
import { toOpenAiUsage, type OpenAiUsage } from "./usage.js";

export interface ChatChunkDelta {
  role?: "assistant";
  content?: string;
  reasoning_content?: string;
  tool_calls?: (OpenAiToolCall & { index: number })[];
}

export interface ChatCompletionChunk {
  id: string;
  object: "chat.completion.chunk";
  created: number;
  model: string;
  choices: { index: 0; delta: ChatChunkDelta; finish_reason: FinishReason | null; logprobs: null }[];
  usage?: OpenAiUsage | null;
}

export class ChatChunkSequence implements ChunkSequence {
  private roleSent = false;

  constructor(
    private readonly meta: ResponseMeta,
    private readonly includeUsage: boolean,
  ) {}

  delta(delta: GenerationDelta): StreamFrame[] {
    if (delta.text === "") return [];
    const piece: ChatChunkDelta = delta.part === "reasoning" ? { reasoning_content: delta.text } : { content: delta.text };
    return unnamedFrames([...this.roleChunk(), this.chunk(piece, null)]);
  }

  finish(result: GenerationResult): StreamFrame[] {
    return unnamedFrames(this.finishingChunks(result));
  }

  private finishingChunks(result: GenerationResult): ChatCompletionChunk[] {
    const chunks = this.roleChunk();
    if (result.toolCalls.length > 0) {
      const toolCalls = result.toolCalls.map((call, index) => ({ index, ...toOpenAiToolCall(call) }));
      chunks.push(this.chunk({ tool_calls: toolCalls }, null));
    }
    chunks.push(this.chunk({}, result.finishReason));
    if (this.includeUsage) {
      chunks.push({ ...this.base(), choices: [], usage: toOpenAiUsage(result) });
    }
    return chunks;
  }

  private roleChunk(): ChatCompletionChunk[] {
    if (this.roleSent) return [];
    this.roleSent = true;
    return [this.chunk({ role: "assistant", content: "" }, null)];
  }

  private base(): Omit<ChatCompletionChunk, "choices" | "usage"> {
    return { id: this.meta.id, object: "chat.completion.chunk", created: this.meta.created, model: this.meta.model };
  }

  private chunk(delta: ChatChunkDelta, finishReason: FinishReason | null): ChatCompletionChunk {
    const chunk: ChatCompletionChunk = { ...this.base(), choices: [{ index: 0, delta, finish_reason: finishReason, logprobs: null }] };
    if (this.includeUsage) chunk.usage = null;
    return chunk;
  }
}
