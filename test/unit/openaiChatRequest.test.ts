import { describe, expect, it } from "vitest";
import type { HearthError } from "../../protocol/errors.js";
import { parseChatRequest } from "../../protocol/openai/chatRequest.js";
import { MAX_TOKENS_CEILING } from "../../protocol/openai/common.js";
import { thrownBy } from "../support/thrown.js";

const base = { model: "tiny", messages: [{ role: "user", content: "hi" }] };

function expectRejected(body: unknown, param: string | null, messagePart?: RegExp): HearthError {
  const error = thrownBy(() => parseChatRequest(body));
  expect(error.code).toBe("HEARTH_INVALID_REQUEST");
  expect(error.status).toBe(400);
  expect(error.param).toBe(param);
  if (messagePart) expect(error.message).toMatch(messagePart);
  return error;
}

describe("chat request: minimal body and defaults", () => {
  it("converts a minimal body with OpenAI defaults", () => {
    const { job, delivery } = parseChatRequest(base);
    expect(job).toEqual({
      kind: "chat",
      model: "tiny",
      messages: [{ role: "user", content: "hi" }],
      sampling: { temperature: 1, stop: [] },
      responseFormat: { type: "text" },
      tools: [],
      toolChoice: "none",
      thinking: "auto",
    });
    expect(delivery).toEqual({ stream: false, includeUsage: false });
  });

  it("turns thinking off only for reasoning_effort none, and refuses efforts OpenAI does not define", () => {
    expect(parseChatRequest({ ...base, reasoning_effort: "none" }).job.thinking).toBe("off");
    for (const effort of ["minimal", "low", "medium", "high", "xhigh"]) expect(parseChatRequest({ ...base, reasoning_effort: effort }).job.thinking).toBe("auto");
    expectRejected({ ...base, reasoning_effort: "max" }, "reasoning_effort");
  });

  it("keeps an assistant turn's reasoning_content as its reasoning", () => {
    const { job } = parseChatRequest({ ...base, messages: [{ role: "user", content: "hi" }, { role: "assistant", content: "Hello", reasoning_content: "Greet." }, { role: "user", content: "again" }] });
    expect(job.messages[1]).toEqual({ role: "assistant", content: "Hello", reasoning: "Greet." });
  });

  it("ignores unknown fields", () => {
    const { job } = parseChatRequest({ ...base, user: "u1", metadata: { a: 1 }, parallel_tool_calls: true, something_new: [1, 2] });
    expect(job.model).toBe("tiny");
  });

  it("treats explicit nulls as absent", () => {
    const { job, delivery } = parseChatRequest({
      ...base,
      max_tokens: null,
      temperature: null,
      top_p: null,
      seed: null,
      stop: null,
      n: null,
      stream: null,
      stream_options: null,
      response_format: null,
      tools: null,
      tool_choice: null,
      logprobs: null,
      frequency_penalty: null,
    });
    expect(job.sampling).toEqual({ temperature: 1, stop: [] });
    expect(delivery.stream).toBe(false);
  });

  it("rejects a missing model, naming it", () => {
    expectRejected({ messages: base.messages }, "model", /Missing required parameter: 'model'/);
  });

  it("rejects a model that is not a string", () => {
    expectRejected({ ...base, model: 42 }, "model", /expected a string, got 42/);
  });

  it("rejects an empty model name", () => {
    expectRejected({ ...base, model: "" }, "model");
  });
});

describe("chat request: messages", () => {
  it("requires messages", () => {
    expectRejected({ model: "tiny" }, "messages", /Missing/);
  });

  it("rejects an empty messages array", () => {
    expectRejected({ model: "tiny", messages: [] }, "messages", /at least 1/);
  });

  it("rejects messages that are not an array", () => {
    expectRejected({ model: "tiny", messages: "hi" }, "messages", /expected an array/);
  });

  it("rejects a message that is not an object", () => {
    expectRejected({ model: "tiny", messages: ["hi"] }, "messages[0]", /expected an object/);
  });

  it("rejects an unknown role, naming messages[i].role", () => {
    expectRejected({ model: "tiny", messages: [{ role: "user", content: "a" }, { role: "wizard", content: "b" }] }, "messages[1].role", /'wizard'/);
  });

  it("rejects the deprecated function role", () => {
    expectRejected({ model: "tiny", messages: [{ role: "function", name: "f", content: "x" }] }, "messages[0].role");
  });

  it("rejects a missing role", () => {
    expectRejected({ model: "tiny", messages: [{ content: "x" }] }, "messages[0].role", /Missing/);
  });

  it("maps developer to system and keeps every other role", () => {
    const { job } = parseChatRequest({
      model: "tiny",
      messages: [
        { role: "developer", content: "d" },
        { role: "system", content: "s" },
        { role: "user", content: "u" },
        { role: "assistant", content: "a" },
        { role: "tool", content: "t", tool_call_id: "call_1" },
      ],
    });
    expect(job.messages).toEqual([
      { role: "system", content: "d" },
      { role: "system", content: "s" },
      { role: "user", content: "u" },
      { role: "assistant", content: "a" },
      { role: "tool", content: "t", toolCallId: "call_1" },
    ]);
  });

  it("joins text content parts with newlines", () => {
    const { job } = parseChatRequest({
      model: "tiny",
      messages: [{ role: "user", content: [{ type: "text", text: "one" }, { type: "text", text: "two" }] }],
    });
    expect(job.messages[0]).toEqual({ role: "user", content: "one\ntwo" });
  });

  it("rejects an image part, naming the part's type", () => {
    expectRejected(
      { model: "tiny", messages: [{ role: "user", content: [{ type: "text", text: "a" }, { type: "image_url", image_url: { url: "x" } }] }] },
      "messages[0].content[1].type",
      /only 'text' content parts are supported, got 'image_url'/,
    );
  });

  it("rejects a text part without a string text", () => {
    expectRejected({ model: "tiny", messages: [{ role: "user", content: [{ type: "text", text: 5 }] }] }, "messages[0].content[0].text");
  });

  it("rejects a content part that is not an object", () => {
    expectRejected({ model: "tiny", messages: [{ role: "user", content: ["plain"] }] }, "messages[0].content[0]");
  });

  it("rejects content of the wrong type", () => {
    expectRejected({ model: "tiny", messages: [{ role: "user", content: 7 }] }, "messages[0].content", /string or an array of text parts/);
  });

  it("rejects null content for a user message", () => {
    expectRejected({ model: "tiny", messages: [{ role: "user", content: null }] }, "messages[0].content");
  });

  it("rejects a missing content for a system message", () => {
    expectRejected({ model: "tiny", messages: [{ role: "system" }] }, "messages[0].content", /Missing/);
  });

  it("accepts null content for an assistant message with tool calls", () => {
    const { job } = parseChatRequest({
      model: "tiny",
      messages: [
        { role: "user", content: "weather?" },
        { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Oslo"}' } }] },
        { role: "tool", tool_call_id: "call_1", content: "sunny" },
      ],
    });
    expect(job.messages[1]).toEqual({
      role: "assistant",
      content: "",
      toolCalls: [{ id: "call_1", name: "get_weather", arguments: '{"city":"Oslo"}' }],
    });
    expect(job.messages[2]).toEqual({ role: "tool", content: "sunny", toolCallId: "call_1" });
  });

  it("rejects null content for an assistant message without tool calls", () => {
    expectRejected({ model: "tiny", messages: [{ role: "assistant", content: null }] }, "messages[0].content", /needs content/);
  });

  it("rejects tool call arguments that are not a string", () => {
    expectRejected(
      { model: "tiny", messages: [{ role: "assistant", tool_calls: [{ id: "c", type: "function", function: { name: "f", arguments: { a: 1 } } }] }] },
      "messages[0].tool_calls[0].function.arguments",
    );
  });

  it("requires tool_call_id on tool messages", () => {
    expectRejected({ model: "tiny", messages: [{ role: "tool", content: "x" }] }, "messages[0].tool_call_id", /Missing/);
  });
});

describe("chat request: token limits", () => {
  it("accepts max_tokens", () => {
    expect(parseChatRequest({ ...base, max_tokens: 32 }).job.sampling.maxTokens).toBe(32);
  });

  it("prefers max_completion_tokens over max_tokens", () => {
    expect(parseChatRequest({ ...base, max_tokens: 32, max_completion_tokens: 8 }).job.sampling.maxTokens).toBe(8);
  });

  it("accepts the ceiling itself", () => {
    expect(parseChatRequest({ ...base, max_tokens: MAX_TOKENS_CEILING }).job.sampling.maxTokens).toBe(MAX_TOKENS_CEILING);
  });

  it.each([
    ["negative", -5, /at least 1/],
    ["zero", 0, /at least 1/],
    ["absurd", 1e12, /at most 1000000/],
    ["fractional", 2.5, /integer/],
    ["a string", "10", /expected a number, got '10'/],
  ])("rejects %s max_tokens", (_name, value, message) => {
    expectRejected({ ...base, max_tokens: value }, "max_tokens", message);
  });

  it("rejects an absurd max_completion_tokens, naming it", () => {
    expectRejected({ ...base, max_completion_tokens: 1e12 }, "max_completion_tokens");
  });
});

describe("chat request: sampling", () => {
  it("passes temperature, top_p, seed and stop through", () => {
    const { job } = parseChatRequest({ ...base, temperature: 0, top_p: 0.5, seed: 42, stop: ["\n", "END"] });
    expect(job.sampling).toEqual({ temperature: 0, topP: 0.5, seed: 42, stop: ["\n", "END"] });
  });

  it("accepts the temperature bounds 0 and 2", () => {
    expect(parseChatRequest({ ...base, temperature: 2 }).job.sampling.temperature).toBe(2);
    expect(parseChatRequest({ ...base, temperature: 0 }).job.sampling.temperature).toBe(0);
  });

  it.each([-0.1, 2.01, "hot"])("rejects temperature %s", (value) => {
    expectRejected({ ...base, temperature: value }, "temperature");
  });

  it("accepts top_p of 1 and rejects 0 and above 1", () => {
    expect(parseChatRequest({ ...base, top_p: 1 }).job.sampling.topP).toBe(1);
    expectRejected({ ...base, top_p: 0 }, "top_p", /greater than 0/);
    expectRejected({ ...base, top_p: 1.5 }, "top_p");
  });

  it("rejects a fractional seed", () => {
    expectRejected({ ...base, seed: 1.5 }, "seed");
  });

  it("turns a single stop string into a list", () => {
    expect(parseChatRequest({ ...base, stop: "END" }).job.sampling.stop).toEqual(["END"]);
  });

  it("drops empty stop strings", () => {
    expect(parseChatRequest({ ...base, stop: "" }).job.sampling.stop).toEqual([]);
    expect(parseChatRequest({ ...base, stop: ["", "x"] }).job.sampling.stop).toEqual(["x"]);
  });

  it("rejects more than four stop sequences", () => {
    expectRejected({ ...base, stop: ["a", "b", "c", "d", "e"] }, "stop", /at most 4/);
  });

  it("rejects a non-string stop entry, naming its index", () => {
    expectRejected({ ...base, stop: ["a", 3] }, "stop[1]");
  });

  it("rejects a stop of the wrong type", () => {
    expectRejected({ ...base, stop: 3 }, "stop");
  });

  it("passes non-zero penalties on and drops zero ones", () => {
    const { job } = parseChatRequest({ ...base, frequency_penalty: 0.5, presence_penalty: 0 });
    expect(job.sampling.frequencyPenalty).toBe(0.5);
    expect("presencePenalty" in job.sampling).toBe(false);
  });

  it("rejects penalties outside -2..2", () => {
    expectRejected({ ...base, frequency_penalty: 2.5 }, "frequency_penalty");
    expectRejected({ ...base, presence_penalty: -3 }, "presence_penalty");
  });

  it("accepts n = 1 and rejects other n", () => {
    expect(() => parseChatRequest({ ...base, n: 1 })).not.toThrow();
    expectRejected({ ...base, n: 2 }, "n", /n must be 1/);
    expectRejected({ ...base, n: 0 }, "n");
  });

  it("rejects logprobs: true as unsupported and accepts false", () => {
    expect(() => parseChatRequest({ ...base, logprobs: false })).not.toThrow();
    expectRejected({ ...base, logprobs: true }, "logprobs", /not supported/);
  });

  it("rejects top_logprobs above 0", () => {
    expectRejected({ ...base, top_logprobs: 3 }, "top_logprobs", /not supported/);
  });
});

describe("chat request: streaming", () => {
  it("reads stream and include_usage", () => {
    expect(parseChatRequest({ ...base, stream: true }).delivery).toEqual({ stream: true, includeUsage: false });
    expect(parseChatRequest({ ...base, stream: true, stream_options: { include_usage: true } }).delivery).toEqual({ stream: true, includeUsage: true });
  });

  it("ignores include_usage when not streaming", () => {
    expect(parseChatRequest({ ...base, stream: false, stream_options: { include_usage: true } }).delivery).toEqual({ stream: false, includeUsage: false });
  });

  it("rejects a non-boolean stream", () => {
    expectRejected({ ...base, stream: "yes" }, "stream", /expected a boolean/);
  });

  it("rejects a non-boolean include_usage", () => {
    expectRejected({ ...base, stream: true, stream_options: { include_usage: 1 } }, "stream_options.include_usage");
  });
});

describe("chat request: response_format", () => {
  const schema = { type: "object", properties: { answer: { type: "string" } }, required: ["answer"] };

  it("accepts text and json_object", () => {
    expect(parseChatRequest({ ...base, response_format: { type: "text" } }).job.responseFormat).toEqual({ type: "text" });
    expect(parseChatRequest({ ...base, response_format: { type: "json_object" } }).job.responseFormat).toEqual({ type: "json_object" });
  });

  it("converts json_schema with its name and schema", () => {
    const { job } = parseChatRequest({ ...base, response_format: { type: "json_schema", json_schema: { name: "answer", schema, strict: true } } });
    expect(job.responseFormat).toEqual({ type: "json_schema", name: "answer", schema });
  });

  it("defaults the json_schema name", () => {
    const { job } = parseChatRequest({ ...base, response_format: { type: "json_schema", json_schema: { schema } } });
    expect(job.responseFormat).toEqual({ type: "json_schema", name: "response", schema });
  });

  it("requires json_schema.schema", () => {
    expectRejected({ ...base, response_format: { type: "json_schema", json_schema: { name: "x" } } }, "response_format.json_schema.schema", /Missing/);
  });

  it("rejects a schema that is not an object", () => {
    expectRejected({ ...base, response_format: { type: "json_schema", json_schema: { name: "x", schema: [1] } } }, "response_format.json_schema.schema");
  });

  it("rejects a json_schema name with forbidden characters", () => {
    expectRejected({ ...base, response_format: { type: "json_schema", json_schema: { name: "bad name!", schema } } }, "response_format.json_schema.name");
  });

  it("rejects an unknown response_format type", () => {
    expectRejected({ ...base, response_format: { type: "xml" } }, "response_format.type", /'xml'/);
  });
});

describe("chat request: tools", () => {
  const weather = {
    type: "function",
    function: { name: "get_weather", description: "Weather by city", parameters: { type: "object", properties: { city: { type: "string" } } } },
  };

  it("converts tools and defaults tool_choice to auto", () => {
    const { job } = parseChatRequest({ ...base, tools: [weather] });
    expect(job.tools).toEqual([{ name: "get_weather", description: "Weather by city", parameters: weather.function.parameters }]);
    expect(job.toolChoice).toBe("auto");
  });

  it("omits absent description and parameters", () => {
    const { job } = parseChatRequest({ ...base, tools: [{ type: "function", function: { name: "ping" } }] });
    expect(job.tools).toEqual([{ name: "ping" }]);
  });

  it.each(["none", "auto", "required"] as const)("accepts tool_choice %s", (choice) => {
    expect(parseChatRequest({ ...base, tools: [weather], tool_choice: choice }).job.toolChoice).toBe(choice);
  });

  it("accepts a named tool_choice that exists", () => {
    const { job } = parseChatRequest({ ...base, tools: [weather], tool_choice: { type: "function", function: { name: "get_weather" } } });
    expect(job.toolChoice).toEqual({ name: "get_weather" });
  });

  it("rejects a named tool_choice that is not among the tools", () => {
    expectRejected(
      { ...base, tools: [weather], tool_choice: { type: "function", function: { name: "launch" } } },
      "tool_choice.function.name",
      /no tool named 'launch'/,
    );
  });

  it("rejects a named tool_choice without tools", () => {
    expectRejected({ ...base, tool_choice: { type: "function", function: { name: "x" } } }, "tool_choice.function.name");
  });

  it("rejects tool_choice required without tools", () => {
    expectRejected({ ...base, tool_choice: "required" }, "tool_choice");
  });

  it("rejects an unknown tool_choice string", () => {
    expectRejected({ ...base, tools: [weather], tool_choice: "sometimes" }, "tool_choice");
  });

  it("rejects a tool_choice object without a name", () => {
    expectRejected({ ...base, tools: [weather], tool_choice: { type: "function", function: {} } }, "tool_choice.function.name");
  });

  it.each(["has space", "", "x".repeat(65), "dots.not.allowed"])("rejects the tool name %j", (name) => {
    expectRejected({ ...base, tools: [{ type: "function", function: { name } }] }, "tools[0].function.name");
  });

  it("accepts a 64-character tool name with dashes and underscores", () => {
    const name = `a_b-${"c".repeat(60)}`;
    expect(parseChatRequest({ ...base, tools: [{ type: "function", function: { name } }] }).job.tools[0]?.name).toBe(name);
  });

  it("rejects a tool type other than function", () => {
    expectRejected({ ...base, tools: [{ type: "code_interpreter" }] }, "tools[0].type");
  });

  it("rejects tool parameters that are not an object", () => {
    expectRejected({ ...base, tools: [{ type: "function", function: { name: "f", parameters: "x" } }] }, "tools[0].function.parameters");
  });

  it("rejects duplicate tool names", () => {
    expectRejected({ ...base, tools: [weather, weather] }, "tools[1].function.name", /duplicate/);
  });
});
