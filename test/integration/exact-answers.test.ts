/**
 * Greedy answers do not depend on a runner's history or on what it runs beside them
 * (scheduler/exactDecoding.ts): a request answered from a slot's cache, a follow-up turn whose
 * prompt repeats a cached answer, and completions running four at once on one runner all give
 * what a freshly started daemon gives for the same request alone. The models are the shapes
 * where llama.cpp's kernels showed the differences (1024 wide; q8_0 through the cache and
 * flash attention, f16 through sequences batched together); on "throughput" batching the
 * cached and concurrent answers differ from the fresh ones on this shape.
 */

import { afterAll, describe, expect, it } from "vitest";
import { startDaemon, type RunningDaemon } from "../support/daemon.js";
import { ensureModel } from "../support/models.js";

const SHAPE = { layers: 8, embd: 1024, ff: 4096, heads: 8, kvHeads: 4, seed: 7 } as const;
const MAX_TOKENS = 48;
const QUESTION = [{ role: "user", content: "Tell me about splitting layers." }];
const PROMPTS = ["Hearth splits layers over RPC. 0123456789", "The quick brown fox jumps", "Distributed inference at home", "Zebra crossing 42"];

interface Answer {
  text: string;
  promptTokens: number;
  cachedTokens: number;
}

async function post(daemon: RunningDaemon, path: string, body: Record<string, unknown>): Promise<Answer> {
  const response = await fetch(daemon.url + path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: "m", max_tokens: MAX_TOKENS, temperature: 0, ...body }) });
  const json = (await response.json()) as { choices: Array<{ text?: string; message?: { content: string } }>; usage: { prompt_tokens: number; prompt_tokens_details: { cached_tokens: number } } };
  expect(response.status, JSON.stringify(json)).toBe(200);
  const choice = json.choices[0]!;
  return { text: choice.text ?? choice.message!.content, promptTokens: json.usage.prompt_tokens, cachedTokens: json.usage.prompt_tokens_details.cached_tokens };
}

const followUp = (answer: string) => [...QUESTION, { role: "assistant", content: answer }, { role: "user", content: "And then?" }];

const running: RunningDaemon[] = [];
afterAll(async () => {
  await Promise.all(running.map((daemon) => daemon.stop()));
});

async function freshDaemon(model: string): Promise<RunningDaemon> {
  const daemon = await startDaemon({ models: { m: model }, configToml: "[runner]\nthreads = 2\n" });
  running.push(daemon);
  return daemon;
}

describe.each(["q8_0", "f16"] as const)("%s, exact batching (the default)", (quant) => {
  it("answers from a slot's cache and beside other requests as a fresh daemon answers alone", async () => {
    const model = await ensureModel({ ...SHAPE, quant }, `exact-${quant}`);
    const busy = await freshDaemon(model);
    const first = await post(busy, "/v1/chat/completions", { messages: QUESTION });
    const again = await post(busy, "/v1/chat/completions", { messages: QUESTION });
    const turn = await post(busy, "/v1/chat/completions", { messages: followUp(first.text) });
    const together = await Promise.all(PROMPTS.map((prompt) => post(busy, "/v1/completions", { prompt })));
    await busy.stop();

    const fresh = await freshDaemon(model);
    const freshTurn = await post(fresh, "/v1/chat/completions", { messages: followUp(first.text) });
    const alone: Answer[] = [];
    for (const prompt of PROMPTS) alone.push(await post(fresh, "/v1/completions", { prompt }));

    // The cache was used as exact batching allows: all but the last two tokens of a repeated
    // prompt, and a follow-up's prompt up to where the cached answer was generated.
    expect(first.cachedTokens).toBe(0);
    expect(again.cachedTokens).toBe(again.promptTokens - 2);
    expect(turn.cachedTokens).toBe(first.promptTokens);
    expect(freshTurn.cachedTokens).toBe(0);

    expect(again.text).toBe(first.text);
    expect(turn.text).toBe(freshTurn.text);
    expect(together.map((answer) => answer.text)).toEqual(alone.map((answer) => answer.text));
    expect(first.text.length).toBeGreaterThan(0);
  }, 300_000);
});
