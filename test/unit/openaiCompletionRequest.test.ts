import { describe, expect, it } from "vitest";
import { DEFAULT_COMPLETION_MAX_TOKENS, parseCompletionRequest } from "../../protocol/openai/completionRequest.js";
import { thrownBy } from "../support/thrown.js";

const base = { model: "tiny", prompt: "Once upon" };

function expectRejected(body: unknown, param: string | null, messagePart?: RegExp): void {
  const error = thrownBy(() => parseCompletionRequest(body));
  expect(error.code).toBe("HEARTH_INVALID_REQUEST");
  expect(error.param).toBe(param);
  if (messagePart) expect(error.message).toMatch(messagePart);
}

describe("completion request", () => {
  it("converts a minimal body with OpenAI's defaults (max_tokens 16, temperature 1)", () => {
    const { job, delivery } = parseCompletionRequest(base);
    expect(DEFAULT_COMPLETION_MAX_TOKENS).toBe(16);
    expect(job).toEqual({ kind: "completion", model: "tiny", prompt: "Once upon", sampling: { maxTokens: 16, temperature: 1, stop: [] }, echo: false });
    expect(delivery).toEqual({ stream: false, includeUsage: false });
  });

  it("passes every sampling field and echo through", () => {
    const { job, delivery } = parseCompletionRequest({
      ...base,
      max_tokens: 5,
      temperature: 0,
      top_p: 0.9,
      seed: 7,
      stop: "\n",
      echo: true,
      n: 1,
      stream: true,
      stream_options: { include_usage: true },
    });
    expect(job.sampling).toEqual({ maxTokens: 5, temperature: 0, topP: 0.9, seed: 7, stop: ["\n"] });
    expect(job.echo).toBe(true);
    expect(delivery).toEqual({ stream: true, includeUsage: true });
  });

  it("accepts an empty prompt", () => {
    expect(parseCompletionRequest({ ...base, prompt: "" }).job.prompt).toBe("");
  });

  it("accepts an array holding exactly one string", () => {
    expect(parseCompletionRequest({ ...base, prompt: ["only"] }).job.prompt).toBe("only");
  });

  it("requires a prompt", () => {
    expectRejected({ model: "tiny" }, "prompt", /Missing/);
  });

  it("rejects batched prompts", () => {
    expectRejected({ ...base, prompt: ["a", "b"] }, "prompt", /exactly one string/);
    expectRejected({ ...base, prompt: [] }, "prompt", /exactly one string/);
  });

  it("rejects token-id prompts", () => {
    expectRejected({ ...base, prompt: [1, 2, 3] }, "prompt", /token-id/);
    expectRejected({ ...base, prompt: [[1, 2]] }, "prompt", /token-id/);
  });

  it("rejects a non-string single prompt item, naming its index", () => {
    expectRejected({ ...base, prompt: [{ text: "x" }] }, "prompt[0]");
  });

  it("rejects a prompt of the wrong type", () => {
    expectRejected({ ...base, prompt: 12 }, "prompt");
  });

  it.each([-1, 0, 1e12, 1.5])("rejects max_tokens %s", (value) => {
    expectRejected({ ...base, max_tokens: value }, "max_tokens");
  });

  it("rejects n other than 1, best_of above 1 and logprobs", () => {
    expectRejected({ ...base, n: 3 }, "n");
    expectRejected({ ...base, best_of: 2 }, "best_of", /not supported/);
    expectRejected({ ...base, logprobs: 5 }, "logprobs", /not supported/);
  });

  it("takes a non-empty suffix as a fill-in-the-middle job, and rejects a suffix that is not text", () => {
    expect(parseCompletionRequest({ ...base, suffix: "end" }).job.suffix).toBe("end");
    expect(parseCompletionRequest({ ...base, suffix: "" }).job.suffix).toBeUndefined();
    expectRejected({ ...base, suffix: 3 }, "suffix");
  });

  it("accepts the neutral values of unsupported fields", () => {
    expect(() => parseCompletionRequest({ ...base, best_of: 1, logprobs: null, suffix: null })).not.toThrow();
  });

  it("rejects a non-boolean echo", () => {
    expectRejected({ ...base, echo: "yes" }, "echo");
  });

  it("rejects an out-of-range temperature", () => {
    expectRejected({ ...base, temperature: 3 }, "temperature", /at most 2/);
  });
});
