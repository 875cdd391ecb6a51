// Response bodies and streamed events of the Responses API (protocol/responses/responseBody.ts,
// streamEvents.ts), the stored record (storedResponse.ts) and input-item pages
// (inputItemsPage.ts): exact items, the exact event order with sequence numbers 0..n, and a
// stream that the openai SDK's own accumulator turns into the same response as the body.

import { accumulateResponse } from "openai/lib/responses/ResponseAccumulator";
import type { Response as SdkResponse, ResponseStreamEvent } from "openai/resources/responses/responses";
import { describe, expect, it } from "vitest";
import { errors } from "../../protocol/errors.js";
import type { StreamFrame } from "../../protocol/generationStream.js";
import type { GenerationDelta, GenerationResult } from "../../protocol/inference.js";
import { isValidResponseId, newResponseId } from "../../protocol/responses/ids.js";
import { inputItemsPage, parseInputItemsQuery } from "../../protocol/responses/inputItemsPage.js";
import { withItemIds, type InputItem } from "../../protocol/responses/inputItems.js";
import { parseResponsesRequest, type ResponseEcho } from "../../protocol/responses/request.js";
import { finishedResponse, outputItems, type ResponseBody } from "../../protocol/responses/responseBody.js";
import { ResponseEventSequence } from "../../protocol/responses/streamEvents.js";
import { parseStoredResponse, storedResponse } from "../../protocol/responses/storedResponse.js";
import { thrownBy } from "../support/thrown.js";

const ID = `resp_${"ab".repeat(24)}`;
const SUFFIX = "ab".repeat(24);
const meta = { id: ID, created: 1_700_000_000, model: "my-model" };
const COMPLETED_AT = 1_700_000_005;

function echo(body: Record<string, unknown> = {}): ResponseEcho {
  return parseResponsesRequest({ model: "my-model", input: "x", ...body }).echo;
}

function result(overrides: Partial<GenerationResult> = {}): GenerationResult {
  return {
    text: "ANSWER",
    reasoning: "THOUGHT",
    toolCalls: [],
    finishReason: "stop",
    usage: { promptTokens: 10, completionTokens: 7, reasoningTokens: 2 },
    cachedPromptTokens: 4,
    ...overrides,
  };
}

const CALLS = [
  { id: "call_1", name: "get_weather", arguments: '{"city":"Paris"}' },
  { id: "call_2", name: "get_time", arguments: '{"zone":"CET"}' },
];

const thought = (text: string): GenerationDelta => ({ part: "reasoning", text });
const answer = (text: string): GenerationDelta => ({ part: "answer", text });

function run(deltas: GenerationDelta[], final: GenerationResult, responseEcho = echo()): StreamFrame[] {
  const sequence = new ResponseEventSequence(meta, responseEcho, () => COMPLETED_AT);
  return [...deltas.flatMap((delta) => sequence.delta(delta)), ...sequence.finish(final)];
}

function types(frames: StreamFrame[]): string[] {
  return frames.map((frame) => frame.event ?? "");
}

/** What the openai SDK's stream helper makes of the events. */
function accumulated(frames: StreamFrame[]): SdkResponse {
  let snapshot: SdkResponse | undefined;
  for (const frame of frames) snapshot = accumulateResponse(frame.data as ResponseStreamEvent, snapshot);
  return snapshot!;
}

describe("ids", () => {
  it("response ids are resp_ and 48 hex digits, and only those are valid", () => {
    const id = newResponseId();
    expect(id).toMatch(/^resp_[0-9a-f]{48}$/);
    expect(isValidResponseId(id)).toBe(true);
    for (const bad of ["resp_../../etc/passwd", `${id}x`, id.toUpperCase(), `resp_${"g".repeat(48)}`, "", `../${id}`, `${id}/`, 42]) expect(isValidResponseId(bad)).toBe(false);
  });
});

describe("response bodies", () => {
  it("a thought and an answer are a reasoning item and a message item, with the usage in Responses form", () => {
    const body = finishedResponse(meta, echo(), result(), COMPLETED_AT);
    expect(body).toMatchObject({ id: ID, object: "response", created_at: meta.created, completed_at: COMPLETED_AT, model: "my-model", status: "completed", error: null, incomplete_details: null });
    expect(body.output).toEqual([
      { type: "reasoning", id: `rs_${SUFFIX}`, summary: [], content: [{ type: "reasoning_text", text: "THOUGHT" }], encrypted_content: null, status: "completed" },
      { type: "message", id: `msg_${SUFFIX}`, role: "assistant", content: [{ type: "output_text", text: "ANSWER", annotations: [], logprobs: [] }], status: "completed" },
    ]);
    expect(body.usage).toEqual({ input_tokens: 10, input_tokens_details: { cached_tokens: 4 }, output_tokens: 7, output_tokens_details: { reasoning_tokens: 2 }, total_tokens: 17 });
    expect(body).not.toHaveProperty("output_text");
  });

  it("calls are function_call items after the reasoning, with no message when there is no text", () => {
    const items = outputItems(ID, result({ text: "", toolCalls: CALLS, finishReason: "tool_calls" }), echo());
    expect(items.map((item) => item.type)).toEqual(["reasoning", "function_call", "function_call"]);
    expect(items.slice(1)).toEqual([
      { type: "function_call", id: `fc_${SUFFIX}_0`, call_id: "call_1", name: "get_weather", arguments: '{"city":"Paris"}', status: "completed" },
      { type: "function_call", id: `fc_${SUFFIX}_1`, call_id: "call_2", name: "get_time", arguments: '{"zone":"CET"}', status: "completed" },
    ]);
  });

  it("parallel_tool_calls false keeps the first call, max_tool_calls the first that many", () => {
    const final = result({ text: "", toolCalls: CALLS, finishReason: "tool_calls" });
    expect(outputItems(ID, final, echo({ parallel_tool_calls: false })).filter((item) => item.type === "function_call").map((item) => item.name)).toEqual(["get_weather"]);
    expect(outputItems(ID, final, echo({ max_tool_calls: 1 })).filter((item) => item.type === "function_call")).toHaveLength(1);
    expect(outputItems(ID, final, echo({ max_tool_calls: 5 })).filter((item) => item.type === "function_call")).toHaveLength(2);
  });

  it("a generation cut off by the token limit is incomplete with reason max_output_tokens and no message without text", () => {
    const body = finishedResponse(meta, echo(), result({ text: "", finishReason: "length" }), COMPLETED_AT);
    expect(body.status).toBe("incomplete");
    expect(body.incomplete_details).toEqual({ reason: "max_output_tokens" });
    expect(body.output.map((item) => item.type)).toEqual(["reasoning"]);
    const partial = finishedResponse(meta, echo(), result({ text: "It is", finishReason: "length" }), COMPLETED_AT);
    expect(partial.output[1]).toMatchObject({ type: "message", status: "incomplete", content: [{ text: "It is" }] });
  });

  it("no thought means no reasoning item; an empty answer is still a message", () => {
    expect(outputItems(ID, result({ reasoning: "", text: "" }), echo()).map((item) => item.type)).toEqual(["message"]);
  });

  it("echoes the request fields", () => {
    const body = finishedResponse(meta, echo({ instructions: "Be brief.", metadata: { a: "1" }, store: false, temperature: 0 }), result(), COMPLETED_AT);
    expect(body).toMatchObject({ instructions: "Be brief.", metadata: { a: "1" }, store: false, temperature: 0, top_p: 1, tool_choice: "none", tools: [], truncation: "disabled", background: false });
  });
});

describe("streamed events", () => {
  it("a thought then an answer: the exact event order, sequence numbers 0..n, the final response equal to the body", () => {
    const frames = run([thought("THO"), thought("UGHT"), answer("ANS"), answer("WER")], result());
    expect(types(frames)).toEqual([
      "response.created",
      "response.in_progress",
      "response.output_item.added",
      "response.content_part.added",
      "response.reasoning_text.delta",
      "response.reasoning_text.delta",
      "response.reasoning_text.done",
      "response.content_part.done",
      "response.output_item.done",
      "response.output_item.added",
      "response.content_part.added",
      "response.output_text.delta",
      "response.output_text.delta",
      "response.output_text.done",
      "response.content_part.done",
      "response.output_item.done",
      "response.completed",
    ]);
    frames.forEach((frame, index) => {
      expect(frame.data).toMatchObject({ type: frame.event, sequence_number: index });
    });
    const last = frames.at(-1)!.data as { response: ResponseBody };
    expect(last.response).toEqual(finishedResponse(meta, echo(), result(), COMPLETED_AT));
    expect(frames[0]!.data).toMatchObject({ response: { status: "in_progress", output: [], usage: null } });
  });

  it("the SDK's accumulator rebuilds every item while the stream runs", () => {
    const frames = run([thought("THO"), thought("UGHT"), answer("ANS"), answer("WER")], result());
    // Everything but the last event (which replaces the snapshot) must add up to the output.
    const snapshot = accumulated(frames.slice(0, -1));
    expect(snapshot.output).toEqual(finishedResponse(meta, echo(), result(), COMPLETED_AT).output);
    expect(snapshot.output_text).toBe("ANSWER");
  });

  it("calls: each one added, its arguments in one delta, done, then the response", () => {
    const final = result({ text: "", toolCalls: CALLS, finishReason: "tool_calls" });
    const frames = run([thought("THOUGHT")], final);
    expect(types(frames).slice(8)).toEqual([
      "response.output_item.added",
      "response.function_call_arguments.delta",
      "response.function_call_arguments.done",
      "response.output_item.done",
      "response.output_item.added",
      "response.function_call_arguments.delta",
      "response.function_call_arguments.done",
      "response.output_item.done",
      "response.completed",
    ]);
    expect(frames[8]!.data).toMatchObject({ output_index: 1, item: { type: "function_call", call_id: "call_1", name: "get_weather", arguments: "", status: "in_progress" } });
    expect(frames[10]!.data).toMatchObject({ item_id: `fc_${SUFFIX}_0`, output_index: 1, name: "get_weather", arguments: '{"city":"Paris"}' });
    const snapshot = accumulated(frames.slice(0, -1));
    expect(snapshot.output).toEqual(outputItems(ID, final, echo()));
  });

  it("a cut-off generation ends with response.incomplete", () => {
    const frames = run([thought("THOUGHT")], result({ text: "", finishReason: "length" }));
    expect(types(frames).slice(-2)).toEqual(["response.output_item.done", "response.incomplete"]);
    expect(frames.at(-1)!.data).toMatchObject({ response: { status: "incomplete", incomplete_details: { reason: "max_output_tokens" } } });
  });

  it("output that never streamed as deltas is still announced in order at the end", () => {
    const frames = run([], result());
    expect(types(frames).filter((type) => type === "response.output_item.added")).toHaveLength(2);
    expect(accumulated(frames.slice(0, -1)).output).toEqual(outputItems(ID, result(), echo()));
  });

  it("a failure after the start is one response.failed with the error; before it, one error event", () => {
    const sequence = new ResponseEventSequence(meta, echo(), () => COMPLETED_AT);
    const notStarted = sequence.failed(errors.runnerCrashed("gone"));
    expect(notStarted).toEqual({ event: "error", data: { type: "error", sequence_number: 0, code: "HEARTH_RUNNER_CRASHED", message: "gone", param: null } });
    const started = new ResponseEventSequence(meta, echo(), () => COMPLETED_AT);
    const frames = started.delta(answer("AN"));
    const failed = started.failed(errors.runnerCrashed("gone"));
    expect(failed.event).toBe("response.failed");
    expect(failed.data).toMatchObject({ type: "response.failed", sequence_number: frames.length, response: { status: "failed", error: { code: "HEARTH_RUNNER_CRASHED", message: "gone" } } });
  });
});

describe("stored records", () => {
  const input: InputItem[] = [
    { type: "message", role: "user", content: [{ type: "input_text", text: "Hi" }], status: "completed" },
    { type: "function_call", id: "fc_client", call_id: "c1", name: "f", arguments: "{}", status: "completed" },
  ];

  it("keep the body, the input items with ids, and the conversation with this response's turn", () => {
    const final = result({ toolCalls: CALLS, finishReason: "tool_calls" });
    const record = storedResponse({ response: finishedResponse(meta, echo({ parallel_tool_calls: false }), final, COMPLETED_AT), input, conversation: [{ role: "user", content: "Hi" }], result: final, echo: echo({ parallel_tool_calls: false }), storedAt: 5 });
    expect(record.inputItems.map((item) => item.id)).toEqual([`msg_${SUFFIX}_in0`, "fc_client"]);
    expect(record.conversation).toEqual([
      { role: "user", content: "Hi" },
      { role: "assistant", content: "ANSWER", reasoning: "THOUGHT", toolCalls: [CALLS[0]] },
    ]);
    expect(parseStoredResponse(JSON.parse(JSON.stringify(record)), ID)).toEqual(record);
  });

  it("a record that is not one, or not the one asked for, reads as nothing", () => {
    const record = storedResponse({ response: finishedResponse(meta, echo(), result(), COMPLETED_AT), input, conversation: [], result: result(), echo: echo(), storedAt: 5 });
    expect(parseStoredResponse(record, `resp_${"cd".repeat(24)}`)).toBeUndefined();
    expect(parseStoredResponse({ ...record, conversation: [{ role: "wizard", content: "x" }] }, ID)).toBeUndefined();
    expect(parseStoredResponse(null, ID)).toBeUndefined();
  });
});

describe("input item pages", () => {
  const items = withItemIds(
    Array.from({ length: 5 }, (_, index): InputItem => ({ type: "message", role: "user", content: [{ type: "input_text", text: String(index) }], status: "completed" })),
    (prefix, index) => `${prefix}_${index}`,
  );

  it("newest first by default, 20 at a time; asc, limit and after page through", () => {
    expect(inputItemsPage(items, parseInputItemsQuery(new URLSearchParams())).data.map((item) => item.id)).toEqual(["msg_4", "msg_3", "msg_2", "msg_1", "msg_0"]);
    const first = inputItemsPage(items, parseInputItemsQuery(new URLSearchParams("order=asc&limit=2")));
    expect(first).toMatchObject({ object: "list", first_id: "msg_0", last_id: "msg_1", has_more: true });
    const last = inputItemsPage(items, parseInputItemsQuery(new URLSearchParams("order=asc&limit=2&after=msg_3")));
    expect(last).toMatchObject({ first_id: "msg_4", last_id: "msg_4", has_more: false });
  });

  it.each([["limit=0", "limit"], ["limit=101", "limit"], ["limit=x", "limit"], ["order=up", "order"], ["after=nope", "after"]])("refuses %s naming %s", (query, param) => {
    const error = thrownBy(() => inputItemsPage(items, parseInputItemsQuery(new URLSearchParams(query))));
    expect(error.param).toBe(param);
  });
});
