/**
 * Resumed generations in a real runner (daemon/runner/resumeJob.ts): what a split placement
 * does after losing a node (docs/splitting.md "How failure recovery works"), without the
 * cluster. Each case generates a reference answer while recording what the daemon's ledger
 * records (token ids, then the text they released), cuts that record in the middle, sends the
 * same job again with `resume: {tokens, sentText}`, and checks that what the client would
 * see, the text it had plus the resumed stream, is the reference text exactly: plain
 * completions and chats, frequency/presence penalties, and `response_format` grammars. The
 * penalty and grammar cases first check that the feature changes the answer, so a resumed job
 * that ignored it would fail. test/cluster/split.test.ts covers the same through a SIGKILLed
 * peer.
 */

import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type * as RunnerProcessModule from "../../daemon/engine/RunnerProcess.js";
import type { ChatJob, CompletionJob, GenerationResult, SamplingOptions } from "../../protocol/inference.js";
import type { ResumeState } from "../../protocol/runnerIpc.js";
import { ContinuationLedger } from "../../daemon/split/continuation.js";
import { captureLogs } from "../support/logs.js";
import { ensureModel } from "../support/models.js";

const DIST = path.resolve(import.meta.dirname, "..", "..", "dist");
const { RunnerProcess } = (await import(path.join(DIST, "daemon/engine/RunnerProcess.js"))) as typeof RunnerProcessModule;

const { logger } = captureLogs("info");
let runner: RunnerProcessModule.RunnerProcess;

beforeAll(async () => {
  const modelPath = await ensureModel({ preset: "tiny", textOnlyOutput: true }, "tiny-text");
  runner = new RunnerProcess({
    load: { modelPath, modelId: "text", contextSize: 1024, parallelSlots: 2, threads: 1, gpuLayers: 0, batchSize: 128, embeddings: false },
    loadTimeoutMs: 60_000,
    stopTimeoutMs: 5_000,
    logger,
  });
  await runner.start();
});

afterAll(async () => {
  await runner?.stop();
});

function sampling(maxTokens: number, extra: Partial<SamplingOptions> = {}): SamplingOptions {
  return { temperature: 0, stop: [], maxTokens, ...extra };
}

function chat(content: string, maxTokens: number, extra: Partial<ChatJob> = {}): ChatJob {
  return { kind: "chat", model: "text", messages: [{ role: "user", content }], sampling: sampling(maxTokens), responseFormat: { type: "text" }, tools: [], toolChoice: "auto", ...extra };
}

function completion(prompt: string, maxTokens: number, extra: Partial<CompletionJob> = {}): CompletionJob {
  return { kind: "completion", model: "text", prompt, sampling: sampling(maxTokens), echo: false, ...extra };
}

/** The ledger's view of a generation: token ids and released text, in the order they came. */
type LedgerEvent = { tokens: number[] } | { text: string };

interface Recorded {
  result: GenerationResult;
  events: LedgerEvent[];
}

async function record(job: ChatJob | CompletionJob): Promise<Recorded> {
  const events: LedgerEvent[] = [];
  const result = await runner.generate(job, { onTokens: (tokens) => events.push({ tokens }), onDelta: (delta) => events.push({ text: delta.text }) });
  return { result, events };
}

/** What the daemon's own ContinuationLedger holds after the first `eventCount` events. */
function ledgerAfter(events: readonly LedgerEvent[], eventCount: number): ResumeState {
  const ledger = new ContinuationLedger();
  for (const event of events.slice(0, eventCount)) {
    if ("tokens" in event) ledger.recordTokens(event.tokens);
    else ledger.recordText(event.text);
  }
  const state = ledger.resumeState();
  if (state === undefined) throw new Error(`the ledger holds no resume state after ${eventCount} events`);
  return state;
}

/** Resumes `job` from the middle of `reference`; returns the client's whole text and the resumed result. */
async function resumeFromMiddle(job: ChatJob | CompletionJob, reference: Recorded): Promise<{ streamed: string; result: GenerationResult; resume: ResumeState }> {
  // Cut right after a text event, as a stream does; about halfway, never after the last.
  const textEvents = reference.events.flatMap((event, index) => ("text" in event ? [index] : []));
  expect(textEvents.length).toBeGreaterThanOrEqual(2);
  const cut = textEvents[Math.floor((textEvents.length - 1) / 2)]! + 1;
  const resume = ledgerAfter(reference.events, cut);
  expect(resume.tokens.length).toBeGreaterThan(0);
  expect(resume.sentText.length).toBeLessThan(reference.result.text.length);
  const deltas: string[] = [];
  const result = await runner.generate(job, { resume, onDelta: (delta) => deltas.push(delta.text) });
  return { streamed: resume.sentText + deltas.join(""), result, resume };
}

async function expectExactContinuation(job: ChatJob | CompletionJob): Promise<Recorded> {
  const reference = await record(job);
  const { streamed, result, resume } = await resumeFromMiddle(job, reference);
  expect(streamed).toBe(reference.result.text);
  expect(result.text).toBe(reference.result.text);
  expect(result.usage.completionTokens).toBe(reference.result.usage.completionTokens);
  expect(result.finishReason).toBe(reference.result.finishReason);
  expect(resume.tokens.length).toBeLessThan(reference.result.usage.completionTokens);
  return reference;
}

describe("resumed generations continue exactly", () => {
  it("a completion and a chat", async () => {
    await expectExactContinuation(completion("The hearth keeps", 40));
    await expectExactContinuation(chat("Tell me about the fire.", 40));
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

  it("refuses, with HEARTH_RESUME_UNSUPPORTED, a job that may call tools, and a grammar job whose tokens do not fit its grammar", async () => {
    const tools = [{ name: "light", description: "Lights the fire.", parameters: { type: "object", properties: {} } }];
    const withTools = chat("Light the fire.", 20, { tools, toolChoice: "auto" });
    await expect(runner.generate(withTools, { resume: { tokens: [5, 6], sentText: "x" } })).rejects.toMatchObject({ code: "HEARTH_RESUME_UNSUPPORTED", message: expect.stringMatching(/may call tools/) as unknown });

    // Tokens of plain text cannot be the start of a JSON answer.
    const plain = await record(chat("Describe the room.", 12));
    const resume = ledgerAfter(plain.events, plain.events.length);
    const json = chat("Describe the room.", 12, { responseFormat: { type: "json_object" } });
    await expect(runner.generate(json, { resume })).rejects.toMatchObject({ code: "HEARTH_RESUME_UNSUPPORTED", message: expect.stringMatching(/grammar cannot be restored/) as unknown });
    // The runner survives both and still answers.
    expect((await runner.generate(chat("Still there?", 4))).usage.completionTokens).toBeGreaterThan(0);
  });
});
