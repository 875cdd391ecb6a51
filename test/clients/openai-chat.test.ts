/**
 * Chat Completions with reasoning and tool calls, exact, through the official openai client
 * against a real daemon. The models are scripted (daemon/gguf/scriptedModel.ts), written the way
 * a user would write one: `hearth synth --script`. Whatever the conversation, each answers with
 * its script, so thoughts, calls and text are asserted exactly, streamed and not.
 */

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { assembleChat, streamedChat } from "../support/chatStream.js";
import { runCli } from "../support/cli.js";
import { startDaemon, type RunningDaemon } from "../support/daemon.js";
import { ANSWER, THINK_THEN_ANSWER, THINK_THEN_CALL_TWO_TOOLS, THOUGHT, WEATHER_TOOLS } from "../support/scripts.js";

let daemon: RunningDaemon;
let client: OpenAI;
let scratch: string;

const tools: OpenAI.Chat.Completions.ChatCompletionTool[] = WEATHER_TOOLS.map((tool) => ({
  type: "function",
  function: { name: tool.name, description: tool.description ?? "", parameters: tool.parameters ?? {} },
}));
const question: OpenAI.Chat.Completions.ChatCompletionMessageParam[] = [{ role: "user", content: "Weather and time in Paris?" }];

async function synthScripted(name: string, script: string): Promise<string> {
  const scriptFile = path.join(scratch, `${name}.txt`);
  await fs.promises.writeFile(scriptFile, script);
  const out = path.join(scratch, `${name}.gguf`);
  const written = await runCli(["synth", out, "--script", scriptFile, "--json"]);
  expect(written.code).toBe(0);
  expect(JSON.parse(written.stdout)).toMatchObject({ path: out });
  return out;
}

beforeAll(async () => {
  scratch = await fs.promises.mkdtemp(path.join(os.tmpdir(), "hearth-openai-chat-"));
  const [thinker, caller] = await Promise.all([synthScripted("thinker", THINK_THEN_ANSWER), synthScripted("caller", THINK_THEN_CALL_TWO_TOOLS)]);
  daemon = await startDaemon({ models: { thinker, caller } });
  client = new OpenAI({ baseURL: `${daemon.url}/v1`, apiKey: "unused", maxRetries: 0 });
});

afterAll(async () => {
  await daemon?.stop();
  if (scratch !== undefined) await fs.promises.rm(scratch, { recursive: true, force: true });
});

describe("Chat Completions: reasoning", () => {
  it("returns the thought as reasoning_content and the answer as content, with reasoning tokens counted", async () => {
    const completion = await client.chat.completions.create({ model: "thinker", messages: question, temperature: 0 });
    const message = completion.choices[0]!.message as typeof completion.choices[0]["message"] & { reasoning_content?: string };
    expect(message.content).toBe(ANSWER);
    expect(message.reasoning_content).toBe(THOUGHT);
    expect(completion.choices[0]!.finish_reason).toBe("stop");
    expect(completion.usage?.completion_tokens_details?.reasoning_tokens).toBeGreaterThan(0);
  });

  it("streams the thought as reasoning_content deltas before the content, adding up to the same", async () => {
    const chunks = await streamedChat(client, { model: "thinker", messages: question, temperature: 0, stream: true });
    expect(assembleChat(chunks)).toEqual({ content: ANSWER, reasoning: THOUGHT, calls: [], finish: "stop" });
    const firstContent = chunks.findIndex((chunk) => (chunk.choices[0]?.delta.content ?? "") !== "");
    const lastReasoning = chunks.findLastIndex((chunk) => "reasoning_content" in (chunk.choices[0]?.delta ?? {}));
    expect(lastReasoning).toBeGreaterThan(0);
    expect(lastReasoning).toBeLessThan(firstContent);
  });

  it("reasoning_effort none turns thinking off: no reasoning, the same answer", async () => {
    const completion = await client.chat.completions.create({ model: "thinker", messages: question, temperature: 0, reasoning_effort: "none" });
    const message = completion.choices[0]!.message as typeof completion.choices[0]["message"] & { reasoning_content?: string };
    expect(message.content).toBe(ANSWER);
    expect(message.reasoning_content).toBeUndefined();
    expect(completion.usage?.completion_tokens_details?.reasoning_tokens).toBe(0);
  });
});

describe("Chat Completions: tool calls", () => {
  it("returns two parallel calls with exact names and arguments, and finish_reason tool_calls", async () => {
    const completion = await client.chat.completions.create({ model: "caller", messages: question, tools, temperature: 0 });
    const { message, finish_reason } = completion.choices[0]!;
    expect(finish_reason).toBe("tool_calls");
    expect(message.content).toBeNull();
    expect((message as typeof message & { reasoning_content?: string }).reasoning_content).toBe(THOUGHT);
    expect(message.tool_calls?.map((call) => (call.type === "function" ? [call.function.name, call.function.arguments] : [call.type, ""]))).toEqual([
      ["get_weather", '{"city":"Paris"}'],
      ["get_time", '{"zone":"CET"}'],
    ]);
    const ids = message.tool_calls?.map((call) => call.id) ?? [];
    expect(new Set(ids).size).toBe(2);
  });

  it("parallel_tool_calls false: the model stops after the first call, so fewer tokens are generated", async () => {
    const both = await client.chat.completions.create({ model: "caller", messages: question, tools, temperature: 0 });
    const one = await client.chat.completions.create({ model: "caller", messages: question, tools, temperature: 0, parallel_tool_calls: false });
    expect(one.choices[0]!.finish_reason).toBe("tool_calls");
    expect(one.choices[0]!.message.tool_calls?.map((call) => (call.type === "function" ? call.function.name : call.type))).toEqual(["get_weather"]);
    expect(one.usage!.completion_tokens).toBeLessThan(both.usage!.completion_tokens);
  });

  it("streams the same calls", async () => {
    const chunks = await streamedChat(client, { model: "caller", messages: question, tools, temperature: 0, stream: true });
    expect(assembleChat(chunks)).toEqual({
      content: "",
      reasoning: THOUGHT,
      calls: [
        ["get_weather", '{"city":"Paris"}'],
        ["get_time", '{"zone":"CET"}'],
      ],
      finish: "tool_calls",
    });
  });

  it("a call cut off by max_tokens ends with finish_reason length, and only calls completed before the limit come back", async () => {
    // The thought alone takes more than 12 tokens, so no call completes.
    const none = await client.chat.completions.create({ model: "caller", messages: question, tools, temperature: 0, max_tokens: 12 });
    expect(none.choices[0]!.finish_reason).toBe("length");
    expect(none.choices[0]!.message.tool_calls).toBeUndefined();
    // 30 tokens hold the first call but cut the second.
    const one = await client.chat.completions.create({ model: "caller", messages: question, tools, temperature: 0, max_tokens: 30 });
    expect(one.choices[0]!.finish_reason).toBe("length");
    expect(one.choices[0]!.message.tool_calls?.map((call) => (call.type === "function" ? call.function.name : call.type))).toEqual(["get_weather"]);
    const chunks = await streamedChat(client, { model: "caller", messages: question, tools, temperature: 0, max_tokens: 30, stream: true });
    expect(assembleChat(chunks)).toEqual({ content: "", reasoning: THOUGHT, calls: [["get_weather", '{"city":"Paris"}']], finish: "length" });
  });

  it("takes the calls and their results back in the next turn", async () => {
    const first = await client.chat.completions.create({ model: "caller", messages: question, tools, temperature: 0 });
    const calls = first.choices[0]!.message.tool_calls ?? [];
    const followUp = await client.chat.completions.create({
      model: "thinker",
      temperature: 0,
      tools,
      messages: [
        ...question,
        { role: "assistant", content: null, tool_calls: calls },
        ...calls.map((call) => ({ role: "tool" as const, tool_call_id: call.id, content: call.type === "function" && call.function.name === "get_weather" ? "sunny" : "14:00" })),
      ],
    });
    expect(followUp.choices[0]!.message.content).toBe(ANSWER);
    expect(followUp.usage!.prompt_tokens).toBeGreaterThan(first.usage!.prompt_tokens);
  });
});
