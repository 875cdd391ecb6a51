/**
 * The Anthropic routes of HttpApi over a real socket, with an engine that plays a given
 * generation: what the real daemon cannot be made to do on cue (fail in the middle of a
 * stream) and what the handler hands the engine (count_tokens' one-token job). The real
 * models and the official client are in test/clients/anthropic.test.ts.
 */

import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import * as defaults from "../../daemon/config/defaults.js";
import type { GenerateOptions, InferenceEngine, ModelInfo } from "../../daemon/engine/types.js";
import { HttpApi } from "../../daemon/http/HttpApi.js";
import { Metrics } from "../../daemon/metrics/Metrics.js";
import { errors } from "../../protocol/errors.js";
import type { GenerationJob, GenerationResult } from "../../protocol/inference.js";
import { testConfig } from "../support/config.js";

const MODEL: ModelInfo = { id: "m", aliases: [], sizeBytes: 1, createdAt: 1_700_000_000 };

const RESULT: GenerationResult = {
  text: "Hi",
  reasoning: "",
  toolCalls: [],
  finishReason: "stop",
  usage: { promptTokens: 17, completionTokens: 1, reasoningTokens: 0 },
  cachedPromptTokens: 0,
};

/** Sends `deltas`, then fails with `failure` or answers RESULT; records the jobs it was given. */
function playingEngine(deltas: string[], failure?: Error): InferenceEngine & { jobs: GenerationJob[] } {
  const jobs: GenerationJob[] = [];
  return {
    jobs,
    listModels: () => Promise.resolve([MODEL]),
    resolveModel: (id) => (id === "m" ? Promise.resolve(MODEL) : Promise.reject(errors.modelNotFound(`No model '${id}'.`))),
    generate: (job: GenerationJob, options: GenerateOptions) => {
      jobs.push(job);
      for (const text of deltas) options.onDelta?.({ part: "answer", text });
      return failure === undefined ? Promise.resolve(RESULT) : Promise.reject(failure);
    },
    embed: () => Promise.reject(new Error("not used")),
    stats: () => ({ loaded: [] }),
  };
}

let api: HttpApi | undefined;

afterEach(async () => {
  await api?.close();
  api = undefined;
});

async function start(engine: InferenceEngine): Promise<string> {
  const config = testConfig(defaults, "/nonexistent", { modelsDir: "/nonexistent", runner: { threads: 1, gpuLayers: 0, loadTimeoutMs: 60_000, stopTimeoutMs: 2_000 } });
  api = new HttpApi({ config, engine, metrics: new Metrics({ stats: () => engine.stats() }), logger: pino({ level: "silent" }) });
  const { port } = await api.listen();
  return `http://127.0.0.1:${port}`;
}

const body = { model: "m", max_tokens: 10, stream: true, messages: [{ role: "user", content: "hi" }] };

function post(base: string, path: string, payload: unknown): Promise<Response> {
  return fetch(`${base}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(payload) });
}

function framesOf(text: string): { event: string | undefined; data: string }[] {
  return text
    .split("\n\n")
    .filter((block) => block.trim() !== "")
    .map((block) => ({
      event: /^event: (.*)$/m.exec(block)?.[1],
      data: /^data: (.*)$/m.exec(block)?.[1] ?? "",
    }));
}

describe("a streamed message that fails after it began", () => {
  it("ends with an `event: error` frame in Anthropic's error shape, and no message_stop", async () => {
    const base = await start(playingEngine(["Hel", "lo"], errors.runnerCrashed("The runner exited.")));
    const response = await post(base, "/v1/messages", body);
    expect(response.status).toBe(200);
    const frames = framesOf(await response.text());
    expect(frames.map((frame) => frame.event)).toEqual(["message_start", "ping", "content_block_start", "content_block_delta", "content_block_delta", "error"]);
    expect(JSON.parse(frames.at(-1)!.data)).toEqual({ type: "error", error: { type: "overloaded_error", message: "The runner exited.", hearth_code: "HEARTH_RUNNER_CRASHED" } });
    expect(frames.some((frame) => frame.data === "[DONE]")).toBe(false);
  });

  it("is a plain HTTP error when it fails before anything was sent", async () => {
    const base = await start(playingEngine([], errors.queueFull("Too many requests.", { retryAfterSeconds: 2 })));
    const response = await post(base, "/v1/messages", body);
    expect(response.status).toBe(429);
    expect(response.headers.get("retry-after")).toBe("2");
    expect(await response.json()).toEqual({ type: "error", error: { type: "rate_limit_error", message: "Too many requests.", hearth_code: "HEARTH_QUEUE_FULL" } });
  });
});

describe("count_tokens", () => {
  it("runs the conversation as a one-token job and answers its prompt tokens", async () => {
    const engine = playingEngine(["x"]);
    const base = await start(engine);
    const response = await post(base, "/v1/messages/count_tokens", { model: "m", system: "S", messages: [{ role: "user", content: "hi" }] });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ input_tokens: 17 });
    expect(engine.jobs).toHaveLength(1);
    expect(engine.jobs[0]).toMatchObject({ kind: "chat", sampling: { maxTokens: 1 }, messages: [{ role: "system", content: "S" }, { role: "user", content: "hi" }] });
  });
});

describe("routes", () => {
  it("answers a wrong method on /v1/messages with 405 in Anthropic's shape", async () => {
    const base = await start(playingEngine([]));
    const response = await fetch(`${base}/v1/messages`);
    expect(response.status).toBe(405);
    expect(((await response.json()) as { type: string; error: { type: string } }).error.type).toBe("invalid_request_error");
  });

  it("lists models in Anthropic's shape only for requests with anthropic-version", async () => {
    const base = await start(playingEngine([]));
    const anthropic = await (await fetch(`${base}/v1/models`, { headers: { "anthropic-version": "2023-06-01" } })).json();
    expect(anthropic).toEqual({ data: [{ type: "model", id: "m", display_name: "m", created_at: "2023-11-14T22:13:20.000Z" }], has_more: false, first_id: "m", last_id: "m" });
    const openai = (await (await fetch(`${base}/v1/models`)).json()) as { object: string };
    expect(openai.object).toBe("list");
    const one = await (await fetch(`${base}/v1/models/m`, { headers: { "anthropic-version": "2023-06-01" } })).json();
    expect(one).toEqual({ type: "model", id: "m", display_name: "m", created_at: "2023-11-14T22:13:20.000Z" });
    const missing = await fetch(`${base}/v1/models/nope`, { headers: { "anthropic-version": "2023-06-01" } });
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: { type: string } }).error.type).toBe("not_found_error");
    const badLimit = await fetch(`${base}/v1/models?limit=0`, { headers: { "anthropic-version": "2023-06-01" } });
    expect(badLimit.status).toBe(400);
  });
});
