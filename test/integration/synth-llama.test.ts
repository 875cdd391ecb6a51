// Every synthetic quant type loads in the real node-llama-cpp and decodes greedily and
// deterministically; the chat template makes node-llama-cpp pick a tool-calling wrapper.
// An integration test: it loads node-llama-cpp's native binding and real models in this
// process (nothing is forked, so the sources are imported directly).
//
// Contexts use one thread: node-llama-cpp defaults to max(4, cores) CPU threads, and on a
// 2-core machine shared with other test processes ggml's spinning thread barriers then make
// each token take hundreds of milliseconds.

import { getLlama, LlamaChatSession, type Llama, type LlamaModel } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SYNTH_QUANTS, type SynthOptions, type SynthQuant } from "../../daemon/gguf/synth.js";
import { ensureModel, ensureTinyModel } from "../support/models.js";

const GENERATED_TOKENS = 12;
/** Q4_K rows are whole 256-value super-blocks: wider than the tiny preset's 128. */
const WIDER: Partial<Record<SynthQuant, Partial<SynthOptions>>> = { q4_k: { embd: 256, ff: 512 } };

let llama: Llama;
beforeAll(async () => {
  llama = await getLlama({ build: "never" });
});
afterAll(async () => {
  await llama.dispose();
});

async function greedyTokens(model: LlamaModel, prompt: string): Promise<number[]> {
  const context = await model.createContext({ contextSize: 512, threads: 1 });
  try {
    const sequence = context.getSequence();
    const tokens: number[] = [];
    for await (const token of sequence.evaluate(model.tokenize(prompt), { temperature: 0 })) {
      tokens.push(token);
      if (tokens.length >= GENERATED_TOKENS) break;
    }
    return tokens;
  } finally {
    await context.dispose();
  }
}

describe("node-llama-cpp loads every synthetic quant type", () => {
  for (const quant of SYNTH_QUANTS) {
    it(`${quant}: loads with the expected shape and greedy-decodes the same tokens twice`, async () => {
      const modelPath = await ensureModel({ preset: "tiny", layers: 2, quant, ...WIDER[quant] }, `load-${quant}`);
      const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
      try {
        expect(model.fileInfo.metadata.general.architecture).toBe("llama");
        expect(model.trainContextSize).toBe(4096);
        expect(model.tokens.bos).toBe(1);
        expect(model.tokens.eos).toBe(2);
        const first = await greedyTokens(model, "Hello, hearth!");
        const second = await greedyTokens(model, "Hello, hearth!");
        expect(first).toHaveLength(GENERATED_TOKENS);
        expect(second).toEqual(first);
        for (const token of first) expect(token).toBeLessThan(354);
      } finally {
        await model.dispose();
      }
    });
  }
});

describe("chat wrapper", () => {
  it("resolves the JinjaTemplate wrapper with <tool_call> function syntax and chats", async () => {
    const model = await llama.loadModel({ modelPath: await ensureTinyModel(), gpuLayers: 0 });
    const context = await model.createContext({ contextSize: 2048, threads: 1 });
    try {
      const session = new LlamaChatSession({ contextSequence: context.getSequence() });
      expect(session.chatWrapper.wrapperName).toBe("JinjaTemplate");
      const call = session.chatWrapper.settings.functions.call;
      expect(JSON.stringify(call.prefix)).toContain("<tool_call>");
      const rendered = session.chatWrapper.generateContextState({
        chatHistory: [
          { type: "user", text: "Weather?" },
          { type: "model", response: [{ type: "functionCall", name: "weather", params: { city: "Oslo" }, result: "cold" }, "It is cold."] },
        ],
        availableFunctions: { weather: { description: "Weather of a city", params: { type: "object", properties: { city: { type: "string" } } } } },
      });
      const text = rendered.contextText.toString();
      expect(text).toContain('<tool_call>\n{"name": "weather", "arguments": {"city": "Oslo"}}\n</tool_call>');
      expect(text).toContain("<tool_response>\ncold\n</tool_response>");
      const answer = await session.prompt("Hi", { maxTokens: 6, temperature: 0 });
      session.resetChatHistory();
      expect(await session.prompt("Hi", { maxTokens: 6, temperature: 0 })).toBe(answer);
    } finally {
      await context.dispose();
      await model.dispose();
    }
  });
});
