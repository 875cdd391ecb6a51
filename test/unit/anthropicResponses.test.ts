import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { anthropicErrorType, toAnthropicErrorBody } from "../../protocol/anthropic/errorBody.js";
import { newMessageId, toolUseId } from "../../protocol/anthropic/ids.js";
import { MessageEventSequence } from "../../protocol/anthropic/messageEvents.js";
import { buildMessage, stopOf, toAnthropicUsage } from "../../protocol/anthropic/messageResponse.js";
import { buildAnthropicModel, buildAnthropicModelList, parseModelPageQuery } from "../../protocol/anthropic/modelsResponse.js";
import { errors } from "../../protocol/errors.js";
import type { StreamFrame } from "../../protocol/generationStream.js";
import type { GenerationDelta, GenerationResult } from "../../protocol/inference.js";
import { thrownBy } from "../support/thrown.js";

const meta = { id: "msg_abc", created: 1_700_000_000, model: "my-alias" };

function result(overrides: Partial<GenerationResult> = {}): GenerationResult {
  return {
    text: "Hello there",
    reasoning: "",
    toolCalls: [],
    finishReason: "stop",
    usage: { promptTokens: 10, completionTokens: 3, reasoningTokens: 0 },
    cachedPromptTokens: 4,
    ...overrides,
  };
}

const twoCalls = [
  { id: "call_A1", name: "get_weather", arguments: '{"city":"Paris"}' },
  { id: "call_B2", name: "get_time", arguments: '{"zone":"CET"}' },
];

const answer = (text: string): GenerationDelta => ({ part: "answer", text });
const thought = (text: string): GenerationDelta => ({ part: "reasoning", text });

describe("buildMessage", () => {
  it("is Anthropic's message: thinking, text, then tool_use blocks, usage split by the cache", () => {
    const body = buildMessage(meta, result({ reasoning: "Hmm.", text: "Calling.", toolCalls: twoCalls, finishReason: "tool_calls" }));
    expect(body).toEqual({
      id: "msg_abc",
      type: "message",
      role: "assistant",
      model: "my-alias",
      content: [
        { type: "thinking", thinking: "Hmm.", signature: "" },
        { type: "text", text: "Calling." },
        { type: "tool_use", id: "toolu_A1", name: "get_weather", input: { city: "Paris" } },
        { type: "tool_use", id: "toolu_B2", name: "get_time", input: { zone: "CET" } },
      ],
      stop_reason: "tool_use",
      stop_sequence: null,
      usage: { input_tokens: 6, output_tokens: 3, cache_read_input_tokens: 4, cache_creation_input_tokens: 0 },
    });
  });

  it("leaves out empty thoughts and empty text", () => {
    expect(buildMessage(meta, result({ text: "" })).content).toEqual([]);
    expect(buildMessage(meta, result({ text: "", toolCalls: twoCalls, finishReason: "tool_calls" })).content.map((block) => block.type)).toEqual(["tool_use", "tool_use"]);
  });

  it("never returns calls of a generation the token limit ended", () => {
    const body = buildMessage(meta, result({ reasoning: "Hmm.", text: "", toolCalls: twoCalls.slice(0, 1), finishReason: "length" }));
    expect(body.stop_reason).toBe("max_tokens");
    expect(body.content).toEqual([{ type: "thinking", thinking: "Hmm.", signature: "" }]);
  });

  it("fails loudly on call arguments that are not a JSON object", () => {
    const error = thrownBy(() => buildMessage(meta, result({ toolCalls: [{ id: "call_x", name: "f", arguments: "[1]" }], finishReason: "tool_calls" })));
    expect(error.code).toBe("HEARTH_INTERNAL");
  });
});

describe("stopOf and toAnthropicUsage", () => {
  it("maps every finish reason, naming the stop sequence that ended generation", () => {
    expect(stopOf({ finishReason: "stop" })).toEqual({ stop_reason: "end_turn", stop_sequence: null });
    expect(stopOf({ finishReason: "stop", stopSequence: "END" })).toEqual({ stop_reason: "stop_sequence", stop_sequence: "END" });
    expect(stopOf({ finishReason: "length" })).toEqual({ stop_reason: "max_tokens", stop_sequence: null });
    expect(stopOf({ finishReason: "tool_calls" })).toEqual({ stop_reason: "tool_use", stop_sequence: null });
  });

  it("always adds input and cache reads up to the prompt", () => {
    fc.assert(
      fc.property(fc.nat(10_000), fc.nat(10_000), fc.nat(10_000), (prompt, cached, completion) => {
        const usage = toAnthropicUsage({ usage: { promptTokens: prompt, completionTokens: completion, reasoningTokens: 0 }, cachedPromptTokens: cached });
        expect(usage.input_tokens + usage.cache_read_input_tokens).toBe(prompt);
        expect(usage.input_tokens).toBeGreaterThanOrEqual(0);
        expect(usage.output_tokens).toBe(completion);
      }),
    );
  });
});

interface EventData {
  type: string;
  index?: number;
  delta?: Record<string, unknown>;
  content_block?: Record<string, unknown>;
  message?: Record<string, unknown>;
  usage?: Record<string, number>;
}

function events(frames: StreamFrame[]): EventData[] {
  return frames.map((frame) => {
    const data = frame.data as EventData;
    expect(frame.event).toBe(data.type);
    return data;
  });
}

function run(deltas: GenerationDelta[], finished: GenerationResult): EventData[] {
  const sequence = new MessageEventSequence(meta);
  const frames = deltas.flatMap((delta) => sequence.delta(delta));
  return events([...frames, ...sequence.finish(finished)]);
}

describe("MessageEventSequence", () => {
  it("sends Anthropic's events in order for a thought, an answer and two calls", () => {
    const sent = run([thought("Hm"), thought("m."), answer(""), answer("Calling.")], result({ reasoning: "Hmm.", text: "Calling.", toolCalls: twoCalls, finishReason: "tool_calls" }));
    expect(sent).toEqual([
      {
        type: "message_start",
        message: { id: "msg_abc", type: "message", role: "assistant", model: "my-alias", content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 0, output_tokens: 0, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 } },
      },
      { type: "ping" },
      { type: "content_block_start", index: 0, content_block: { type: "thinking", thinking: "", signature: "" } },
      { type: "content_block_delta", index: 0, delta: { type: "thinking_delta", thinking: "Hm" } },
      { type: "content_block_delta", index: 0, delta: { type: "thinking_delta", thinking: "m." } },
      { type: "content_block_delta", index: 0, delta: { type: "signature_delta", signature: "" } },
      { type: "content_block_stop", index: 0 },
      { type: "content_block_start", index: 1, content_block: { type: "text", text: "" } },
      { type: "content_block_delta", index: 1, delta: { type: "text_delta", text: "Calling." } },
      { type: "content_block_stop", index: 1 },
      { type: "content_block_start", index: 2, content_block: { type: "tool_use", id: "toolu_A1", name: "get_weather", input: {} } },
      { type: "content_block_delta", index: 2, delta: { type: "input_json_delta", partial_json: '{"city":"Paris"}' } },
      { type: "content_block_stop", index: 2 },
      { type: "content_block_start", index: 3, content_block: { type: "tool_use", id: "toolu_B2", name: "get_time", input: {} } },
      { type: "content_block_delta", index: 3, delta: { type: "input_json_delta", partial_json: '{"zone":"CET"}' } },
      { type: "content_block_stop", index: 3 },
      { type: "message_delta", delta: { stop_reason: "tool_use", stop_sequence: null }, usage: { input_tokens: 6, output_tokens: 3, cache_read_input_tokens: 4, cache_creation_input_tokens: 0 } },
      { type: "message_stop" },
    ]);
  });

  it("still starts and ends the message when nothing was generated", () => {
    expect(run([], result({ text: "" })).map((event) => event.type)).toEqual(["message_start", "ping", "message_delta", "message_stop"]);
  });

  it("opens a new block each time the part changes, and none for calls the limit cut", () => {
    const sent = run([thought("a"), answer("b"), thought("c")], result({ reasoning: "ac", text: "b", toolCalls: twoCalls, finishReason: "length" }));
    expect(sent.filter((event) => event.type === "content_block_start").map((event) => event.content_block?.["type"])).toEqual(["thinking", "text", "thinking"]);
    expect(sent.filter((event) => event.type === "content_block_stop").map((event) => event.index)).toEqual([0, 1, 2]);
    expect(sent.find((event) => event.type === "message_delta")?.delta).toEqual({ stop_reason: "max_tokens", stop_sequence: null });
  });

  it("names the stop sequence in message_delta", () => {
    const sent = run([answer("x")], result({ text: "x", stopSequence: "END" }));
    expect(sent.find((event) => event.type === "message_delta")?.delta).toEqual({ stop_reason: "stop_sequence", stop_sequence: "END" });
  });

  it("concatenates deltas to the non-streamed content, for any split of the text", () => {
    fc.assert(
      fc.property(fc.array(fc.record({ part: fc.constantFrom("answer" as const, "reasoning" as const), text: fc.string({ maxLength: 6 }) }), { maxLength: 12 }), (deltas) => {
        const reasoning = deltas.filter((delta) => delta.part === "reasoning").map((delta) => delta.text).join("");
        const text = deltas.filter((delta) => delta.part === "answer").map((delta) => delta.text).join("");
        const sent = run(deltas, result({ reasoning, text }));
        const joined = (type: string, key: string): string =>
          sent.filter((event) => event.delta?.["type"] === type).map((event) => String(event.delta?.[key])).join("");
        expect(joined("thinking_delta", "thinking")).toBe(reasoning);
        expect(joined("text_delta", "text")).toBe(text);
        // Every started block is stopped, in order, and indexes count up from 0.
        const starts = sent.filter((event) => event.type === "content_block_start").map((event) => event.index);
        expect(starts).toEqual(starts.map((_, index) => index));
        expect(sent.filter((event) => event.type === "content_block_stop").map((event) => event.index)).toEqual(starts);
      }),
    );
  });
});

describe("models in Anthropic's shape", () => {
  const models = ["a", "b", "c", "d", "e"].map((id, index) => ({ id, aliases: [], sizeBytes: 1, createdAt: 1_700_000_000 + index }));

  it("is {type, id, display_name, created_at} with an RFC 3339 time", () => {
    expect(buildAnthropicModel(models[0]!)).toEqual({ type: "model", id: "a", display_name: "a", created_at: "2023-11-14T22:13:20.000Z" });
    expect(buildAnthropicModel({ id: "peer-only", createdAt: 0 }).created_at).toBe("1970-01-01T00:00:00.000Z");
  });

  it("pages forwards and backwards", () => {
    expect(buildAnthropicModelList(models)).toEqual({ data: models.map(buildAnthropicModel), has_more: false, first_id: "a", last_id: "e" });
    const ids = (page: { data: { id: string }[] }): string[] => page.data.map((model) => model.id);
    const first = buildAnthropicModelList(models, { limit: 2 });
    expect([ids(first), first.has_more, first.first_id, first.last_id]).toEqual([["a", "b"], true, "a", "b"]);
    const last = buildAnthropicModelList(models, { limit: 2, afterId: "c" });
    expect([ids(last), last.has_more]).toEqual([["d", "e"], false]);
    const before = buildAnthropicModelList(models, { limit: 2, beforeId: "e" });
    expect([ids(before), before.has_more]).toEqual([["c", "d"], true]);
    const start = buildAnthropicModelList(models, { limit: 5, beforeId: "b" });
    expect([ids(start), start.has_more]).toEqual([["a"], false]);
    expect(buildAnthropicModelList([], { limit: 3 })).toEqual({ data: [], has_more: false, first_id: null, last_id: null });
    expect(thrownBy(() => buildAnthropicModelList(models, { limit: 2, afterId: "zz" })).param).toBe("after_id");
  });

  it("reads limit, after_id and before_id, refusing bad ones", () => {
    expect(parseModelPageQuery(new URLSearchParams(""))).toEqual({ limit: 20 });
    expect(parseModelPageQuery(new URLSearchParams("limit=1000&after_id=x"))).toEqual({ limit: 1000, afterId: "x" });
    for (const bad of ["limit=0", "limit=1001", "limit=2.5", "limit=abc", "limit="]) expect(thrownBy(() => parseModelPageQuery(new URLSearchParams(bad))).param).toBe("limit");
    expect(thrownBy(() => parseModelPageQuery(new URLSearchParams("after_id=a&before_id=b"))).code).toBe("HEARTH_INVALID_REQUEST");
  });
});

describe("Anthropic's error body", () => {
  it("names the type after the status as Anthropic does, matching the SDK's error classes", () => {
    expect([400, 401, 403, 404, 413, 415, 429, 500, 503, 504, 507, 529].map(anthropicErrorType)).toEqual([
      "invalid_request_error",
      "authentication_error",
      "permission_error",
      "not_found_error",
      "request_too_large",
      "invalid_request_error",
      "rate_limit_error",
      "api_error",
      "overloaded_error",
      "timeout_error",
      "api_error",
      "overloaded_error",
    ]);
  });

  it("is {type:'error', error:{type, message}} with Hearth's code alongside", () => {
    expect(toAnthropicErrorBody(errors.modelNotFound("No model 'x'."))).toEqual({ type: "error", error: { type: "not_found_error", message: "No model 'x'.", hearth_code: "HEARTH_MODEL_NOT_FOUND" } });
    expect(toAnthropicErrorBody(errors.bodyTooLarge()).error.type).toBe("request_too_large");
    expect(toAnthropicErrorBody(errors.unauthorized()).error.type).toBe("authentication_error");
    expect(toAnthropicErrorBody(errors.invalidJson()).error.type).toBe("invalid_request_error");
  });
});

describe("ids", () => {
  it("are msg_ ids, and toolu_ ids that keep the call's own id", () => {
    expect(newMessageId()).toMatch(/^msg_[0-9a-f]{24}$/);
    expect(newMessageId()).not.toBe(newMessageId());
    expect(toolUseId("call_abc-_1")).toBe("toolu_abc-_1");
    expect(toolUseId("other")).toBe("toolu_other");
  });
});
