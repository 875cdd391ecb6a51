import { describe, expect, it } from "vitest";
import { settlesWithin } from "../../daemon/lifecycle/settlesWithin.js";

describe("settlesWithin", () => {
  it("is true for work that fulfils or rejects in time, false for work that outlasts the timeout", async () => {
    expect(await settlesWithin(Promise.resolve(1), 1_000)).toBe(true);
    expect(await settlesWithin(Promise.reject(new Error("over")), 1_000)).toBe(true);
    expect(await settlesWithin(new Promise(() => undefined), 20)).toBe(false);
    expect(await settlesWithin(new Promise((resolve) => setTimeout(resolve, 10)), 1_000)).toBe(true);
  });
});
