import { describe, expect, it } from "vitest";
import { firstStopIndex, releasableLength, unsentText } from "../../daemon/runner/continuationText.js";
import { ContinuationLedger } from "../../daemon/split/continuation.js";
import { memoryBudgetBytes } from "../../scheduler/memoryBudget.js";

describe("ContinuationLedger", () => {
  it("has nothing to resume before anything was generated or sent", () => {
    expect(new ContinuationLedger().resumeState()).toBeUndefined();
  });

  it("keeps token ids in order and the text sent, and hands out copies", () => {
    const ledger = new ContinuationLedger();
    ledger.recordTokens([5, 6]);
    ledger.recordText("ab");
    ledger.recordTokens([7]);
    ledger.recordText("c");
    const state = ledger.resumeState()!;
    expect(state).toEqual({ tokens: [5, 6, 7], sentText: "abc" });
    state.tokens.push(99);
    expect(ledger.resumeState()!.tokens).toEqual([5, 6, 7]);
    expect(ledger.tokenCount).toBe(3);
  });

  it("resumes an echoed prompt sent before any token", () => {
    const ledger = new ContinuationLedger();
    ledger.recordText("prompt");
    expect(ledger.resumeState()).toEqual({ tokens: [], sentText: "prompt" });
  });
});

describe("resumed text", () => {
  it("finds the earliest stop string", () => {
    expect(firstStopIndex("abcSTOPdefEND", ["END", "STOP"])).toBe(3);
    expect(firstStopIndex("abc", ["x", ""])).toBeUndefined();
  });

  it("holds back a tail that could still become a stop string, and incomplete characters", () => {
    expect(releasableLength("hello ST", ["STOP"])).toBe(6);
    expect(releasableLength("hello S", ["STOP", "SX"])).toBe(6);
    expect(releasableLength("hello", ["STOP"])).toBe(5);
    expect(releasableLength("caf\uFFFD", [])).toBe(3);
    expect(releasableLength("", ["STOP"])).toBe(0);
  });

  it("holds back trailing whitespace when the grammar trims its answer's whitespace suffix", () => {
    expect(releasableLength('{"a": 1} \n', [])).toBe(10);
    expect(releasableLength('{"a": 1} \n', [], true)).toBe(8);
    expect(releasableLength('{"a": 1}\n\n\n', ["\n\n\n\n"], true)).toBe(8);
    expect(releasableLength("   ", [], true)).toBe(0);
    expect(releasableLength("x \uFFFD", [], true)).toBe(1);
  });

  it("sends only what lies beyond the text the client has, never a repeat", () => {
    const total = "The quick brown fox";
    expect(unsentText(total, 0)).toBe(total);
    expect(unsentText(total, 9)).toBe(" brown fox");
    expect(unsentText(total, total.length)).toBe("");
    // Text held back at the resume point (shorter releasable part) sends nothing yet.
    expect(unsentText("The qu", 9)).toBe("");
  });

  it("reassembles an interrupted stream exactly: sent prefix + resumed remainder", () => {
    const full = "alpha beta gamma delta";
    for (let cut = 0; cut <= full.length; cut++) {
      const sent = full.slice(0, cut);
      expect(sent + unsentText(full, sent.length)).toBe(full);
    }
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
