import { describe, expect, it } from "vitest";
import { apiFamilyOf, errorBodyFor } from "../../daemon/http/apiFamily.js";
import { errors } from "../../protocol/errors.js";

describe("API family of a request", () => {
  it("is Ollama under /api, Anthropic for /v1/messages or an anthropic-version header under /v1, else OpenAI", () => {
    expect(apiFamilyOf("/api/chat", {})).toBe("ollama");
    expect(apiFamilyOf("/api", {})).toBe("ollama");
    expect(apiFamilyOf("/apiary", {})).toBe("openai");
    expect(apiFamilyOf("/v1/messages", {})).toBe("anthropic");
    expect(apiFamilyOf("/v1/messages/count_tokens", {})).toBe("anthropic");
    expect(apiFamilyOf("/v1/models", { "anthropic-version": "2023-06-01" })).toBe("anthropic");
    expect(apiFamilyOf("/v1/models", {})).toBe("openai");
    expect(apiFamilyOf("/hearth/v1/status", { "anthropic-version": "2023-06-01" })).toBe("openai");
  });

  it("shapes one error three ways, each keeping Hearth's code", () => {
    const error = errors.modelNotFound("no model x");
    expect(errorBodyFor("openai", error)).toEqual(error.toOpenAiBody());
    expect(errorBodyFor("anthropic", error)).toEqual({ type: "error", error: { type: "not_found_error", message: "no model x", hearth_code: "HEARTH_MODEL_NOT_FOUND" } });
    expect(errorBodyFor("ollama", error)).toEqual({ error: "no model x", code: "HEARTH_MODEL_NOT_FOUND" });
    expect(errorBodyFor("anthropic", errors.queueFull("busy"))).toMatchObject({ error: { type: "rate_limit_error" } });
    expect(errorBodyFor("anthropic", errors.internal())).toMatchObject({ error: { type: "api_error" } });
    expect(errorBodyFor("anthropic", errors.invalidRequest("bad"))).toMatchObject({ error: { type: "invalid_request_error" } });
  });
});
