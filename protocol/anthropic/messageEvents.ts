/**
 * The named SSE events of a streamed Anthropic message, as Anthropic sends them:
 *
 *   message_start            the message with empty content, no stop reason yet
 *   ping
 *   per content block, in order:
 *     content_block_start    {index, content_block} with an empty thinking / text / tool_use block
 *     content_block_delta    thinking_delta | text_delta | input_json_delta (a call's whole
 *                            arguments in one delta; they are known only once it is complete)
 *                            | signature_delta (once, closing a thinking block)
 *     content_block_stop
 *   message_delta            {stop_reason, stop_sequence}, and the usage
 *   message_stop
 *
 * Thoughts and answer open a new block whenever the part changes; tool_use blocks follow at
 * the end, and only when the generation ended with its calls (messageResponse.ts). The message
 * starts with the first piece of the generation, so a failure before it (an unknown model, a
 * full queue) is still an HTTP error with its status. The prompt is counted when the
 * generation ends, so message_start's usage is 0 and message_delta carries every count.
 *
 * Pure: no I/O.
 */

import type { ChunkSequence, ResponseMeta, StreamFrame } from "../generationStream.js";
import type { GenerationDelta, GenerationResult } from "../inference.js";
import { returnedToolCalls, stopOf, THINKING_SIGNATURE, toAnthropicUsage, toolInput, type AnthropicUsage } from "./messageResponse.js";
import { toolUseId } from "./ids.js";

type StreamedBlockKind = "thinking" | "text";

const EMPTY_USAGE: AnthropicUsage = { input_tokens: 0, output_tokens: 0, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 };

function frame(event: string, data: Record<string, unknown>): StreamFrame {
  return { event, data: { type: event, ...data } };
}

export class MessageEventSequence implements ChunkSequence {
  private started = false;
  private open: { kind: StreamedBlockKind; index: number } | undefined;
  private blocks = 0;

  constructor(private readonly meta: ResponseMeta) {}

  delta(delta: GenerationDelta): StreamFrame[] {
    if (delta.text === "") return [];
    const frames = this.start();
    const kind: StreamedBlockKind = delta.part === "reasoning" ? "thinking" : "text";
    if (this.open?.kind !== kind) frames.push(...this.closeBlock(), this.openBlock(kind));
    const index = this.open!.index;
    const piece = kind === "thinking" ? { type: "thinking_delta", thinking: delta.text } : { type: "text_delta", text: delta.text };
    frames.push(frame("content_block_delta", { index, delta: piece }));
    return frames;
  }

  finish(result: GenerationResult): StreamFrame[] {
    const frames = [...this.start(), ...this.closeBlock()];
    for (const call of returnedToolCalls(result)) {
      const index = this.blocks++;
      // Parsed first, so a call whose arguments are not an object fails before its block opens.
      const input = toolInput(call);
      frames.push(
        frame("content_block_start", { index, content_block: { type: "tool_use", id: toolUseId(call.id), name: call.name, input: {} } }),
        frame("content_block_delta", { index, delta: { type: "input_json_delta", partial_json: JSON.stringify(input) } }),
        frame("content_block_stop", { index }),
      );
    }
    frames.push(frame("message_delta", { delta: stopOf(result), usage: toAnthropicUsage(result) }), frame("message_stop", {}));
    return frames;
  }

  private start(): StreamFrame[] {
    if (this.started) return [];
    this.started = true;
    const message = {
      id: this.meta.id,
      type: "message",
      role: "assistant",
      model: this.meta.model,
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage: EMPTY_USAGE,
    };
    return [frame("message_start", { message }), frame("ping", {})];
  }

  private openBlock(kind: StreamedBlockKind): StreamFrame {
    const index = this.blocks++;
    this.open = { kind, index };
    const block = kind === "thinking" ? { type: "thinking", thinking: "", signature: "" } : { type: "text", text: "" };
    return frame("content_block_start", { index, content_block: block });
  }

  private closeBlock(): StreamFrame[] {
    const open = this.open;
    if (open === undefined) return [];
    this.open = undefined;
    const frames: StreamFrame[] = [];
    if (open.kind === "thinking") frames.push(frame("content_block_delta", { index: open.index, delta: { type: "signature_delta", signature: THINKING_SIGNATURE } }));
    frames.push(frame("content_block_stop", { index: open.index }));
    return frames;
  }
}
