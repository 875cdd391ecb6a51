// The Responses API through the official openai client (v6) against a real daemon with
// scripted models: exact thoughts, answers and parallel calls, streamed (with the SDK's stream
// helper) and not, the exact event sequence, a call cut off by max_output_tokens, reasoning
// effort none, structured output on the tiny random model, stored responses
// (previous_response_id, GET, input_items, DELETE, store: false), and fuzzed bodies that must
// each get an OpenAI error while the daemon stays healthy.

import http from "node:http";
import fc from "fast-check";
import OpenAI, { NotFoundError, BadRequestError } from "openai";
import type { Response as SdkResponse, ResponseFunctionToolCall, ResponseInputItem, ResponseReasoningItem, ResponseStreamEvent, FunctionTool } from "openai/resources/responses/responses";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDaemon, type RunningDaemon } from "../support/daemon.js";
import { ensureScriptedModel, ensureTinyModel } from "../support/models.js";
import { ANSWER, THINK_THEN_ANSWER, THINK_THEN_CALL_TWO_TOOLS, THOUGHT, WEATHER_TOOLS } from "../support/scripts.js";
import { responseEventTypes } from "../support/responsesEvents.js";

let daemon: RunningDaemon;
let client: OpenAI;

const TOOLS: FunctionTool[] = WEATHER_TOOLS.map((tool) => ({ type: "function", name: tool.name, description: tool.description ?? null, parameters: tool.parameters ?? null, strict: true }));

beforeAll(async () => {
  const [answer, tools, tiny] = await Promise.all([ensureScriptedModel("scripted-answer", THINK_THEN_ANSWER), ensureScriptedModel("scripted-tools", THINK_THEN_CALL_TWO_TOOLS), ensureTinyModel()]);
  daemon = await startDaemon({ models: { answer, tools, tiny } });
  client = new OpenAI({ baseURL: `${daemon.url}/v1`, apiKey: "unused", maxRetries: 0 });
});

afterAll(async () => {
  await daemon?.stop();
});

function reasoningOf(response: SdkResponse): ResponseReasoningItem[] {
  return response.output.filter((item): item is ResponseReasoningItem => item.type === "reasoning");
}

function callsOf(response: SdkResponse): ResponseFunctionToolCall[] {
  return response.output.filter((item): item is ResponseFunctionToolCall => item.type === "function_call");
}

function reasoningText(response: SdkResponse): string {
  return reasoningOf(response)
    .flatMap((item) => item.content ?? [])
    .map((part) => part.text)
    .join("");
}

/** A response as GET returns it: the body without the SDK's output_text and Hearth's `hearth` field. */
function asStored(response: SdkResponse): Record<string, unknown> {
  const { output_text: _text, hearth: _hearth, ...rest } = response as SdkResponse & { hearth?: unknown };
  return rest;
}

async function expectHealthy(): Promise<void> {
  const health = await fetch(`${daemon.url}/health`);
  expect(health.status).toBe(200);
}

describe("creating a response", () => {
  it("answers with the exact thought as a reasoning item and the exact answer as output_text", async () => {
    const response = await client.responses.create({ model: "answer", input: "What is the weather in Paris?", max_output_tokens: 200, temperature: 0 });
    expect(response.object).toBe("response");
    expect(response.id).toMatch(/^resp_[0-9a-f]{48}$/);
    expect(response.status).toBe("completed");
    expect(response.incomplete_details).toBeNull();
    expect(response.output.map((item) => item.type)).toEqual(["reasoning", "message"]);
    expect(reasoningText(response)).toBe(THOUGHT);
    expect(response.output_text).toBe(ANSWER);
    expect(response.model).toBe("answer");
    const usage = response.usage!;
    expect(usage.input_tokens).toBeGreaterThan(0);
    expect(usage.output_tokens_details.reasoning_tokens).toBeGreaterThan(0);
    expect(usage.output_tokens).toBeGreaterThan(usage.output_tokens_details.reasoning_tokens);
    expect(usage.total_tokens).toBe(usage.input_tokens + usage.output_tokens);
    expect(usage.input_tokens_details.cached_tokens).toBeGreaterThanOrEqual(0);
  });

  it("streams through the SDK's helper: reasoning_text and output_text deltas add up to the exact texts", async () => {
    const stream = client.responses.stream({ model: "answer", input: "What is the weather in Paris?", max_output_tokens: 200, temperature: 0 });
    let reasoning = "";
    let text = "";
    const events: ResponseStreamEvent[] = [];
    stream.on("response.reasoning_text.delta", (event) => (reasoning += event.delta));
    stream.on("response.output_text.delta", (event) => (text += event.delta));
    for await (const event of stream) events.push(event);
    const final = await stream.finalResponse();
    expect(reasoning).toBe(THOUGHT);
    expect(text).toBe(ANSWER);
    expect(final.output_text).toBe(ANSWER);
    expect(reasoningText(final)).toBe(THOUGHT);
    expect(final.status).toBe("completed");
    expect(events.at(-1)!.type).toBe("response.completed");
  });

  it("streams the exact event sequence, sequence_number 0..n, each SSE event named after its type, without [DONE]", async () => {
    const raw = await fetch(`${daemon.url}/v1/responses`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "answer", input: "Weather?", stream: true, max_output_tokens: 200, temperature: 0 }),
    });
    expect(raw.status).toBe(200);
    expect(raw.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const text = await raw.text();
    expect(text).not.toContain("[DONE]");
    const blocks = text.split("\n\n").filter((block) => block.trim() !== "" && !block.startsWith(":"));
    const events = blocks.map((block) => {
      const name = /^event: (.+)$/m.exec(block)?.[1];
      const data = JSON.parse(/^data: (.+)$/m.exec(block)![1]!) as { type: string; sequence_number: number };
      expect(name).toBe(data.type);
      return data;
    });
    expect(events.map((event) => event.sequence_number)).toEqual(events.map((_, index) => index));
    // Deltas vary with the tokenizer; collapse runs of them to check the structure exactly.
    const collapsed = events.map((event) => event.type).filter((type, index, all) => !(type.endsWith(".delta") && all[index - 1] === type));
    expect(collapsed).toEqual(responseEventTypes({ reasoning: true, text: true }));
  });

  it("reasoning effort none: no reasoning item, no reasoning tokens, and the same answer", async () => {
    const response = await client.responses.create({ model: "answer", input: "What is the weather in Paris?", reasoning: { effort: "none" }, max_output_tokens: 200, temperature: 0 });
    expect(response.output.map((item) => item.type)).toEqual(["message"]);
    expect(response.output_text).toBe(ANSWER);
    expect(response.usage!.output_tokens_details.reasoning_tokens).toBe(0);
    expect(response.reasoning).toEqual({ effort: "none", summary: null });
  });

  it("instructions and an unknown model: the instructions are echoed; an unknown model is OpenAI's 404", async () => {
    const response = await client.responses.create({ model: "answer", instructions: "Answer briefly.", input: "Weather?", max_output_tokens: 200, temperature: 0 });
    expect(response.instructions).toBe("Answer briefly.");
    expect(response.output_text).toBe(ANSWER);
    const error = await client.responses.create({ model: "no-such-model", input: "x" }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(NotFoundError);
    expect((error as NotFoundError).code).toBe("HEARTH_MODEL_NOT_FOUND");
  });
});

describe("function tools", () => {
  it("returns the two parallel calls with exact names and arguments after the thought", async () => {
    const response = await client.responses.create({ model: "tools", input: "Weather and time in Paris?", tools: TOOLS, max_output_tokens: 300, temperature: 0 });
    expect(response.status).toBe("completed");
    expect(response.output.map((item) => item.type)).toEqual(["reasoning", "function_call", "function_call"]);
    expect(reasoningText(response)).toBe(THOUGHT);
    const calls = callsOf(response);
    expect(calls.map((call) => [call.name, JSON.parse(call.arguments) as unknown])).toEqual([
      ["get_weather", { city: "Paris" }],
      ["get_time", { zone: "CET" }],
    ]);
    for (const call of calls) {
      expect(call.call_id).toMatch(/^call_/);
      expect(call.id).toMatch(/^fc_/);
      expect(call.status).toBe("completed");
    }
    expect(new Set(calls.map((call) => call.call_id)).size).toBe(2);
    expect(response.output_text).toBe("");
  });

  it("streams each call's arguments and the same calls in the final response", async () => {
    const stream = client.responses.stream({ model: "tools", input: "Weather and time in Paris?", tools: TOOLS, max_output_tokens: 300, temperature: 0 });
    const done: [string, string][] = [];
    stream.on("response.function_call_arguments.done", (event) => done.push([event.name, event.arguments]));
    const final = await stream.finalResponse();
    expect(done).toEqual([
      ["get_weather", '{"city":"Paris"}'],
      ["get_time", '{"zone":"CET"}'],
    ]);
    expect(callsOf(final).map((call) => call.name)).toEqual(["get_weather", "get_time"]);
  });

  it("parallel_tool_calls false: the model stops after the first call, so fewer tokens are generated", async () => {
    const both = await client.responses.create({ model: "tools", input: "Weather and time?", tools: TOOLS, max_output_tokens: 300, temperature: 0 });
    const response = await client.responses.create({ model: "tools", input: "Weather and time?", tools: TOOLS, parallel_tool_calls: false, max_output_tokens: 300, temperature: 0 });
    expect(callsOf(response).map((call) => call.name)).toEqual(["get_weather"]);
    expect(response.parallel_tool_calls).toBe(false);
    expect(response.usage!.output_tokens).toBeLessThan(both.usage!.output_tokens);
  });

  it("a call cut off by max_output_tokens: status incomplete with reason max_output_tokens, and no function_call item", async () => {
    const response = await client.responses.create({ model: "tools", input: "Weather and time?", tools: TOOLS, max_output_tokens: 20, temperature: 0 });
    expect(response.status).toBe("incomplete");
    expect(response.incomplete_details).toEqual({ reason: "max_output_tokens" });
    expect(callsOf(response)).toEqual([]);
    expect(response.usage!.output_tokens).toBe(20);
    const stream = client.responses.stream({ model: "tools", input: "Weather and time?", tools: TOOLS, max_output_tokens: 20, temperature: 0 });
    const types: string[] = [];
    for await (const event of stream) types.push(event.type);
    expect(types.at(-1)).toBe("response.incomplete");
    expect(types).not.toContain("response.function_call_arguments.done");
    expect((await stream.finalResponse()).status).toBe("incomplete");
  });

  it("a hosted tool is refused as an invalid request naming it", async () => {
    const error = await client.responses.create({ model: "tools", input: "x", tools: [{ type: "web_search" }] }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(BadRequestError);
    expect((error as BadRequestError).param).toBe("tools[0].type");
  });
});

describe("structured output", () => {
  it("text.format json_schema on the tiny random model: the output parses and matches the schema", async () => {
    const schema = {
      type: "object",
      properties: { ok: { type: "boolean" }, size: { type: "string", enum: ["small", "large"] }, name: { type: "string", maxLength: 4 } },
      required: ["ok", "size", "name"],
      additionalProperties: false,
    };
    const response = await client.responses.create({ model: "tiny", input: "Describe it as JSON.", temperature: 0, max_output_tokens: 64, text: { format: { type: "json_schema", name: "thing", schema, strict: true } } });
    expect(response.status).toBe("completed");
    const parsed = JSON.parse(response.output_text) as Record<string, unknown>;
    expect(Object.keys(parsed).sort()).toEqual(["name", "ok", "size"]);
    expect(typeof parsed["ok"]).toBe("boolean");
    expect(["small", "large"]).toContain(parsed["size"]);
    expect(typeof parsed["name"]).toBe("string");
    expect((parsed["name"] as string).length).toBeLessThanOrEqual(4);
  });
});

describe("stored responses", () => {
  it("previous_response_id continues the stored conversation; GET, input_items and DELETE work on it", async () => {
    const first = await client.responses.create({ model: "answer", input: "What is the weather in Paris?", max_output_tokens: 200, temperature: 0 });
    const second = await client.responses.create({ model: "answer", previous_response_id: first.id, input: "And tomorrow?", max_output_tokens: 200, temperature: 0 });
    expect(second.previous_response_id).toBe(first.id);
    expect(second.output_text).toBe(ANSWER);
    expect(second.usage!.input_tokens).toBeGreaterThan(first.usage!.input_tokens);

    // The same conversation sent in full is the same prompt, token for token.
    const explicit: ResponseInputItem[] = [
      { role: "user", content: "What is the weather in Paris?" },
      ...(first.output as ResponseInputItem[]),
      { role: "user", content: "And tomorrow?" },
    ];
    const resent = await client.responses.create({ model: "answer", input: explicit, store: false, max_output_tokens: 200, temperature: 0 });
    expect(resent.usage!.input_tokens).toBe(second.usage!.input_tokens);

    const fetched = await client.responses.retrieve(second.id);
    expect(asStored(fetched)).toEqual(asStored(second));
    expect(fetched.output_text).toBe(ANSWER);

    const inputs = await client.responses.inputItems.list(second.id);
    expect(inputs.data).toHaveLength(1);
    expect(inputs.data[0]).toMatchObject({ type: "message", role: "user", content: [{ type: "input_text", text: "And tomorrow?" }] });
    expect(inputs.data[0]!.id).toMatch(/^msg_/);
    const firstInputs = await client.responses.inputItems.list(first.id, { order: "asc" });
    expect(firstInputs.data.map((item) => (item.type === "message" ? item.content : null))).toEqual([[{ type: "input_text", text: "What is the weather in Paris?" }]]);

    await client.responses.delete(second.id);
    const gone = await client.responses.retrieve(second.id).catch((caught: unknown) => caught);
    expect(gone).toBeInstanceOf(NotFoundError);
    expect((gone as NotFoundError).code).toBe("HEARTH_RESPONSE_NOT_FOUND");
    expect((gone as NotFoundError).error).toMatchObject({ type: "not_found_error", code: "HEARTH_RESPONSE_NOT_FOUND", message: expect.stringContaining(second.id) as string });
    const continued = await client.responses.create({ model: "answer", previous_response_id: second.id, input: "x" }).catch((caught: unknown) => caught);
    expect(continued).toBeInstanceOf(NotFoundError);
    expect((continued as NotFoundError).param).toBe("previous_response_id");
    // The first response is a record of its own and survives the second's deletion.
    expect((await client.responses.retrieve(first.id)).id).toBe(first.id);
  });

  it("a streamed response is stored as its last event shows it", async () => {
    const stream = client.responses.stream({ model: "answer", input: "Weather?", max_output_tokens: 200, temperature: 0 });
    let completed: SdkResponse | undefined;
    for await (const event of stream) if (event.type === "response.completed") completed = event.response;
    expect(completed).toBeDefined();
    expect(asStored(await client.responses.retrieve(completed!.id))).toEqual(asStored(completed!));
  });

  it("a function call's output continues the stored conversation of the call", async () => {
    const called = await client.responses.create({ model: "tools", input: "Weather and time in Paris?", tools: TOOLS, max_output_tokens: 300, temperature: 0 });
    const outputs: ResponseInputItem[] = callsOf(called).map((call) => ({ type: "function_call_output", call_id: call.call_id, output: call.name === "get_weather" ? "sunny" : "12:00" }));
    const next = await client.responses.create({ model: "answer", previous_response_id: called.id, input: outputs, tools: TOOLS, max_output_tokens: 200, temperature: 0 });
    expect(next.output_text).toBe(ANSWER);
    // The stored turn with its two calls, then their outputs: the same prompt as sending it all.
    const explicit: ResponseInputItem[] = [{ role: "user", content: "Weather and time in Paris?" }, ...(called.output as ResponseInputItem[]), ...outputs];
    const resent = await client.responses.create({ model: "answer", input: explicit, tools: TOOLS, store: false, max_output_tokens: 200, temperature: 0 });
    expect(next.usage!.input_tokens).toBe(resent.usage!.input_tokens);
    const unanswered = await client.responses.create({ model: "tools", previous_response_id: called.id, tools: TOOLS, input: [{ type: "function_call_output", call_id: "call_unknown", output: "x" }] }).catch((caught: unknown) => caught);
    expect(unanswered).toBeInstanceOf(BadRequestError);
    expect((unanswered as BadRequestError).param).toBe("input[0].call_id");
  });

  it("store false is not retrievable", async () => {
    const response = await client.responses.create({ model: "answer", input: "Weather?", store: false, max_output_tokens: 200, temperature: 0 });
    expect((response as SdkResponse & { store?: boolean }).store).toBe(false);
    const error = await client.responses.retrieve(response.id).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(NotFoundError);
    expect((await client.responses.inputItems.list(response.id).catch((caught: unknown) => caught)) instanceof NotFoundError).toBe(true);
  });

  it("cancel is refused for a finished response and 404 for an unknown one", async () => {
    const response = await client.responses.create({ model: "answer", input: "Weather?", max_output_tokens: 200, temperature: 0 });
    const refused = await client.responses.cancel(response.id).catch((caught: unknown) => caught);
    expect(refused).toBeInstanceOf(BadRequestError);
    expect((refused as BadRequestError).message).toMatch(/background/);
    const unknown = await client.responses.cancel(`resp_${"0".repeat(48)}`).catch((caught: unknown) => caught);
    expect(unknown).toBeInstanceOf(NotFoundError);
  });
});

describe("context", () => {
  it("a prompt longer than the context is HEARTH_CONTEXT_OVERFLOW, with truncation auto too, streamed or not", async () => {
    const long = "The weather in Paris is sunny and warm today. ".repeat(1500);
    for (const stream of [false, true]) {
      const response = await fetch(`${daemon.url}/v1/responses`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "answer", input: long, truncation: "auto", stream, max_output_tokens: 10 }),
      });
      expect(response.status).toBe(400);
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe("HEARTH_CONTEXT_OVERFLOW");
    }
  });
});

describe("fuzzing", () => {
  async function post(body: string | Uint8Array, contentType = "application/json"): Promise<{ status: number; body: unknown }> {
    const response = await fetch(`${daemon.url}/v1/responses`, { method: "POST", headers: { "content-type": contentType }, body });
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = text;
    }
    return { status: response.status, body: parsed };
  }

  function expectOpenAiError(answer: { status: number; body: unknown }, status: number | RegExp): void {
    if (typeof status === "number") expect(answer.status).toBe(status);
    else expect(String(answer.status)).toMatch(status);
    const error = (answer.body as { error?: Record<string, unknown> }).error;
    expect(error).toBeDefined();
    expect(Object.keys(error!).sort()).toEqual(["code", "message", "param", "type"]);
    expect(typeof error!["message"]).toBe("string");
    expect(error!["code"]).toMatch(/^HEARTH_/);
  }

  it.each([
    ["not JSON", "{model:", 400],
    ["an array", "[1,2]", 400],
    ["null", "null", 400],
    ["empty", "", 400],
    ["wrong types", JSON.stringify({ model: 42, input: {} }), 400],
    ["input of numbers", JSON.stringify({ model: "answer", input: [1, 2, 3] }), 400],
    ["deeply nested input", `{"model":"answer","input":${"[".repeat(20_000)}${"]".repeat(20_000)}}`, 400],
    ["deeply nested metadata", `{"model":"answer","input":"x","metadata":${'{"a":'.repeat(3000)}1${"}".repeat(3000)}}`, 400],
    ["unknown fields only", JSON.stringify({ model: "answer", input: "x", frobnicate: { deep: [1] }, tools: [{ type: "computer_use_preview" }] }), 400],
  ])("%s gets an OpenAI error", async (_, body, status) => {
    expectOpenAiError(await post(body), status);
  });

  it("a body declared larger than max_body_bytes gets OpenAI's 413 before it is sent", async () => {
    const answer = await new Promise<{ status: number; body: unknown }>((resolve, reject) => {
      const request = http.request(`${daemon.url}/v1/responses`, { method: "POST", headers: { "content-type": "application/json", "content-length": String(64 * 1024 * 1024) } }, (response) => {
        let text = "";
        response.setEncoding("utf8");
        response.on("data", (chunk: string) => (text += chunk));
        response.on("end", () => {
          request.destroy();
          resolve({ status: response.statusCode ?? 0, body: JSON.parse(text) as unknown });
        });
      });
      request.on("error", reject);
      request.flushHeaders();
    });
    expectOpenAiError(answer, 413);
    expect((answer.body as { error: { code: string } }).error.code).toBe("HEARTH_BODY_TOO_LARGE");
    await expectHealthy();
  });

  it("bad UTF-8 and a wrong content type get OpenAI errors", async () => {
    expectOpenAiError(await post(new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d])), 400);
    expectOpenAiError(await post(JSON.stringify({ model: "answer", input: "x" }), "text/plain"), 415);
  });

  it("random bodies each get an OpenAI 4xx error, and the daemon stays healthy", async () => {
    const item = fc.record({ type: fc.oneof(fc.constantFrom("message", "function_call", "function_call_output", "reasoning", "item_reference"), fc.string()), role: fc.oneof(fc.constantFrom("user", "assistant", "tool"), fc.anything()), content: fc.anything() }, { requiredKeys: [] });
    const body = fc.record(
      {
        model: fc.oneof(fc.constant("no-such-model"), fc.anything()),
        input: fc.oneof(fc.array(item, { maxLength: 4 }), fc.anything()),
        tools: fc.anything(),
        tool_choice: fc.anything(),
        text: fc.anything(),
        reasoning: fc.anything(),
        max_output_tokens: fc.oneof(fc.integer(), fc.anything()),
        previous_response_id: fc.oneof(fc.constant("resp_../../../etc/passwd"), fc.string()),
        store: fc.anything(),
      },
      { requiredKeys: [] },
    );
    await fc.assert(
      fc.asyncProperty(body, async (value) => {
        const answer = await post(JSON.stringify(value));
        expectOpenAiError(answer, /^4\d\d$/);
      }),
      { numRuns: 150 },
    );
    await expectHealthy();
  });

  it("ids from the network are unknown responses in OpenAI's 404 shape, never paths", async () => {
    for (const id of ["..%2F..%2Fetc%2Fpasswd", "resp_..", `resp_${"0".repeat(48)}`, "%00", "x".repeat(300), "resp_%2e%2e"]) {
      for (const [method, suffix] of [["GET", ""], ["DELETE", ""], ["GET", "/input_items"], ["POST", "/cancel"]] as const) {
        const response = await fetch(`${daemon.url}/v1/responses/${id}${suffix}`, { method });
        const answer = { status: response.status, body: (await response.json()) };
        expectOpenAiError(answer, 404);
      }
    }
    await expectHealthy();
  });
});
