/**
 * `text_completion` bodies for /v1/completions, non-streamed and streamed.
 *
 * A stream sends one chunk per text delta, then a chunk with empty text and the
 * finish_reason, then (with `include_usage`) a chunk with `choices: []` and the usage.
 *
 * Pure: no I/O.
 */

import type { FinishReason, GenerationDelta, GenerationResult } from "../inference.js";
import type { ChunkSequence, ResponseMeta, StreamFrame } from "../generationStream.js";
import { unnamedFrames } from "../generationStream.js";
import { toOpenAiUsage, type OpenAiUsage } from "./usage.js";

export interface TextCompletionChoice {
  index: 0;
  text: string;
  logprobs: null;
  finish_reason: FinishReason | null;
}

export interface TextCompletionBody {
  id: string;
  object: "text_completion";
  created: number;
  model: string;
  choices: TextCompletionChoice[];
  usage?: OpenAiUsage | null;
}

export function buildTextCompletion(meta: ResponseMeta, result: GenerationResult): TextCompletionBody {
  return {
    id: meta.id,
    object: "text_completion",
    created: meta.created,
    model: meta.model,
    choices: [{ index: 0, text: result.text, logprobs: null, finish_reason: result.finishReason }],
    usage: toOpenAiUsage(result),
  };
}

export class CompletionChunkSequence implements ChunkSequence {
  constructor(
    private readonly meta: ResponseMeta,
    private readonly includeUsage: boolean,
  ) {}

  delta(delta: GenerationDelta): StreamFrame[] {
    // A text completion has no reasoning part.
    return delta.text === "" || delta.part !== "answer" ? [] : unnamedFrames([this.chunk(delta.text, null)]);
  }

  finish(result: GenerationResult): StreamFrame[] {
    const chunks = [this.chunk("", result.finishReason)];
    if (this.includeUsage) chunks.push({ ...this.base(), choices: [], usage: toOpenAiUsage(result) });
    return unnamedFrames(chunks);
  }

  private base(): Omit<TextCompletionBody, "choices" | "usage"> {
    return { id: this.meta.id, object: "text_completion", created: this.meta.created, model: this.meta.model };
  }

  private chunk(text: string, finishReason: FinishReason | null): TextCompletionBody {
    const chunk: TextCompletionBody = { ...this.base(), choices: [{ index: 0, text, logprobs: null, finish_reason: finishReason }] };
    if (this.includeUsage) chunk.usage = null;
    return chunk;
  }
}
