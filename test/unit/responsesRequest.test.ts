// POST /v1/responses bodies (protocol/responses/request.ts, inputItems.ts): what each field
// becomes in the one internal ChatJob, what a response echoes, and how each refused or
// malformed field is named in the error.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { HearthError } from "../../protocol/errors.js";
import type { ChatMessage } from "../../protocol/inference.js";
import { parseResponsesRequest, responsesChatJob, type ParsedResponsesRequest } from "../../protocol/responses/request.js";
import { thrownBy } from "../support/thrown.js";

const WEATHER = { type: "function", name: "get_weather", description: "The weather.", parameters: { type: "object", properties: { city: { type: "string" } } } };

function parse(body: Record<string, unknown>): ParsedResponsesRequest {
  return parseResponsesRequest({ model: "m", ...body });
}

function messagesOf(body: Record<string, unknown>, history: ChatMessage[] = []): ChatMessage[] {
  return responsesChatJob(parse(body), history).job.messages;
}

function rejection(body: unknown): { param: string | null; message: string; code: string } {
  const error = thrownBy(() => {
    const parsed = parseResponsesRequest(body);
    responsesChatJob(parsed, []);
  });
  expect(error).toBeInstanceOf(HearthError);
  const { param, message, code } = error;
  return { param, message, code };
}

describe("input and instructions", () => {
  it("a string input is one user message, and instructions come first as a system message", () => {
    expect(messagesOf({ input: "Hello", instructions: "Be brief." })).toEqual([
      { role: "system", content: "Be brief." },
      { role: "user", content: "Hello" },
    ]);
  });

  it("message items keep their order; developer is system; text parts are joined with a newline", () => {
    const input = [
      { role: "developer", content: "Rules." },
      { type: "message", role: "user", content: [{ type: "input_text", text: "a" }, { type: "input_text", text: "b" }] },
      { type: "message", role: "assistant", content: [{ type: "output_text", text: "c" }] },
      { role: "system", content: "More rules." },
    ];
    expect(messagesOf({ input })).toEqual([
      { role: "system", content: "Rules." },
      { role: "user", content: "a\nb" },
      { role: "assistant", content: "c" },
      { role: "system", content: "More rules." },
    ]);
  });

  it("a reasoning item gives its text to the assistant turn after it; function calls join that turn; outputs are tool messages", () => {
    const input = [
      { role: "user", content: "Weather and time?" },
      { type: "reasoning", id: "rs_1", summary: [{ type: "summary_text", text: "summary" }], content: [{ type: "reasoning_text", text: "full thought" }] },
      { type: "function_call", call_id: "c1", name: "get_weather", arguments: '{"city":"Paris"}' },
      { type: "function_call", call_id: "c2", name: "get_time", arguments: '{"zone":"CET"}' },
      { type: "function_call_output", call_id: "c1", output: "sunny" },
      { type: "function_call_output", call_id: "c2", output: [{ type: "input_text", text: "12:00" }] },
    ];
    expect(messagesOf({ input })).toEqual([
      { role: "user", content: "Weather and time?" },
      {
        role: "assistant",
        content: "",
        reasoning: "full thought",
        toolCalls: [
          { id: "c1", name: "get_weather", arguments: '{"city":"Paris"}' },
          { id: "c2", name: "get_time", arguments: '{"zone":"CET"}' },
        ],
      },
      { role: "tool", content: "sunny", toolCallId: "c1" },
      { role: "tool", content: "12:00", toolCallId: "c2" },
    ]);
  });

  it("a reasoning item without reasoning_text content gives its summary; an assistant message and the calls after it are one turn", () => {
    const input = [
      { role: "user", content: "Go" },
      { type: "reasoning", summary: [{ type: "summary_text", text: "short" }] },
      { type: "message", role: "assistant", content: "Calling." },
      { type: "function_call", call_id: "c1", name: "f", arguments: "{}" },
    ];
    expect(messagesOf({ input }).slice(1)).toEqual([{ role: "assistant", content: "Calling.", reasoning: "short", toolCalls: [{ id: "c1", name: "f", arguments: "{}" }] }]);
  });

  it("the stored conversation comes between the instructions and the new input, and answers its calls", () => {
    const history: ChatMessage[] = [
      { role: "user", content: "Weather?" },
      { role: "assistant", content: "", toolCalls: [{ id: "c9", name: "get_weather", arguments: "{}" }] },
    ];
    const { job, conversation } = responsesChatJob(parse({ instructions: "New rules.", input: [{ type: "function_call_output", call_id: "c9", output: "rain" }] }), history);
    expect(job.messages).toEqual([{ role: "system", content: "New rules." }, ...history, { role: "tool", content: "rain", toolCallId: "c9" }]);
    // The instructions are this request's, not part of what a later request continues.
    expect(conversation).toEqual([...history, { role: "tool", content: "rain", toolCallId: "c9" }]);
  });

  it("an output answering a call no earlier item made is refused naming its call_id", () => {
    const error = rejection({ model: "m", input: [{ role: "user", content: "x" }, { type: "function_call_output", call_id: "nope", output: "y" }] });
    expect(error.param).toBe("input[1].call_id");
  });

  it("nothing to answer is refused as a missing input", () => {
    expect(rejection({ model: "m" }).param).toBe("input");
    expect(rejection({ model: "m", input: [], instructions: "x" }).param).toBe("input");
    expect(rejection({ model: "m", input: [{ role: "system", content: "only rules" }] }).param).toBe("input");
  });

  it.each([
    [{ input: [{ role: "user", content: [{ type: "input_image", image_url: "x" }] }] }, "input[0].content[0].type", /text only/],
    [{ input: [{ role: "user", content: [{ type: "input_file", file_id: "x" }] }] }, "input[0].content[0].type", /text only/],
    [{ input: [{ role: "tool", content: "x" }] }, "input[0].role", /expected one of/],
    [{ input: [{ type: "item_reference", id: "msg_1" }] }, "input[0].type", /not supported/],
    [{ input: [{ type: "web_search_call", id: "ws_1" }] }, "input[0].type", /not supported/],
    [{ input: [{ content: "no role" }] }, "input[0].type", /Missing/],
    [{ input: [{ type: "function_call", name: "f", arguments: "{}" }] }, "input[0].call_id", /Missing/],
    [{ input: [{ type: "function_call", call_id: "c", name: "f", arguments: {} }] }, "input[0].arguments", /expected a string/],
    [{ input: [{ type: "reasoning", summary: [], encrypted_content: "gAAAA" }] }, "input[0].encrypted_content", /encrypted/],
    [{ input: [{ type: "reasoning", summary: [{ type: "text", text: "x" }] }] }, "input[0].summary[0].type", /summary_text/],
    [{ input: 42 }, "input", /string or an array/],
    [{ input: [null] }, "input[0]", /input item object/],
  ])("refuses %j naming %s", (body, param, message) => {
    const error = rejection({ model: "m", ...body });
    expect(error.code).toBe("HEARTH_INVALID_REQUEST");
    expect(error.param).toBe(param);
    expect(error.message).toMatch(message);
  });
});

describe("tools and tool_choice", () => {
  it("function tools in the flat shape become tool definitions and are echoed with strict true by default", () => {
    const parsed = parse({ input: "x", tools: [WEATHER, { type: "function", name: "get_time", strict: false }] });
    expect(parsed.job.tools).toEqual([
      { name: "get_weather", description: "The weather.", parameters: WEATHER.parameters },
      { name: "get_time" },
    ]);
    expect(parsed.job.toolChoice).toBe("auto");
    expect(parsed.echo.tools).toEqual([
      { type: "function", name: "get_weather", description: "The weather.", parameters: WEATHER.parameters, strict: true },
      { type: "function", name: "get_time", description: null, parameters: null, strict: false },
    ]);
  });

  it("tool_choice maps none, required and a named function; without tools the choice is none", () => {
    expect(parse({ input: "x", tools: [WEATHER], tool_choice: "none" }).job.toolChoice).toBe("none");
    expect(parse({ input: "x", tools: [WEATHER], tool_choice: "required" }).job.toolChoice).toBe("required");
    const named = parse({ input: "x", tools: [WEATHER], tool_choice: { type: "function", name: "get_weather" } });
    expect(named.job.toolChoice).toEqual({ name: "get_weather" });
    expect(named.echo.tool_choice).toEqual({ type: "function", name: "get_weather" });
    expect(parse({ input: "x" }).job.toolChoice).toBe("none");
  });

  it("parallel_tool_calls and max_tool_calls are echoed (true and null by default)", () => {
    expect(parse({ input: "x" }).echo).toMatchObject({ parallel_tool_calls: true, max_tool_calls: null });
    expect(parse({ input: "x", parallel_tool_calls: false, max_tool_calls: 3 }).echo).toMatchObject({ parallel_tool_calls: false, max_tool_calls: 3 });
  });

  it.each([
    [{ tools: [{ type: "web_search" }] }, "tools[0].type", /function tools only/],
    [{ tools: [{ type: "file_search", vector_store_ids: [] }] }, "tools[0].type", /function tools only/],
    [{ tools: [{ type: "function", name: "bad name" }] }, "tools[0].name", /pattern/],
    [{ tools: [WEATHER, WEATHER] }, "tools[1].name", /duplicate/],
    [{ tools: [{ type: "function", name: "f", parameters: "x" }] }, "tools[0].parameters", /expected an object/],
    [{ tool_choice: "required" }, "tool_choice", /at least one tool/],
    [{ tools: [WEATHER], tool_choice: { type: "function", name: "other" } }, "tool_choice.name", /no tool named/],
    [{ tools: [WEATHER], tool_choice: { type: "web_search_preview" } }, "tool_choice.type", /function/],
    [{ tool_choice: "sometimes" }, "tool_choice", /expected 'none'/],
  ])("refuses %j naming %s", (body, param, message) => {
    const error = rejection({ model: "m", input: "x", ...body });
    expect(error.param).toBe(param);
    expect(error.message).toMatch(message);
  });
});

describe("text, sampling and reasoning", () => {
  it("text.format json_schema becomes the job's response format; json_object and text as they are", () => {
    const schema = { type: "object", properties: { ok: { type: "boolean" } } };
    const parsed = parse({ input: "x", text: { format: { type: "json_schema", name: "answer", schema, strict: true } } });
    expect(parsed.job.responseFormat).toEqual({ type: "json_schema", name: "answer", schema });
    expect(parsed.echo.text).toEqual({ format: { type: "json_schema", name: "answer", schema, description: null, strict: true }, verbosity: "medium" });
    expect(parse({ input: "x", text: { format: { type: "json_object" } } }).job.responseFormat).toEqual({ type: "json_object" });
    expect(parse({ input: "x" }).job.responseFormat).toEqual({ type: "text" });
  });

  it("max_output_tokens, temperature and top_p become sampling options; the echo shows OpenAI's defaults", () => {
    const parsed = parse({ input: "x", max_output_tokens: 50, temperature: 0.5, top_p: 0.9 });
    expect(parsed.job.sampling).toEqual({ maxTokens: 50, temperature: 0.5, topP: 0.9, stop: [] });
    expect(parse({ input: "x" }).echo).toMatchObject({ temperature: 1, top_p: 1, max_output_tokens: null, truncation: "disabled", store: true, metadata: {} });
  });

  it("reasoning effort none turns thinking off; every other effort, minimal included, leaves it to the model", () => {
    expect(parse({ input: "x", reasoning: { effort: "none" } }).job.thinking).toBe("off");
    for (const effort of ["minimal", "low", "medium", "high", "xhigh"]) expect(parse({ input: "x", reasoning: { effort } }).job.thinking).toBe("auto");
    expect(parse({ input: "x" }).job.thinking).toBe("auto");
    expect(parse({ input: "x", reasoning: { effort: "low", summary: "auto" } }).echo.reasoning).toEqual({ effort: "low", summary: "auto" });
  });

  it("store, previous_response_id, metadata and truncation are echoed", () => {
    const parsed = parse({ input: "x", store: false, previous_response_id: "resp_x", metadata: { a: "b" }, truncation: "auto" });
    expect(parsed.echo).toMatchObject({ store: false, previous_response_id: "resp_x", metadata: { a: "b" }, truncation: "auto" });
  });

  it.each([
    [{ background: true }, "background", /background/],
    [{ conversation: "conv_1" }, "conversation", /previous_response_id/],
    [{ prompt: { id: "pmpt_1" } }, "prompt", /not supported/],
    [{ top_logprobs: 2 }, "top_logprobs", /not supported/],
    [{ include: ["message.output_text.logprobs"] }, "include[0]", /not supported/],
    [{ text: { format: { type: "json_schema", name: "x" } } }, "text.format.schema", /Missing/],
    [{ text: { format: { type: "grammar" } } }, "text.format.type", /expected one of/],
    [{ reasoning: { effort: "extreme" } }, "reasoning.effort", /expected one of/],
    [{ truncation: "sometimes" }, "truncation", /expected one of/],
    [{ max_output_tokens: 0 }, "max_output_tokens", /at least 1/],
    [{ temperature: 3 }, "temperature", /at most 2/],
    [{ metadata: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, "v"])) }, "metadata", /at most 16/],
    [{ metadata: { k: "v".repeat(513) } }, "metadata.k", /at most 512/],
    [{ store: "yes" }, "store", /expected a boolean/],
    [{ model: "" }, "model", /at least 1/],
  ])("refuses %j naming %s", (body, param, message) => {
    const error = rejection({ model: "m", input: "x", ...body });
    expect(error.param).toBe(param);
    expect(error.message).toMatch(message);
  });

  it("accepts fields it does not need (include of encrypted reasoning, stream_options, user, prompt_cache_key, verbosity)", () => {
    const parsed = parse({ input: "x", include: ["reasoning.encrypted_content"], stream_options: { include_obfuscation: false }, user: "u", prompt_cache_key: "k", text: { verbosity: "low" } });
    expect(parsed.echo.text.verbosity).toBe("low");
  });
});

describe("any body", () => {
  it("is either a job or one HEARTH_INVALID_REQUEST, never another exception", () => {
    fc.assert(
      fc.property(fc.anything({ withObjectString: true, withNullPrototype: true }), fc.anything(), (input, tools) => {
        try {
          const parsed = parseResponsesRequest({ model: "m", input, tools });
          responsesChatJob(parsed, []);
        } catch (error) {
          expect(error).toBeInstanceOf(HearthError);
          expect((error as HearthError).code).toBe("HEARTH_INVALID_REQUEST");
        }
      }),
      { numRuns: 500 },
    );
  });
});
