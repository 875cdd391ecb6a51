import { describe, expect, it } from "vitest";
import { SentFilter } from "../../daemon/runner/sentFilter.js";
import { ContinuationLedger } from "../../daemon/split/continuation.js";
import { memoryBudgetBytes } from "../../scheduler/memoryBudget.js";

describe("ContinuationLedger", () => {
  it("has nothing to resume before anything was generated or sent", () => {
    expect(new ContinuationLedger().resumeState()).toBeUndefined();
  });

  it("keeps token ids in order and the characters sent of each part, and hands out copies", () => {
    const ledger = new ContinuationLedger();
    ledger.recordTokens([5, 6]);
    ledger.recordDelta({ part: "reasoning", text: "ab" });
    ledger.recordTokens([7]);
    ledger.recordDelta({ part: "answer", text: "c" });
    const state = ledger.resumeState()!;
    expect(state).toEqual({ tokens: [5, 6, 7], sent: { answer: 1, reasoning: 2 } });
    state.tokens.push(99);
    expect(ledger.resumeState()!.tokens).toEqual([5, 6, 7]);
    expect(ledger.tokenCount).toBe(3);
  });

  it("resumes an echoed prompt sent before any token", () => {
    const ledger = new ContinuationLedger();
    ledger.recordDelta({ part: "answer", text: "prompt" });
    expect(ledger.resumeState()).toEqual({ tokens: [], sent: { answer: 6, reasoning: 0 } });
  });
});

describe("SentFilter", () => {
  const answer = (text: string) => ({ part: "answer" as const, text });
  const thought = (text: string) => ({ part: "reasoning" as const, text });

  it("passes everything on when nothing was sent", () => {
    const filter = new SentFilter();
    expect(filter.pass(answer("Hi"))).toEqual(answer("Hi"));
    expect(filter.pass(thought("Hm"))).toEqual(thought("Hm"));
  });

  it("skips what was sent of each part, across pieces, and passes the rest of a piece that straddles it", () => {
    const filter = new SentFilter({ answer: 5, reasoning: 3 });
    expect(filter.pass(thought("Th"))).toBeUndefined();
    expect(filter.pass(answer("Hel"))).toBeUndefined();
    expect(filter.pass(thought("ink."))).toEqual(thought("nk."));
    expect(filter.pass(answer("lo, you"))).toEqual(answer(", you"));
    expect(filter.pass(answer("!"))).toEqual(answer("!"));
  });
});

describe("memory budgets", () => {
  const detected = { ramFreeBytes: 8_000, vramFreeBytes: 3_000, gpuBackend: null };

  it("uses the configured budget when set", () => {
    expect(memoryBudgetBytes({ memoryBudgetBytes: 1_234, memoryHeadroomBytes: 500 }, detected)).toBe(1_234);
  });

  it("defaults to free RAM minus headroom, or free VRAM with a GPU backend", () => {
    expect(memoryBudgetBytes({ memoryBudgetBytes: 0, memoryHeadroomBytes: 500 }, detected)).toBe(7_500);
    expect(memoryBudgetBytes({ memoryBudgetBytes: 0, memoryHeadroomBytes: 500 }, { ...detected, gpuBackend: "cuda" })).toBe(2_500);
    expect(memoryBudgetBytes({ memoryBudgetBytes: 0, memoryHeadroomBytes: 10_000 }, detected)).toBe(0);
  });
});
