/**
 * The llama3 template family of scripted models (daemon/gguf/scriptedModel.ts) against a real
 * daemon, through the official openai, @anthropic-ai/sdk and ollama clients. The models carry
 * Meta's Llama 3.1 chat template, for which node-llama-cpp resolves its own Llama3_1ChatWrapper
 * (the qwen3 family gets its Jinja wrapper): a second wrapper, with its own call syntax
 * (`<function=name>{...}</function><|eom_id|>`), parsed back into the same API shapes. Whatever
 * the conversation, each model answers with its script, so text and calls are asserted exactly,
 * streamed and not.
 */

import Anthropic from "@anthropic-ai/sdk";
import { Ollama, type Tool } from "ollama";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { assembleChat, streamedChat } from "../support/chatStream.js";
import { startDaemon, type RunningDaemon } from "../support/daemon.js";
import { ensureScriptedModel } from "../support/models.js";
import { ANSWER, LLAMA3_ANSWER, LLAMA3_CALL_WEATHER, WEATHER_TOOLS } from "../support/scripts.js";

/** The call LLAMA3_CALL_WEATHER makes, as Chat Completions spells its arguments. */
const WEATHER_CALL: [string, string] = ["get_weather", '{"city":"Paris"}'];

const OPENAI_TOOLS: OpenAI.Chat.Completions.ChatCompletionTool[] = WEATHER_TOOLS.map((tool) => ({
  type: "function",
  function: { name: tool.name, description: tool.description ?? "", parameters: tool.parameters ?? {} },
}));
const ANTHROPIC_TOOLS: Anthropic.Tool[] = WEATHER_TOOLS.map((tool) => ({ name: tool.name, description: tool.description ?? "", input_schema: tool.parameters as Anthropic.Tool.InputSchema }));
const OLLAMA_TOOLS: Tool[] = WEATHER_TOOLS.map((tool) => ({ type: "function", function: { name: tool.name, description: tool.description ?? "", parameters: tool.parameters as NonNullable<Tool["function"]["parameters"]> } }));

const QUESTION = "What is the weather in Paris?";
/** Anthropic's default temperature is 1; only the greedy answer is the script. The SDK no longer types it. */
const ANTHROPIC_GREEDY: object = { temperature: 0 };

let daemon: RunningDaemon;
let openai: OpenAI;
let anthropic: Anthropic;
let ollama: Ollama;

beforeAll(async () => {
  const [answer, caller] = await Promise.all([ensureScriptedModel("llama3-answer", LLAMA3_ANSWER, 1, "llama3"), ensureScriptedModel("llama3-caller", LLAMA3_CALL_WEATHER, 1, "llama3")]);
  daemon = await startDaemon({ models: { answer, caller }, configToml: "[limits]\nparallel_slots = 1\n", env: { HEARTH_API_KEY: "" } });
  openai = new OpenAI({ baseURL: `${daemon.url}/v1`, apiKey: "unused", maxRetries: 0 });
  anthropic = new Anthropic({ baseURL: daemon.url, apiKey: "unused", maxRetries: 0 });
  ollama = new Ollama({ host: daemon.url });
});

afterAll(async () => {
  expect(await daemon?.stop()).toBe(0);
});

function callsOf(message: OpenAI.Chat.Completions.ChatCompletionMessage): [string, string][] | undefined {
  return message.tool_calls?.map((call) => (call.type === "function" ? [call.function.name, call.function.arguments] : [call.type, ""]));
}

/** The runner's "model loaded" log line for `modelId`, which names the chat wrapper node-llama-cpp resolved. */
function loadedLine(modelId: string): Record<string, unknown> | undefined {
  return daemon
    .output()
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .find((entry) => entry["msg"] === "model loaded" && entry["modelId"] === modelId);
}

const messages: OpenAI.Chat.Completions.ChatCompletionMessageParam[] = [{ role: "user", content: QUESTION }];

describe("the chat wrapper", () => {
  it("is node-llama-cpp's Llama 3.1 wrapper, with functions, for both models", async () => {
    // A runner starts with a model's first request and logs the wrapper it resolved.
    for (const model of ["answer", "caller"]) {
      await openai.chat.completions.create({ model, messages, temperature: 0, max_tokens: 1 });
      expect(loadedLine(model)).toMatchObject({ chatWrapper: "Llama 3.1", supportsFunctions: true });
    }
  });
});

describe("Chat Completions", () => {
  it("answers with the exact text, finish_reason stop, streamed and not", async () => {
    const completion = await openai.chat.completions.create({ model: "answer", messages, temperature: 0 });
    expect(completion.choices[0]!.message.content).toBe(ANSWER);
    expect(completion.choices[0]!.message.tool_calls).toBeUndefined();
    expect(completion.choices[0]!.finish_reason).toBe("stop");
    expect(assembleChat(await streamedChat(openai, { model: "answer", messages, temperature: 0, stream: true }))).toEqual({ content: ANSWER, reasoning: "", calls: [], finish: "stop" });
  });

  it("answers with the same text when tools are offered: the wrapper's function instructions do not make a call", async () => {
    const completion = await openai.chat.completions.create({ model: "answer", messages, tools: OPENAI_TOOLS, temperature: 0 });
    expect(completion.choices[0]!.message.content).toBe(ANSWER);
    expect(completion.choices[0]!.finish_reason).toBe("stop");
  });

  it("parses the <function=get_weather> call into a tool call with exact name and arguments, finish_reason tool_calls", async () => {
    const completion = await openai.chat.completions.create({ model: "caller", messages, tools: OPENAI_TOOLS, temperature: 0 });
    const { message, finish_reason } = completion.choices[0]!;
    expect(finish_reason).toBe("tool_calls");
    expect(message.content).toBeNull();
    expect(callsOf(message)).toEqual([WEATHER_CALL]);
    expect(message.tool_calls?.[0]?.id).toMatch(/^call_/);
  });

  it("streams the same call", async () => {
    expect(assembleChat(await streamedChat(openai, { model: "caller", messages, tools: OPENAI_TOOLS, temperature: 0, stream: true }))).toEqual({ content: "", reasoning: "", calls: [WEATHER_CALL], finish: "tool_calls" });
  });

  it("without tools the call syntax stays the model's text: only an offered function is parsed", async () => {
    const completion = await openai.chat.completions.create({ model: "caller", messages, temperature: 0 });
    expect(completion.choices[0]!.message.content).toBe('<function=get_weather>{"city": "Paris"}</function>');
    expect(completion.choices[0]!.message.tool_calls).toBeUndefined();
    expect(completion.choices[0]!.finish_reason).toBe("stop");
  });

  it("takes the call and its result back in the next turn, rendered by the Llama 3.1 wrapper", async () => {
    const first = await openai.chat.completions.create({ model: "caller", messages, tools: OPENAI_TOOLS, temperature: 0 });
    const call = first.choices[0]!.message.tool_calls![0]!;
    const followUp = await openai.chat.completions.create({
      model: "answer",
      temperature: 0,
      tools: OPENAI_TOOLS,
      messages: [...messages, { role: "assistant", content: null, tool_calls: [call] }, { role: "tool", tool_call_id: call.id, content: "sunny" }],
    });
    expect(followUp.choices[0]!.message.content).toBe(ANSWER);
    expect(followUp.choices[0]!.finish_reason).toBe("stop");
    expect(followUp.usage!.prompt_tokens).toBeGreaterThan(first.usage!.prompt_tokens);
  });
});

describe("Anthropic Messages", () => {
  const HELLO: Anthropic.MessageParam[] = [{ role: "user", content: QUESTION }];

  it("answers with one exact text block and stop_reason end_turn, streamed and not", async () => {
    const message = await anthropic.messages.create({ model: "answer", max_tokens: 200, ...ANTHROPIC_GREEDY, messages: HELLO });
    expect(message.content).toEqual([{ type: "text", text: ANSWER }]);
    expect(message.stop_reason).toBe("end_turn");
    const stream = anthropic.messages.stream({ model: "answer", max_tokens: 200, ...ANTHROPIC_GREEDY, messages: HELLO });
    let text = "";
    stream.on("text", (delta) => (text += delta));
    const final = await stream.finalMessage();
    expect(text).toBe(ANSWER);
    expect(final.content).toEqual([{ type: "text", text: ANSWER }]);
    expect(final.stop_reason).toBe("end_turn");
  });

  it("returns the call as one tool_use block with exact name and input, stop_reason tool_use, streamed and not", async () => {
    const body = { model: "caller", max_tokens: 200, ...ANTHROPIC_GREEDY, messages: HELLO, tools: ANTHROPIC_TOOLS };
    for (const message of [await anthropic.messages.create(body), await anthropic.messages.stream(body).finalMessage()]) {
      expect(message.stop_reason).toBe("tool_use");
      expect(message.content.map((block) => (block.type === "tool_use" ? { type: block.type, name: block.name, input: block.input } : { type: block.type }))).toEqual([
        { type: "tool_use", name: "get_weather", input: { city: "Paris" } },
      ]);
    }
  });
});

describe("Ollama chat", () => {
  const USER = [{ role: "user", content: QUESTION }];
  const GREEDY = { temperature: 0 };

  it("answers with the exact text and no thinking, done_reason stop, streamed and not", async () => {
    const answer = await ollama.chat({ model: "answer", messages: USER, options: GREEDY });
    expect(answer.message).toEqual({ role: "assistant", content: ANSWER });
    expect(answer.done_reason).toBe("stop");
    const chunks = [];
    for await (const chunk of await ollama.chat({ model: "answer", messages: USER, options: GREEDY, stream: true })) chunks.push(chunk);
    expect(chunks.map((chunk) => chunk.message.content).join("")).toBe(ANSWER);
    expect(chunks.every((chunk) => chunk.message.thinking === undefined)).toBe(true);
    expect(chunks.at(-1)).toMatchObject({ done: true, done_reason: "stop" });
  });

  it("returns the call with exact name and object arguments, streamed and not", async () => {
    const call = { id: expect.stringMatching(/^call_[\w-]+$/) as string, function: { index: 0, name: "get_weather", arguments: { city: "Paris" } } };
    const answer = await ollama.chat({ model: "caller", messages: USER, tools: OLLAMA_TOOLS, options: GREEDY });
    expect(answer.message).toEqual({ role: "assistant", content: "", tool_calls: [call] });
    expect(answer.done_reason).toBe("stop");
    const chunks = [];
    for await (const chunk of await ollama.chat({ model: "caller", messages: USER, tools: OLLAMA_TOOLS, options: GREEDY, stream: true })) chunks.push(chunk);
    expect(chunks.flatMap((chunk) => chunk.message.tool_calls ?? [])).toEqual([call]);
    expect(chunks.map((chunk) => chunk.message.content).join("")).toBe("");
    expect(chunks.at(-1)).toMatchObject({ done: true, done_reason: "stop" });
  });
});
