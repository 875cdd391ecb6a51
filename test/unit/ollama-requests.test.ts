// Ollama request bodies onto the internal jobs (protocol/ollama/): names, keep_alive, options,
// /api/chat (tool call ids, tool messages), /api/generate (template, raw, suffix, format), embed, pull, copy.

import { describe, expect, it } from "vitest";
import type { HearthError } from "../../protocol/errors.js";
import { parseChatRequest, type OllamaChatRequest } from "../../protocol/ollama/chatRequest.js";
import { parseEmbeddingsRequest, parseEmbedRequest } from "../../protocol/ollama/embeddings.js";
import { parseGenerateRequest, type OllamaGenerateRequest } from "../../protocol/ollama/generateRequest.js";
import { KEEP_ALIVE_FOREVER, parseGoDuration, parseKeepAlive } from "../../protocol/ollama/keepAlive.js";
import { parseCopyRequest, parseModelRequest } from "../../protocol/ollama/manage.js";
import { canonicalName, nameCandidates, ollamaName } from "../../protocol/ollama/names.js";
import { parsePullRequest } from "../../protocol/ollama/pull.js";
import { thrownBy } from "../support/thrown.js";

const user = { role: "user", content: "hi" };

function chat(body: Record<string, unknown>): Extract<OllamaChatRequest, { kind: "generate" }> {
  const parsed = parseChatRequest({ model: "m", messages: [user], ...body });
  if (parsed.kind !== "generate") throw new Error("expected a generation");
  return parsed;
}

function generated(body: Record<string, unknown>): Extract<OllamaGenerateRequest, { kind: "generate" }> {
  const parsed = parseGenerateRequest({ model: "m", prompt: "p", ...body });
  if (parsed.kind !== "generate") throw new Error("expected a generation");
  return parsed;
}

function rejection(run: () => unknown): HearthError {
  return thrownBy(run);
}

describe("Ollama model names", () => {
  it("tries a name as sent, then without :latest; other tags are names of their own", () => {
    expect(nameCandidates("tiny:latest")).toEqual(["tiny:latest", "tiny"]);
    expect(nameCandidates("tiny")).toEqual(["tiny"]);
    expect(nameCandidates("tiny:q8")).toEqual(["tiny:q8"]);
    expect(nameCandidates(":latest")).toEqual([":latest"]);
  });

  it("lists ids with :latest unless they have a tag, and keeps names without it", () => {
    expect(ollamaName("tiny")).toBe("tiny:latest");
    expect(ollamaName("tiny:q8")).toBe("tiny:q8");
    expect(canonicalName("copy:latest")).toBe("copy");
    expect(canonicalName("copy:v2")).toBe("copy:v2");
  });
});

describe("Ollama keep_alive", () => {
  it("reads numbers as seconds and Go durations, negative as forever, absent as the default", () => {
    expect(parseKeepAlive(undefined)).toBeUndefined();
    expect(parseKeepAlive(null)).toBeUndefined();
    expect(parseKeepAlive(0)).toBe(0);
    expect(parseKeepAlive("0")).toBe(0);
    expect(parseKeepAlive(300)).toBe(300_000);
    expect(parseKeepAlive(1.5)).toBe(1_500);
    expect(parseKeepAlive("5m")).toBe(300_000);
    expect(parseKeepAlive("1h30m")).toBe(5_400_000);
    expect(parseKeepAlive("1.5s")).toBe(1_500);
    expect(parseKeepAlive("250ms")).toBe(250);
    expect(parseKeepAlive("300")).toBe(300_000);
    expect(parseKeepAlive(-1)).toBe(KEEP_ALIVE_FOREVER);
    expect(parseKeepAlive("-1")).toBe(KEEP_ALIVE_FOREVER);
    expect(parseKeepAlive("-1m")).toBe(KEEP_ALIVE_FOREVER);
    expect(parseKeepAlive("9999h")).toBe(KEEP_ALIVE_FOREVER);
    expect(parseGoDuration("2h45m30.5s")).toBe(9_930_500);
    expect(parseGoDuration("1500us")).toBe(1.5);
  });

  it("refuses anything else, naming keep_alive", () => {
    for (const value of ["soon", "5 minutes", "", "m", true, {}, [], "1d"]) {
      const error = rejection(() => parseKeepAlive(value));
      expect(error.code).toBe("HEARTH_INVALID_REQUEST");
      expect(error.param).toBe("keep_alive");
    }
  });
});

describe("Ollama options", () => {
  it("fill in Ollama's defaults: temperature 0.8, top_p 0.9, top_k 40, no limit", () => {
    expect(chat({}).job.sampling).toEqual({ temperature: 0.8, topP: 0.9, topK: 40, stop: [] });
  });

  it("map temperature, top_p, top_k, seed, num_predict, stop, repeat_penalty and the penalties", () => {
    const { sampling } = chat({
      options: { temperature: 0, top_p: 0.5, top_k: 7, seed: 42, num_predict: 12, stop: ["\n\n", "", "END"], repeat_penalty: 1.3, frequency_penalty: 0.5, presence_penalty: -0.5, num_ctx: 2048 },
    }).job;
    expect(sampling).toEqual({ temperature: 0, topP: 0.5, topK: 7, seed: 42, maxTokens: 12, stop: ["\n\n", "END"], repeatPenalty: 1.3, frequencyPenalty: 0.5, presencePenalty: -0.5 });
  });

  it("read num_predict <= 0 as no limit, top_k 0 as none, a negative seed as random, repeat_penalty 1 as none", () => {
    for (const numPredict of [0, -1, -2]) expect(chat({ options: { num_predict: numPredict } }).job.sampling.maxTokens).toBeUndefined();
    const { sampling } = chat({ options: { top_k: 0, seed: -1, repeat_penalty: 1 } }).job;
    expect(sampling.topK).toBeUndefined();
    expect(sampling.seed).toBeUndefined();
    expect(sampling.repeatPenalty).toBeUndefined();
  });

  it("accept num_ctx of any size (the context is the daemon's) and ignore keys Hearth has no use for", () => {
    expect(chat({ options: { num_ctx: 1_000_000, min_p: 0.1, mirostat: 2, num_gpu: 99, whatever: "x" } }).job.sampling).toEqual({ temperature: 0.8, topP: 0.9, topK: 40, stop: [] });
  });

  it("refuse a wrong type or value of a known option, naming it", () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ temperature: "hot" }, "options.temperature"],
      [{ temperature: 3 }, "options.temperature"],
      [{ top_p: 0 }, "options.top_p"],
      [{ top_k: 1.5 }, "options.top_k"],
      [{ seed: "1" }, "options.seed"],
      [{ num_predict: 2_000_000 }, "options.num_predict"],
      [{ num_ctx: 0 }, "options.num_ctx"],
      [{ num_ctx: "big" }, "options.num_ctx"],
      [{ stop: [1] }, "options.stop[0]"],
      [{ stop: new Array(17).fill("x") }, "options.stop"],
      [{ repeat_penalty: 0 }, "options.repeat_penalty"],
    ];
    for (const [options, param] of cases) {
      const error = rejection(() => parseChatRequest({ model: "m", messages: [user], options }));
      expect(error.code, JSON.stringify(options)).toBe("HEARTH_INVALID_REQUEST");
      expect(error.param).toBe(param);
    }
    expect(rejection(() => parseChatRequest({ model: "m", messages: [user], options: [1] })).param).toBe("options");
  });

  it("accept stop as one string", () => {
    expect(chat({ options: { stop: "END" } }).job.sampling.stop).toEqual(["END"]);
  });
});

describe("Ollama /api/chat", () => {
  it("needs a model, from `model` or the older `name`", () => {
    expect(rejection(() => parseChatRequest({ messages: [user] })).message).toBe("model is required");
    expect(chat({ model: undefined, name: "old" }).job.model).toBe("old");
  });

  it("streams by default, and not with stream: false", () => {
    expect(chat({}).stream).toBe(true);
    expect(chat({ stream: false }).stream).toBe(false);
  });

  it("without messages is a load (or, with keep_alive 0, an unload) of the model", () => {
    expect(parseChatRequest({ model: "m" })).toEqual({ kind: "load", model: "m" });
    expect(parseChatRequest({ model: "m", messages: [], keep_alive: 0 })).toEqual({ kind: "load", model: "m", keepAliveMs: 0 });
  });

  it("maps think: false to thinking off, and true, a level or nothing to auto", () => {
    expect(chat({ think: false }).job.thinking).toBe("off");
    for (const think of [true, "low", "high", undefined, null]) expect(chat({ think }).job.thinking).toBe("auto");
    expect(rejection(() => chat({ think: "max" })).param).toBe("think");
  });

  it("maps format to the response format: json, a schema, or text", () => {
    expect(chat({}).job.responseFormat).toEqual({ type: "text" });
    expect(chat({ format: "" }).job.responseFormat).toEqual({ type: "text" });
    expect(chat({ format: "json" }).job.responseFormat).toEqual({ type: "json_object" });
    const schema = { type: "object", properties: { a: { type: "string" } } };
    expect(chat({ format: schema }).job.responseFormat).toEqual({ type: "json_schema", name: "response", schema });
    for (const format of ["yaml", 1, ["json"]]) expect(rejection(() => chat({ format })).param).toBe("format");
  });

  it("maps tools and sets tool choice auto with tools, none without", () => {
    const { job } = chat({ tools: [{ type: "function", function: { name: "get_weather", description: "w", parameters: { type: "object" } } }] });
    expect(job.tools).toEqual([{ name: "get_weather", description: "w", parameters: { type: "object" } }]);
    expect(job.toolChoice).toBe("auto");
    expect(chat({}).job.toolChoice).toBe("none");
    const duplicate = { type: "function", function: { name: "f" } };
    expect(rejection(() => chat({ tools: [duplicate, duplicate] })).param).toBe("tools[1].function.name");
    expect(rejection(() => chat({ tools: [{ type: "function", function: { name: "bad name" } }] })).param).toBe("tools[0].function.name");
  });

  it("gives each tool call an id and each tool message the id of the call it answers, by tool_name, else in order", () => {
    const { job } = chat({
      messages: [
        user,
        {
          role: "assistant",
          content: "",
          thinking: "T",
          // As an answer gave them back, `index` included.
          tool_calls: [
            { function: { index: 0, name: "get_weather", arguments: { city: "Paris" } } },
            { function: { index: 1, name: "get_time", arguments: { zone: "CET" } } },
          ],
        },
        { role: "tool", content: "12:00", tool_name: "get_time" },
        { role: "tool", content: "sunny" },
        { role: "assistant", content: "Sunny, noon." },
        { role: "user", content: "again" },
        { role: "assistant", content: "", tool_calls: [{ function: { name: "get_time", arguments: {} } }] },
        { role: "tool", content: "13:00" },
      ],
    });
    expect(job.messages).toEqual([
      { role: "user", content: "hi" },
      {
        role: "assistant",
        content: "",
        reasoning: "T",
        toolCalls: [
          { id: "call_1_0", name: "get_weather", arguments: '{"city":"Paris"}' },
          { id: "call_1_1", name: "get_time", arguments: '{"zone":"CET"}' },
        ],
      },
      { role: "tool", content: "12:00", toolCallId: "call_1_1" },
      { role: "tool", content: "sunny", toolCallId: "call_1_0" },
      { role: "assistant", content: "Sunny, noon." },
      { role: "user", content: "again" },
      { role: "assistant", content: "", toolCalls: [{ id: "call_6_0", name: "get_time", arguments: "{}" }] },
      { role: "tool", content: "13:00", toolCallId: "call_6_0" },
    ]);
  });

  it("keeps call ids a client sends, and pairs tool_call_id with them", () => {
    const { job } = chat({
      messages: [user, { role: "assistant", content: "", tool_calls: [{ id: "a1", function: { name: "f", arguments: {} } }, { id: "b2", function: { name: "f", arguments: {} } }] }, { role: "tool", content: "2", tool_call_id: "b2" }, { role: "tool", content: "1", tool_call_id: "a1" }],
    });
    expect(job.messages.slice(2)).toEqual([
      { role: "tool", content: "2", toolCallId: "b2" },
      { role: "tool", content: "1", toolCallId: "a1" },
    ]);
  });

  it("refuses a tool message with no call to answer, one naming no unanswered call, and a call left unanswered", () => {
    const orphan = rejection(() => chat({ messages: [user, { role: "tool", content: "x", tool_name: "f" }] }));
    expect(orphan.message).toBe("messages[1] is a tool result, but no earlier assistant message made a tool call that is still unanswered");
    const call = { role: "assistant", content: "", tool_calls: [{ function: { name: "f", arguments: {} } }] };
    const wrongName = rejection(() => chat({ messages: [user, call, { role: "tool", content: "x", tool_name: "g" }] }));
    expect(wrongName.param).toBe("messages[2].tool_name");
    const twice = rejection(() => chat({ messages: [user, call, { role: "tool", content: "x" }, { role: "tool", content: "y" }] }));
    expect(twice.message).toContain("messages[3] is a tool result");
    const unanswered = rejection(() => chat({ messages: [user, call, user] }));
    expect(unanswered.message).toBe("messages[1].tool_calls[0] (f) has no tool message answering it before the conversation goes on");
    expect(rejection(() => chat({ messages: [user, call] })).message).toContain("has no tool message answering it");
  });

  it("refuses images, arguments that are not an object, unknown roles and log probabilities", () => {
    expect(rejection(() => chat({ messages: [{ ...user, images: ["aGk="] }] })).param).toBe("messages[0].images");
    expect(chat({ messages: [{ ...user, images: [] }] }).job.messages).toEqual([{ role: "user", content: "hi" }]);
    expect(rejection(() => chat({ messages: [user, { role: "assistant", content: "", tool_calls: [{ function: { name: "f", arguments: "{}" } }] }] })).param).toBe("messages[1].tool_calls[0].function.arguments");
    expect(rejection(() => chat({ messages: [{ role: "robot", content: "x" }] })).param).toBe("messages[0].role");
    expect(rejection(() => chat({ logprobs: true })).param).toBe("logprobs");
    expect(rejection(() => chat({ top_logprobs: 2 })).param).toBe("top_logprobs");
  });

  it("treats null content as empty and developer as system", () => {
    expect(chat({ messages: [{ role: "developer", content: "be brief" }, { role: "user", content: null }] }).job.messages).toEqual([
      { role: "system", content: "be brief" },
      { role: "user", content: "" },
    ]);
  });

  it("reads roles in any case, as Ollama does", () => {
    expect(chat({ messages: [{ role: "System", content: "be brief" }, { role: "USER", content: "hi" }] }).job.messages).toEqual([
      { role: "system", content: "be brief" },
      { role: "user", content: "hi" },
    ]);
    const refused = rejection(() => chat({ messages: [{ role: "Robot", content: "x" }] }));
    expect(refused.param).toBe("messages[0].role");
  });
});

describe("Ollama /api/generate", () => {
  it("renders the prompt through the chat template: a user turn after the system turn", () => {
    const { job } = generated({ system: "S", think: false, format: "json", options: { temperature: 0 } });
    expect(job).toEqual({
      kind: "chat",
      model: "m",
      messages: [
        { role: "system", content: "S" },
        { role: "user", content: "p" },
      ],
      sampling: { temperature: 0, topP: 0.9, topK: 40, stop: [] },
      responseFormat: { type: "json_object" },
      tools: [],
      toolChoice: "none",
      thinking: "off",
    });
  });

  it("with raw sends the prompt as it is, ignoring system, and refuses format", () => {
    expect(generated({ raw: true, system: "ignored" }).job).toEqual({ kind: "completion", model: "m", prompt: "p", sampling: { temperature: 0.8, topP: 0.9, topK: 40, stop: [] }, echo: false });
    expect(rejection(() => generated({ raw: true, format: "json" })).param).toBe("format");
  });

  it("with a suffix is a fill-in-the-middle completion, and refuses format", () => {
    expect(generated({ suffix: "}" }).job).toMatchObject({ kind: "completion", prompt: "p", suffix: "}", echo: false });
    expect(generated({ prompt: "", suffix: "}" }).job).toMatchObject({ kind: "completion", prompt: "", suffix: "}" });
    expect(rejection(() => generated({ suffix: "}", format: "json" })).param).toBe("format");
  });

  it("refuses a custom template, a non-empty context and images; accepts them empty", () => {
    expect(rejection(() => generated({ template: "{{ .Prompt }}" })).param).toBe("template");
    expect(rejection(() => generated({ context: [1, 2] })).param).toBe("context");
    expect(rejection(() => generated({ images: ["aGk="] })).param).toBe("images");
    expect(generated({ template: "", context: [], images: [] }).job.kind).toBe("chat");
  });

  it("without a prompt is a load, or with keep_alive 0 an unload", () => {
    expect(parseGenerateRequest({ model: "m" })).toEqual({ kind: "load", model: "m" });
    expect(parseGenerateRequest({ model: "m", prompt: "", keep_alive: "0s" })).toEqual({ kind: "load", model: "m", keepAliveMs: 0 });
  });

  it("carries keep_alive with the generation", () => {
    expect(generated({ keep_alive: "10m" }).keepAliveMs).toBe(600_000);
  });
});

describe("Ollama embeddings, pull, copy, delete and show bodies", () => {
  const embedRequest = (body: Record<string, unknown>): ReturnType<typeof parseEmbedRequest> => parseEmbedRequest(body, { maxInputs: 3 });

  it("/api/embed takes one string or several; none is a load", () => {
    expect(embedRequest({ model: "m", input: "a" }).job).toEqual({ kind: "embedding", model: "m", inputs: ["a"] });
    expect(embedRequest({ model: "m", input: ["a", "b"], truncate: false, dimensions: 8, keep_alive: 0 })).toEqual({ job: { kind: "embedding", model: "m", inputs: ["a", "b"] }, dimensions: 8, keepAliveMs: 0 });
    expect(embedRequest({ model: "m" }).job.inputs).toEqual([]);
    expect(embedRequest({ model: "m", input: [] }).job.inputs).toEqual([]);
    // Ollama takes an empty string for no input at all.
    expect(embedRequest({ model: "m", input: "" }).job.inputs).toEqual([]);
    expect(rejection(() => embedRequest({ model: "m", input: ["a", ""] })).param).toBe("input[1]");
    expect(rejection(() => embedRequest({ model: "m", input: [1] })).param).toBe("input[0]");
    expect(rejection(() => embedRequest({ model: "m", input: 5 })).param).toBe("input");
  });

  it("/api/embed takes at most max_embedding_inputs inputs", () => {
    expect(embedRequest({ model: "m", input: ["a", "b", "c"] }).job.inputs).toHaveLength(3);
    const refused = rejection(() => embedRequest({ model: "m", input: ["a", "b", "c", "d"] }));
    expect(refused.param).toBe("input");
    expect(refused.message).toBe("Invalid value for 'input': must have at most 3 item(s), got 4.");
  });

  it("/api/embeddings takes one prompt; none is a load", () => {
    expect(parseEmbeddingsRequest({ model: "m", prompt: "a" }).job.inputs).toEqual(["a"]);
    expect(parseEmbeddingsRequest({ model: "m", prompt: "" }).job.inputs).toEqual([]);
    expect(rejection(() => parseEmbeddingsRequest({ model: "m", prompt: ["a"] })).param).toBe("prompt");
  });

  it("pull, delete and show take `model` or `name`; pull streams by default", () => {
    expect(parsePullRequest({ name: "tiny", insecure: true })).toEqual({ model: "tiny", stream: true });
    expect(parsePullRequest({ model: "tiny", stream: false })).toEqual({ model: "tiny", stream: false });
    expect(parseModelRequest({ name: "tiny" })).toEqual({ model: "tiny" });
    expect(rejection(() => parseModelRequest({})).message).toBe("model is required");
    expect(rejection(() => parseModelRequest({ model: 3 })).param).toBe("model");
  });

  it("copy needs a source and a destination", () => {
    expect(parseCopyRequest({ source: "a", destination: "b" })).toEqual({ source: "a", destination: "b" });
    expect(rejection(() => parseCopyRequest({ destination: "b" })).param).toBe("source");
    expect(rejection(() => parseCopyRequest({ source: "a", destination: "" })).param).toBe("destination");
  });
});
