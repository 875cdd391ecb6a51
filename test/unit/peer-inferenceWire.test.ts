// The "infer" stream format: jobs, deltas, results and errors round-trip exactly, frames
// survive any chunking, and hostile bytes are refused with a catalogue code without throwing.

import fc from "fast-check";
import { Packr } from "msgpackr";
import { describe, expect, it } from "vitest";
import { HearthError } from "../../protocol/errors.js";
import type { ChatJob, CompletionJob, EmbeddingJob, GenerationResult } from "../../protocol/inference.js";
import {
  decodeJobFrame,
  decodeReplyFrame,
  embeddingResultFrame,
  embeddingVectorsOf,
  encodeInferFrame,
  errorFrame,
  generationResultFrame,
  generationResultOf,
  INFER_WIRE_LIMITS,
  InferFrameSplitter,
  jobFrame,
  type InferJobFrame,
  type InferReplyFrame,
} from "../../protocol/peer/inferenceWire.js";

const SHA = "ab".repeat(32);

const chat: ChatJob = {
  kind: "chat",
  model: "tiny",
  messages: [
    { role: "system", content: "Be brief.\u0000\r\n\ttabs and NULs are user content" },
    { role: "user", content: "What is the weather?" },
    { role: "assistant", content: "", toolCalls: [{ id: "call_1", name: "weather", arguments: '{"city":"Oslo"}' }] },
    { role: "tool", content: '{"temp":3}', toolCallId: "call_1" },
  ],
  sampling: { maxTokens: 64, temperature: 0, topP: 0.9, seed: 42, stop: ["\n\n", "END"], frequencyPenalty: 0.5, presencePenalty: -0.25 },
  responseFormat: { type: "json_schema", name: "answer", schema: { type: "object", properties: { a: { type: "array", items: { type: "string" } } } } },
  tools: [{ name: "weather", description: "Looks it up", parameters: { type: "object", properties: { city: { type: "string" } } } }],
  toolChoice: { name: "weather" },
  thinking: "off",
};

const completion: CompletionJob = { kind: "completion", model: "Llama-3.2-1B.Q4_K_M", prompt: "Once upon a time", sampling: { temperature: 0.7, stop: [] }, echo: true };
const embedding: EmbeddingJob = { kind: "embedding", model: "tiny", inputs: ["a", "b c"] };

/** Splits a frame's bytes (without its length prefix) back into one decoded reply. */
function roundTripReply(frame: InferReplyFrame): InferReplyFrame {
  const bytes = encodeInferFrame(frame);
  const split = new InferFrameSplitter().push(bytes);
  if (!split.ok) throw split.error;
  expect(split.bodies).toHaveLength(1);
  const decoded = decodeReplyFrame(split.bodies[0]!);
  if (!decoded.ok) throw decoded.error;
  return decoded.frame;
}

function roundTripJob(frame: InferJobFrame): InferJobFrame {
  const bytes = encodeInferFrame(frame);
  const split = new InferFrameSplitter().push(bytes);
  if (!split.ok) throw split.error;
  const decoded = decodeJobFrame(split.bodies[0]!);
  if (!decoded.ok) throw decoded.error;
  return decoded.frame;
}

/** A raw body (no prefix) with arbitrary msgpack content. */
const packr = new Packr({ useRecords: false });
function withPrefix(body: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + body.byteLength);
  new DataView(out.buffer).setUint32(0, body.byteLength);
  out.set(body, 4);
  return out;
}

describe("infer frames round-trip", () => {
  it("carries chat, completion and embedding jobs exactly, with the model's hash and the client's name", () => {
    for (const job of [chat, completion, embedding]) {
      const frame = jobFrame(job, { sha256: SHA, modelName: "my-alias" });
      expect(roundTripJob(frame)).toEqual(frame);
    }
    expect(roundTripJob(jobFrame(completion, { sha256: null, modelName: "x" })).sha256).toBeNull();
  });

  it("marks a result-only job (no delta frames wanted) and leaves streamed jobs unmarked", () => {
    expect(roundTripJob(jobFrame(completion, { sha256: SHA, modelName: "x", deltas: false })).deltas).toBe(false);
    expect(roundTripJob(jobFrame(completion, { sha256: SHA, modelName: "x", deltas: true })).deltas).toBeUndefined();
    expect(roundTripJob(jobFrame(completion, { sha256: SHA, modelName: "x" })).deltas).toBeUndefined();
  });

  it("carries deltas, generation results and errors with their codes", () => {
    expect(roundTripReply({ type: "delta", part: "answer", text: "Hel" })).toEqual({ type: "delta", part: "answer", text: "Hel" });
    const result: GenerationResult = {
      text: "Hello",
      reasoning: "Greet them.",
      toolCalls: [{ id: "c", name: "f", arguments: "{}" }],
      finishReason: "tool_calls",
      usage: { promptTokens: 12, completionTokens: 3, reasoningTokens: 0 },
      cachedPromptTokens: 4,
      timeToFirstTokenMs: 12.5,
      nodeId: "not sent",
    };
    const back = roundTripReply(generationResultFrame(result));
    expect(back.type === "result" && back.result.kind === "generation" ? generationResultOf(back.result) : back).toEqual({ ...result, nodeId: undefined });
    const error = roundTripReply(errorFrame(new HearthError("HEARTH_CONTEXT_OVERFLOW", "too long", { param: "messages" }).toPayload()));
    expect(error).toEqual({ type: "error", error: { code: "HEARTH_CONTEXT_OVERFLOW", message: "too long", param: "messages" } });
  });

  it("an error code this node does not know becomes HEARTH_INTERNAL naming the original", () => {
    const body = packr.pack({ type: "error", error: { code: "HEARTH_FROM_THE_FUTURE", message: "new" } });
    const decoded = decodeReplyFrame(body);
    expect(decoded.ok && decoded.frame.type === "error" ? decoded.frame.error : undefined).toEqual({ code: "HEARTH_INTERNAL", message: "(HEARTH_FROM_THE_FUTURE) new" });
  });

  it("embedding vectors come back bit for bit, as float32 when exact and float64 otherwise", () => {
    const exact = [[0.5, -1.25, Math.fround(0.1), 0], [1, 2, 3, 4]];
    const frame = embeddingResultFrame(exact, 7);
    expect(frame.result.kind === "embedding" && frame.result.dtype).toBe("f32");
    const back = roundTripReply(frame);
    if (back.type !== "result" || back.result.kind !== "embedding") throw new Error("not an embedding result");
    expect(embeddingVectorsOf(back.result)).toEqual(exact);
    expect(back.result.promptTokens).toBe(7);

    const precise = [[0.1, Math.PI]];
    const wide = roundTripReply(embeddingResultFrame(precise, 1));
    if (wide.type !== "result" || wide.result.kind !== "embedding") throw new Error("not an embedding result");
    expect(wide.result.dtype).toBe("f64");
    expect(embeddingVectorsOf(wide.result)).toEqual(precise);
  });

  it("refuses to encode a frame that does not match the schema (a local bug) or is too large", () => {
    expect(() => encodeInferFrame({ type: "delta", part: "answer", text: "" })).toThrow(HearthError);
    const badJob = { ...completion, sampling: { ...completion.sampling, maxTokens: undefined } } as unknown as CompletionJob;
    expect(() => encodeInferFrame(jobFrame(badJob, { sha256: null, modelName: "x" }))).toThrow(/invalid job frame/);
    const big = jobFrame({ ...completion, prompt: "x".repeat(2_000) }, { sha256: null, modelName: "x" });
    const error = (() => {
      try {
        encodeInferFrame(big, 1_000);
      } catch (caught) {
        return caught as HearthError;
      }
      return undefined;
    })();
    expect(error?.code).toBe("HEARTH_PEER_FRAME_TOO_LARGE");
  });

  it("holds job frames to the lower job limit, replies to the frame limit", () => {
    const text = "x".repeat(INFER_WIRE_LIMITS.maxJobFrameBytes + 1);
    expect(() => encodeInferFrame(jobFrame({ ...completion, prompt: text }, { sha256: null, modelName: "x" }))).toThrow(/exceeds the limit/);
    expect(encodeInferFrame({ type: "delta", part: "answer", text }).byteLength).toBeGreaterThan(INFER_WIRE_LIMITS.maxJobFrameBytes);
  });
});

describe("InferFrameSplitter", () => {
  it("reassembles frames from any chunking, byte by byte included", () => {
    const frames: InferReplyFrame[] = [{ type: "delta", part: "answer", text: "a" }, { type: "delta", part: "answer", text: "bc" }, generationResultFrame({ text: "abc", reasoning: "", toolCalls: [], finishReason: "stop", usage: { promptTokens: 1, completionTokens: 2, reasoningTokens: 0 }, cachedPromptTokens: 0 })];
    const stream = Buffer.concat(frames.map((frame) => encodeInferFrame(frame)));
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: stream.byteLength }), { maxLength: 20 }), (cuts) => {
        const points = [...new Set(cuts)].sort((x, y) => x - y);
        const splitter = new InferFrameSplitter();
        const bodies: Uint8Array[] = [];
        let start = 0;
        for (const point of [...points, stream.byteLength]) {
          const result = splitter.push(stream.subarray(start, point));
          if (!result.ok) return false;
          bodies.push(...result.bodies);
          start = point;
        }
        const decoded = bodies.map((body) => decodeReplyFrame(body));
        return splitter.idle && decoded.length === frames.length && decoded.every((entry, i) => entry.ok && JSON.stringify(entry.frame) === JSON.stringify(frames[i]));
      }),
    );
  });

  it("refuses a declared length over the limit before buffering the body, and an empty frame", () => {
    const splitter = new InferFrameSplitter(1024);
    const header = new Uint8Array(4);
    new DataView(header.buffer).setUint32(0, 1025);
    const result = splitter.push(header);
    expect(result.ok ? undefined : result.error.code).toBe("HEARTH_PEER_FRAME_TOO_LARGE");
    // Once failed, always failed: the stream must be reset.
    const again = splitter.push(encodeInferFrame({ type: "delta", part: "answer", text: "x" }));
    expect(again.ok).toBe(false);
    expect(splitter.buffered).toBe(0);

    const empty = new InferFrameSplitter().push(new Uint8Array(4));
    expect(empty.ok ? undefined : empty.error.code).toBe("HEARTH_PEER_FRAME_INVALID");
    const huge = new Uint8Array(4).fill(0xff);
    const hugeResult = new InferFrameSplitter().push(huge);
    expect(hugeResult.ok ? undefined : hugeResult.error.code).toBe("HEARTH_PEER_FRAME_TOO_LARGE");
    expect(INFER_WIRE_LIMITS.maxFrameBytes).toBeLessThan(0xffffffff);
  });

  it("holds an incomplete frame without deciding", () => {
    const bytes = encodeInferFrame({ type: "delta", part: "answer", text: "partial" });
    const splitter = new InferFrameSplitter();
    const result = splitter.push(bytes.subarray(0, bytes.byteLength - 1));
    expect(result.ok && result.bodies).toEqual([]);
    expect(splitter.idle).toBe(false);
  });
});

describe("hostile infer frames", () => {
  const cases: Array<[string, Uint8Array]> = [
    ["not msgpack at all", Uint8Array.from([0xc1, 0x00])],
    ["an extension type (a Date)", Uint8Array.from([0xd6, 0xff, 0, 0, 0, 1])],
    ["trailing bytes", Uint8Array.from([...packr.pack({ type: "delta", part: "answer", text: "a" }), 0x00])],
    ["a __proto__ key", Uint8Array.from([0x82, 0xa4, ...Buffer.from("type"), 0xa5, ...Buffer.from("delta"), 0xa9, ...Buffer.from("__proto__"), 0xc0])],
    ["a lying string length", Uint8Array.from([0x81, 0xa4, ...Buffer.from("type"), 0xdb, 0xff, 0xff, 0xff, 0xff])],
    ["a top-level array", packr.pack([1, 2, 3])],
    ["an unknown type", packr.pack({ type: "shell", command: "rm -rf /" })],
    ["a delta without text", packr.pack({ type: "delta" })],
    ["a result of an unknown kind", packr.pack({ type: "result", result: { kind: "poem" } })],
    ["embedding vectors of unequal length", packr.pack({ type: "result", result: { kind: "embedding", dtype: "f32", vectors: [new Uint8Array(8), new Uint8Array(4)], promptTokens: 1 } })],
    ["embedding bytes not a multiple of the width", packr.pack({ type: "result", result: { kind: "embedding", dtype: "f64", vectors: [new Uint8Array(12)], promptTokens: 1 } })],
    ["a negative token count", packr.pack({ type: "result", result: { kind: "generation", text: "", reasoning: "", toolCalls: [], finishReason: "stop", usage: { promptTokens: -1, completionTokens: 0, reasoningTokens: 0 }, cachedPromptTokens: 0 } })],
    ["a bad error code", packr.pack({ type: "error", error: { code: "rm -rf", message: "x" } })],
  ];

  for (const [what, body] of cases) {
    it(`a reply frame with ${what} is refused with HEARTH_PEER_FRAME_INVALID`, () => {
      const result = decodeReplyFrame(body);
      expect(result.ok ? "accepted" : result.error.code).toBe("HEARTH_PEER_FRAME_INVALID");
    });
  }

  const jobCases: Array<[string, unknown]> = [
    ["a model id that is a path", { type: "job", sha256: null, modelName: "x", job: { ...completion, model: "../../etc/passwd" } }],
    ["a model id with a slash", { type: "job", sha256: null, modelName: "x", job: { ...completion, model: "models/tiny" } }],
    ["an upper-case sha256", { type: "job", sha256: SHA.toUpperCase(), modelName: "x", job: completion }],
    ["a model name with a newline", { type: "job", sha256: null, modelName: "a\nb", job: completion }],
    ["no messages", { type: "job", sha256: null, modelName: "x", job: { ...chat, messages: [] } }],
    ["an unknown role", { type: "job", sha256: null, modelName: "x", job: { ...chat, messages: [{ role: "root", content: "x" }] } }],
    ["a temperature of 9", { type: "job", sha256: null, modelName: "x", job: { ...completion, sampling: { temperature: 9, stop: [] } } }],
    ["a null where a number is optional", { type: "job", sha256: null, modelName: "x", job: { ...completion, sampling: { temperature: 0, stop: [], maxTokens: null } } }],
    ["an empty embedding input", { type: "job", sha256: null, modelName: "x", job: { ...embedding, inputs: [""] } }],
    ["a reply instead of a job", { type: "delta", part: "answer", text: "x" }],
  ];
  for (const [what, value] of jobCases) {
    it(`a job frame with ${what} is refused with HEARTH_PEER_FRAME_INVALID`, () => {
      const result = decodeJobFrame(packr.pack(value));
      expect(result.ok ? "accepted" : result.error.code).toBe("HEARTH_PEER_FRAME_INVALID");
    });
  }

  it("refuses nesting deeper than the limit without a stack overflow", () => {
    let nested: unknown = "leaf";
    for (let i = 0; i < INFER_WIRE_LIMITS.maxNestingDepth + 5; i++) nested = { a: nested };
    const frame = { type: "job", sha256: null, modelName: "x", job: { ...chat, tools: [{ name: "f", parameters: nested }] } };
    const result = decodeJobFrame(packr.pack(frame));
    expect(result.ok ? "accepted" : result.error.code).toBe("HEARTH_PEER_FRAME_INVALID");
    const deep = new Uint8Array(200_000).fill(0x91);
    expect(decodeJobFrame(deep).ok).toBe(false);
  });

  it("unknown fields are dropped, so a newer minor can add them", () => {
    const result = decodeReplyFrame(packr.pack({ type: "delta", part: "answer", text: "x", logprob: -0.5 }));
    expect(result).toEqual({ ok: true, frame: { type: "delta", part: "answer", text: "x" } });
  });

  it("never throws on random bytes, through the splitter and both decoders", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
        const splitter = new InferFrameSplitter(4096);
        const split = splitter.push(withPrefix(bytes));
        if (split.ok) {
          for (const body of split.bodies) {
            if (decodeJobFrame(body).ok && decodeReplyFrame(body).ok) return false;
          }
        }
        const raw = splitter.push(bytes);
        return raw.ok || raw.error instanceof HearthError;
      }),
      { numRuns: 500 },
    );
  });
});
