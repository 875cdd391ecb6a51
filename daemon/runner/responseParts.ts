/**
 * A chat response's answer and reasoning, apart. node-llama-cpp hands thoughts over as
 * segments; what a reasoning template puts between the end of a thought and the answer (Qwen3
 * writes `</think>\n\n`) is layout, not answer, so whitespace after a thought is dropped until
 * the answer really starts. The same rule runs over streamed chunks and over the finished
 * response, so a streamed answer and a non-streamed one are the same text.
 */

import type { ChatModelResponse, ChatModelSegment, LlamaChatResponseChunk } from "node-llama-cpp";
import type { GenerationDelta } from "../../protocol/inference.js";

class AnswerStart {
  #afterThought = false;
  #started = false;

  thought(): void {
    if (!this.#started) this.#afterThought = true;
  }

  /** `text` as far as it belongs to the answer. */
  answer(text: string): string {
    const kept = !this.#started && this.#afterThought ? text.trimStart() : text;
    if (kept !== "") this.#started = true;
    return kept;
  }
}

/** Streamed chunks -> deltas, counting the thought tokens. */
export class ResponseParts {
  readonly #start = new AnswerStart();
  reasoningTokens = 0;

  constructor(private readonly emit: (delta: GenerationDelta) => void) {}

  chunk(chunk: LlamaChatResponseChunk): void {
    if (chunk.type === undefined) {
      const text = this.#start.answer(chunk.text);
      if (text !== "") this.emit({ part: "answer", text });
      return;
    }
    // Other segment kinds (comments) are neither answer nor reasoning.
    if (chunk.segmentType !== "thought") return;
    this.#start.thought();
    this.reasoningTokens += chunk.tokens.length;
    if (chunk.text !== "") this.emit({ part: "reasoning", text: chunk.text });
  }
}

/** A finished response's answer and reasoning, by the same rule as the stream. */
export function responseText(response: ChatModelResponse["response"]): { answer: string; reasoning: string } {
  const start = new AnswerStart();
  let answer = "";
  let reasoning = "";
  for (const item of response) {
    if (typeof item === "string") answer += start.answer(item);
    else if (isThought(item)) {
      start.thought();
      reasoning += item.text;
    }
  }
  return { answer, reasoning };
}

function isThought(item: ChatModelResponse["response"][number]): item is ChatModelSegment {
  return typeof item === "object" && item.type === "segment" && item.segmentType === "thought";
}
