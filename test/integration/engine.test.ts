/**
 * LocalEngine end to end with real runner processes and real node-llama-cpp inference on
 * synthetic models. Outputs are checked against node-llama-cpp used directly in this test
 * process (same model, chat wrapper and greedy sampling), so the engine is proven to add
 * nothing and lose nothing: queueing, batching across slots, prefix reuse, cancellation,
 * crashes, keep-alive and shutdown must all leave greedy output unchanged.
 *
 * Most tests use a "text-only" variant of the tiny model whose output layer can only pick
 * printable text tokens (the synth option textOnlyOutput). Random weights otherwise favour byte tokens,
 * whose text re-tokenizes differently, and no server can reuse a cached answer whose tokens
 * differ from the re-rendered conversation; real models emit canonical tokens almost always.
 */

import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { ChatHistoryItem, ChatModelFunctions, Llama, LlamaContext, LlamaGrammar, LlamaModel } from "node-llama-cpp";
import { LlamaChat, LlamaCompletion, getLlama, resolveChatWrapper } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type * as DefaultsModule from "../../daemon/config/defaults.js";
import type { LimitsConfig, RunnerConfig } from "../../daemon/config/defaults.js";
import type * as LocalEngineModule from "../../daemon/engine/LocalEngine.js";
import type * as ModelRegistryModule from "../../daemon/models/ModelRegistry.js";
import type { ChatJob, ChatMessage, CompletionJob, GenerationResult, SamplingOptions } from "../../protocol/inference.js";
import { captureLogs } from "../support/logs.js";
import { ensureModel, ensureTinyModel } from "../support/models.js";
import { processAlive, waitFor } from "../support/wait.js";

// Runners are forked from dist/, so the engine must be the built one; types come from the
// sources because importing dist/*.d.ts makes them compiler inputs (TS5055).
const DIST = path.resolve(import.meta.dirname, "..", "..", "dist");
const { DEFAULT_LIMITS, DEFAULT_RUNNER } = (await import(path.join(DIST, "daemon/config/defaults.js"))) as typeof DefaultsModule;
const { LocalEngine } = (await import(path.join(DIST, "daemon/engine/LocalEngine.js"))) as typeof LocalEngineModule;
const { ModelRegistry } = (await import(path.join(DIST, "daemon/models/ModelRegistry.js"))) as typeof ModelRegistryModule;
type LocalEngine = LocalEngineModule.LocalEngine;

const CONTEXT_SIZE = 2048;
/** One thread per runner: ggml threads spin, and 2 shared cores make more threads slower. */
const RUNNER: RunnerConfig = { ...DEFAULT_RUNNER, threads: 1 };
const LIMITS: LimitsConfig = { ...DEFAULT_LIMITS, contextSize: CONTEXT_SIZE, parallelSlots: 4, queueDepth: 8 };

// ---- logs: the runner reports per-job token counts at debug level -----------------------

const { logger, entries: logEntries } = captureLogs("debug");

// ---- models ------------------------------------------------------------------------------

let workDir: string;
let modelsDir: string;
const engines: LocalEngine[] = [];

/** A copy of `source` that claims one more block than it has: valid GGUF, but llama.cpp refuses it. */
async function writeUnloadableModel(source: string, target: string): Promise<void> {
  const bytes = await fs.readFile(source);
  const key = Buffer.from("llama.block_count");
  const at = bytes.indexOf(key);
  if (at < 0) throw new Error("block_count not found");
  // Key bytes, then the value type (u32), then the value (u32).
  const valueAt = at + key.length + 4;
  bytes.writeUInt32LE(bytes.readUInt32LE(valueAt) + 1, valueAt);
  await fs.writeFile(target, bytes);
}

function newEngine(overrides: { limits?: Partial<LimitsConfig>; runner?: Partial<RunnerConfig> } = {}): LocalEngine {
  const catalog = new ModelRegistry({ modelsDir, extraPaths: [], aliases: { assistant: "text" }, logger });
  const engine = new LocalEngine({ catalog, limits: { ...LIMITS, ...overrides.limits }, runner: { ...RUNNER, ...overrides.runner }, logger });
  engines.push(engine);
  return engine;
}

// ---- direct node-llama-cpp, the reference ---------------------------------------------------

let llama: Llama;
const direct = new Map<string, { model: LlamaModel; context: LlamaContext }>();

async function directModel(name: string): Promise<{ model: LlamaModel; context: LlamaContext }> {
  let entry = direct.get(name);
  if (!entry) {
    const model = await llama.loadModel({ modelPath: path.join(modelsDir, `${name}.gguf`) });
    const context = await model.createContext({ contextSize: CONTEXT_SIZE, sequences: 1, threads: 1 });
    entry = { model, context };
    direct.set(name, entry);
  }
  return entry;
}

/** Greedy chat with node-llama-cpp alone, on a fresh sequence state (a cold run). */
async function directChat(name: string, history: ChatHistoryItem[], maxTokens: number, functions?: ChatModelFunctions, grammar?: LlamaGrammar): Promise<string> {
  const { context } = await directModel(name);
  const sequence = context.getSequence();
  try {
    const chat = new LlamaChat({ contextSequence: sequence });
    const options = { maxTokens, temperature: 0, repeatPenalty: false as const };
    const response = functions
      ? await chat.generateResponse(history, { ...options, functions })
      : await chat.generateResponse(history, grammar === undefined ? options : { ...options, grammar });
    return response.response;
  } finally {
    await sequence.dispose();
  }
}

async function directCompletion(name: string, prompt: string, maxTokens: number): Promise<string> {
  const { context } = await directModel(name);
  const sequence = context.getSequence();
  try {
    return await new LlamaCompletion({ contextSequence: sequence }).generateCompletion(prompt, { maxTokens, temperature: 0, repeatPenalty: false });
  } finally {
    await sequence.dispose();
  }
}

// ---- job builders --------------------------------------------------------------------------

function sampling(maxTokens: number | undefined, extra: Partial<SamplingOptions> = {}): SamplingOptions {
  return maxTokens === undefined ? { temperature: 0, stop: [], ...extra } : { temperature: 0, stop: [], maxTokens, ...extra };
}

function chatJob(messages: ChatMessage[], maxTokens: number | undefined, extra: Partial<ChatJob> = {}, model = "text"): ChatJob {
  return { kind: "chat", model, messages, sampling: sampling(maxTokens), responseFormat: { type: "text" }, tools: [], toolChoice: "auto", thinking: "auto", ...extra };
}

function completionJob(prompt: string, maxTokens: number | undefined, extra: Partial<CompletionJob> = {}): CompletionJob {
  return { kind: "completion", model: "text", prompt, sampling: sampling(maxTokens), echo: false, ...extra };
}

const never = (): AbortSignal => new AbortController().signal;

async function expectHearthError(promise: Promise<unknown>, code: string, extra: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
  const error = (await promise.then(
    () => {
      throw new Error(`expected ${code}, but the call succeeded`);
    },
    (reason: unknown) => reason,
  )) as Record<string, unknown>;
  expect(error).toMatchObject({ name: "HearthError", code, ...extra });
  return error;
}

/** Runner processes forked by this test process (Linux /proc). */
async function childRunnerPids(): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await fs.readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const status = await fs.readFile(`/proc/${entry}/status`, "utf8");
      const parent = /^PPid:\s+(\d+)$/m.exec(status)?.[1];
      if (Number(parent) !== process.pid) continue;
      const command = await fs.readFile(`/proc/${entry}/cmdline`, "utf8");
      if (command.includes("runnerMain.js")) pids.push(Number(entry));
    } catch {
      // The process ended while we looked.
    }
  }
  return pids;
}

function pidOf(engine: LocalEngine, modelId = "text"): number {
  const pid = engine.stats().loaded.find((model) => model.modelId === modelId)?.pid;
  if (pid === undefined) throw new Error(`model ${modelId} has no runner`);
  return pid;
}

beforeAll(async () => {
  workDir = await fs.mkdtemp(path.join(os.tmpdir(), "hearth-engine-"));
  modelsDir = path.join(workDir, "models");
  await fs.mkdir(modelsDir);
  const tiny = await ensureTinyModel();
  await fs.copyFile(tiny, path.join(modelsDir, "tiny.gguf"));
  await fs.copyFile(await ensureModel({ preset: "tiny", textOnlyOutput: true }, "tiny-text"), path.join(modelsDir, "text.gguf"));
  await writeUnloadableModel(tiny, path.join(modelsDir, "broken.gguf"));
  llama = await getLlama({ build: "never", progressLogs: false });
});

afterAll(async () => {
  await Promise.all(engines.map((engine) => engine.stop({ drainTimeoutMs: 0 })));
  for (const { context, model } of direct.values()) {
    await context.dispose();
    await model.dispose();
  }
  await llama?.dispose();
  if (workDir) await fs.rm(workDir, { recursive: true, force: true });
});

// ---- tests -----------------------------------------------------------------------------------

describe("LocalEngine output", () => {
  let engine: LocalEngine;
  beforeAll(() => {
    engine = newEngine();
  });

  it("greedy chat equals node-llama-cpp used directly, and streamed deltas concatenate to the text", async () => {
    const messages: ChatMessage[] = [
      { role: "system", content: "You are a helpful assistant." },
      { role: "user", content: "Write a haiku about the sea." },
    ];
    const deltas: string[] = [];
    const result = await engine.generate(chatJob(messages, 24), { signal: never(), onDelta: (delta) => deltas.push(delta.text) });
    const history: ChatHistoryItem[] = [
      { type: "system", text: "You are a helpful assistant." },
      { type: "user", text: "Write a haiku about the sea." },
      { type: "model", response: [] },
    ];
    const expected = await directChat("text", history, 24);
    expect(result.text).toBe(expected);
    const { model } = await directModel("text");
    const promptTokens = resolveChatWrapper(model).generateContextState({ chatHistory: history }).contextText.tokenize(model.tokenizer);
    expect(result.usage.promptTokens).toBe(promptTokens.length);
    expect(result.text.length).toBeGreaterThan(0);
    expect(deltas.join("")).toBe(result.text);
    expect(deltas.length).toBeGreaterThan(1);
    expect(result.finishReason).toBe("length");
    expect(result.usage.completionTokens).toBe(24);
    expect(result.toolCalls).toEqual([]);
    expect(result.timeToFirstTokenMs).toBeGreaterThanOrEqual(0);
  });

  it("greedy chat on the unmodified tiny model (byte tokens and all) equals node-llama-cpp too", async () => {
    const result = await engine.generate(chatJob([{ role: "user", content: "Hello!" }], 16, {}, "tiny"), { signal: never() });
    const expected = await directChat("tiny", [{ type: "user", text: "Hello!" }, { type: "model", response: [] }], 16);
    expect(result.text).toBe(expected);
  });

  it("resolves aliases through the catalog to the same loaded model", async () => {
    const before = pidOf(engine);
    const viaAlias = await engine.generate(chatJob([{ role: "user", content: "Hi" }], 4, {}, "assistant"), { signal: never() });
    const viaId = await engine.generate(chatJob([{ role: "user", content: "Hi" }], 4), { signal: never() });
    expect(viaAlias.text).toBe(viaId.text);
    expect(pidOf(engine)).toBe(before);
    await expectHearthError(engine.generate(chatJob([{ role: "user", content: "Hi" }], 4, {}, "../text"), { signal: never() }), "HEARTH_MODEL_NOT_FOUND");
  });

  it("greedy completion equals LlamaCompletion used directly; echo prepends the prompt", async () => {
    const prompt = "Once upon a time";
    const deltas: string[] = [];
    const plain = await engine.generate(completionJob(prompt, 20), { signal: never() });
    expect(plain.text).toBe(await directCompletion("text", prompt, 20));
    expect(plain.finishReason).toBe("length");
    expect(plain.usage.completionTokens).toBe(20);
    const echoed = await engine.generate(completionJob(prompt, 20, { echo: true }), { signal: never(), onDelta: (delta) => deltas.push(delta.text) });
    expect(echoed.text).toBe(prompt + plain.text);
    expect(deltas.join("")).toBe(echoed.text);
  });

  it("stops before a stop string and leaves it out of the output", async () => {
    const messages: ChatMessage[] = [{ role: "user", content: "Count with me." }];
    const free = await engine.generate(chatJob(messages, 24), { signal: never() });
    const stop = free.text.slice(6, 8);
    const cut = free.text.slice(0, free.text.indexOf(stop));
    const deltas: string[] = [];
    const stopped = await engine.generate({ ...chatJob(messages, 24), sampling: sampling(24, { stop: [stop] }) }, { signal: never(), onDelta: (delta) => deltas.push(delta.text) });
    expect(stopped.text).toBe(cut);
    expect(stopped.text).not.toContain(stop);
    expect(stopped.finishReason).toBe("stop");
    expect(deltas.join("")).toBe(stopped.text);

    const completion = await engine.generate(completionJob("The rain", 24), { signal: never() });
    const completionStop = completion.text.slice(5, 7);
    const completionStopped = await engine.generate({ ...completionJob("The rain", 24), sampling: sampling(24, { stop: [completionStop] }) }, { signal: never() });
    expect(completionStopped.text).toBe(completion.text.slice(0, completion.text.indexOf(completionStop)));
    expect(completionStopped.finishReason).toBe("stop");
  });

  it("samples reproducibly with a seed at temperature > 0", async () => {
    const job = (seed: number): ChatJob => ({ ...chatJob([{ role: "user", content: "Surprise me." }], 16), sampling: sampling(16, { temperature: 1.2, topP: 0.95, seed }) });
    const first = await engine.generate(job(7), { signal: never() });
    const again = await engine.generate(job(7), { signal: never() });
    const other = await engine.generate(job(8), { signal: never() });
    const greedy = await engine.generate(chatJob([{ role: "user", content: "Surprise me." }], 16), { signal: never() });
    expect(again.text).toBe(first.text);
    expect(other.text).not.toBe(first.text);
    expect(first.text).not.toBe(greedy.text);
  });

  it("without max_tokens generates until the context is full and finishes with length", async () => {
    const prompt = "x".repeat(CONTEXT_SIZE - 40);
    const result = await engine.generate(completionJob(prompt, undefined), { signal: never() });
    expect(result.finishReason).toBe("length");
    expect(result.usage.promptTokens + result.usage.completionTokens).toBe(CONTEXT_SIZE - 1);
  });

  it("json_schema output parses and matches the schema", async () => {
    const schema = {
      type: "object",
      properties: { ok: { type: "boolean" }, size: { enum: ["small", "large"] }, name: { type: "string", maxLength: 4 } },
      required: ["ok", "size", "name"],
      additionalProperties: false,
    };
    const result = await engine.generate(chatJob([{ role: "user", content: "Describe it as JSON." }], 64, { responseFormat: { type: "json_schema", name: "thing", schema } }), {
      signal: never(),
    });
    expect(result.finishReason).toBe("stop");
    const parsed = JSON.parse(result.text) as Record<string, unknown>;
    expect(Object.keys(parsed).sort()).toEqual(["name", "ok", "size"]);
    expect(typeof parsed["ok"]).toBe("boolean");
    expect(["small", "large"]).toContain(parsed["size"]);
    expect(typeof parsed["name"]).toBe("string");
    expect((parsed["name"] as string).length).toBeLessThanOrEqual(4);

    // json_object: node-llama-cpp's JSON grammar, whose root is an object; the same greedy
    // generation under that grammar as node-llama-cpp produces it directly.
    const object = await engine.generate(chatJob([{ role: "user", content: "JSON please." }], 64, { responseFormat: { type: "json_object" } }), { signal: never() });
    const directObject = await directChat("text", [{ type: "user", text: "JSON please." }, { type: "model", response: [] }], 64, undefined, await llama.getGrammarFor("json"));
    expect(object.text).toBe(directObject);
    expect(object.text.trimStart().startsWith("{")).toBe(true);
  });

  it("rejects schemas node-llama-cpp cannot enforce with HEARTH_UNSUPPORTED_SCHEMA", async () => {
    for (const schema of [{ type: "string", pattern: "^a+$" }, { type: "object", properties: { n: { type: "integer", minimum: 3 } } }, {}]) {
      await expectHearthError(
        engine.generate(chatJob([{ role: "user", content: "Hi" }], 8, { responseFormat: { type: "json_schema", name: "bad", schema } }), { signal: never() }),
        "HEARTH_UNSUPPORTED_SCHEMA",
        { param: "response_format" },
      );
    }
    await expectHearthError(
      engine.generate(
        chatJob([{ role: "user", content: "Hi" }], 8, { tools: [{ name: "f", parameters: { type: "object", properties: { a: { allOf: [] } } } }], toolChoice: "auto" }),
        { signal: never() },
      ),
      "HEARTH_UNSUPPORTED_SCHEMA",
      { param: "tools" },
    );
  });

  it("tool_choice required returns tool calls with ids and JSON arguments matching the tool's schema", async () => {
    const tools = [{ name: "get_weather", description: "Weather for a number of days", parameters: { type: "object", properties: { days: { enum: [1, 2, 3] } }, required: ["days"] } }];
    const result = await engine.generate(chatJob([{ role: "user", content: "Weather?" }], 96, { tools, toolChoice: "required" }), { signal: never() });
    // A random-weight model may go on writing calls: "tool_calls" only if it ended within the limit, else "length" with the completed ones.
    expect(result.finishReason).toBe(result.usage.completionTokens >= 96 ? "length" : "tool_calls");
    expect(result.toolCalls.length).toBeGreaterThan(0);
    for (const call of result.toolCalls) {
      expect(call.id).toMatch(/^call_[A-Za-z0-9_-]{8,}$/);
      expect(call.name).toBe("get_weather");
      expect([1, 2, 3]).toContain((JSON.parse(call.arguments) as { days: unknown }).days);
    }
    expect(new Set(result.toolCalls.map((call) => call.id)).size).toBe(result.toolCalls.length);

    // Answering the calls continues the same model turn, as node-llama-cpp renders it directly.
    const followUp: ChatMessage[] = [
      { role: "user", content: "Weather?" },
      { role: "assistant", content: "", toolCalls: result.toolCalls },
      ...result.toolCalls.map((call): ChatMessage => ({ role: "tool", toolCallId: call.id, content: '{"celsius":21}' })),
    ];
    const answer = await engine.generate(chatJob(followUp, 12, { tools, toolChoice: "auto" }), { signal: never() });
    const functions: ChatModelFunctions = { get_weather: { description: "Weather for a number of days", params: tools[0]!.parameters as never } };
    const expected = await directChat(
      "text",
      [
        { type: "user", text: "Weather?" },
        {
          type: "model",
          response: result.toolCalls.map((call, index) => ({
            type: "functionCall" as const,
            name: call.name,
            params: JSON.parse(call.arguments) as unknown,
            result: { celsius: 21 },
            startsNewChunk: index === 0,
          })),
        },
      ],
      12,
      functions,
    );
    expect(answer.text).toBe(expected);

    await expectHearthError(
      engine.generate(chatJob([{ role: "user", content: "Hi" }, { role: "tool", toolCallId: "call_nobody", content: "1" }], 4), { signal: never() }),
      "HEARTH_INVALID_REQUEST",
      { param: "messages" },
    );
  });

  it("tool_choice none offers no tools: output equals a request without tools", async () => {
    const tools = [{ name: "lookup", parameters: { type: "object", properties: { q: { type: "string" } } } }];
    const messages: ChatMessage[] = [{ role: "user", content: "Find it." }];
    const withNone = await engine.generate(chatJob(messages, 12, { tools, toolChoice: "none" }), { signal: never() });
    const without = await engine.generate(chatJob(messages, 12), { signal: never() });
    expect(withNone.text).toBe(without.text);
    expect(withNone.toolCalls).toEqual([]);
  });

  it("embeddings are deterministic, in input order, and as long as the model's embedding size", async () => {
    const result = await engine.embed({ kind: "embedding", model: "text", inputs: ["alpha", "beta gamma", "alpha"] }, { signal: never() });
    const embd = (await directModel("text")).model.embeddingVectorSize;
    expect(result.vectors).toHaveLength(3);
    for (const vector of result.vectors) expect(vector).toHaveLength(embd);
    expect(result.vectors[0]).toEqual(result.vectors[2]);
    expect(result.vectors[0]).not.toEqual(result.vectors[1]);
    const again = await engine.embed({ kind: "embedding", model: "text", inputs: ["beta gamma"] }, { signal: never() });
    expect(again.vectors[0]).toEqual(result.vectors[1]);
    const { model } = await directModel("text");
    const embeddingContext = await model.createEmbeddingContext({ contextSize: CONTEXT_SIZE, batchSize: CONTEXT_SIZE, threads: 1 });
    try {
      expect(result.vectors[1]).toEqual([...(await embeddingContext.getEmbeddingFor("beta gamma")).vector]);
      const tokens = ["alpha", "beta gamma", "alpha"].reduce((sum, input) => sum + embeddingContext.calculateInputLength(input), 0);
      expect(result.promptTokens).toBe(tokens);
    } finally {
      await embeddingContext.dispose();
    }
  });

  it("answers HEARTH_CONTEXT_OVERFLOW naming the field when a prompt does not fit", async () => {
    const long = "y".repeat(CONTEXT_SIZE + 10);
    await expectHearthError(engine.generate(chatJob([{ role: "user", content: long }], 4), { signal: never() }), "HEARTH_CONTEXT_OVERFLOW", { param: "messages" });
    await expectHearthError(engine.generate(completionJob(long, 4), { signal: never() }), "HEARTH_CONTEXT_OVERFLOW", { param: "prompt" });
    await expectHearthError(engine.embed({ kind: "embedding", model: "text", inputs: ["ok", long] }, { signal: never() }), "HEARTH_CONTEXT_OVERFLOW", { param: "input" });
    // The runner is still fine afterwards.
    const after = await engine.generate(completionJob("still", 2), { signal: never() });
    expect(after.usage.completionTokens).toBe(2);
  });
});

describe("LocalEngine parallel slots and queue", () => {
  it("serves four concurrent chats in one runner, each with its own prompt's answer", async () => {
    const engine = newEngine({ limits: { parallelSlots: 4, queueDepth: 0 } });
    const prompts = ["Tell me about cats.", "What is 2+2?", "Name a color.", "Say hello in French."];
    const job = (prompt: string): ChatJob => chatJob([{ role: "user", content: prompt }], 24);
    const sequential: string[] = [];
    for (const prompt of prompts) sequential.push((await engine.generate(job(prompt), { signal: never() })).text);
    const pid = pidOf(engine);
    // queueDepth 0: all four only fit if they hold the four slots at the same time.
    let peakRunning = 0;
    const logStart = logEntries.length;
    const concurrent = await Promise.all(
      prompts.map((prompt) =>
        engine.generate(job(prompt), {
          signal: never(),
          onDelta: () => {
            peakRunning = Math.max(peakRunning, engine.stats().loaded[0]?.running ?? 0);
          },
        }),
      ),
    );
    // Batched decoding is not bit-identical to decoding alone (llama.cpp sums in a different
    // order with other sequences in the batch, and a reused cache prefix skips evaluation), so a
    // random-weight model's greedy text may drift after a while. What must hold: each job got
    // its own prompt's answer (no cross-talk between slots), which shows in the first tokens.
    const PREFIX = 8;
    expect(new Set(sequential.map((text) => text.slice(0, PREFIX))).size).toBe(prompts.length);
    expect(concurrent.map((result) => result.text.slice(0, PREFIX))).toEqual(sequential.map((text) => text.slice(0, PREFIX)));
    expect(peakRunning).toBe(4);
    expect(pidOf(engine)).toBe(pid);
    // One runner, four sequences of its one context: each job had a slot of its own. The slot a
    // job ran in shows only in the runner's per-job log line; no API reports it.
    const slots = logEntries.slice(logStart).filter((entry) => entry.msg === "chat job done").map((entry) => entry["slot"]);
    expect(new Set(slots)).toEqual(new Set([0, 1, 2, 3]));
  });

  it("rejects beyond slots + depth with HEARTH_QUEUE_FULL and retryAfterSeconds, and serves the queue in order", async () => {
    const engine = newEngine({ limits: { parallelSlots: 1, queueDepth: 2, retryAfterSeconds: 7 } });
    await engine.generate(completionJob("warm", 1), { signal: never() });
    const order: string[] = [];
    const track = (name: string, job: CompletionJob, onDelta?: () => void): Promise<GenerationResult> =>
      engine.generate(job, { signal: never(), ...(onDelta ? { onDelta } : {}) }).then((result) => {
        order.push(name);
        return result;
      });
    let blockerStarted = false;
    const blocker = track("blocker", completionJob("blocker", 600), () => {
      blockerStarted = true;
    });
    await waitFor(() => blockerStarted, 10_000, "the blocker to generate");
    // Admit one at a time, so arrival order is known.
    const first = track("first", completionJob("first", 8));
    await waitFor(() => engine.stats().loaded[0]?.queued === 1, 5_000, "one queued request");
    const second = track("second", completionJob("second", 8));
    await waitFor(() => engine.stats().loaded[0]?.queued === 2, 5_000, "two queued requests");
    await expectHearthError(engine.generate(completionJob("one too many", 4), { signal: never() }), "HEARTH_QUEUE_FULL", { retryAfterSeconds: 7 });
    await expectHearthError(engine.embed({ kind: "embedding", model: "text", inputs: ["x"] }, { signal: never() }), "HEARTH_QUEUE_FULL");
    const results = await Promise.all([blocker, first, second]);
    expect(order).toEqual(["blocker", "first", "second"]);
    expect(results.map((result) => result.usage.completionTokens)).toEqual([600, 8, 8]);
  });

  it("a request aborted while queued leaves the queue and never runs", async () => {
    const engine = newEngine({ limits: { parallelSlots: 1, queueDepth: 4 } });
    await engine.generate(completionJob("warm", 1), { signal: never() });
    let firstStarted = false;
    const first = engine.generate(completionJob("first", 400), {
      signal: never(),
      onDelta: () => {
        firstStarted = true;
      },
    });
    await waitFor(() => firstStarted, 10_000, "the first request to generate");
    const controller = new AbortController();
    const queued = engine.generate(completionJob("queued", 48), { signal: controller.signal });
    await waitFor(() => engine.stats().loaded[0]?.queued === 1, 5_000, "a queued request");
    controller.abort();
    await expectHearthError(queued, "HEARTH_CANCELLED");
    expect(engine.stats().loaded[0]?.queued).toBe(0);
    await first;
    await waitFor(() => engine.stats().loaded[0]?.running === 0, 5_000, "an idle model");
  });
});

describe("LocalEngine prompt prefix reuse", () => {
  it("a follow-up turn reuses the cached conversation and matches a cold run of it", async () => {
    const engine = newEngine();
    const turn1: ChatMessage[] = [
      { role: "system", content: "You answer briefly." },
      { role: "user", content: "Tell me a story about a lighthouse." },
    ];
    const first = await engine.generate(chatJob(turn1, 24), { signal: never() });
    expect(first.cachedPromptTokens).toBe(0);
    const turn2: ChatMessage[] = [...turn1, { role: "assistant", content: first.text }, { role: "user", content: "And then what happened?" }];
    const logStart = logEntries.length;
    const second = await engine.generate(chatJob(turn2, 12), { signal: never() });

    // Exact batching (the default) keeps the cache up to where the first answer was generated:
    // its tokens were decoded one at a time, which a cold run of turn 2 would not do.
    expect(second.cachedPromptTokens).toBe(first.usage.promptTokens);

    // The KV cache really was reused: the runner decoded only the new prompt tokens plus
    // the generated ones it fed back, per node-llama-cpp's own token meter.
    // Only the runner's token accounting (its debug log) shows what it decoded; no API reports it.
    const done = logEntries.slice(logStart).filter((entry) => entry.msg === "chat job done");
    expect(done).toEqual([expect.objectContaining({ decodedTokens: second.usage.promptTokens - second.cachedPromptTokens + second.usage.completionTokens - 1 })]);

    const cold = await directChat(
      "text",
      [
        { type: "system", text: "You answer briefly." },
        { type: "user", text: "Tell me a story about a lighthouse." },
        { type: "model", response: [first.text] },
        { type: "user", text: "And then what happened?" },
        { type: "model", response: [] },
      ],
      12,
    );
    expect(second.text).toBe(cold);
  });

  it("sends each conversation to the slot holding its prefix, not to a recently used one", async () => {
    const engine = newEngine();
    const conversations = ["Alpha conversation about rivers.", "Beta conversation about mountains."].map((text): ChatMessage[] => [{ role: "user", content: text }]);
    const firsts: GenerationResult[] = [];
    for (const messages of conversations) firsts.push(await engine.generate(chatJob(messages, 16), { signal: never() }));
    // Continue the older conversation first: its cache must still be there.
    const followUp = await engine.generate(chatJob([...conversations[0]!, { role: "assistant", content: firsts[0]!.text }, { role: "user", content: "More." }], 4), {
      signal: never(),
    });
    expect(followUp.cachedPromptTokens).toBe(firsts[0]!.usage.promptTokens);
  });

  it("completions reuse a shared prompt prefix and report it", async () => {
    const engine = newEngine();
    const base = "The history of the printing press begins";
    await engine.generate(completionJob(base, 8), { signal: never() });
    const extended = await engine.generate(completionJob(`${base} in Mainz`, 8), { signal: never() });
    expect(extended.cachedPromptTokens).toBeGreaterThanOrEqual(base.length - 2);
    expect(extended.text).toBe(await directCompletion("text", `${base} in Mainz`, 8));
  });
});

describe("LocalEngine cancellation and failures", () => {
  it("aborting mid-generation answers HEARTH_CANCELLED promptly and the slot is reused", async () => {
    const engine = newEngine({ limits: { parallelSlots: 1, queueDepth: 1 } });
    const controller = new AbortController();
    let deltas = 0;
    let abortedAt = 0;
    const logStart = logEntries.length;
    const running = engine.generate(completionJob("A long tale:", 1500), {
      signal: controller.signal,
      onDelta: () => {
        deltas++;
        if (deltas === 3) {
          abortedAt = Date.now();
          controller.abort();
        }
      },
    });
    await expectHearthError(running, "HEARTH_CANCELLED");
    const deltasAtCancel = deltas;
    const pid = pidOf(engine);
    // The runner stops within a token, so its slot frees long before 1500 tokens could be made.
    await waitFor(() => engine.stats().loaded[0]?.running === 0, 5_000, "the slot to be released");
    const releaseMs = Date.now() - abortedAt;
    const next = await engine.generate(completionJob("Next", 8), { signal: never() });
    expect(next.usage.completionTokens).toBe(8);
    expect(pidOf(engine)).toBe(pid);
    // No delta of the cancelled job leaked after its rejection, and only "Next" completed: the
    // runner's per-job log line is the only record of a job it finished.
    expect(deltas).toBe(deltasAtCancel);
    const completed = logEntries.slice(logStart).filter((entry) => entry.msg === "completion job done");
    expect(completed.map((entry) => entry["sampledTokens"])).toEqual([8]);
    expect(releaseMs).toBeLessThan(5_000);
  });

  it("a runner killed mid-generation fails only its in-flight requests, and the next request starts a new runner", async () => {
    const engine = newEngine({ limits: { parallelSlots: 2, queueDepth: 2 } });
    await engine.generate(completionJob("warm", 1), { signal: never() });
    const pid = pidOf(engine);
    let started = false;
    const inFlight = [0, 1].map((index) =>
      engine.generate(completionJob(`story ${index}`, 1500), {
        signal: never(),
        onDelta: () => {
          started = true;
        },
      }),
    );
    await waitFor(() => started, 10_000, "generation to start");
    process.kill(pid, "SIGKILL");
    for (const request of inFlight) {
      const error = await expectHearthError(request, "HEARTH_RUNNER_CRASHED");
      expect(String(error["message"])).toContain("SIGKILL");
    }
    await waitFor(() => !processAlive(pid), 5_000, "the runner to be gone");
    const next = await engine.generate(completionJob("after the crash", 8), { signal: never() });
    expect(next.text).toBe(await directCompletion("text", "after the crash", 8));
    const newPid = pidOf(engine);
    expect(newPid).not.toBe(pid);
    expect(await childRunnerPids()).toContain(newPid);
    expect(await childRunnerPids()).not.toContain(pid);
  });

  it("unloads an idle model after keep-alive and reloads it on the next request", async () => {
    const engine = newEngine({ limits: { keepAliveMs: 300 } });
    const first = await engine.generate(completionJob("hello", 4), { signal: never() });
    const pid = pidOf(engine);
    await waitFor(() => engine.stats().loaded.length === 0, 10_000, "the model to unload");
    await waitFor(() => !processAlive(pid), 5_000, "the runner to exit");
    const second = await engine.generate(completionJob("hello", 4), { signal: never() });
    expect(second.text).toBe(first.text);
    expect(pidOf(engine)).not.toBe(pid);
  });

  it("does not unload a model while it is busy, even past keep-alive", async () => {
    const keepAliveMs = 50;
    const engine = newEngine({ limits: { keepAliveMs, parallelSlots: 1 } });
    await engine.generate(completionJob("warm", 1), { signal: never() });
    const pid = pidOf(engine);
    const started = Date.now();
    let changed = false;
    const result = await engine.generate(completionJob("long", 600), {
      signal: never(),
      onDelta: () => {
        if (!processAlive(pid) || engine.stats().loaded[0]?.pid !== pid || engine.stats().loaded[0]?.state !== "ready") changed = true;
      },
    });
    expect(Date.now() - started).toBeGreaterThan(keepAliveMs * 2);
    expect(result.usage.completionTokens).toBe(600);
    expect(changed).toBe(false);
    await waitFor(() => engine.stats().loaded.length === 0, 5_000, "the unload after the request");
  });

  it("a model that fails to load rejects every waiting request with HEARTH_MODEL_LOAD_FAILED and leaves nothing behind", async () => {
    const engine = newEngine({ limits: { parallelSlots: 1, queueDepth: 4 } });
    const before = await childRunnerPids();
    const attempts = [0, 1, 2].map(() => engine.generate(chatJob([{ role: "user", content: "Hi" }], 4, {}, "broken"), { signal: never() }));
    for (const attempt of attempts) {
      const error = await expectHearthError(attempt, "HEARTH_MODEL_LOAD_FAILED");
      expect(String(error["message"]).length).toBeGreaterThan(0);
    }
    expect(engine.stats().loaded).toEqual([]);
    const leftovers = (await childRunnerPids()).filter((pid) => !before.includes(pid));
    for (const pid of leftovers) await waitFor(() => !processAlive(pid), 5_000, `runner ${pid} to exit`);
    // A later request tries again (and fails again) rather than hitting a stuck host.
    await expectHearthError(engine.generate(completionJob("again", 2, { model: "broken" }), { signal: never() }), "HEARTH_MODEL_LOAD_FAILED");
    // Other models are unaffected.
    expect((await engine.generate(completionJob("fine", 2), { signal: never() })).usage.completionTokens).toBe(2);
  });

  it("a runner that misses the load timeout is killed and the request fails with HEARTH_MODEL_LOAD_FAILED", async () => {
    const engine = newEngine({ runner: { loadTimeoutMs: 1 } });
    const error = await expectHearthError(engine.generate(completionJob("hi", 2), { signal: never() }), "HEARTH_MODEL_LOAD_FAILED");
    expect(String(error["message"])).toMatch(/within 1 ms/);
    expect(engine.stats().loaded).toEqual([]);
  });

  it("stop() lets in-flight requests finish within the drain time, refuses new work and stops the runner", async () => {
    const engine = newEngine();
    await engine.generate(completionJob("warm", 1), { signal: never() });
    const pid = pidOf(engine);
    let started = false;
    const inFlight = engine.generate(completionJob("finish me", 64), {
      signal: never(),
      onDelta: () => {
        started = true;
      },
    });
    await waitFor(() => started, 10_000, "generation to start");
    const stopping = engine.stop({ drainTimeoutMs: 60_000 });
    await expectHearthError(engine.generate(completionJob("late", 2), { signal: never() }), "HEARTH_SHUTTING_DOWN");
    await expectHearthError(engine.embed({ kind: "embedding", model: "text", inputs: ["late"] }, { signal: never() }), "HEARTH_SHUTTING_DOWN");
    expect((await inFlight).usage.completionTokens).toBe(64);
    await stopping;
    expect(processAlive(pid)).toBe(false);
    expect(engine.stats().loaded).toEqual([]);
  });

  it("stop() fails what is still running or queued after the drain time with HEARTH_SHUTTING_DOWN", async () => {
    const engine = newEngine({ limits: { parallelSlots: 1, queueDepth: 2 } });
    let started = false;
    const long = engine.generate(completionJob("long", 1900), {
      signal: never(),
      onDelta: () => {
        started = true;
      },
    });
    await waitFor(() => started, 10_000, "generation to start");
    const pid = pidOf(engine);
    const queued = engine.generate(completionJob("queued", 4), { signal: never() });
    await waitFor(() => engine.stats().loaded[0]?.queued === 1, 5_000, "a queued request");
    const stopping = engine.stop({ drainTimeoutMs: 200 });
    await expectHearthError(long, "HEARTH_SHUTTING_DOWN");
    await expectHearthError(queued, "HEARTH_SHUTTING_DOWN");
    await stopping;
    expect(processAlive(pid)).toBe(false);
    expect(engine.stats().loaded).toEqual([]);
  });
});
