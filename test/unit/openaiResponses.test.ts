import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { StreamFrame } from "../../protocol/generationStream.js";
import type { GenerationDelta, GenerationResult } from "../../protocol/inference.js";
import { ChatChunkSequence, type ChatCompletionChunk } from "../../protocol/openai/chatChunks.js";
import { buildChatCompletion } from "../../protocol/openai/chatResponse.js";
import { buildTextCompletion, CompletionChunkSequence, type TextCompletionBody } from "../../protocol/openai/completionResponse.js";
import { buildEmbeddingResponse, decodeFloat32Base64, encodeFloat32Base64 } from "../../protocol/openai/embeddingResponse.js";
import { newResponseId, unixSeconds } from "../../protocol/openai/ids.js";
import { buildModelList, buildModelObject } from "../../protocol/openai/modelsResponse.js";

const meta = { id: "chatcmpl-abc", created: 1_700_000_000, model: "my-alias" };

function result(overrides: Partial<GenerationResult> = {}): GenerationResult {
  return {
    text: "Hello there",
    reasoning: "",
    toolCalls: [],
    finishReason: "stop",
    usage: { promptTokens: 10, completionTokens: 3, reasoningTokens: 0 },
    cachedPromptTokens: 4,
    timeToFirstTokenMs: 12,
    ...overrides,
  };
}

const expectedUsage = { prompt_tokens: 10, completion_tokens: 3, total_tokens: 13, prompt_tokens_details: { cached_tokens: 4 }, completion_tokens_details: { reasoning_tokens: 0 } };

const answer = (text: string): GenerationDelta => ({ part: "answer", text });
const thought = (text: string): GenerationDelta => ({ part: "reasoning", text });
/** The chunk objects of OpenAI's unnamed SSE frames. */
function chatChunks(frames: StreamFrame[]): ChatCompletionChunk[] {
  for (const frame of frames) expect(frame.event).toBeUndefined();
  return frames.map((frame) => frame.data as ChatCompletionChunk);
}
function textChunks(frames: StreamFrame[]): TextCompletionBody[] {
  for (const frame of frames) expect(frame.event).toBeUndefined();
  return frames.map((frame) => frame.data as TextCompletionBody);
}

describe("response ids", () => {
  it("prefix ids and keep them unique", () => {
    const a = newResponseId("chatcmpl");
    expect(a).toMatch(/^chatcmpl-[0-9a-f]{24}$/);
    expect(newResponseId("cmpl")).toMatch(/^cmpl-/);
    expect(newResponseId("chatcmpl")).not.toBe(a);
  });

  it("created is whole seconds", () => {
    expect(unixSeconds(1_700_000_000_999)).toBe(1_700_000_000);
  });
});

describe("chat.completion body", () => {
  it("carries text, finish reason, usage and the requested model name", () => {
    expect(buildChatCompletion(meta, result())).toEqual({
      id: "chatcmpl-abc",
      object: "chat.completion",
      created: 1_700_000_000,
      model: "my-alias",
      choices: [{ index: 0, message: { role: "assistant", content: "Hello there", refusal: null }, finish_reason: "stop", logprobs: null }],
      usage: expectedUsage,
    });
  });

  it("has null content and tool_calls when the model only called tools", () => {
    const body = buildChatCompletion(meta, result({ text: "", finishReason: "tool_calls", toolCalls: [{ id: "call_1", name: "f", arguments: '{"x":1}' }] }));
    expect(body.choices[0].message).toEqual({
      role: "assistant",
      content: null,
      tool_calls: [{ id: "call_1", type: "function", function: { name: "f", arguments: '{"x":1}' } }],
      refusal: null,
    });
    expect(body.choices[0].finish_reason).toBe("tool_calls");
  });

  it("keeps text alongside tool calls when there is some", () => {
    const body = buildChatCompletion(meta, result({ text: "Let me check.", toolCalls: [{ id: "c", name: "f", arguments: "{}" }] }));
    expect(body.choices[0].message.content).toBe("Let me check.");
  });

  it("returns thoughts as reasoning_content and counts their tokens", () => {
    const body = buildChatCompletion(meta, result({ reasoning: "Think.", usage: { promptTokens: 10, completionTokens: 3, reasoningTokens: 2 } }));
    expect(body.choices[0].message).toEqual({ role: "assistant", content: "Hello there", reasoning_content: "Think.", refusal: null });
    expect(body.usage.completion_tokens_details).toEqual({ reasoning_tokens: 2 });
  });

  it("keeps an empty text answer as an empty string, not null", () => {
    expect(buildChatCompletion(meta, result({ text: "" })).choices[0].message.content).toBe("");
  });
});

describe("chat.completion.chunk sequence", () => {
  it("sends the role first, then content, then an empty delta with the finish reason", () => {
    const sequence = new ChatChunkSequence(meta, false);
    const chunks = chatChunks([...sequence.delta(answer("Hel")), ...sequence.delta(answer("")), ...sequence.delta(answer("lo")), ...sequence.finish(result({ text: "Hello" }))]);
    expect(chunks.map((chunk) => chunk.choices[0]?.delta)).toEqual([{ role: "assistant", content: "" }, { content: "Hel" }, { content: "lo" }, {}]);
    expect(chunks.map((chunk) => chunk.choices[0]?.finish_reason)).toEqual([null, null, null, "stop"]);
    for (const chunk of chunks) {
      expect(chunk).toMatchObject({ id: "chatcmpl-abc", object: "chat.completion.chunk", created: 1_700_000_000, model: "my-alias" });
      expect("usage" in chunk).toBe(false);
    }
  });

  it("still sends the role when nothing was generated", () => {
    const chunks = chatChunks(new ChatChunkSequence(meta, false).finish(result({ text: "", finishReason: "length" })));
    expect(chunks.map((chunk) => chunk.choices[0]?.delta)).toEqual([{ role: "assistant", content: "" }, {}]);
    expect(chunks[1]?.choices[0]?.finish_reason).toBe("length");
  });

  it("streams tool calls with indices in the final part", () => {
    const sequence = new ChatChunkSequence(meta, false);
    const toolCalls = [
      { id: "call_1", name: "a", arguments: "{}" },
      { id: "call_2", name: "b", arguments: '{"y":2}' },
    ];
    const chunks = chatChunks(sequence.finish(result({ text: "", finishReason: "tool_calls", toolCalls })));
    expect(chunks[1]?.choices[0]?.delta).toEqual({
      tool_calls: [
        { index: 0, id: "call_1", type: "function", function: { name: "a", arguments: "{}" } },
        { index: 1, id: "call_2", type: "function", function: { name: "b", arguments: '{"y":2}' } },
      ],
    });
    expect(chunks[2]?.choices[0]).toMatchObject({ delta: {}, finish_reason: "tool_calls" });
  });

  it("streams thoughts as reasoning_content deltas, apart from the content", () => {
    const sequence = new ChatChunkSequence(meta, false);
    const chunks = chatChunks([...sequence.delta(thought("Think.")), ...sequence.delta(answer("Hi")), ...sequence.finish(result({ text: "Hi", reasoning: "Think." }))]);
    expect(chunks.map((chunk) => chunk.choices[0]?.delta)).toEqual([{ role: "assistant", content: "" }, { reasoning_content: "Think." }, { content: "Hi" }, {}]);
  });

  it("with include_usage adds usage:null to each chunk and a final usage chunk without choices", () => {
    const sequence = new ChatChunkSequence(meta, true);
    const chunks = chatChunks([...sequence.delta(answer("Hi")), ...sequence.finish(result())]);
    const last = chunks[chunks.length - 1]!;
    expect(last.choices).toEqual([]);
    expect(last.usage).toEqual(expectedUsage);
    for (const chunk of chunks.slice(0, -1)) expect(chunk.usage).toBeNull();
  });
});

describe("text_completion bodies", () => {
  it("builds the non-streamed body", () => {
    expect(buildTextCompletion({ ...meta, id: "cmpl-1" }, result({ finishReason: "length" }))).toEqual({
      id: "cmpl-1",
      object: "text_completion",
      created: 1_700_000_000,
      model: "my-alias",
      choices: [{ index: 0, text: "Hello there", logprobs: null, finish_reason: "length" }],
      usage: expectedUsage,
    });
  });

  it("streams text chunks, a finishing chunk and an optional usage chunk", () => {
    const sequence = new CompletionChunkSequence({ ...meta, id: "cmpl-1" }, true);
    const chunks = textChunks([...sequence.delta(answer("Hel")), ...sequence.delta(answer("")), ...sequence.delta(answer("lo")), ...sequence.delta(thought("never")), ...sequence.finish(result())]);
    expect(chunks.map((chunk) => chunk.choices[0]?.text)).toEqual(["Hel", "lo", "", undefined]);
    expect(chunks.map((chunk) => chunk.choices[0]?.finish_reason)).toEqual([null, null, "stop", undefined]);
    expect(chunks[3]).toEqual({ id: "cmpl-1", object: "text_completion", created: 1_700_000_000, model: "my-alias", choices: [], usage: expectedUsage });
  });
});

describe("embeddings body and base64", () => {
  it("encodes little-endian float32 bytes", () => {
    const encoded = encodeFloat32Base64([1, -2.5]);
    const bytes = Buffer.from(encoded, "base64");
    expect(bytes).toHaveLength(8);
    expect([...bytes]).toEqual([0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x20, 0xc0]);
  });

  it("base64 decodes to the same float32 values (property)", () => {
    fc.assert(
      fc.property(fc.array(fc.float({ noNaN: true }), { maxLength: 64 }), (vector) => {
        const decoded = decodeFloat32Base64(encodeFloat32Base64(vector));
        expect(decoded).toEqual(vector.map((value) => Math.fround(value)));
      }),
    );
  });

  it("decodes the way the openai client does (Float32Array over the bytes)", () => {
    const vector = [0.1, 0.2, -0.3, 1e-8];
    const bytes = Buffer.from(encodeFloat32Base64(vector), "base64");
    const view = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    expect([...view]).toEqual(vector.map((value) => Math.fround(value)));
  });

  it("builds float and base64 bodies with usage", () => {
    const embedding = { vectors: [[0.5, 1], [2, 3]], promptTokens: 6 };
    expect(buildEmbeddingResponse("tiny", embedding, "float")).toEqual({
      object: "list",
      data: [
        { object: "embedding", index: 0, embedding: [0.5, 1] },
        { object: "embedding", index: 1, embedding: [2, 3] },
      ],
      model: "tiny",
      usage: { prompt_tokens: 6, total_tokens: 6 },
    });
    const base64 = buildEmbeddingResponse("tiny", embedding, "base64");
    expect(base64.data.map((item) => decodeFloat32Base64(item.embedding as string))).toEqual(embedding.vectors);
  });
});

describe("models bodies", () => {
  const descriptor = {
    id: "tiny",
    aliases: ["small"],
    path: "/secret/place/tiny.gguf",
    sizeBytes: 7_000_000,
    createdAt: 1_700_000_000,
    architecture: "llama",
    parameterCount: 2_000_000,
    quantization: "F32",
    contextLength: 4096,
  };

  it("describes a model without its filesystem path", () => {
    const object = buildModelObject(descriptor);
    expect(object).toEqual({
      id: "tiny",
      object: "model",
      created: 1_700_000_000,
      owned_by: "hearth",
      hearth: { size_bytes: 7_000_000, architecture: "llama", parameter_count: 2_000_000, quantization: "F32", context_length: 4096, aliases: ["small"] },
    });
    expect(JSON.stringify(object)).not.toContain("/secret");
  });

  it("uses null for metadata that could not be read", () => {
    const object = buildModelObject({ id: "x", aliases: [], sizeBytes: 1, createdAt: 2 });
    expect(object.hearth).toEqual({ size_bytes: 1, architecture: null, parameter_count: null, quantization: null, context_length: null, aliases: [] });
  });

  it("lists models", () => {
    expect(buildModelList([descriptor])).toEqual({ object: "list", data: [buildModelObject(descriptor)] });
  });
});
