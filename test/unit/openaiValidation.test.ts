import { describe, expect, it } from "vitest";
import { z } from "zod";
import { describeValue, formatParamPath, parseWith } from "../../protocol/openai/validation.js";
import { thrownBy } from "../support/thrown.js";

describe("param paths", () => {
  it("formats keys with dots and indices with brackets", () => {
    expect(formatParamPath(["messages", 0, "content", 2, "type"])).toBe("messages[0].content[2].type");
    expect(formatParamPath(["max_tokens"])).toBe("max_tokens");
    expect(formatParamPath([])).toBeNull();
  });
});

describe("value descriptions", () => {
  it("describes each JSON kind briefly", () => {
    expect(describeValue(null)).toBe("null");
    expect(describeValue([1])).toBe("an array");
    expect(describeValue({})).toBe("an object");
    expect(describeValue("x")).toBe("'x'");
    expect(describeValue("y".repeat(100))).toBe("a string");
    expect(describeValue(3)).toBe("3");
    expect(describeValue(true)).toBe("true");
  });
});

describe("parseWith", () => {
  const schema = z.object({ a: z.number().int(), b: z.array(z.string()).max(1).optional() });

  it("returns parsed data with unknown keys dropped", () => {
    expect(parseWith(schema, { a: 1, extra: true })).toEqual({ a: 1 });
  });

  it("reports only the first issue as a HearthError with param", () => {
    const error = thrownBy(() => parseWith(schema, { a: "x", b: [1, 2] }));
    expect(error.param).toBe("a");
    expect(error.toOpenAiBody().error).toEqual({
      message: "Invalid value for 'a': expected a number, got 'x'.",
      type: "invalid_request_error",
      param: "a",
      code: "HEARTH_INVALID_REQUEST",
    });
  });

  it("names a body that is not an object with a null param", () => {
    const error = thrownBy(() => parseWith(schema, "text"));
    expect(error.param).toBeNull();
    expect(error.message).toMatch(/request body/);
  });
});
