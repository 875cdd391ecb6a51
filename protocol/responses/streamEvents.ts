/**
 * The streamed events of one response, as OpenAI sends them and the openai SDK's stream helper
 * accumulates them. Every event has `type` (also its SSE `event:` name) and `sequence_number`,
 * counting from 0; there is no `[DONE]`.
 *
 *   response.created, response.in_progress                  (with the first output, or at the end)
 *   reasoning item:  response.output_item.added, response.content_part.added (reasoning_text),
 *                    response.reasoning_text.delta…, response.reasoning_text.done,
 *                    response.content_part.done, response.output_item.done
 *   message item:    response.output_item.added, response.content_part.added (output_text),
 *                    response.output_text.delta…, response.output_text.done,
 *                    response.content_part.done, response.output_item.done
 *   each call:       response.output_item.added, response.function_call_arguments.delta,
 *                    response.function_call_arguments.done, response.output_item.done
 *   response.completed | response.incomplete                 (the whole response)
 *
 * The first events wait for the first output so a failure before it is still a plain HTTP
 * error with its status (daemon/http/SseWriter.ts commits lazily). A failure after is one
 * `response.failed` (or, if not even `response.created` went out, one `error` event).
 * Calls are complete when the runner reports them, so their arguments come in one delta.
 * Chat templates put thoughts before the answer; a thought streamed after the answer began has
 * no item left to go to in the stream (it is still in the stored response).
 *
 * Pure: no I/O.
 */

import type { HearthError } from "../errors.js";
import type { ChunkSequence, ResponseMeta, StreamFrame } from "../generationStream.js";
import type { GenerationDelta, GenerationResult } from "../inference.js";
import { outputItemIds } from "./ids.js";
import type { ResponseEcho } from "./request.js";
import {
  failedResponse,
  finishedResponse,
  functionCallItem,
  hasMessageItem,
  inProgressResponse,
  isIncomplete,
  messageItem,
  outputText,
  reasoningItem,
  returnedCalls,
  type OutputItem,
} from "./responseBody.js";

type ItemKind = "reasoning" | "message";

interface OpenItem {
  kind: ItemKind;
  outputIndex: number;
  text: string;
  done: boolean;
}

export class ResponseEventSequence implements ChunkSequence {
  private sequenceNumber = 0;
  private started = false;
  private readonly items: OpenItem[] = [];
  private readonly ids: ReturnType<typeof outputItemIds>;

  constructor(
    private readonly meta: ResponseMeta,
    private readonly echo: ResponseEcho,
    /** Seconds since the epoch, for `completed_at`. */
    private readonly now: () => number,
  ) {
    this.ids = outputItemIds(meta.id);
  }

  delta(delta: GenerationDelta): StreamFrame[] {
    if (delta.text === "") return [];
    const frames = this.start();
    if (delta.part === "reasoning") {
      if (this.item("message") !== undefined) return frames;
      const reasoning = this.item("reasoning") ?? this.openReasoning(frames);
      reasoning.text += delta.text;
      frames.push(this.event("response.reasoning_text.delta", { item_id: this.ids.reasoning, output_index: reasoning.outputIndex, content_index: 0, delta: delta.text }));
      return frames;
    }
    const reasoning = this.item("reasoning");
    if (reasoning !== undefined && !reasoning.done) this.closeReasoning(frames, reasoning, reasoning.text);
    const message = this.item("message") ?? this.openMessage(frames);
    message.text += delta.text;
    frames.push(this.event("response.output_text.delta", { item_id: this.ids.message, output_index: message.outputIndex, content_index: 0, delta: delta.text, logprobs: [] }));
    return frames;
  }

  finish(result: GenerationResult): StreamFrame[] {
    const frames = this.start();
    const calls = returnedCalls(result, this.echo);
    let reasoning = this.item("reasoning");
    if (reasoning === undefined && result.reasoning !== "" && this.item("message") === undefined) {
      reasoning = this.openReasoning(frames);
      frames.push(this.event("response.reasoning_text.delta", { item_id: this.ids.reasoning, output_index: reasoning.outputIndex, content_index: 0, delta: result.reasoning }));
    }
    if (reasoning !== undefined && !reasoning.done) this.closeReasoning(frames, reasoning, result.reasoning);
    let message = this.item("message");
    if (message === undefined && hasMessageItem(result, calls)) {
      message = this.openMessage(frames);
      if (result.text !== "") frames.push(this.event("response.output_text.delta", { item_id: this.ids.message, output_index: message.outputIndex, content_index: 0, delta: result.text, logprobs: [] }));
    }
    const status = isIncomplete(result) ? "incomplete" : "completed";
    if (message !== undefined) {
      const at = { item_id: this.ids.message, output_index: message.outputIndex, content_index: 0 };
      frames.push(this.event("response.output_text.done", { ...at, text: result.text, logprobs: [] }));
      frames.push(this.event("response.content_part.done", { ...at, part: outputText(result.text) }));
      frames.push(this.event("response.output_item.done", { output_index: message.outputIndex, item: messageItem(this.meta.id, result.text, status) }));
      message.done = true;
    }
    const output: OutputItem[] = this.items.map((item) => (item.kind === "reasoning" ? reasoningItem(this.meta.id, result.reasoning || item.text, "completed") : messageItem(this.meta.id, result.text, status)));
    calls.forEach((call, index) => {
      const outputIndex = this.items.length + index;
      const itemId = this.ids.functionCall(index);
      frames.push(this.event("response.output_item.added", { output_index: outputIndex, item: functionCallItem(this.meta.id, call, index, "in_progress", "") }));
      frames.push(this.event("response.function_call_arguments.delta", { item_id: itemId, output_index: outputIndex, delta: call.arguments }));
      frames.push(this.event("response.function_call_arguments.done", { item_id: itemId, output_index: outputIndex, name: call.name, arguments: call.arguments }));
      const done = functionCallItem(this.meta.id, call, index, "completed");
      frames.push(this.event("response.output_item.done", { output_index: outputIndex, item: done }));
      output.push(done);
    });
    const response = finishedResponse(this.meta, this.echo, result, this.now(), output);
    frames.push(this.event(status === "incomplete" ? "response.incomplete" : "response.completed", { response }));
    return frames;
  }

  /** The one frame that ends a stream which failed after it began. */
  failed(error: HearthError): StreamFrame {
    if (!this.started) return this.event("error", { code: error.code, message: error.message, param: error.param });
    const output = this.items.filter((item) => item.done).map((item) => (item.kind === "reasoning" ? reasoningItem(this.meta.id, item.text, "completed") : messageItem(this.meta.id, item.text, "completed")));
    return this.event("response.failed", { response: failedResponse(this.meta, this.echo, { code: error.code, message: error.message }, output) });
  }

  private item(kind: ItemKind): OpenItem | undefined {
    return this.items.find((item) => item.kind === kind);
  }

  private start(): StreamFrame[] {
    if (this.started) return [];
    this.started = true;
    const response = inProgressResponse(this.meta, this.echo);
    return [this.event("response.created", { response }), this.event("response.in_progress", { response })];
  }

  private openItem(kind: ItemKind): OpenItem {
    const item: OpenItem = { kind, outputIndex: this.items.length, text: "", done: false };
    this.items.push(item);
    return item;
  }

  private openReasoning(frames: StreamFrame[]): OpenItem {
    const item = this.openItem("reasoning");
    frames.push(this.event("response.output_item.added", { output_index: item.outputIndex, item: reasoningItem(this.meta.id, "", "in_progress") }));
    frames.push(this.event("response.content_part.added", { item_id: this.ids.reasoning, output_index: item.outputIndex, content_index: 0, part: { type: "reasoning_text", text: "" } }));
    return item;
  }

  private closeReasoning(frames: StreamFrame[], item: OpenItem, text: string): void {
    const at = { item_id: this.ids.reasoning, output_index: item.outputIndex, content_index: 0 };
    frames.push(this.event("response.reasoning_text.done", { ...at, text }));
    frames.push(this.event("response.content_part.done", { ...at, part: { type: "reasoning_text", text } }));
    frames.push(this.event("response.output_item.done", { output_index: item.outputIndex, item: reasoningItem(this.meta.id, text, "completed") }));
    item.text = text;
    item.done = true;
  }

  private openMessage(frames: StreamFrame[]): OpenItem {
    const item = this.openItem("message");
    frames.push(this.event("response.output_item.added", { output_index: item.outputIndex, item: messageItem(this.meta.id, undefined, "in_progress") }));
    frames.push(this.event("response.content_part.added", { item_id: this.ids.message, output_index: item.outputIndex, content_index: 0, part: outputText("") }));
    return item;
  }

  private event(type: string, fields: object): StreamFrame {
    return { event: type, data: { type, sequence_number: this.sequenceNumber++, ...fields } };
  }
}
