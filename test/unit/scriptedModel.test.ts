import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { readGgufHeader } from "../../daemon/gguf/reader.js";
import { LLAMA3_1_CHAT_TEMPLATE, SCRIPTED_CHAT_TEMPLATE, buildVocabulary, planScriptedModel, scriptWords, tokenize, writeScriptedModel } from "../../daemon/gguf/scriptedModel.js";
import { thrownBy } from "../support/thrown.js";
import { LLAMA3_ANSWER, LLAMA3_CALL_WEATHER, THINK_THEN_ANSWER, THINK_THEN_CALL_TWO_TOOLS } from "../support/scripts.js";

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

  it("puts the script in the last block behind pass-through blocks whose outputs are all zero", async () => {
    const directory = fs.mkdtempSync(path.join(os.tmpdir(), "hearth-scripted-"));
    try {
      const file = path.join(directory, "layered.gguf");
      const plan = await writeScriptedModel(file, { script: THINK_THEN_ANSWER, layers: 3 });
      expect(plan).toEqual(planScriptedModel({ script: THINK_THEN_ANSWER }));
      const header = await readGgufHeader(file);
      expect(header.metadata.get("llama.block_count")?.value).toBe(3);
      const bytes = fs.readFileSync(file);
      const tensor = (name: string): Buffer => {
        const info = header.tensors.find((candidate) => candidate.name === name)!;
        return bytes.subarray(header.dataOffset + info.offset, header.dataOffset + info.offset + info.byteLength);
      };
      for (const block of [0, 1]) {
        for (const name of ["attn_output", "ffn_down"]) expect(tensor(`blk.${block}.${name}.weight`).every((byte) => byte === 0)).toBe(true);
      }
      expect(tensor("blk.2.attn_output.weight").some((byte) => byte !== 0)).toBe(true);
      expect(tensor("blk.2.ffn_down.weight").some((byte) => byte !== 0)).toBe(true);
    } finally {
      fs.rmSync(directory, { recursive: true, force: true });
    }
  });

  it("refuses a layer count outside 1 to 64 with a usage error", () => {
    for (const layers of [0, 65, 1.5]) {
      const error = thrownBy(() => planScriptedModel({ script: THINK_THEN_ANSWER, layers }));
      expect(error.code).toBe("HEARTH_CLI_USAGE");
      expect(error.message).toBe(`a scripted model has 1 to 64 layers, not ${layers}`);
    }
  });
});

describe("scripted model: llama3 family", () => {
  it("cuts a call at the wrapper's own text, so the function name never merges with the `>` after it", () => {
    expect(scriptWords(LLAMA3_CALL_WEATHER, "llama3")).toEqual(["<function=", "get_weather", ">", '{"city":', ' "Paris"}', "</function>"]);
  });

  it("parses the Llama 3.1 turn markers as one control token each", () => {
    const vocab = buildVocabulary(LLAMA3_ANSWER, "llama3");
    const ids = tokenize(vocab, "<|start_header_id|>assistant<|end_header_id|>\n\n<|eot_id|><|eom_id|>");
    expect(textOf(vocab, ids)).toEqual(["<|start_header_id|>", ..."assistant", "<|end_header_id|>", "<0x0A>", "<0x0A>", "<|eot_id|>", "<|eom_id|>"]);
    const CONTROL = 3;
    for (const marker of ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|eom_id|>"]) expect(vocab.types[vocab.ids.get(marker)!]).toBe(CONTROL);
  });

  it("answers with the text script, token for token, then <|eot_id|>", () => {
    const plan = planScriptedModel({ script: LLAMA3_ANSWER, family: "llama3" });
    expect(plan.generated).toEqual(["It", "▁is", "▁sunny", "▁in", "▁Paris", "▁today.", "<|eot_id|>", "<|eot_id|>"]);
  });

  it("answers with the call as Llama3_1ChatWrapper renders it, then <|eot_id|>", () => {
    const plan = planScriptedModel({ script: LLAMA3_CALL_WEATHER, family: "llama3" });
    expect(plan.generated).toEqual(["<function=", "get_weather", ">", '{"city":', '▁"Paris"}', "</function>", "<|eom_id|>", "<|eot_id|>"]);
  });

  it("writes the Llama 3.1 template, <|begin_of_text|> as BOS and <|eot_id|> as EOS", async () => {
    const directory = fs.mkdtempSync(path.join(os.tmpdir(), "hearth-scripted-"));
    try {
      const file = path.join(directory, "llama3.gguf");
      await writeScriptedModel(file, { script: LLAMA3_CALL_WEATHER, family: "llama3" });
      const { metadata } = await readGgufHeader(file);
      const tokens = metadata.get("tokenizer.ggml.tokens")?.value as string[];
      expect(metadata.get("tokenizer.chat_template")?.value).toBe(LLAMA3_1_CHAT_TEMPLATE);
      expect(tokens[metadata.get("tokenizer.ggml.bos_token_id")?.value as number]).toBe("<|begin_of_text|>");
      expect(tokens[metadata.get("tokenizer.ggml.eos_token_id")?.value as number]).toBe("<|eot_id|>");
      expect(tokens).not.toContain("<|im_end|>");
    } finally {
      fs.rmSync(directory, { recursive: true, force: true });
    }
  });

  it("qwen3 is the default: naming it writes the same bytes as leaving it out", async () => {
    const directory = fs.mkdtempSync(path.join(os.tmpdir(), "hearth-scripted-"));
    try {
      const [implicit, explicit] = [path.join(directory, "implicit.gguf"), path.join(directory, "explicit.gguf")];
      await writeScriptedModel(implicit, { script: THINK_THEN_CALL_TWO_TOOLS });
      await writeScriptedModel(explicit, { script: THINK_THEN_CALL_TWO_TOOLS, family: "qwen3" });
      expect(fs.readFileSync(explicit).equals(fs.readFileSync(implicit))).toBe(true);
      expect((await readGgufHeader(implicit)).metadata.get("tokenizer.chat_template")?.value).toBe(SCRIPTED_CHAT_TEMPLATE);
    } finally {
      fs.rmSync(directory, { recursive: true, force: true });
    }
  });

  it("takes Qwen's <|im_end|> as plain text of the script, which does not end a llama3 turn", () => {
    // Plain words, except `>`, which stands alone wherever it appears.
    expect(planScriptedModel({ script: "Hi<|im_end|>", family: "llama3" }).generated).toEqual(["Hi<|im_end|", ">", "<|eot_id|>"]);
  });
});
