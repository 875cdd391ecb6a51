// Ollama's answers (protocol/ollama/): chat and generate bodies and NDJSON chunks, done_reason,
// tool calls with object arguments, counters in nanoseconds; tags, show and ps entries; pull progress.

import { describe, expect, it } from "vitest";
import type { GenerationResult } from "../../protocol/inference.js";
import {
  buildChatAnswer,
  buildGenerateAnswer,
  ChatChunks,
  GenerateChunks,
  loadChatAnswer,
  loadGenerateAnswer,
  type OllamaAnswerContext,
} from "../../protocol/ollama/generationResponse.js";
import { buildShowAnswer, capabilitiesOf, humanParameterCount, psEntry, tagsEntries, type OllamaModelFacts } from "../../protocol/ollama/models.js";
import { PULLING_MANIFEST, pullingProgress, SUCCESS, VERIFYING } from "../../protocol/ollama/pull.js";
import { buildEmbedAnswer, buildEmbeddingsAnswer, unitVector } from "../../protocol/ollama/embeddings.js";
import { toOllamaErrorBody } from "../../protocol/ollama/errorBody.js";
import { errors } from "../../protocol/errors.js";

const NOW = "2026-01-02T03:04:05.678Z";
const context: OllamaAnswerContext = { model: "m:latest", now: () => NOW, timings: () => ({ totalMs: 10, loadMs: 2, promptEvalMs: 3, evalMs: 5 }) };

function result(overrides: Partial<GenerationResult> = {}): GenerationResult {
  return { text: "ANSWER", reasoning: "", toolCalls: [], finishReason: "stop", usage: { promptTokens: 21, completionTokens: 19, reasoningTokens: 0 }, cachedPromptTokens: 0, ...overrides };
}

const COUNTERS = { total_duration: 10_000_000, load_duration: 2_000_000, prompt_eval_count: 21, prompt_eval_duration: 3_000_000, eval_count: 19, eval_duration: 5_000_000 };
const CALLS = [
  { id: "c0", name: "get_weather", arguments: '{"city":"Paris"}' },
  { id: "c1", name: "get_time", arguments: '{"zone":"CET"}' },
];
// Each call carries its id and its place: Open WebUI keys streamed calls by the place, and two calls without it would merge.
const OLLAMA_CALLS = [
  { id: "c0", function: { index: 0, name: "get_weather", arguments: { city: "Paris" } } },
  { id: "c1", function: { index: 1, name: "get_time", arguments: { zone: "CET" } } },
];

describe("Ollama chat answers", () => {
  it("a body carries the text, the thoughts, done_reason and the counters in nanoseconds", () => {
    expect(buildChatAnswer(context, result({ reasoning: "THOUGHT" }))).toEqual({
      model: "m:latest",
      created_at: NOW,
      message: { role: "assistant", content: "ANSWER", thinking: "THOUGHT" },
      done: true,
      done_reason: "stop",
      ...COUNTERS,
    });
  });

  it("completed tool calls end with done_reason stop and the calls, arguments as objects", () => {
    const answer = buildChatAnswer(context, result({ text: "", reasoning: "T", toolCalls: CALLS, finishReason: "tool_calls" }));
    expect(answer.done_reason).toBe("stop");
    expect(answer.message).toEqual({ role: "assistant", content: "", thinking: "T", tool_calls: OLLAMA_CALLS });
  });

  it("a generation cut off by the token limit ends with length", () => {
    expect(buildChatAnswer(context, result({ finishReason: "length" })).done_reason).toBe("length");
  });

  it("streams thoughts and text as chunks, the calls in one chunk, then a last chunk with the counters", () => {
    const chunks = new ChatChunks(context);
    const frames = [
      ...chunks.delta({ part: "reasoning", text: "TH" }),
      ...chunks.delta({ part: "answer", text: "" }),
      ...chunks.delta({ part: "answer", text: "AN" }),
      ...chunks.finish(result({ text: "AN", reasoning: "TH", toolCalls: CALLS, finishReason: "tool_calls" })),
    ].map((frame) => frame.data);
    expect(frames).toEqual([
      { model: "m:latest", created_at: NOW, message: { role: "assistant", content: "", thinking: "TH" }, done: false },
      { model: "m:latest", created_at: NOW, message: { role: "assistant", content: "AN" }, done: false },
      { model: "m:latest", created_at: NOW, message: { role: "assistant", content: "", tool_calls: OLLAMA_CALLS }, done: false },
      { model: "m:latest", created_at: NOW, message: { role: "assistant", content: "" }, done: true, done_reason: "stop", ...COUNTERS },
    ]);
  });

  it("a call the runner left without valid JSON arguments shows empty arguments", () => {
    expect(buildChatAnswer(context, result({ toolCalls: [{ id: "x", name: "f", arguments: "" }] })).message.tool_calls).toEqual([{ id: "x", function: { index: 0, name: "f", arguments: {} } }]);
  });

  it("a load or unload is answered done at once", () => {
    expect(loadChatAnswer("m", NOW, "unload")).toEqual({ model: "m", created_at: NOW, message: { role: "assistant", content: "" }, done: true, done_reason: "unload" });
    expect(loadGenerateAnswer("m", NOW, "load")).toEqual({ model: "m", created_at: NOW, response: "", done: true, done_reason: "load" });
  });
});

describe("Ollama generate answers", () => {
  it("a body carries response and thinking", () => {
    expect(buildGenerateAnswer(context, result({ reasoning: "THOUGHT", finishReason: "length" }))).toEqual({
      model: "m:latest",
      created_at: NOW,
      response: "ANSWER",
      thinking: "THOUGHT",
      done: true,
      done_reason: "length",
      ...COUNTERS,
    });
    expect(buildGenerateAnswer(context, result())).not.toHaveProperty("thinking");
  });

  it("streams response and thinking chunks, then the last one", () => {
    const chunks = new GenerateChunks(context);
    const frames = [...chunks.delta({ part: "reasoning", text: "T" }), ...chunks.delta({ part: "answer", text: "A" }), ...chunks.finish(result())].map((frame) => frame.data);
    expect(frames).toEqual([
      { model: "m:latest", created_at: NOW, response: "", thinking: "T", done: false },
      { model: "m:latest", created_at: NOW, response: "A", done: false },
      { model: "m:latest", created_at: NOW, response: "", done: true, done_reason: "stop", ...COUNTERS },
    ]);
  });
});

describe("Ollama errors", () => {
  it("are {error} with Hearth's code riding along", () => {
    expect(toOllamaErrorBody(errors.modelNotFound("model 'x' not found"))).toEqual({ error: "model 'x' not found", code: "HEARTH_MODEL_NOT_FOUND" });
  });
});

const model: OllamaModelFacts = {
  id: "qwen",
  aliases: ["copy", "other:v2"],
  sizeBytes: 1234,
  createdAt: 1_700_000_000,
  architecture: "qwen3",
  parameterCount: 8_030_261_248,
  quantization: "Q4_K",
  contextLength: 40_960,
  embeddingLength: 4096,
  layerCount: 36,
  cluster: { sha256: "ab".repeat(32) },
};

describe("Ollama model views", () => {
  it("rounds parameter counts as Ollama does", () => {
    expect(humanParameterCount(8_030_261_248)).toBe("8.0B");
    expect(humanParameterCount(7_000_000_000)).toBe("7B");
    expect(humanParameterCount(494_032_768)).toBe("494.03M");
    expect(humanParameterCount(3_000_000)).toBe("3M");
    expect(humanParameterCount(135_400)).toBe("135K");
    expect(humanParameterCount(42)).toBe("42");
  });

  it("lists a model under its id and each alias, with :latest where untagged", () => {
    const details = { parent_model: "", format: "gguf", family: "qwen3", families: ["qwen3"], parameter_size: "8.0B", quantization_level: "Q4_K" };
    const base = { modified_at: "2023-11-14T22:13:20.000Z", size: 1234, digest: "ab".repeat(32), details };
    expect(tagsEntries(model)).toEqual([
      { name: "qwen:latest", model: "qwen:latest", ...base },
      { name: "copy:latest", model: "copy:latest", ...base },
      { name: "other:v2", model: "other:v2", ...base },
    ]);
  });

  it("shows a model only a peer holds with empty details and digest until it is hashed", () => {
    const [entry] = tagsEntries({ id: "remote", aliases: [], sizeBytes: 9, createdAt: 0, cluster: { sha256: null } });
    expect(entry).toMatchObject({ name: "remote:latest", digest: "", details: { family: "", families: null, parameter_size: "", quantization_level: "" } });
  });

  it("a loaded model shows when it expires, forever far ahead", () => {
    expect(psEntry(model, { expiresAt: Date.parse("2026-01-01T00:00:00Z") }, 4096)).toMatchObject({ name: "qwen:latest", expires_at: "2026-01-01T00:00:00.000Z", size_vram: 0, context_length: 4096 });
    expect(psEntry(model, { expiresAt: null }, 4096).expires_at).toBe("2318-01-01T00:00:00.000Z");
  });

  it("derives capabilities from the chat template and the infill tokens", () => {
    expect(capabilitiesOf(model, { chatTemplate: "{% if tools %}<tool_call>{% endif %}<think>", infill: true })).toEqual(["completion", "tools", "thinking", "insert"]);
    expect(capabilitiesOf(model, { chatTemplate: "plain", infill: false })).toEqual(["completion"]);
    expect(capabilitiesOf(model, undefined)).toEqual(["completion"]);
    expect(capabilitiesOf({ ...model, architecture: "bert" }, undefined)).toEqual(["embedding"]);
  });

  it("show carries the GGUF facts, the template and the context each request gets", () => {
    const shown = buildShowAnswer(model, { chatTemplate: "TEMPLATE tools", infill: false }, 4096);
    expect(shown).toMatchObject({
      template: "TEMPLATE tools",
      parameters: "num_ctx                        4096",
      model_info: { "general.architecture": "qwen3", "general.parameter_count": 8_030_261_248, "qwen3.context_length": 40_960, "qwen3.embedding_length": 4096, "qwen3.block_count": 36 },
      capabilities: ["completion", "tools"],
      details: { family: "qwen3", parameter_size: "8.0B" },
      modified_at: "2023-11-14T22:13:20.000Z",
    });
    expect(shown.modelfile).toContain("FROM qwen\n");
  });
});

describe("Ollama pull progress", () => {
  it("names the layer by 12 hex digits and its full digest, never past the total", () => {
    const sha256 = "0123456789abcdef".repeat(4);
    expect(pullingProgress({ sha256, totalBytes: 100, bytesDone: 40 })).toEqual({ status: "pulling 0123456789ab", digest: `sha256:${sha256}`, total: 100, completed: 40 });
    expect(pullingProgress({ sha256, totalBytes: 100, bytesDone: 120 }).completed).toBe(100);
    expect([PULLING_MANIFEST, VERIFYING, SUCCESS]).toEqual([{ status: "pulling manifest" }, { status: "verifying sha256 digest" }, { status: "success" }]);
  });
});

describe("Ollama embedding answers", () => {
  it("/api/embed answers each vector scaled to length 1, /api/embeddings the model's own", () => {
    const result = { vectors: [[3, 4], [0, 0], [-2, 0]], promptTokens: 6 };
    expect(buildEmbedAnswer("e:latest", result, { totalMs: 1.5, loadMs: 0 })).toEqual({
      model: "e:latest",
      embeddings: [[0.6, 0.8], [0, 0], [-1, 0]],
      total_duration: 1_500_000,
      load_duration: 0,
      prompt_eval_count: 6,
    });
    expect(buildEmbeddingsAnswer(result)).toEqual({ embedding: [3, 4] });
  });

  it("a unit vector has length 1 and the direction of the original", () => {
    const vector = unitVector([0.25, -1.5, 2, 7]);
    expect(Math.hypot(...vector)).toBeCloseTo(1, 12);
    expect(vector[3]! / vector[0]!).toBeCloseTo(28, 10);
  });
});
