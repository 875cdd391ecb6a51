// Batch output lines (protocol/batch/batchOutput.ts): OpenAI's batch output format with the
// endpoint's own response body, plus the hearth extension naming the node and input line.

import { describe, expect, it } from "vitest";
import { parseBatchInput } from "../../protocol/batch/batchInput.js";
import { buildResponseBody, errorLine, successLine } from "../../protocol/batch/batchOutput.js";
import { HearthError } from "../../protocol/errors.js";
import type { GenerationResult } from "../../protocol/inference.js";
import { decodeFloat32Base64 } from "../../protocol/openai/embeddingResponse.js";

const RESULT: GenerationResult = { text: "hello there", reasoning: "", toolCalls: [], finishReason: "length", usage: { promptTokens: 7, completionTokens: 2, reasoningTokens: 0 }, cachedPromptTokens: 0, nodeId: "node-b" };

function items(lines: object[]) {
  return parseBatchInput(lines.map((line) => JSON.stringify(line)).join("\n"), { skipInvalid: false, maxItems: 10, maxEmbeddingInputs: 4 }).items;
}

describe("batch output lines", () => {
  it("a chat success line carries the chat.completion body, a batch_req id and the node that ran it", () => {
    const [item] = items([{ custom_id: "q1", method: "POST", url: "/v1/chat/completions", body: { model: "tiny", messages: [{ role: "user", content: "Hi" }] } }]);
    const line = successLine(item!, buildResponseBody(item!.request, RESULT), "node-b");
    expect(line.id).toMatch(/^batch_req_[0-9a-f]{24}$/);
    expect(line).toMatchObject({
      custom_id: "q1",
      error: null,
      hearth: { node: "node-b", line: 1 },
      response: {
        status_code: 200,
        request_id: expect.stringMatching(/^req_/) as unknown,
        body: { object: "chat.completion", model: "tiny", choices: [{ message: { role: "assistant", content: "hello there" }, finish_reason: "length" }], usage: { prompt_tokens: 7, completion_tokens: 2 } },
      },
    });
    expect(JSON.parse(JSON.stringify(line))).toEqual(line);
  });

  it("a completion body is a text_completion; an embedding body honours encoding_format", () => {
    const [completion, embedding] = items([
      { custom_id: "c", method: "POST", url: "/v1/completions", body: { model: "tiny", prompt: "x" } },
      { custom_id: "e", method: "POST", url: "/v1/embeddings", body: { model: "tiny", input: "x", encoding_format: "base64" } },
    ]);
    expect(buildResponseBody(completion!.request, RESULT)).toMatchObject({ object: "text_completion", choices: [{ text: "hello there" }] });
    const body = buildResponseBody(embedding!.request, { vectors: [[0.5, -1]], promptTokens: 1 }) as { data: { embedding: string }[] };
    expect(decodeFloat32Base64(body.data[0]!.embedding)).toEqual([0.5, -1]);
  });

  it("an embedding whose dimensions do not match the vectors is refused like over HTTP", () => {
    const [item] = items([{ custom_id: "e", method: "POST", url: "/v1/embeddings", body: { model: "tiny", input: "x", dimensions: 3 } }]);
    expect(() => buildResponseBody(item!.request, { vectors: [[1, 2]], promptTokens: 1 })).toThrow(HearthError);
  });

  it("an error line has no response and the code and message", () => {
    const line = errorLine({ customId: null, line: 4 }, { code: "HEARTH_INVALID_JSON", message: "not valid JSON" }, null);
    expect(line).toEqual({
      id: expect.stringMatching(/^batch_req_/) as unknown,
      custom_id: null,
      response: null,
      error: { code: "HEARTH_INVALID_JSON", message: "not valid JSON" },
      hearth: { node: null, line: 4 },
    });
  });
});
