import { describe, expect, it } from "vitest";
import { buildVocabulary, planScriptedModel, scriptWords, tokenize } from "../../daemon/gguf/scriptedModel.js";
import { thrownBy } from "../support/thrown.js";
import { THINK_THEN_ANSWER, THINK_THEN_CALL_TWO_TOOLS } from "../support/scripts.js";

const textOf = (vocab: ReturnType<typeof buildVocabulary>, ids: number[]): string[] => ids.map((id) => vocab.tokens[id]!);

describe("scripted model: words and tokenizer", () => {
  it("cuts a script into words with their leading space, special tokens and call syntax apart", () => {
    expect(scriptWords("<think>\nHm, ok.\n</think>\n\nIt is sunny.<|im_end|>")).toEqual(["Hm,", " ok.", "It", " is", " sunny."]);
    expect(scriptWords('<tool_call>\n{"name": "get_time", "arguments": {"zone": "CET"}}\n</tool_call>')).toEqual(['{"name": "', "get_time", '", "arguments": ', '{"zone":', ' "CET"}', "}"]);
  });

  it("tokenizes the script back into its words, newlines as bytes and specials as themselves", () => {
    const script = "<think>\nHm, ok.\n</think>\n\nIt is sunny.<|im_end|>";
    const vocab = buildVocabulary(script);
    expect(textOf(vocab, tokenize(vocab, script))).toEqual(["<think>", "<0x0A>", "Hm,", "▁ok.", "<0x0A>", "</think>", "<0x0A>", "<0x0A>", "It", "▁is", "▁sunny.", "<|im_end|>"]);
  });

  it("falls back to bytes for text outside the script and merges only whole known pieces", () => {
    const vocab = buildVocabulary("sunny day<|im_end|>");
    expect(textOf(vocab, tokenize(vocab, "sun dayz"))).toEqual(["sun", "▁day", "z"]);
  });
});

describe("scripted model: plan", () => {
  it("answers with the script, token for token, and ends the turn", () => {
    const plan = planScriptedModel({ script: THINK_THEN_ANSWER });
    expect(plan.generated.join("")).toBe(THINK_THEN_ANSWER.replaceAll(" ", "▁").replaceAll("\n", "<0x0A>") + "<|im_end|>");
    expect(plan.order).toBeGreaterThanOrEqual(1);
  });

  it("encodes two parallel calls, which need context back to the call's arguments", () => {
    const plan = planScriptedModel({ script: THINK_THEN_CALL_TWO_TOOLS });
    expect(plan.generated.filter((token) => token === "<tool_call>")).toHaveLength(2);
    expect(plan.order).toBeGreaterThanOrEqual(4);
  });

  it("refuses a script whose repeats continue differently beyond the context it can see", () => {
    const error = thrownBy(() => planScriptedModel({ script: "a b c d e f X a b c d e f Y<|im_end|>" }));
    expect(error.code).toBe("HEARTH_CLI_USAGE");
    expect(error.message).toMatch(/^the script cannot be encoded: at tokens \d+, \d+ the same 5 tokens in a row continue differently; vary the text before one of them$/);
  });
});
