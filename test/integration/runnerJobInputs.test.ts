/**
 * How a runner translates job inputs for node-llama-cpp: JSON schemas it can enforce (checked
 * against node-llama-cpp's real grammar compiler), OpenAI messages folded into its chat
 * history, and tool_choice mapped onto its functions. Pure functions of the runner, no
 * runner process needed; an integration test because it loads node-llama-cpp's native
 * binding in this process (the grammar compiler and the runner modules' imports). The sources
 * are imported directly, since nothing here is forked from dist/.
 */

import type { Llama } from "node-llama-cpp";
import { getLlama, LlamaJsonSchemaGrammar } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toChatHistory } from "../../daemon/runner/chatHistory.js";
import { MAX_SCHEMA_DEPTH, normalizeGrammarSchema } from "../../daemon/runner/jsonSchemaSupport.js";
import { planTools } from "../../daemon/runner/toolFunctions.js";
import type { ChatMessage } from "../../protocol/inference.js";

function hearthError(run: () => unknown): Record<string, unknown> {
  try {
    run();
  } catch (error) {
    expect(error).toMatchObject({ name: "HearthError" });
    return error as Record<string, unknown>;
  }
  throw new Error("expected a HearthError");
}

let llama: Llama;
beforeAll(async () => {
  llama = await getLlama({ build: "never", progressLogs: false });
});
afterAll(async () => {
  await llama?.dispose();
});

describe("JSON schemas for grammars", () => {
  const supported: [string, Record<string, unknown>][] = [
    ["an object with typed properties", { type: "object", properties: { a: { type: "string" }, b: { type: "integer" }, c: { type: "number" }, d: { type: "boolean" }, e: { type: "null" } }, required: ["a"] }],
    ["nested arrays with bounds", { type: "array", items: { type: "array", items: { type: "number" }, minItems: 1, maxItems: 3 }, maxItems: 2 }],
    ["tuples", { type: "array", prefixItems: [{ type: "string" }, { type: "boolean" }] }],
    ["enums and consts (with a redundant type)", { type: "object", properties: { kind: { type: "string", enum: ["a", "b"] }, v: { const: 3 } } }],
    ["string formats and lengths", { type: "object", properties: { when: { type: "string", format: "date-time" }, code: { type: "string", minLength: 2, maxLength: 4 } } }],
    ["a list of primitive types", { type: ["string", "null"] }],
    ["definitions and references", { type: "object", $defs: { point: { type: "object", properties: { x: { type: "number" } } } }, properties: { p: { $ref: "#/$defs/point" } } }],
    ["additionalProperties as a schema", { type: "object", additionalProperties: { type: "integer" }, minProperties: 1 }],
    ["annotations that enforce nothing", { title: "T", description: "D", $schema: "https://json-schema.org/draft/2020-12/schema", type: "object", properties: { a: { type: "string", default: "x", examples: ["y"] } } }],
  ];

  it.each(supported)("accepts %s, and node-llama-cpp compiles the result", async (_name, schema) => {
    const normalized = normalizeGrammarSchema(schema, "response_format");
    await expect(llama.createGrammarForJsonSchema(normalized as never)).resolves.toBeInstanceOf(LlamaJsonSchemaGrammar);
  });

  it("turns anyOf into oneOf and drops annotations other than description", () => {
    expect(normalizeGrammarSchema({ title: "x", description: "d", anyOf: [{ type: "string" }, { type: "null" }] }, "p")).toEqual({
      description: "d",
      oneOf: [{ type: "string" }, { type: "null" }],
    });
  });

  const unsupported: [string, unknown, RegExp][] = [
    ["a boolean schema", true, /schema object/],
    ["an empty schema (any value)", {}, /no "type"/],
    ["pattern", { type: "string", pattern: "^a" }, /"pattern"/],
    ["numeric bounds", { type: "object", properties: { n: { type: "integer", minimum: 1 } } }, /#\/properties\/n uses "minimum"/],
    ["allOf", { allOf: [{ type: "string" }] }, /"allOf"/],
    ["not", { type: "string", not: { const: "a" } }, /"not"/],
    ["an unknown type", { type: "date" }, /not a JSON schema type/],
    ["object in a type list", { type: ["object", "null"] }, /a list of types/],
    ["a reference outside $defs", { $ref: "#/definitions/x" }, /must point into/],
    ["a reference to nothing", { $ref: "#/$defs/missing" }, /not defined/],
    ["a required property that is not described", { type: "object", properties: {}, required: ["a"] }, /requires "a"/],
    ["an unknown string format", { type: "string", format: "email" }, /only date-time, time and date/],
    ["a fractional count", { type: "array", items: { type: "string" }, maxItems: 1.5 }, /integer >= 0/],
    ["uniqueItems", { type: "array", items: { type: "string" }, uniqueItems: true }, /"uniqueItems"/],
    ["an empty enum", { enum: [] }, /non-empty list/],
    ["an object in an enum", { enum: [{ a: 1 }] }, /string, number, boolean or null/],
  ];

  it.each(unsupported)("rejects %s with HEARTH_UNSUPPORTED_SCHEMA naming the place", (_name, schema, message) => {
    const error = hearthError(() => normalizeGrammarSchema(schema, "response_format"));
    expect(error).toMatchObject({ code: "HEARTH_UNSUPPORTED_SCHEMA", param: "response_format" });
    expect(String(error["message"])).toMatch(message);
  });

  it("rejects nesting deeper than the limit instead of recursing without bound", () => {
    let schema: Record<string, unknown> = { type: "string" };
    for (let depth = 0; depth <= MAX_SCHEMA_DEPTH + 1; depth++) schema = { type: "array", items: schema };
    expect(hearthError(() => normalizeGrammarSchema(schema, "tools"))).toMatchObject({ code: "HEARTH_UNSUPPORTED_SCHEMA", param: "tools" });
  });
});

describe("OpenAI messages to node-llama-cpp chat history", () => {
  it("maps system, user and assistant messages one to one", () => {
    const messages: ChatMessage[] = [
      { role: "system", content: "S" },
      { role: "user", content: "U1" },
      { role: "assistant", content: "A1" },
      { role: "user", content: "U2" },
    ];
    expect(toChatHistory(messages, true)).toEqual([
      { type: "system", text: "S" },
      { type: "user", text: "U1" },
      { type: "model", response: ["A1"] },
      { type: "user", text: "U2" },
    ]);
  });

  it("folds tool calls, their results and the answer after them into one model turn", () => {
    const messages: ChatMessage[] = [
      { role: "user", content: "Weather in Paris and Rome?" },
      {
        role: "assistant",
        content: "Checking.",
        toolCalls: [
          { id: "call_1", name: "weather", arguments: '{"city":"Paris"}' },
          { id: "call_2", name: "weather", arguments: '{"city":"Rome"}' },
        ],
      },
      { role: "tool", toolCallId: "call_2", content: '{"c":25}' },
      { role: "tool", toolCallId: "call_1", content: "sunny" },
      { role: "assistant", content: "Sunny in Paris, 25C in Rome." },
      { role: "user", content: "Thanks" },
    ];
    expect(toChatHistory(messages, true)).toEqual([
      { type: "user", text: "Weather in Paris and Rome?" },
      {
        type: "model",
        response: [
          "Checking.",
          { type: "functionCall", name: "weather", params: { city: "Paris" }, result: "sunny", startsNewChunk: true },
          { type: "functionCall", name: "weather", params: { city: "Rome" }, result: { c: 25 }, startsNewChunk: false },
          "Sunny in Paris, 25C in Rome.",
        ],
      },
      { type: "user", text: "Thanks" },
    ]);
  });

  it("writes calls and results as text when the chat wrapper has no function syntax", () => {
    const history = toChatHistory(
      [
        { role: "user", content: "Q" },
        { role: "assistant", content: "", toolCalls: [{ id: "c", name: "f", arguments: "{}" }] },
        { role: "tool", toolCallId: "c", content: "42" },
      ],
      false,
    );
    expect(history).toEqual([
      { type: "user", text: "Q" },
      { type: "model", response: ["[calls f({})]", "[f returned 42]"] },
    ]);
  });

  const invalid: [string, ChatMessage[], RegExp][] = [
    ["a tool result nobody asked for", [{ role: "user", content: "Q" }, { role: "tool", toolCallId: "x", content: "1" }], /which no earlier assistant message called/],
    ["a tool result without an id", [{ role: "user", content: "Q" }, { role: "tool", content: "1" }], /no tool call id/],
    [
      "a call answered twice",
      [
        { role: "assistant", content: "", toolCalls: [{ id: "c", name: "f", arguments: "{}" }] },
        { role: "tool", toolCallId: "c", content: "1" },
        { role: "tool", toolCallId: "c", content: "2" },
      ],
      /a second time/,
    ],
    [
      "a call left unanswered before the user speaks",
      [
        { role: "assistant", content: "", toolCalls: [{ id: "c", name: "f", arguments: "{}" }] },
        { role: "user", content: "never mind" },
      ],
      /no tool message answering it/,
    ],
    ["arguments that are not JSON", [{ role: "assistant", content: "", toolCalls: [{ id: "c", name: "f", arguments: "{nope" }] }], /not valid JSON/],
  ];

  it.each(invalid)("rejects %s with HEARTH_INVALID_REQUEST on messages", (_name, messages, message) => {
    const error = hearthError(() => toChatHistory(messages, true));
    expect(error).toMatchObject({ code: "HEARTH_INVALID_REQUEST", param: "messages" });
    expect(String(error["message"])).toMatch(message);
  });
});

describe("tools and tool_choice to node-llama-cpp functions", () => {
  const tools = [
    { name: "a", description: "first", parameters: { type: "object", properties: { x: { type: "string" } } } },
    { name: "b", parameters: { type: "object", properties: {} } },
  ];

  it("auto offers every tool without forcing a call", () => {
    const plan = planTools(tools, "auto");
    expect(Object.keys(plan.functions ?? {})).toEqual(["a", "b"]);
    expect(plan.functions?.["a"]).toEqual({ description: "first", params: { type: "object", properties: { x: { type: "string" } } } });
    expect(plan.forceCall).toBe(false);
  });

  it("none offers nothing; required forces a call; a named choice offers and forces only that tool", () => {
    expect(planTools(tools, "none")).toEqual({ functions: undefined, forceCall: false });
    expect(planTools(tools, "required").forceCall).toBe(true);
    const named = planTools(tools, { name: "b" });
    expect(Object.keys(named.functions ?? {})).toEqual(["b"]);
    expect(named.forceCall).toBe(true);
  });

  it("rejects choices that cannot be honoured", () => {
    expect(hearthError(() => planTools(tools, { name: "zzz" }))).toMatchObject({ code: "HEARTH_INVALID_REQUEST", param: "tool_choice" });
    expect(hearthError(() => planTools([], "required"))).toMatchObject({ code: "HEARTH_INVALID_REQUEST", param: "tool_choice" });
    expect(hearthError(() => planTools([tools[0]!, tools[0]!], "auto"))).toMatchObject({ code: "HEARTH_INVALID_REQUEST", param: "tools" });
    expect(hearthError(() => planTools([{ name: "p", parameters: { type: "string", pattern: "x" } }], "auto"))).toMatchObject({
      code: "HEARTH_UNSUPPORTED_SCHEMA",
      param: "tools",
    });
  });
});
