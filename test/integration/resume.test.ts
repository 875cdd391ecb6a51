/**
 * Resumed generations in a real runner (daemon/runner/samplingReplay.ts): what a split
 * placement does after losing a node (docs/splitting.md "How failure recovery works"), without
 * the cluster. Each case generates a reference answer while recording what the daemon's ledger
 * records (sampled token ids, then the deltas they released), cuts that record in the middle,
 * sends the same job again with `resume: {tokens, sent}`, and checks that what the client would
 * see, the deltas it had plus the resumed stream, is the reference answer exactly: plain
 * completions and chats, seeded sampling, frequency/presence penalties, `response_format`
 * grammars, and (on a scripted model) thoughts and parallel tool calls. The penalty and grammar
 * cases first check that the feature changes the answer, so a resumed job that ignored it would
 * fail. test/cluster/split.test.ts covers the same through a SIGKILLed peer.
 */

import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type * as RunnerProcessModule from "../../daemon/engine/RunnerProcess.js";
import type { ChatJob, CompletionJob, GenerationDelta, GenerationResult, SamplingOptions } from "../../protocol/inference.js";
import type { ResumeState } from "../../protocol/runnerIpc.js";
import { ContinuationLedger } from "../../daemon/split/continuation.js";
import { captureLogs } from "../support/logs.js";
import { ensureModel, ensureScriptedModel } from "../support/models.js";
import { THINK_THEN_CALL_TWO_TOOLS, WEATHER_TOOLS } from "../support/scripts.js";

const DIST = path.resolve(import.meta.dirname, "..", "..", "dist");
const { RunnerProcess } = (await import(path.join(DIST, "daemon/engine/RunnerProcess.js"))) as typeof RunnerProcessModule;

const { logger } = captureLogs("info");
let runner: RunnerProcessModule.RunnerProcess;
let scripted: RunnerProcessModule.RunnerProcess;

function startRunner(modelPath: string, modelId: string): Promise<RunnerProcessModule.RunnerProcess> {
  const started = new RunnerProcess({
    load: { modelPath, modelId, contextSize: 1024, parallelSlots: 2, threads: 1, gpuLayers: 0, batchSize: 128, batching: "exact", embeddings: false },
    loadTimeoutMs: 60_000,
    stopTimeoutMs: 5_000,
    logger,
  });
  return started.start().then(() => started);
}

beforeAll(async () => {
  [runner, scripted] = await Promise.all([
    ensureModel({ preset: "tiny", textOnlyOutput: true }, "tiny-text").then((modelPath) => startRunner(modelPath, "text")),
    ensureScriptedModel("scripted-tools", THINK_THEN_CALL_TWO_TOOLS).then((modelPath) => startRunner(modelPath, "scripted")),
  ]);
});

afterAll(async () => {
  await Promise.all([runner?.stop(), scripted?.stop()]);
});

function sampling(maxTokens: number, extra: Partial<SamplingOptions> = {}): SamplingOptions {
  return { temperature: 0, stop: [], maxTokens, ...extra };
}

function chat(content: string, maxTokens: number, extra: Partial<ChatJob> = {}): ChatJob {
  return { kind: "chat", model: "text", messages: [{ role: "user", content }], sampling: sampling(maxTokens), responseFormat: { type: "text" }, tools: [], toolChoice: "auto", thinking: "auto", ...extra };
}

function completion(prompt: string, maxTokens: number, extra: Partial<CompletionJob> = {}): CompletionJob {
  return { kind: "completion", model: "text", prompt, sampling: sampling(maxTokens), echo: false, ...extra };
}

/** The ledger's view of a generation: token ids and released deltas, in the order they came. */
type LedgerEvent = { tokens: number[] } | { delta: GenerationDelta };

/** What a client holds of each part after these deltas. */
function partsOf(events: readonly LedgerEvent[]): { answer: string; reasoning: string } {
  const parts = { answer: "", reasoning: "" };
  for (const event of events) if ("delta" in event) parts[event.delta.part] += event.delta.text;
  return parts;
}

interface Recorded {
  result: GenerationResult;
  events: LedgerEvent[];
}

async function record(job: ChatJob | CompletionJob, on = runner): Promise<Recorded> {
  const events: LedgerEvent[] = [];
  const result = await on.generate(job, { onTokens: (tokens) => events.push({ tokens }), onDelta: (delta) => events.push({ delta }) });
  return { result, events };
}

/** What the daemon's own ContinuationLedger holds after the first `eventCount` events. */
function ledgerAfter(events: readonly LedgerEvent[], eventCount: number): ResumeState {
  const ledger = new ContinuationLedger();
  for (const event of events.slice(0, eventCount)) {
    if ("tokens" in event) ledger.recordTokens(event.tokens);
    else ledger.recordDelta(event.delta);
  }
  const state = ledger.resumeState();
  if (state === undefined) throw new Error(`the ledger holds no resume state after ${eventCount} events`);
  return state;
}

/** Resumes `job` from the middle of `reference`; returns what the client holds in the end and the resumed result. */
async function resumeFromMiddle(job: ChatJob | CompletionJob, reference: Recorded, on = runner): Promise<{ streamed: { answer: string; reasoning: string }; result: GenerationResult; resume: ResumeState }> {
  // Cut right after a delta, as a stream does; about halfway, never after the last.
  const deltaEvents = reference.events.flatMap((event, index) => ("delta" in event ? [index] : []));
  expect(deltaEvents.length).toBeGreaterThanOrEqual(2);
  const cut = deltaEvents[Math.floor((deltaEvents.length - 1) / 2)]! + 1;
  const resume = ledgerAfter(reference.events, cut);
  expect(resume.tokens.length).toBeGreaterThan(0);
  const resumedEvents: LedgerEvent[] = [];
  const result = await on.generate(job, { resume, onDelta: (delta) => resumedEvents.push({ delta }) });
  return { streamed: partsOf([...reference.events.slice(0, cut), ...resumedEvents]), result, resume };
}

async function expectExactContinuation(job: ChatJob | CompletionJob, on = runner): Promise<Recorded> {
  const reference = await record(job, on);
  const { streamed, result, resume } = await resumeFromMiddle(job, reference, on);
  expect(streamed).toEqual({ answer: reference.result.text, reasoning: reference.result.reasoning });
  expect(result.text).toBe(reference.result.text);
  expect(result.reasoning).toBe(reference.result.reasoning);
  expect(result.toolCalls.map(({ name, arguments: args }) => ({ name, args }))).toEqual(reference.result.toolCalls.map(({ name, arguments: args }) => ({ name, args })));
  expect(result.usage).toEqual(reference.result.usage);
  expect(result.finishReason).toBe(reference.result.finishReason);
  expect(resume.tokens.length).toBeLessThan(reference.result.usage.completionTokens);
  return reference;
}

describe("resumed generations continue exactly", () => {
  it("a completion and a chat", async () => {
    await expectExactContinuation(completion("The hearth keeps", 40));
    await expectExactContinuation(chat("Tell me about the fire.", 40));
  });

  it("with seeded sampling at a temperature, whose random draws are replayed too", async () => {
    const greedy = await record(chat("Tell me a story.", 40));
    const seeded = await expectExactContinuation(chat("Tell me a story.", 40, { sampling: sampling(40, { temperature: 0.9, seed: 42 }) }));
    expect(seeded.result.text).not.toBe(greedy.result.text);
  });

  it("with frequency and presence penalties, which change the answer", async () => {
    const penalties = { frequencyPenalty: 1.5, presencePenalty: 1.0 };
    const plainCompletion = await record(completion("Once upon a time", 60));
    const penalised = await expectExactContinuation(completion("Once upon a time", 60, { sampling: sampling(60, penalties) }));
    expect(penalised.result.text).not.toBe(plainCompletion.result.text);

    const plainChat = await record(chat("Say something long.", 60));
    const penalisedChat = await expectExactContinuation(chat("Say something long.", 60, { sampling: sampling(60, penalties) }));
    expect(penalisedChat.result.text).not.toBe(plainChat.result.text);
  });

  it("explicit zero penalties (what many clients send) are no penalty, and resume", async () => {
    const plain = await record(chat("Hello there.", 30));
    const zeros = await expectExactContinuation(chat("Hello there.", 30, { sampling: sampling(30, { frequencyPenalty: 0, presencePenalty: 0 }) }));
    expect(zeros.result.text).toBe(plain.result.text);
  });

  it("under a response_format grammar (json_schema and json_object), whose parser state is replayed", async () => {
    // Short fields, so the answer completes within the budget and the grammar's own end (and its whitespace trimming) is resumed through too.
    const schema = { type: "object", properties: { warm: { type: "boolean" }, size: { enum: ["small", "large"] }, name: { type: "string", maxLength: 4 } }, required: ["warm", "size", "name"], additionalProperties: false };
    const plain = await record(chat("Describe the room as JSON.", 80));
    const constrained = await expectExactContinuation(chat("Describe the room as JSON.", 80, { responseFormat: { type: "json_schema", name: "room", schema } }));
    expect(constrained.result.text).not.toBe(plain.result.text);
    expect(constrained.result.finishReason).toBe("stop");
    const parsed = JSON.parse(constrained.result.text) as Record<string, unknown>;
    expect(Object.keys(parsed).sort()).toEqual(["name", "size", "warm"]);

    const object = await expectExactContinuation(chat("Anything as JSON.", 80, { responseFormat: { type: "json_object" } }));
    expect(object.result.text.trimStart().startsWith("{")).toBe(true);
  });

  it("with thoughts and two parallel tool calls, through node-llama-cpp's own parsers", async () => {
    const job: ChatJob = { ...chat("Weather and time in Paris?", 200), model: "scripted", tools: WEATHER_TOOLS, toolChoice: "auto" };
    const reference = await expectExactContinuation(job, scripted);
    expect(reference.result.reasoning).toBe("The user wants weather and time.");
    expect(reference.result.toolCalls.map(({ name, arguments: args }) => [name, args])).toEqual([
      ["get_weather", '{"city":"Paris"}'],
      ["get_time", '{"zone":"CET"}'],
    ]);
    expect(reference.result.finishReason).toBe("tool_calls");
  });

  it("refuses, with HEARTH_RESUME_UNSUPPORTED, tokens its grammar does not allow, and the runner goes on", async () => {
    // Tokens of plain text cannot be the start of a JSON answer.
    const plain = await record(chat("Describe the room.", 12));
    const resume = ledgerAfter(plain.events, plain.events.length);
    const json = chat("Describe the room.", 12, { responseFormat: { type: "json_object" } });
    await expect(runner.generate(json, { resume })).rejects.toMatchObject({ code: "HEARTH_RESUME_UNSUPPORTED", message: expect.stringMatching(/^The generation cannot be continued: at token 0 the continuation sampled \d+, where the lost runner had sampled \d+\.$/) as unknown });
    expect((await runner.generate(chat("Still there?", 4))).usage.completionTokens).toBeGreaterThan(0);
  });
});
