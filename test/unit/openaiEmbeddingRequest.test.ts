import { describe, expect, it } from "vitest";
import { checkDimensions, parseEmbeddingRequest } from "../../protocol/openai/embeddingRequest.js";
import { thrownBy } from "../support/thrown.js";

const limits = { maxInputs: 3 };

function expectRejected(body: unknown, param: string, messagePart?: RegExp): void {
  const error = thrownBy(() => parseEmbeddingRequest(body, limits));
  expect(error.code).toBe("HEARTH_INVALID_REQUEST");
  expect(error.param).toBe(param);
  if (messagePart) expect(error.message).toMatch(messagePart);
}

describe("embedding request", () => {
  it("turns a single string into one input with float encoding by default", () => {
    expect(parseEmbeddingRequest({ model: "tiny", input: "hello" }, limits)).toEqual({
      job: { kind: "embedding", model: "tiny", inputs: ["hello"] },
      encodingFormat: "float",
    });
  });

  it("keeps an array of strings in order and reads base64 and dimensions", () => {
    expect(parseEmbeddingRequest({ model: "tiny", input: ["a", "b"], encoding_format: "base64", dimensions: 128 }, limits)).toEqual({
      job: { kind: "embedding", model: "tiny", inputs: ["a", "b"] },
      encodingFormat: "base64",
      dimensions: 128,
    });
  });

  it("requires input", () => {
    expectRejected({ model: "tiny" }, "input", /Missing/);
  });

  it("rejects an empty string and an empty array", () => {
    expectRejected({ model: "tiny", input: "" }, "input", /must not be empty/);
    expectRejected({ model: "tiny", input: [] }, "input", /at least 1/);
  });

  it("rejects an empty string inside the array, naming its index", () => {
    expectRejected({ model: "tiny", input: ["a", ""] }, "input[1]", /must not be empty/);
  });

  it("rejects token-id inputs", () => {
    expectRejected({ model: "tiny", input: [1, 2, 3] }, "input", /token-id/);
    expectRejected({ model: "tiny", input: [[1, 2], [3]] }, "input", /token-id/);
  });

  it("rejects a mixed array, naming the bad item", () => {
    expectRejected({ model: "tiny", input: ["a", 2] }, "input[1]");
  });

  it("rejects more inputs than the limit", () => {
    expectRejected({ model: "tiny", input: ["a", "b", "c", "d"] }, "input", /at most 3/);
    expect(parseEmbeddingRequest({ model: "tiny", input: ["a", "b", "c"] }, limits).job.inputs).toHaveLength(3);
  });

  it("rejects an unknown encoding_format", () => {
    expectRejected({ model: "tiny", input: "a", encoding_format: "int8" }, "encoding_format", /'float', 'base64'/);
  });

  it("rejects non-positive dimensions", () => {
    expectRejected({ model: "tiny", input: "a", dimensions: 0 }, "dimensions");
  });

  it("rejects an input of the wrong type", () => {
    expectRejected({ model: "tiny", input: { text: "a" } }, "input");
  });
});

describe("embedding dimensions check", () => {
  it("accepts an absent request or an equal size", () => {
    expect(() => checkDimensions(undefined, 128)).not.toThrow();
    expect(() => checkDimensions(128, 128)).not.toThrow();
    expect(() => checkDimensions(128, undefined)).not.toThrow();
  });

  it("rejects a size the model does not produce", () => {
    const error = thrownBy(() => checkDimensions(64, 128));
    expect(error.param).toBe("dimensions");
    expect(error.message).toMatch(/128-dimensional/);
  });
});
