/**
 * Anthropic's Messages API through the official @anthropic-ai/sdk against a real `hearth
 * serve`, with scripted models whose greedy answer is known (test/support/scripts.ts), so
 * thoughts, answers, tool calls and stop reasons are asserted exactly.
 */

import Anthropic, { AuthenticationError, BadRequestError, NotFoundError } from "@anthropic-ai/sdk";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDaemon, type RunningDaemon } from "../support/daemon.js";
import { ensureScriptedModel, ensureTinyModel } from "../support/models.js";
import { ANSWER, THINK_THEN_ANSWER, THINK_THEN_CALL_TWO_TOOLS, THOUGHT, WEATHER_TOOLS } from "../support/scripts.js";
import { rejectionOf } from "../support/thrown.js";

const API_KEY = "anthropic-client-test-key";
const MAX_BODY_BYTES = 256 * 1024;
const CONFIG = `[runner]\nthreads = 1\n[limits]\ncontext_size = 1024\nparallel_slots = 1\nmax_body_bytes = ${MAX_BODY_BYTES}\n`;
const ANTHROPIC_VERSION = "2023-06-01";

const TOOLS: Anthropic.Tool[] = WEATHER_TOOLS.map((tool) => ({ name: tool.name, description: tool.description ?? "", input_schema: tool.parameters as Anthropic.Tool.InputSchema }));
/**
 * Every generation here asks for temperature 0: Anthropic's default is 1, and only the greedy
 * answer is the script. This SDK no longer types the sampling fields; it sends them as given.
 */
const GREEDY: object = { temperature: 0 };
const HELLO: Anthropic.MessageParam[] = [{ role: "user", content: "What is the weather and the time in Paris?" }];

let daemon: RunningDaemon;
let keyed: RunningDaemon;
let client: Anthropic;

beforeAll(async () => {
  const [answer, tools, tiny] = await Promise.all([
    ensureScriptedModel("scripted-answer", THINK_THEN_ANSWER),
    ensureScriptedModel("scripted-tools", THINK_THEN_CALL_TWO_TOOLS),
    ensureTinyModel(),
  ]);
  [daemon, keyed] = await Promise.all([
    startDaemon({ models: { answer, tools, tiny }, configToml: CONFIG }),
    startDaemon({ models: { answer }, configToml: CONFIG, env: { HEARTH_API_KEY: API_KEY } }),
  ]);
  client = new Anthropic({ baseURL: daemon.url, apiKey: "not-checked-without-a-key", maxRetries: 0 });
});

afterAll(async () => {
  const exits = await Promise.all([daemon?.stop(), keyed?.stop()]);
  expect(exits).toEqual([0, 0]);
});

interface SseEvent {
  event: string | undefined;
  data: string;
}

/** The raw SSE events of a response: the `event:` name and the `data:` text of each. */
async function sseEvents(response: Response): Promise<SseEvent[]> {
  const text = await response.text();
  return text
    .split("\n\n")
    .filter((block) => block.trim() !== "" && !block.startsWith(":"))
    .map((block) => {
      const lines = block.split("\n");
      const event = lines.find((line) => line.startsWith("event: "))?.slice("event: ".length);
      const data = lines.filter((line) => line.startsWith("data: ")).map((line) => line.slice("data: ".length)).join("\n");
      return { event, data };
    });
}

function postMessages(body: unknown, path = "/v1/messages", headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${daemon.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", "anthropic-version": ANTHROPIC_VERSION, ...headers },
    body: typeof body === "string" || body instanceof Uint8Array ? body : JSON.stringify(body),
  });
}

/** Anthropic's error body: `{type:"error", error:{type, message}}` (and Hearth's code). */
async function expectAnthropicError(response: Response, status: number, type: string): Promise<{ message: string; hearth_code: string }> {
  expect(response.status).toBe(status);
  expect(response.headers.get("content-type")).toContain("application/json");
  const body = (await response.json()) as { type: string; error: { type: string; message: string; hearth_code: string } };
  expect(body.type).toBe("error");
  expect(body.error.type).toBe(type);
  expect(body.error.message.length).toBeGreaterThan(0);
  return body.error;
}

function toolUses(message: Anthropic.Message): { name: string; input: unknown }[] {
  return message.content.flatMap((block) => (block.type === "tool_use" ? [{ name: block.name, input: block.input }] : []));
}

describe("messages with a thinking model", () => {
  it("returns the exact thought and answer as a thinking block and a text block", async () => {
    const message = await client.messages.create({ model: "answer", max_tokens: 200, ...GREEDY, messages: HELLO });
    expect(message.id).toMatch(/^msg_[0-9a-f]{24}$/);
    expect(message).toMatchObject({ type: "message", role: "assistant", model: "answer", stop_reason: "end_turn", stop_sequence: null });
    expect(message.content).toEqual([
      { type: "thinking", thinking: THOUGHT, signature: "" },
      { type: "text", text: ANSWER },
    ]);
    expect(message.usage.output_tokens).toBeGreaterThan(0);
    expect(message.usage.input_tokens + (message.usage.cache_read_input_tokens ?? 0)).toBeGreaterThan(0);
    expect(message.usage.cache_creation_input_tokens).toBe(0);
  });

  it("streams the same message through the SDK's stream helper", async () => {
    const stream = client.messages.stream({ model: "answer", max_tokens: 200, ...GREEDY, messages: HELLO });
    let thinking = "";
    let text = "";
    stream.on("thinking", (delta) => (thinking += delta));
    stream.on("text", (delta) => (text += delta));
    const final = await stream.finalMessage();
    expect(thinking).toBe(THOUGHT);
    expect(text).toBe(ANSWER);
    expect(final.content).toEqual([
      { type: "thinking", thinking: THOUGHT, signature: "" },
      { type: "text", text: ANSWER },
    ]);
    expect(final.stop_reason).toBe("end_turn");
    expect(final.id).toMatch(/^msg_/);
    const whole = await client.messages.create({ model: "answer", max_tokens: 200, ...GREEDY, messages: HELLO });
    const prompt = (usage: Anthropic.Usage): number => usage.input_tokens + (usage.cache_read_input_tokens ?? 0);
    expect(prompt(final.usage)).toBe(prompt(whole.usage));
    expect(final.usage.output_tokens).toBe(whole.usage.output_tokens);
  });

  it("answers the same without a thinking block when thinking is disabled", async () => {
    const message = await client.messages.create({ model: "answer", max_tokens: 200, ...GREEDY, messages: HELLO, thinking: { type: "disabled" } });
    expect(message.content).toEqual([{ type: "text", text: ANSWER }]);
    expect(message.stop_reason).toBe("end_turn");
  });

  it("thinks when thinking is enabled with a budget, as when it is absent", async () => {
    const message = await client.messages.create({ model: "answer", max_tokens: 2048, ...GREEDY, messages: HELLO, thinking: { type: "enabled", budget_tokens: 1024 } });
    expect(message.content).toEqual([
      { type: "thinking", thinking: THOUGHT, signature: "" },
      { type: "text", text: ANSWER },
    ]);
  });

  it("counts prompt tokens reused from the KV cache as cache_read_input_tokens", async () => {
    const conversation: Anthropic.MessageParam[] = [{ role: "user", content: "A question asked twice: why is the sky blue?" }];
    const first = await client.messages.create({ model: "answer", max_tokens: 200, ...GREEDY, messages: conversation });
    const second = await client.messages.create({ model: "answer", max_tokens: 200, ...GREEDY, messages: conversation });
    expect(second.usage.cache_read_input_tokens).toBeGreaterThan(first.usage.cache_read_input_tokens ?? 0);
    expect(second.usage.input_tokens).toBeLessThan(first.usage.input_tokens);
    expect(second.usage.input_tokens).toBeGreaterThanOrEqual(1);
    expect(second.usage.input_tokens + (second.usage.cache_read_input_tokens ?? 0)).toBe(first.usage.input_tokens + (first.usage.cache_read_input_tokens ?? 0));
  });

  it("takes a system prompt as a string or as text blocks, and content as blocks", async () => {
    const asBlocks = await client.messages.create({
      model: "answer",
      max_tokens: 200,
      ...GREEDY,
      system: [{ type: "text", text: "You are terse.", cache_control: { type: "ephemeral" } }],
      messages: [{ role: "user", content: [{ type: "text", text: "Weather?" }, { type: "text", text: "And time?" }] }],
      metadata: { user_id: "someone" },
    });
    const asString = await client.messages.create({ model: "answer", max_tokens: 200, ...GREEDY, system: "You are terse.", messages: [{ role: "user", content: "Weather?\nAnd time?" }] });
    expect(asBlocks.content).toEqual(asString.content);
    expect(asBlocks.usage.input_tokens + (asBlocks.usage.cache_read_input_tokens ?? 0)).toBe(asString.usage.input_tokens + (asString.usage.cache_read_input_tokens ?? 0));
  });
});

describe("the raw event stream", () => {
  it("is Anthropic's exact sequence of named events, without [DONE]", async () => {
    const response = await postMessages({ model: "answer", max_tokens: 200, ...GREEDY, stream: true, messages: HELLO });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toContain("text/event-stream");
    const events = await sseEvents(response);
    expect(events.every((event) => event.data !== "[DONE]")).toBe(true);
    const parsed = events.map((event) => ({ event: event.event, data: JSON.parse(event.data) as Record<string, unknown> & { type: string } }));
    // Each event is named after the type its data carries.
    for (const { event, data } of parsed) expect(event).toBe(data.type);

    const names = parsed.map(({ data }) => {
      const delta = data["delta"] as { type?: string } | undefined;
      return data.type === "content_block_delta" ? `delta:${delta?.type}` : data.type;
    });
    const collapsed = names.filter((name, index) => name !== names[index - 1]);
    expect(collapsed).toEqual([
      "message_start",
      "ping",
      "content_block_start",
      "delta:thinking_delta",
      "delta:signature_delta",
      "content_block_stop",
      "content_block_start",
      "delta:text_delta",
      "content_block_stop",
      "message_delta",
      "message_stop",
    ]);

    const start = parsed[0]!.data as unknown as { message: Record<string, unknown> };
    expect(start.message).toMatchObject({ type: "message", role: "assistant", model: "answer", content: [], stop_reason: null, stop_sequence: null });
    expect(start.message["id"]).toMatch(/^msg_/);
    expect(start.message["usage"]).toMatchObject({ input_tokens: 0, output_tokens: 0 });

    const blockStarts = parsed.filter(({ data }) => data.type === "content_block_start").map(({ data }) => data);
    expect(blockStarts).toEqual([
      { type: "content_block_start", index: 0, content_block: { type: "thinking", thinking: "", signature: "" } },
      { type: "content_block_start", index: 1, content_block: { type: "text", text: "" } },
    ]);
    const deltas = parsed.filter(({ data }) => data.type === "content_block_delta").map(({ data }) => data as unknown as { index: number; delta: Record<string, string> });
    expect(deltas.filter((d) => d.delta["type"] === "thinking_delta").every((d) => d.index === 0)).toBe(true);
    expect(deltas.filter((d) => d.delta["type"] === "text_delta").every((d) => d.index === 1)).toBe(true);
    expect(deltas.filter((d) => d.delta["type"] === "thinking_delta").map((d) => d.delta["thinking"]).join("")).toBe(THOUGHT);
    expect(deltas.filter((d) => d.delta["type"] === "text_delta").map((d) => d.delta["text"]).join("")).toBe(ANSWER);
    expect(deltas.filter((d) => d.delta["type"] === "signature_delta")).toEqual([{ type: "content_block_delta", index: 0, delta: { type: "signature_delta", signature: "" } }]);
    expect(parsed.filter(({ data }) => data.type === "content_block_stop").map(({ data }) => data["index"])).toEqual([0, 1]);

    const messageDelta = parsed.find(({ data }) => data.type === "message_delta")!.data as unknown as { delta: unknown; usage: Record<string, number> };
    expect(messageDelta.delta).toEqual({ stop_reason: "end_turn", stop_sequence: null });
    expect(messageDelta.usage["output_tokens"]).toBeGreaterThan(0);
    expect(messageDelta.usage["input_tokens"]! + messageDelta.usage["cache_read_input_tokens"]!).toBeGreaterThan(0);
  });

  it("streams tool calls as tool_use blocks whose whole input comes in one input_json_delta", async () => {
    const response = await postMessages({ model: "tools", max_tokens: 200, ...GREEDY, stream: true, messages: HELLO, tools: TOOLS });
    const parsed = (await sseEvents(response)).map((event) => JSON.parse(event.data) as Record<string, unknown> & { type: string });
    const toolStarts = parsed.filter((data) => data.type === "content_block_start" && (data["content_block"] as { type: string }).type === "tool_use");
    expect(toolStarts.map((data) => data["index"])).toEqual([1, 2]);
    expect(toolStarts.map((data) => (data["content_block"] as { name: string; input: unknown }))).toMatchObject([
      { type: "tool_use", name: "get_weather", input: {} },
      { type: "tool_use", name: "get_time", input: {} },
    ]);
    const jsonDeltas = parsed.filter((data) => data.type === "content_block_delta" && (data["delta"] as { type: string }).type === "input_json_delta");
    expect(jsonDeltas).toEqual([
      { type: "content_block_delta", index: 1, delta: { type: "input_json_delta", partial_json: '{"city":"Paris"}' } },
      { type: "content_block_delta", index: 2, delta: { type: "input_json_delta", partial_json: '{"zone":"CET"}' } },
    ]);
    expect(parsed.find((data) => data.type === "message_delta")!["delta"]).toEqual({ stop_reason: "tool_use", stop_sequence: null });
    expect(parsed.at(-1)!.type).toBe("message_stop");
  });
});

describe("tool use", () => {
  it("returns both parallel calls with exact names and inputs, after the thought", async () => {
    const message = await client.messages.create({ model: "tools", max_tokens: 200, ...GREEDY, messages: HELLO, tools: TOOLS });
    expect(message.stop_reason).toBe("tool_use");
    expect(message.content[0]).toEqual({ type: "thinking", thinking: THOUGHT, signature: "" });
    expect(message.content.slice(1).map((block) => block.type)).toEqual(["tool_use", "tool_use"]);
    expect(toolUses(message)).toEqual([
      { name: "get_weather", input: { city: "Paris" } },
      { name: "get_time", input: { zone: "CET" } },
    ]);
    const ids = message.content.flatMap((block) => (block.type === "tool_use" ? [block.id] : []));
    for (const id of ids) expect(id).toMatch(/^toolu_[A-Za-z0-9_-]+$/);
    expect(new Set(ids).size).toBe(2);
  });

  it("gives the stream helper's final message the same calls, inputs parsed", async () => {
    const final = await client.messages.stream({ model: "tools", max_tokens: 200, ...GREEDY, messages: HELLO, tools: TOOLS }).finalMessage();
    expect(final.stop_reason).toBe("tool_use");
    expect(toolUses(final)).toEqual([
      { name: "get_weather", input: { city: "Paris" } },
      { name: "get_time", input: { zone: "CET" } },
    ]);
  });

  it("accepts the tool_result blocks sent back in a follow-up, and answers it", async () => {
    const first = await client.messages.create({ model: "tools", max_tokens: 200, ...GREEDY, messages: HELLO, tools: TOOLS });
    const uses = first.content.filter((block): block is Anthropic.ToolUseBlock => block.type === "tool_use");
    expect(uses).toHaveLength(2);
    const followUp = await client.messages.create({
      model: "tools",
      max_tokens: 200,
      ...GREEDY,
      tools: TOOLS,
      messages: [
        ...HELLO,
        { role: "assistant", content: first.content },
        {
          role: "user",
          content: [
            { type: "tool_result", tool_use_id: uses[0]!.id, content: "Sunny, 21 C" },
            { type: "tool_result", tool_use_id: uses[1]!.id, content: [{ type: "text", text: "clock unavailable" }], is_error: true },
            { type: "text", text: "Thanks." },
          ],
        },
      ],
    });
    // The scripted model answers every conversation with its script: the follow-up was read and answered.
    expect(followUp.stop_reason).toBe("tool_use");
    expect(toolUses(followUp)).toEqual([
      { name: "get_weather", input: { city: "Paris" } },
      { name: "get_time", input: { zone: "CET" } },
    ]);
    // The follow-up's prompt holds the first turn and the results: it is longer than the first's.
    const prompt = (usage: Anthropic.Usage): number => usage.input_tokens + (usage.cache_read_input_tokens ?? 0);
    expect(prompt(followUp.usage)).toBeGreaterThan(prompt(first.usage));
  });

  it("refuses a tool_result that answers no tool_use", async () => {
    const error = await rejectionOf(
      client.messages.create({ model: "tools", max_tokens: 50, ...GREEDY, tools: TOOLS, messages: [...HELLO, { role: "user", content: [{ type: "tool_result", tool_use_id: "toolu_nobody", content: "x" }] }] }),
      BadRequestError,
    );
    expect(error.type).toBe("invalid_request_error");
  });

  it("makes at most one call with disable_parallel_tool_use", async () => {
    const message = await client.messages.create({ model: "tools", max_tokens: 200, ...GREEDY, messages: HELLO, tools: TOOLS, tool_choice: { type: "auto", disable_parallel_tool_use: true } });
    expect(message.stop_reason).toBe("tool_use");
    expect(toolUses(message)).toEqual([{ name: "get_weather", input: { city: "Paris" } }]);
  });

  it("offers no tools with tool_choice none: the model's call syntax stays text", async () => {
    const message = await client.messages.create({ model: "tools", max_tokens: 200, ...GREEDY, messages: HELLO, tools: TOOLS, tool_choice: { type: "none" } });
    const written = THINK_THEN_CALL_TWO_TOOLS.slice(THINK_THEN_CALL_TWO_TOOLS.indexOf("<tool_call>")).replace("<|im_end|>", "");
    expect(message.content).toEqual([
      { type: "thinking", thinking: THOUGHT, signature: "" },
      { type: "text", text: written },
    ]);
    expect(message.stop_reason).toBe("end_turn");
    // The tools are not rendered into the prompt either.
    const offered = await client.messages.countTokens({ model: "tools", messages: HELLO, tools: TOOLS });
    expect(message.usage.input_tokens + (message.usage.cache_read_input_tokens ?? 0)).toBeLessThan(offered.input_tokens);
  });

  it("never returns a call cut off by max_tokens: stop_reason max_tokens and no tool_use block", async () => {
    const whole = await client.messages.create({ model: "tools", max_tokens: 200, ...GREEDY, messages: HELLO, tools: TOOLS });
    const budget = whole.usage.output_tokens - 2;
    const cut = await client.messages.create({ model: "tools", max_tokens: budget, ...GREEDY, messages: HELLO, tools: TOOLS });
    expect(cut.stop_reason).toBe("max_tokens");
    expect(cut.usage.output_tokens).toBe(budget);
    expect(cut.content).toEqual([{ type: "thinking", thinking: THOUGHT, signature: "" }]);

    const streamed = await client.messages.stream({ model: "tools", max_tokens: budget, ...GREEDY, messages: HELLO, tools: TOOLS }).finalMessage();
    expect(streamed.stop_reason).toBe("max_tokens");
    expect(streamed.content.map((block) => block.type)).toEqual(["thinking"]);
  });
});

describe("stop sequences", () => {
  it("end the tiny model's text before the sequence, with stop_reason stop_sequence naming it", async () => {
    const prompt: Anthropic.MessageParam[] = [{ role: "user", content: "Tell me about fire." }];
    const free = await client.messages.create({ model: "tiny", max_tokens: 40, ...GREEDY, messages: prompt });
    const text = free.content.find((block) => block.type === "text")?.text ?? "";
    // Random weights write arbitrary bytes: the stop is a pair of ASCII letters or digits after
    // an ASCII character, so that the text before it ends on a whole character.
    const match = /[\x20-\x7e]([A-Za-z0-9]{2})/.exec(text);
    expect(match, `no ASCII pair in the tiny model's answer ${JSON.stringify(text)}`).not.toBeNull();
    const stop = match![1]!;
    const before = text.slice(0, text.indexOf(stop));
    expect(before).not.toBe("");

    const stopped = await client.messages.create({ model: "tiny", max_tokens: 40, ...GREEDY, messages: prompt, stop_sequences: ["\u0000never", stop] });
    expect(stopped.stop_reason).toBe("stop_sequence");
    expect(stopped.stop_sequence).toBe(stop);
    expect(stopped.content).toEqual([{ type: "text", text: before }]);

    const streamed = await client.messages.stream({ model: "tiny", max_tokens: 40, ...GREEDY, messages: prompt, stop_sequences: [stop] }).finalMessage();
    expect(streamed.stop_reason).toBe("stop_sequence");
    expect(streamed.stop_sequence).toBe(stop);
  });

  it("end the scripted answer at the sequence", async () => {
    const message = await client.messages.create({ model: "answer", max_tokens: 200, ...GREEDY, messages: HELLO, stop_sequences: ["Paris"] });
    expect(message).toMatchObject({ stop_reason: "stop_sequence", stop_sequence: "Paris" });
    expect(message.content).toEqual([
      { type: "thinking", thinking: THOUGHT, signature: "" },
      { type: "text", text: ANSWER.slice(0, ANSWER.indexOf("Paris")) },
    ]);
  });

  it("leave stop_reason end_turn when none matched", async () => {
    const message = await client.messages.create({ model: "answer", max_tokens: 200, ...GREEDY, messages: HELLO, stop_sequences: ["zebra"] });
    expect(message).toMatchObject({ stop_reason: "end_turn", stop_sequence: null });
  });
});

describe("count_tokens", () => {
  const prompt = (usage: Anthropic.Usage): number => usage.input_tokens + (usage.cache_read_input_tokens ?? 0);

  it("equals the prompt the same messages request reports", async () => {
    const counted = await client.messages.countTokens({ model: "answer", messages: HELLO });
    const message = await client.messages.create({ model: "answer", max_tokens: 200, ...GREEDY, messages: HELLO });
    expect(Object.keys(counted)).toEqual(["input_tokens"]);
    expect(counted.input_tokens).toBe(prompt(message.usage));
  });

  it("counts the system prompt and the tools too", async () => {
    const bare = await client.messages.countTokens({ model: "tools", messages: HELLO });
    const withSystem = await client.messages.countTokens({ model: "tools", messages: HELLO, system: "You are a weather assistant." });
    const withTools = await client.messages.countTokens({ model: "tools", messages: HELLO, tools: TOOLS });
    expect(withSystem.input_tokens).toBeGreaterThan(bare.input_tokens);
    expect(withTools.input_tokens).toBeGreaterThan(bare.input_tokens);
    const message = await client.messages.create({ model: "tools", max_tokens: 200, ...GREEDY, messages: HELLO, tools: TOOLS });
    expect(withTools.input_tokens).toBe(prompt(message.usage));
  });

  it("answers 404 not_found_error for an unknown model", async () => {
    const error = await rejectionOf(client.messages.countTokens({ model: "no-such-model", messages: HELLO }), NotFoundError);
    expect(error.type).toBe("not_found_error");
  });
});

describe("models in Anthropic's shape", () => {
  it("lists every model as {type, id, display_name, created_at} with has_more, first_id and last_id", async () => {
    const page = await client.models.list();
    const ids = page.data.map((model) => model.id);
    expect(ids.sort()).toEqual(["answer", "tiny", "tools"]);
    for (const model of page.data) {
      expect(Object.keys(model).sort()).toEqual(["created_at", "display_name", "id", "type"]);
      expect(model.type).toBe("model");
      expect(model.display_name).toBe(model.id);
      expect(new Date(model.created_at).toISOString()).toBe(model.created_at);
      expect(Date.parse(model.created_at)).toBeGreaterThan(Date.parse("2020-01-01T00:00:00Z"));
    }
    const raw = (await (await fetch(`${daemon.url}/v1/models`, { headers: { "anthropic-version": ANTHROPIC_VERSION } })).json()) as Record<string, unknown>;
    expect(raw).toMatchObject({ has_more: false, first_id: page.data[0]!.id, last_id: page.data.at(-1)!.id });
  });

  it("pages with limit and after_id, and the SDK follows the pages", async () => {
    const all = (await client.models.list()).data.map((model) => model.id);
    const first = (await (await fetch(`${daemon.url}/v1/models?limit=1`, { headers: { "anthropic-version": ANTHROPIC_VERSION } })).json()) as { data: { id: string }[]; has_more: boolean; last_id: string };
    expect(first).toMatchObject({ has_more: true, first_id: all[0], last_id: all[0] });
    const second = (await (await fetch(`${daemon.url}/v1/models?limit=1&after_id=${first.last_id}`, { headers: { "anthropic-version": ANTHROPIC_VERSION } })).json()) as { data: { id: string }[] };
    expect(second.data.map((model) => model.id)).toEqual([all[1]]);
    const followed: string[] = [];
    for await (const model of client.models.list({ limit: 1 })) followed.push(model.id);
    expect(followed).toEqual(all);
  });

  it("gets one model, and answers NotFoundError for an unknown one", async () => {
    const model = await client.models.retrieve("tools");
    expect(model).toMatchObject({ type: "model", id: "tools", display_name: "tools" });
    const error = await rejectionOf(client.models.retrieve("no-such-model"), NotFoundError);
    expect(error.status).toBe(404);
    expect(error.type).toBe("not_found_error");
  });

  it("keeps OpenAI's shape for a request without anthropic-version", async () => {
    const list = (await (await fetch(`${daemon.url}/v1/models`)).json()) as { object: string; data: { object: string }[] };
    expect(list.object).toBe("list");
    expect(list.data.every((model) => model.object === "model")).toBe(true);
  });
});

describe("errors in Anthropic's shape", () => {
  it("an unknown model is NotFoundError (404 not_found_error), streamed or not", async () => {
    const error = await rejectionOf(client.messages.create({ model: "no-such-model", max_tokens: 10, messages: HELLO }), NotFoundError);
    expect(error.status).toBe(404);
    expect(error.type).toBe("not_found_error");
    const streamed = await rejectionOf(client.messages.stream({ model: "no-such-model", max_tokens: 10, messages: HELLO }).finalMessage(), NotFoundError);
    expect(streamed.type).toBe("not_found_error");
  });

  it("a missing max_tokens is BadRequestError naming it", async () => {
    const error = await rejectionOf(client.messages.create({ model: "answer", messages: HELLO } as unknown as Anthropic.MessageCreateParamsNonStreaming), BadRequestError);
    expect(error.type).toBe("invalid_request_error");
    expect(error.message).toContain("max_tokens");
  });

  it("an image or a document block is refused naming the block", async () => {
    const image = await rejectionOf(
      client.messages.create({ model: "answer", max_tokens: 10, messages: [{ role: "user", content: [{ type: "image", source: { type: "base64", media_type: "image/png", data: "iVBORw0KGgo=" } }] }] }),
      BadRequestError,
    );
    expect(image.type).toBe("invalid_request_error");
    expect(image.message).toContain("'image' blocks are not supported");
    expect(image.message).toContain("messages[0].content[0].type");
    const document = await rejectionOf(
      client.messages.create({ model: "answer", max_tokens: 10, messages: [{ role: "user", content: [{ type: "document", source: { type: "text", media_type: "text/plain", data: "hi" } }] }] }),
      BadRequestError,
    );
    expect(document.message).toContain("'document' blocks are not supported");
  });

  it("a server tool is refused naming it", async () => {
    const error = await rejectionOf(
      client.messages.create({ model: "tools", max_tokens: 10, messages: HELLO, tools: [{ type: "web_search_20250305", name: "web_search" }] }),
      BadRequestError,
    );
    expect(error.message).toContain("web_search_20250305");
  });

  it("bad JSON, a wrong content type and a body over the limit get Anthropic's body", async () => {
    await expectAnthropicError(await postMessages("{not json"), 400, "invalid_request_error");
    const wrongType = await fetch(`${daemon.url}/v1/messages`, { method: "POST", headers: { "content-type": "text/plain" }, body: "hi" });
    await expectAnthropicError(wrongType, 415, "invalid_request_error");
    const huge = { model: "answer", max_tokens: 10, messages: [{ role: "user", content: "x".repeat(MAX_BODY_BYTES + 1) }] };
    const tooLarge = await postMessages(huge);
    const error = await expectAnthropicError(tooLarge, 413, "request_too_large");
    expect(error.hearth_code).toBe("HEARTH_BODY_TOO_LARGE");
    const sdkTooLarge = await rejectionOf(client.messages.create(huge as Anthropic.MessageCreateParamsNonStreaming), Anthropic.APIError);
    expect(sdkTooLarge.status).toBe(413);
    expect(sdkTooLarge.type).toBe("request_too_large");
  });

  it("an unknown path under /v1/messages is 404 not_found_error", async () => {
    await expectAnthropicError(await postMessages({}, "/v1/messages/batches"), 404, "not_found_error");
  });
});

describe("the API key", () => {
  it("is accepted as x-api-key (the SDK's apiKey) and as a bearer token (authToken)", async () => {
    const viaApiKey = new Anthropic({ baseURL: keyed.url, apiKey: API_KEY, maxRetries: 0 });
    const message = await viaApiKey.messages.create({ model: "answer", max_tokens: 200, ...GREEDY, messages: HELLO });
    expect(message.content.at(-1)).toEqual({ type: "text", text: ANSWER });
    expect((await viaApiKey.models.list()).data.map((model) => model.id)).toEqual(["answer"]);
    const viaToken = new Anthropic({ baseURL: keyed.url, apiKey: null, authToken: API_KEY, maxRetries: 0 });
    expect((await viaToken.messages.countTokens({ model: "answer", messages: HELLO })).input_tokens).toBeGreaterThan(0);
  });

  it("is required: a wrong or missing key is AuthenticationError (401 authentication_error)", async () => {
    const wrong = new Anthropic({ baseURL: keyed.url, apiKey: "wrong-key", maxRetries: 0 });
    const error = await rejectionOf(wrong.messages.create({ model: "answer", max_tokens: 10, messages: HELLO }), AuthenticationError);
    expect(error.status).toBe(401);
    expect(error.type).toBe("authentication_error");
    const models = await rejectionOf(wrong.models.list(), AuthenticationError);
    expect(models.type).toBe("authentication_error");
    const none = await fetch(`${keyed.url}/v1/messages/count_tokens`, { method: "POST", headers: { "content-type": "application/json", "anthropic-version": ANTHROPIC_VERSION }, body: "{}" });
    await expectAnthropicError(none, 401, "authentication_error");
  });
});

describe("fuzzing /v1/messages and /v1/messages/count_tokens", () => {
  const valid = { model: "answer", max_tokens: 1, messages: [{ role: "user", content: "hi" }] };
  // Optional fields accept null as "not set", so null is wrong only where a value is required.
  const notAString = fc.oneof(fc.integer(), fc.boolean(), fc.array(fc.integer(), { minLength: 1, maxLength: 3 }), fc.dictionary(fc.string({ maxLength: 5 }), fc.integer(), { maxKeys: 3 }));
  const notAPositiveInt = fc.oneof(fc.integer({ max: 0 }), fc.double({ noInteger: true, noDefaultInfinity: true, noNaN: true }), fc.string({ maxLength: 5 }), fc.boolean(), fc.array(fc.nat(), { maxLength: 2 }));
  const badBlock = fc.oneof(
    fc.record({ type: fc.constantFrom("image", "document", "search_result", "server_tool_use", "tool_use", "thinking"), text: fc.string({ maxLength: 5 }) }),
    fc.record({ type: fc.constant("text"), text: notAString }),
    fc.record({ type: fc.constant("tool_result"), tool_use_id: notAString }),
    notAString,
  );
  const wrongBodies = fc.oneof(
    fc.record({ field: fc.constant("model"), value: fc.oneof(notAString, fc.constant(null), fc.constant("")) }),
    fc.record({ field: fc.constant("max_tokens"), value: fc.oneof(notAPositiveInt, fc.constant(null), fc.integer({ min: 1_000_001 })) }),
    fc.record({ field: fc.constant("messages"), value: fc.oneof(notAString.filter((value) => !Array.isArray(value) || value.length === 0), fc.constant([]), fc.array(fc.record({ role: fc.constantFrom("user", "assistant", "tool", "developer"), content: notAString }), { minLength: 1, maxLength: 2 })) }),
    fc.record({ field: fc.constant("messages"), value: fc.array(badBlock, { minLength: 1, maxLength: 3 }).map((content) => [{ role: "user", content }]) }),
    fc.record({ field: fc.constant("system"), value: fc.oneof(fc.integer(), fc.boolean(), fc.array(badBlock, { minLength: 1, maxLength: 2 })) }),
    fc.record({ field: fc.constant("temperature"), value: fc.oneof(fc.double({ min: 1.0001, max: 1e9, noNaN: true }), fc.double({ max: -0.0001, min: -1e9, noNaN: true }), fc.string({ maxLength: 3 })) }),
    fc.record({ field: fc.constant("top_k"), value: notAPositiveInt }),
    fc.record({ field: fc.constant("stop_sequences"), value: fc.oneof(fc.string({ minLength: 1, maxLength: 3 }), fc.array(fc.integer(), { minLength: 1, maxLength: 3 }), fc.array(fc.string({ maxLength: 2 }), { minLength: 17, maxLength: 20 })) }),
    fc.record({ field: fc.constant("tools"), value: fc.oneof(notAString.filter((value) => !Array.isArray(value) || value.length > 0), fc.array(fc.record({ name: fc.string({ maxLength: 3 }).map((name) => `${name} !`), input_schema: fc.constant({ type: "object" }) }), { minLength: 1, maxLength: 2 })) }),
    fc.record({ field: fc.constant("tool_choice"), value: fc.oneof(fc.string({ maxLength: 5 }), fc.record({ type: fc.constantFrom("any", "tool", "required", "function") })) }),
    fc.record({ field: fc.constant("thinking"), value: fc.oneof(fc.string({ maxLength: 5 }), fc.record({ type: fc.constantFrom("enabled", "on", "") })) }),
  );

  async function expectBadRequest(path: string, body: unknown): Promise<void> {
    await expectAnthropicError(await postMessages(body, path), 400, "invalid_request_error");
  }

  it("answers every wrong field with 400 invalid_request_error in Anthropic's shape", async () => {
    await fc.assert(
      fc.asyncProperty(wrongBodies, fc.constantFrom("/v1/messages", "/v1/messages/count_tokens"), async ({ field, value }, path) => {
        // count_tokens takes no max_tokens, temperature, top_k or stop_sequences: those are ignored there.
        const ignoredThere = path.endsWith("count_tokens") && ["max_tokens", "temperature", "top_k", "stop_sequences"].includes(field);
        if (ignoredThere) return;
        await expectBadRequest(path, { ...valid, [field]: value });
      }),
      { numRuns: 150 },
    );
  });

  it("answers non-JSON, bad UTF-8, non-objects and deep nesting with 400", async () => {
    const bodies: (string | Uint8Array)[] = [
      "",
      "not json",
      "[1,2,3]",
      "null",
      '"a string"',
      '{"model": "answer", "max_tokens": 1, "messages": [',
      new Uint8Array([0x7b, 0x22, 0x6d, 0x6f, 0x64, 0x65, 0x6c, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]),
      `{"model":"answer","max_tokens":1,"messages":${"[".repeat(100_000)}${"]".repeat(100_000)}}`,
      `{"model":"answer","max_tokens":1,"messages":[{"role":"user","content":"hi"}],"system":${'{"a":'.repeat(5_000)}1${"}".repeat(5_000)}}`,
      `{"model":"answer","max_tokens":1,"messages":[{"role":"user","content":"hi"}],"tools":[{"name":"f","input_schema":{"type":"object"},"description":${"[".repeat(5_000)}${"]".repeat(5_000)}}]}`,
    ];
    for (const path of ["/v1/messages", "/v1/messages/count_tokens"]) {
      for (const [index, body] of bodies.entries()) {
        const response = await postMessages(body, path);
        expect(response.status, `body ${index} to ${path}`).toBe(400);
        await expectAnthropicError(response, 400, "invalid_request_error");
      }
    }
    const deepMetadata = `{"model":"answer","max_tokens":1,"messages":[{"role":"user","content":"hi"}],"metadata":{"user_id":${'{"a":'.repeat(5_000)}1${"}".repeat(5_000)}}}`;
    await expectAnthropicError(await postMessages(deepMetadata), 400, "invalid_request_error");
    await fc.assert(
      fc.asyncProperty(fc.string({ maxLength: 40 }).filter((text) => { try { const value: unknown = JSON.parse(text); return typeof value !== "object" || value === null || Array.isArray(value); } catch { return true; } }), async (text) => {
        await expectAnthropicError(await postMessages(text), 400, "invalid_request_error");
      }),
      { numRuns: 60 },
    );
  });

  it("answers a prompt longer than the context with 400 invalid_request_error", async () => {
    const long = { ...valid, messages: [{ role: "user", content: "word ".repeat(20_000) }] };
    const error = await expectAnthropicError(await postMessages(long), 400, "invalid_request_error");
    expect(error.hearth_code).toBe("HEARTH_CONTEXT_OVERFLOW");
    await expectAnthropicError(await postMessages(long, "/v1/messages/count_tokens"), 400, "invalid_request_error");
  });

  it("ignores unknown fields, at the top and inside blocks", async () => {
    await fc.assert(
      fc.asyncProperty(fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }).map((key) => `x_${key}`), fc.jsonValue({ maxDepth: 2 }), { minKeys: 1, maxKeys: 3 }), async (extra) => {
        const body = { ...valid, ...extra, messages: [{ role: "user", content: [{ type: "text", text: "hi", ...extra }] }] };
        const response = await postMessages(body);
        expect(response.status).toBe(200);
        expect(((await response.json()) as { type: string }).type).toBe("message");
        const counted = await postMessages({ ...body, max_tokens: undefined }, "/v1/messages/count_tokens");
        expect(counted.status).toBe(200);
      }),
      { numRuns: 8 },
    );
  });

  it("leaves the daemon healthy and answering", async () => {
    expect((await fetch(`${daemon.url}/health`)).status).toBe(200);
    const message = await client.messages.create({ model: "answer", max_tokens: 200, ...GREEDY, messages: HELLO });
    expect(message.content.at(-1)).toEqual({ type: "text", text: ANSWER });
  });
});
