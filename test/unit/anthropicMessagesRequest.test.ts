import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { COUNT_TOKENS_MAX_TOKENS, MAX_STOP_SEQUENCES, parseCountTokensRequest, parseMessagesRequest } from "../../protocol/anthropic/messagesRequest.js";
import { HearthError } from "../../protocol/errors.js";
import { thrownBy } from "../support/thrown.js";

const base = { model: "m", max_tokens: 100, messages: [{ role: "user", content: "hi" }] };
const weather = { name: "get_weather", description: "The weather.", input_schema: { type: "object", properties: { city: { type: "string" } } } };

function rejected(body: unknown): HearthError {
  const error = thrownBy(() => parseMessagesRequest(body));
  expect(error.code).toBe("HEARTH_INVALID_REQUEST");
  return error;
}

describe("parseMessagesRequest: the conversation", () => {
  it("turns a plain conversation into a chat job with Anthropic's defaults", () => {
    const { job, delivery, hearth } = parseMessagesRequest(base);
    expect(job).toEqual({
      kind: "chat",
      model: "m",
      messages: [{ role: "user", content: "hi" }],
      sampling: { maxTokens: 100, temperature: 1, stop: [] },
      responseFormat: { type: "text" },
      tools: [],
      toolChoice: "none",
      thinking: "auto",
    });
    expect(delivery).toEqual({ stream: false, includeUsage: false });
    expect(hearth).toBeUndefined();
  });

  it("puts the system prompt first, from a string or text blocks joined by newlines", () => {
    expect(parseMessagesRequest({ ...base, system: "Be brief." }).job.messages[0]).toEqual({ role: "system", content: "Be brief." });
    const blocks = parseMessagesRequest({ ...base, system: [{ type: "text", text: "A", cache_control: { type: "ephemeral" } }, { type: "text", text: "B" }] });
    expect(blocks.job.messages).toEqual([{ role: "system", content: "A\nB" }, { role: "user", content: "hi" }]);
    expect(parseMessagesRequest({ ...base, system: "" }).job.messages).toEqual([{ role: "user", content: "hi" }]);
  });

  it("folds a tool round: tool_use blocks become calls, tool_result blocks tool messages before the user's text", () => {
    const { job } = parseMessagesRequest({
      ...base,
      tools: [weather],
      messages: [
        { role: "user", content: "Weather in Paris?" },
        {
          role: "assistant",
          content: [
            { type: "thinking", thinking: "Need the tool.", signature: "sig" },
            { type: "redacted_thinking", data: "opaque" },
            { type: "text", text: "Checking." },
            { type: "tool_use", id: "toolu_1", name: "get_weather", input: { city: "Paris" } },
            { type: "tool_use", id: "toolu_2", name: "get_weather", input: { city: "Lyon" } },
          ],
        },
        {
          role: "user",
          content: [
            { type: "text", text: "Here you go." },
            { type: "tool_result", tool_use_id: "toolu_1", content: "Sunny" },
            { type: "tool_result", tool_use_id: "toolu_2", content: [{ type: "text", text: "down" }, { type: "text", text: "again" }], is_error: true },
          ],
        },
      ],
    });
    expect(job.messages).toEqual([
      { role: "user", content: "Weather in Paris?" },
      {
        role: "assistant",
        content: "Checking.",
        reasoning: "Need the tool.",
        toolCalls: [
          { id: "toolu_1", name: "get_weather", arguments: '{"city":"Paris"}' },
          { id: "toolu_2", name: "get_weather", arguments: '{"city":"Lyon"}' },
        ],
      },
      { role: "tool", content: "Sunny", toolCallId: "toolu_1" },
      { role: "tool", content: "Error: down\nagain", toolCallId: "toolu_2" },
      { role: "user", content: "Here you go." },
    ]);
  });

  it("gives a tool_result without content an empty result, and a user turn of results only no text", () => {
    const { job } = parseMessagesRequest({
      ...base,
      messages: [
        { role: "user", content: "go" },
        { role: "assistant", content: [{ type: "tool_use", id: "t", name: "f", input: {} }] },
        { role: "user", content: [{ type: "tool_result", tool_use_id: "t" }] },
      ],
    });
    expect(job.messages.slice(1)).toEqual([
      { role: "assistant", content: "", toolCalls: [{ id: "t", name: "f", arguments: "{}" }] },
      { role: "tool", content: "", toolCallId: "t" },
    ]);
  });

  it("refuses image and document blocks naming the block, wherever they are", () => {
    const image = rejected({ ...base, messages: [{ role: "user", content: [{ type: "text", text: "see" }, { type: "image", source: { type: "base64", media_type: "image/png", data: "" } }] }] });
    expect(image.param).toBe("messages[0].content[1].type");
    expect(image.message).toContain("'image' blocks are not supported by Hearth");
    const nested = rejected({ ...base, messages: [{ role: "user", content: [{ type: "tool_result", tool_use_id: "t", content: [{ type: "document", source: {} }] }] }] });
    expect(nested.param).toBe("messages[0].content[0].content[0].type");
    expect(nested.message).toContain("'document' blocks are not supported by Hearth");
  });

  it("refuses blocks in the wrong role and unknown block types", () => {
    expect(rejected({ ...base, messages: [{ role: "user", content: [{ type: "tool_use", id: "t", name: "f", input: {} }] }] }).param).toBe("messages[0].content[0].type");
    expect(rejected({ ...base, messages: [{ role: "assistant", content: [{ type: "tool_result", tool_use_id: "t" }] }] }).param).toBe("messages[0].content[0].type");
    expect(rejected({ ...base, messages: [{ role: "user", content: [{ type: "search_result" }] }] }).message).toContain("expected one of 'text', 'tool_result', 'image', 'document'");
    expect(rejected({ ...base, messages: [{ role: "tool", content: "x" }] }).param).toBe("messages[0].role");
  });

  it("refuses a tool_use whose input is not an object", () => {
    expect(rejected({ ...base, messages: [{ role: "assistant", content: [{ type: "tool_use", id: "t", name: "f", input: "x" }] }] }).param).toBe("messages[0].content[0].input");
  });
});

describe("parseMessagesRequest: sampling, thinking, tools", () => {
  it("requires max_tokens, as Anthropic does", () => {
    const { max_tokens: _, ...withoutMax } = base;
    const error = rejected(withoutMax);
    expect(error.param).toBe("max_tokens");
    expect(error.message).toBe("Missing required parameter: 'max_tokens'.");
    expect(rejected({ ...base, max_tokens: 0 }).param).toBe("max_tokens");
    expect(rejected({ ...base, max_tokens: 1.5 }).param).toBe("max_tokens");
  });

  it("maps temperature, top_p, top_k and stop_sequences, dropping empty stops", () => {
    const { job } = parseMessagesRequest({ ...base, temperature: 0, top_p: 0.9, top_k: 40, stop_sequences: ["END", "", "\n\nHuman:"], metadata: { user_id: "u" } });
    expect(job.sampling).toEqual({ maxTokens: 100, temperature: 0, topP: 0.9, topK: 40, stop: ["END", "\n\nHuman:"] });
  });

  it("keeps Anthropic's ranges", () => {
    expect(rejected({ ...base, temperature: 1.5 }).param).toBe("temperature");
    expect(rejected({ ...base, top_k: 0 }).param).toBe("top_k");
    expect(rejected({ ...base, stop_sequences: "END" }).param).toBe("stop_sequences");
    expect(rejected({ ...base, stop_sequences: Array.from({ length: MAX_STOP_SEQUENCES + 1 }, (_, i) => `s${i}`) }).param).toBe("stop_sequences");
    expect(rejected({ ...base, metadata: { user_id: 5 } }).param).toBe("metadata.user_id");
  });

  it("maps thinking: disabled is off; enabled, adaptive and absent leave it to the model", () => {
    expect(parseMessagesRequest({ ...base, thinking: { type: "disabled" } }).job.thinking).toBe("off");
    expect(parseMessagesRequest({ ...base, thinking: { type: "enabled", budget_tokens: 2048 } }).job.thinking).toBe("auto");
    expect(parseMessagesRequest({ ...base, thinking: { type: "adaptive" } }).job.thinking).toBe("auto");
    expect(parseMessagesRequest(base).job.thinking).toBe("auto");
    expect(rejected({ ...base, thinking: { type: "enabled" } }).param).toBe("thinking.budget_tokens");
    expect(rejected({ ...base, thinking: { type: "on" } }).param).toBe("thinking.type");
  });

  it("maps tools and every tool_choice", () => {
    const withTools = { ...base, tools: [weather] };
    expect(parseMessagesRequest(withTools).job).toMatchObject({ tools: [{ name: "get_weather", description: "The weather.", parameters: weather.input_schema }], toolChoice: "auto" });
    expect(parseMessagesRequest({ ...withTools, tool_choice: { type: "auto" } }).job.toolChoice).toBe("auto");
    expect(parseMessagesRequest({ ...withTools, tool_choice: { type: "any" } }).job.toolChoice).toBe("required");
    expect(parseMessagesRequest({ ...withTools, tool_choice: { type: "tool", name: "get_weather" } }).job.toolChoice).toEqual({ name: "get_weather" });
    expect(parseMessagesRequest({ ...withTools, tool_choice: { type: "none" } }).job.toolChoice).toBe("none");
    expect(parseMessagesRequest({ ...withTools, tool_choice: { type: "any" } }).job.parallelToolCalls).toBeUndefined();
    expect(parseMessagesRequest({ ...withTools, tool_choice: { type: "any", disable_parallel_tool_use: true } }).job.parallelToolCalls).toBe(false);
    expect(parseMessagesRequest({ ...withTools, tool_choice: { type: "auto", disable_parallel_tool_use: false } }).job.parallelToolCalls).toBeUndefined();
  });

  it("refuses tool choices that name no tool, duplicate names, bad names and server tools", () => {
    expect(rejected({ ...base, tool_choice: { type: "any" } }).param).toBe("tool_choice.type");
    expect(rejected({ ...base, tools: [weather], tool_choice: { type: "tool", name: "nope" } }).param).toBe("tool_choice.name");
    expect(rejected({ ...base, tools: [weather, weather] }).param).toBe("tools[1].name");
    expect(rejected({ ...base, tools: [{ ...weather, name: "has space" }] }).param).toBe("tools[0].name");
    expect(rejected({ ...base, tools: [{ name: "f" }] }).param).toBe("tools[0].input_schema");
    const server = rejected({ ...base, tools: [{ type: "web_search_20250305", name: "web_search", max_uses: 3 }] });
    expect(server.param).toBe("tools[0].type");
    expect(server.message).toContain("server tool");
    expect(parseMessagesRequest({ ...base, tools: [{ ...weather, type: "custom" }] }).job.tools).toHaveLength(1);
  });

  it("streams when asked and passes Hearth's pin on", () => {
    const parsed = parseMessagesRequest({ ...base, stream: true, hearth: { node: "ABCDEFG" } });
    expect(parsed.delivery).toEqual({ stream: true, includeUsage: false });
    expect(parsed.hearth).toEqual({ node: "ABCDEFG" });
  });

  it("ignores unknown fields anywhere", () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string({ minLength: 1 }).map((key) => `x_${key}`), fc.jsonValue(), { maxKeys: 4 }), (extra) => {
        const body = { ...base, ...extra, messages: [{ role: "user", ...extra, content: [{ type: "text", text: "hi", ...extra }] }] };
        expect(parseMessagesRequest(body).job.messages).toEqual([{ role: "user", content: "hi" }]);
      }),
    );
  });

  it("answers any JSON value with a job or HEARTH_INVALID_REQUEST, never anything else", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        try {
          parseMessagesRequest(value);
        } catch (error) {
          expect(error).toBeInstanceOf(HearthError);
          expect((error as HearthError).code).toBe("HEARTH_INVALID_REQUEST");
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe("parseCountTokensRequest", () => {
  it("builds the same conversation with a one-token greedy budget and no max_tokens required", () => {
    const body = { model: "m", system: "S", messages: [{ role: "user", content: "hi" }], tools: [weather], tool_choice: { type: "any" }, thinking: { type: "disabled" } };
    const { job } = parseCountTokensRequest(body);
    const full = parseMessagesRequest({ ...body, max_tokens: 100 }).job;
    expect(job).toEqual({ ...full, sampling: { maxTokens: COUNT_TOKENS_MAX_TOKENS, temperature: 0, stop: [] } });
  });

  it("validates the conversation as messages does", () => {
    const error = thrownBy(() => parseCountTokensRequest({ model: "m", messages: [] }));
    expect(error.param).toBe("messages");
    expect(thrownBy(() => parseCountTokensRequest({ model: "m", messages: [{ role: "user", content: [{ type: "image" }] }] })).param).toBe("messages[0].content[0].type");
  });
});
