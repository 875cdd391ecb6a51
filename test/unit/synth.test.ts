// Synthetic models: deterministic bytes per seed, the right tensor types and file_type per
// quant, option validation, atomic writes, and the CLI's flag handling (scripted models' too).

import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { synthOptionsFromFlags } from "../../cli/commands/synth.js";
import { runCli } from "../../cli/program.js";
import { localMachine } from "../../daemon/commands/index.js";
import { describeGguf, readGgufHeader } from "../../daemon/gguf/reader.js";
import { LLAMA3_1_CHAT_TEMPLATE, SCRIPTED_CHAT_TEMPLATE, writeScriptedModel } from "../../daemon/gguf/scriptedModel.js";
import { SYNTH_CHAT_TEMPLATE, SYNTH_PRESETS, validateSynthOptions, writeSyntheticModel, type SynthOptions, type SynthQuant } from "../../daemon/gguf/synth.js";
import { GgmlType, GgufValueType, writeGgufFile } from "../../daemon/gguf/writer.js";
import { LLAMA3_ANSWER, THINK_THEN_ANSWER } from "../support/scripts.js";
import { thrownBy } from "../support/thrown.js";

let dir: string;
beforeAll(async () => {
  dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), "hearth-synth-test-"));
});
afterAll(async () => {
  await fs.promises.rm(dir, { recursive: true, force: true });
});

const small = (overrides: Partial<SynthOptions> = {}): SynthOptions => ({ ...SYNTH_PRESETS.tiny, layers: 2, seed: 1, ...overrides });

async function sha256(file: string): Promise<string> {
  return createHash("sha256").update(await fs.promises.readFile(file)).digest("hex");
}

function usageParam(action: () => unknown): string | null {
  const error = thrownBy(action);
  expect(error.code).toBe("HEARTH_CLI_USAGE");
  return error.param;
}

describe("determinism", () => {
  it("the same seed gives a byte-identical file, another seed a different one", async () => {
    const [a, b, c] = ["a", "b", "c"].map((name) => path.join(dir, `${name}.gguf`));
    await writeSyntheticModel(a!, small({ quant: "q8_0", seed: 7 }));
    await writeSyntheticModel(b!, small({ quant: "q8_0", seed: 7 }));
    await writeSyntheticModel(c!, small({ quant: "q8_0", seed: 8 }));
    expect(await sha256(a!)).toBe(await sha256(b!));
    expect(await sha256(a!)).not.toBe(await sha256(c!));
    // Same shape, so only tensor data differs.
    expect((await fs.promises.stat(a!)).size).toBe((await fs.promises.stat(c!)).size);
  });

  it("the tiny preset is generated in well under a second", async () => {
    const started = performance.now();
    const result = await writeSyntheticModel(path.join(dir, "tiny.gguf"), { ...SYNTH_PRESETS.tiny, seed: 1 });
    expect(performance.now() - started).toBeLessThan(1000);
    expect(result.parameterCount).toBe(1_665_664);
    expect(result.fileBytes).toBe((await fs.promises.stat(path.join(dir, "tiny.gguf"))).size);
  });
});

describe("quant types", () => {
  const expected: Record<SynthQuant, { fileType: number; matrixType: number; name: string; shape?: Partial<SynthOptions> }> = {
    f32: { fileType: 0, matrixType: GgmlType.F32, name: "F32" },
    f16: { fileType: 1, matrixType: GgmlType.F16, name: "F16" },
    q4_0: { fileType: 2, matrixType: GgmlType.Q4_0, name: "Q4_0" },
    q8_0: { fileType: 7, matrixType: GgmlType.Q8_0, name: "Q8_0" },
    // Q4_K rows are whole 256-value super-blocks.
    q4_k: { fileType: 14, matrixType: GgmlType.Q4_K, name: "Q4_K", shape: { embd: 256, ff: 512 } },
  };
  for (const [quant, want] of Object.entries(expected) as [SynthQuant, (typeof expected)[SynthQuant]][]) {
    it(`${quant}: matrices are ${want.name}, norm vectors stay F32, general.file_type is ${want.fileType}`, async () => {
      const file = path.join(dir, `types-${quant}.gguf`);
      const result = await writeSyntheticModel(file, small({ quant, ...want.shape }));
      const header = await readGgufHeader(file);
      expect(header.metadata.get("general.file_type")).toEqual({ type: GgufValueType.UINT32, value: want.fileType });
      for (const tensor of header.tensors) {
        expect([tensor.name, tensor.type]).toEqual([tensor.name, tensor.name.includes("norm") ? GgmlType.F32 : want.matrixType]);
      }
      const description = describeGguf(header);
      expect(description.quantization).toBe(want.name);
      expect(description.parameterCount).toBe(result.parameterCount);
    });
  }

  it("stores the tool-calling ChatML template unless told otherwise", async () => {
    const withTemplate = await readGgufHeader(path.join(dir, "types-f32.gguf"));
    expect(withTemplate.metadata.get("tokenizer.chat_template")).toEqual({ type: GgufValueType.STRING, value: SYNTH_CHAT_TEMPLATE });
    const file = path.join(dir, "no-template.gguf");
    await writeSyntheticModel(file, small({ chatTemplate: null }));
    expect((await readGgufHeader(file)).metadata.has("tokenizer.chat_template")).toBe(false);
  });
});

describe("validation", () => {
  const cases: [Partial<SynthOptions>, keyof SynthOptions][] = [
    [{ layers: 0 }, "layers"],
    [{ embd: -128 }, "embd"],
    [{ ff: 1.5 }, "ff"],
    [{ heads: Number.NaN }, "heads"],
    [{ contextLength: 0 }, "contextLength"],
    [{ seed: -1 }, "seed"],
    [{ seed: 2 ** 32 }, "seed"],
    [{ quant: "q5_k" as SynthQuant }, "quant"],
    [{ embd: 130, heads: 4 }, "heads"], // not divisible
    [{ heads: 4, kvHeads: 3 }, "kvHeads"],
    [{ embd: 96, heads: 32 }, "heads"], // head dim 3 is odd
    [{ embd: 144, heads: 4, quant: "q8_0" }, "embd"], // rows of 144 are not 32-blocks
    [{ ff: 100, quant: "q4_0" }, "ff"],
    [{ quant: "q4_k" }, "embd"], // rows of 128 are not 256-value super-blocks
    [{ embd: 256, ff: 384, quant: "q4_k" }, "ff"],
    [{ embd: 65536, ff: 65536, heads: 64, kvHeads: 64 }, "ff"],
    [{ layers: 513 }, "layers"],
  ];
  for (const [overrides, param] of cases) {
    it(`rejects ${JSON.stringify(overrides)} naming ${param}`, () => {
      expect(usageParam(() => validateSynthOptions(small(overrides)))).toBe(param);
    });
  }

  it("accepts f16 rows that are not 32-blocks, and every preset", () => {
    expect(() => validateSynthOptions(small({ embd: 144, heads: 4, quant: "f16" }))).not.toThrow();
    for (const preset of Object.values(SYNTH_PRESETS)) expect(() => validateSynthOptions({ ...preset, seed: 0 })).not.toThrow();
  });

  it("writeSyntheticModel validates before creating anything", async () => {
    const file = path.join(dir, "never.gguf");
    await expect(writeSyntheticModel(file, small({ kvHeads: 3 }))).rejects.toMatchObject({ code: "HEARTH_CLI_USAGE", param: "kvHeads" });
    expect(fs.existsSync(file)).toBe(false);
  });
});

describe("atomic writes", () => {
  it("a failure mid-write leaves neither the target nor a temp file, and keeps an older file intact", async () => {
    const sub = await fs.promises.mkdtemp(path.join(dir, "atomic-"));
    const target = path.join(sub, "model.gguf");
    await fs.promises.writeFile(target, "previous");
    const tensors = [0, 1, 2].map((i) => ({ name: `t${i}`, dims: [8], type: GgmlType.F32, byteLength: 32 }));
    await expect(
      writeGgufFile(target, new Map(), tensors, (_tensor, index) => {
        if (index === 2) throw new Error("generator failed");
        return new Uint8Array(32);
      }),
    ).rejects.toThrow("generator failed");
    expect(await fs.promises.readdir(sub)).toEqual(["model.gguf"]);
    expect(await fs.promises.readFile(target, "utf8")).toBe("previous");
  });

  it("the file only appears under its name once complete", async () => {
    const sub = await fs.promises.mkdtemp(path.join(dir, "appear-"));
    const target = path.join(sub, "model.gguf");
    const seenDuringWrite: string[][] = [];
    const tensors = [0, 1].map((i) => ({ name: `t${i}`, dims: [8], type: GgmlType.F32, byteLength: 32 }));
    await writeGgufFile(target, new Map(), tensors, () => {
      seenDuringWrite.push(fs.readdirSync(sub));
      return new Uint8Array(32);
    });
    for (const names of seenDuringWrite) {
      expect(names).not.toContain("model.gguf");
      expect(names.every((name) => name.endsWith(".partial"))).toBe(true);
    }
    expect(await fs.promises.readdir(sub)).toEqual(["model.gguf"]);
  });
});

describe("hearth synth flags", () => {
  it("explicit flags override the preset", () => {
    const { preset, options } = synthOptionsFromFlags({ preset: "small", layers: "3", kvHeads: "8", ctx: "2048", quant: "Q4_0", seed: "0" }, localMachine.synth);
    expect(preset).toBe("small");
    expect(options).toEqual({ ...SYNTH_PRESETS.small, layers: 3, kvHeads: 8, contextLength: 2048, quant: "q4_0", seed: 0 });
  });

  it("defaults to the tiny preset with seed 1", () => {
    expect(synthOptionsFromFlags({ preset: "tiny" }, localMachine.synth).options).toEqual({ ...SYNTH_PRESETS.tiny, seed: 1 });
  });

  it("bad values are HEARTH_CLI_USAGE naming the flag", () => {
    expect(usageParam(() => synthOptionsFromFlags({ preset: "huge" }, localMachine.synth))).toBe("preset");
    expect(usageParam(() => synthOptionsFromFlags({ preset: "tiny", layers: "2x" }, localMachine.synth))).toBe("layers");
    expect(usageParam(() => synthOptionsFromFlags({ preset: "tiny", quant: "q2_k" }, localMachine.synth))).toBe("quant");
    let message = "";
    try {
      synthOptionsFromFlags({ preset: "tiny", kvHeads: "3" }, localMachine.synth);
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain("--kv-heads");
  });
});

describe("hearth synth --script --template", () => {
  /** `hearth synth ARGS` in this process, on this machine, with what it printed. */
  async function synth(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    const out: string[] = [];
    const err: string[] = [];
    const stdout = vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => out.push(String(chunk)) > 0);
    const stderr = vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => err.push(String(chunk)) > 0);
    try {
      const code = await runCli(["node", "hearth", "synth", ...args], localMachine);
      return { code, stdout: out.join(""), stderr: err.join("") };
    } finally {
      stdout.mockRestore();
      stderr.mockRestore();
      process.exitCode = undefined;
    }
  }

  async function scriptFile(name: string, script: string): Promise<string> {
    const file = path.join(dir, `${name}.txt`);
    await fs.promises.writeFile(file, script);
    return file;
  }

  it("--template llama3 writes the Llama 3.1 template with <|eot_id|> as EOS, and --json names the family", async () => {
    const out = path.join(dir, "llama3-cli.gguf");
    const { code, stdout } = await synth([out, "--script", await scriptFile("llama3", LLAMA3_ANSWER), "--template", "llama3", "--json"]);
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toMatchObject({ path: out, family: "llama3", generatedTokens: 8 });
    const { metadata } = await readGgufHeader(out);
    expect(metadata.get("tokenizer.chat_template")?.value).toBe(LLAMA3_1_CHAT_TEMPLATE);
    const tokens = metadata.get("tokenizer.ggml.tokens")?.value as string[];
    expect(tokens[metadata.get("tokenizer.ggml.eos_token_id")?.value as number]).toBe("<|eot_id|>");
  });

  it("without --template writes the qwen3 family, byte for byte the writer's default", async () => {
    const [out, reference] = [path.join(dir, "qwen3-cli.gguf"), path.join(dir, "qwen3-writer.gguf")];
    const { code, stdout } = await synth([out, "--script", await scriptFile("qwen3", THINK_THEN_ANSWER)]);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^wrote .*qwen3-cli\.gguf\n {2}scripted \(qwen3 template\): \d+ tokens answered/);
    await writeScriptedModel(reference, { script: THINK_THEN_ANSWER });
    expect(await sha256(out)).toBe(await sha256(reference));
    expect((await readGgufHeader(out)).metadata.get("tokenizer.chat_template")?.value).toBe(SCRIPTED_CHAT_TEMPLATE);
  });

  it("an unknown family is HEARTH_CLI_USAGE naming the known ones, and writes nothing", async () => {
    const out = path.join(dir, "gemma-cli.gguf");
    const { code, stdout, stderr } = await synth([out, "--script", await scriptFile("gemma", LLAMA3_ANSWER), "--template", "gemma"]);
    expect(code).toBe(2);
    expect(stdout).toBe("");
    expect(stderr).toBe('error [HEARTH_CLI_USAGE]: the template family must be one of qwen3, llama3 (got "gemma")\n');
    expect(fs.existsSync(out)).toBe(false);
  });

  it("--template without --script is HEARTH_CLI_USAGE: a random-weight model has no template family", async () => {
    const out = path.join(dir, "random-cli.gguf");
    const { code, stderr } = await synth([out, "--template", "llama3"]);
    expect(code).toBe(2);
    expect(stderr).toBe("error [HEARTH_CLI_USAGE]: --template applies to a scripted model only (with --script)\n");
    expect(fs.existsSync(out)).toBe(false);
  });
});
