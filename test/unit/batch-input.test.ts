// Batch input parsing (protocol/batch/batchInput.ts): every kind of invalid line is reported
// with its line number and code, the whole file is refused unless skip_invalid, and valid lines
// become the same jobs the HTTP endpoints would run.

import { describe, expect, it } from "vitest";
import { BatchInputError, parseBatchInput, type BatchInputOptions } from "../../protocol/batch/batchInput.js";
import { HearthError } from "../../protocol/errors.js";
import { thrownBy } from "../support/thrown.js";

const OPTIONS: BatchInputOptions = { skipInvalid: false, maxItems: 1000, maxEmbeddingInputs: 16 };

function chatLine(customId: string, content = "Hi", extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ custom_id: customId, method: "POST", url: "/v1/chat/completions", body: { model: "tiny", messages: [{ role: "user", content }], ...extra } });
}

function rejected(text: string, options: Partial<BatchInputOptions> = {}): BatchInputError {
  return thrownBy(() => parseBatchInput(text, { ...OPTIONS, ...options }), BatchInputError);
}

describe("parseBatchInput", () => {
  it("turns chat, completion and embedding lines into jobs, in input order, skipping blank lines and CRLF endings", () => {
    const text = [
      chatLine("a", "Hello", { max_tokens: 5, temperature: 0 }),
      "",
      JSON.stringify({ custom_id: "b", method: "POST", url: "/v1/completions", body: { model: "tiny", prompt: "Once" } }),
      JSON.stringify({ custom_id: "c", method: "POST", url: "/v1/embeddings", body: { model: "tiny", input: ["x", "y"], encoding_format: "base64" } }) + "\r",
      "   ",
    ].join("\n");
    const parsed = parseBatchInput(text, OPTIONS);
    expect(parsed.total).toBe(3);
    expect(parsed.model).toBe("tiny");
    expect(parsed.invalid).toEqual([]);
    expect(parsed.items.map((item) => [item.index, item.line, item.customId, item.request.url])).toEqual([
      [0, 1, "a", "/v1/chat/completions"],
      [1, 3, "b", "/v1/completions"],
      [2, 4, "c", "/v1/embeddings"],
    ]);
    const [chat, completion, embedding] = parsed.items.map((item) => item.request);
    expect(chat?.job).toMatchObject({ kind: "chat", model: "tiny", messages: [{ role: "user", content: "Hello" }], sampling: { maxTokens: 5, temperature: 0 } });
    expect(completion?.job).toMatchObject({ kind: "completion", prompt: "Once", sampling: { maxTokens: 16 } });
    expect(embedding).toMatchObject({ job: { kind: "embedding", inputs: ["x", "y"] }, encodingFormat: "base64" });
  });

  it("rejects the whole file, listing every invalid line with its number, code and param", () => {
    const text = [
      chatLine("ok-1"),
      "{not json",
      JSON.stringify(["an", "array"]),
      JSON.stringify({ method: "POST", url: "/v1/completions", body: { model: "tiny", prompt: "x" } }),
      chatLine("ok-1"),
      JSON.stringify({ custom_id: "m", method: "GET", url: "/v1/completions", body: { model: "tiny", prompt: "x" } }),
      JSON.stringify({ custom_id: "u", method: "POST", url: "/v1/images/generations", body: { model: "tiny" } }),
      JSON.stringify({ custom_id: "b", method: "POST", url: "/v1/completions", body: "prompt" }),
      chatLine("role", "Hi", { messages: [{ role: "wizard", content: "x" }] }),
      chatLine("stream", "Hi", { stream: true }),
      JSON.stringify({ custom_id: "other-model", method: "POST", url: "/v1/completions", body: { model: "big", prompt: "x" } }),
      JSON.stringify({ custom_id: "", method: "POST", url: "/v1/completions", body: { model: "tiny", prompt: "x" } }),
    ].join("\n");
    const error = rejected(text);
    expect(error.code).toBe("HEARTH_BATCH_INVALID");
    expect(error.status).toBe(400);
    expect(error.message).toMatch(/^Line 2: not valid JSON/);
    expect(error.message).toMatch(/and 10 more invalid lines/);
    expect(error.invalidLineCount).toBe(11);
    expect(error.lines.map(({ line, code, param, customId }) => ({ line, code, param, customId }))).toEqual([
      { line: 2, code: "HEARTH_INVALID_JSON", param: null, customId: null },
      { line: 3, code: "HEARTH_INVALID_REQUEST", param: null, customId: null },
      { line: 4, code: "HEARTH_INVALID_REQUEST", param: "custom_id", customId: null },
      { line: 5, code: "HEARTH_INVALID_REQUEST", param: "custom_id", customId: "ok-1" },
      { line: 6, code: "HEARTH_INVALID_REQUEST", param: "method", customId: "m" },
      { line: 7, code: "HEARTH_INVALID_REQUEST", param: "url", customId: "u" },
      { line: 8, code: "HEARTH_INVALID_REQUEST", param: "body", customId: "b" },
      { line: 9, code: "HEARTH_INVALID_REQUEST", param: "body.messages[0].role", customId: "role" },
      { line: 10, code: "HEARTH_INVALID_REQUEST", param: "body.stream", customId: "stream" },
      { line: 11, code: "HEARTH_INVALID_REQUEST", param: "body.model", customId: "other-model" },
      { line: 12, code: "HEARTH_INVALID_REQUEST", param: "custom_id", customId: null },
    ]);
    expect(error.lines[3]?.message).toBe('duplicate custom_id "ok-1" (first on line 1)');
    expect(error.lines[4]?.message).toMatch(/method must be "POST"/);
    expect(error.lines[5]?.message).toMatch(/unknown url "\/v1\/images\/generations"/);
    expect(error.lines[2]?.message).toBe("missing custom_id");
  });

  it("with skipInvalid keeps invalid lines as error items in their place and runs the rest", () => {
    const text = [chatLine("a"), "nope", chatLine("a"), chatLine("c")].join("\n");
    const parsed = parseBatchInput(text, { ...OPTIONS, skipInvalid: true });
    expect(parsed.total).toBe(4);
    expect(parsed.items.map((item) => [item.index, item.customId])).toEqual([
      [0, "a"],
      [3, "c"],
    ]);
    expect(parsed.invalid.map((line) => [line.index, line.line, line.code])).toEqual([
      [1, 2, "HEARTH_INVALID_JSON"],
      [2, 3, "HEARTH_INVALID_REQUEST"],
    ]);
  });

  it("applies the model override to every line, also to lines without a model", () => {
    const text = [JSON.stringify({ custom_id: "a", method: "POST", url: "/v1/completions", body: { prompt: "x" } }), chatLine("b")].join("\n");
    expect(rejected(text).lines[0]).toMatchObject({ line: 1, param: "body.model" });
    const parsed = parseBatchInput(text, { ...OPTIONS, model: "other" });
    expect(parsed.model).toBe("other");
    expect(parsed.items.map((item) => item.request.job.model)).toEqual(["other", "other"]);
  });

  it("refuses an empty input, one with only invalid lines, and one over max_items, even with skipInvalid", () => {
    expect(rejected("\n \n").message).toMatch(/no lines/);
    expect(rejected("x\ny", { skipInvalid: true }).message).toMatch(/None of the 2 lines is a valid request/);
    const many = Array.from({ length: 4 }, (_, i) => chatLine(`id-${i}`)).join("\n");
    expect(rejected(many, { maxItems: 3, skipInvalid: true }).message).toMatch(/more than 3 lines \(jobs\.max_items\)/);
    expect(parseBatchInput(many, { ...OPTIONS, maxItems: 4 }).total).toBe(4);
  });

  it("checks embeddings against max_embedding_inputs like /v1/embeddings", () => {
    const line = JSON.stringify({ custom_id: "e", method: "POST", url: "/v1/embeddings", body: { model: "tiny", input: ["a", "b", "c"] } });
    const error = rejected(line, { maxEmbeddingInputs: 2 });
    expect(error.lines[0]).toMatchObject({ param: "body.input", code: "HEARTH_INVALID_REQUEST" });
    expect(error).toBeInstanceOf(HearthError);
  });

  it("reports at most 100 lines but counts them all", () => {
    const text = Array.from({ length: 150 }, () => "{").join("\n");
    const error = rejected(text);
    expect(error.lines).toHaveLength(100);
    expect(error.invalidLineCount).toBe(150);
  });
});
