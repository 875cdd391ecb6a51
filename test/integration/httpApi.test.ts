/**
 * The OpenAI-compatible API end to end: a real HttpApi on port 0 in front of the real
 * LocalEngine and ModelRegistry (built JS from dist/, since runners are child processes),
 * a synthetic tiny model, and the official openai npm client. Raw fetch/node:http cover
 * what the client cannot send (foreign Host headers, wrong content types, huge bodies).
 */

import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import OpenAI from "openai";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type * as DefaultsModule from "../../daemon/config/defaults.js";
import type { HearthConfig, LimitsConfig } from "../../daemon/config/defaults.js";
import type * as LocalEngineModule from "../../daemon/engine/LocalEngine.js";
import type * as HttpApiModule from "../../daemon/http/HttpApi.js";
import type * as MetricsModule from "../../daemon/metrics/Metrics.js";
import type * as ModelRegistryModule from "../../daemon/models/ModelRegistry.js";
import { ensureTinyModel } from "../support/models.js";
import { readSse } from "../support/sse.js";
import { waitFor } from "../support/wait.js";
import { rejectionOf } from "../support/thrown.js";
import { testConfig } from "../support/config.js";

// The built modules run (runners are forked from dist/); types come from the sources, because
// importing dist/*.d.ts makes them compiler inputs that tsc then refuses to overwrite (TS5055).
const DIST = path.resolve(import.meta.dirname, "..", "..", "dist");
const defaults = (await import(path.join(DIST, "daemon/config/defaults.js"))) as typeof DefaultsModule;
const { LocalEngine } = (await import(path.join(DIST, "daemon/engine/LocalEngine.js"))) as typeof LocalEngineModule;
const { HttpApi } = (await import(path.join(DIST, "daemon/http/HttpApi.js"))) as typeof HttpApiModule;
const { Metrics } = (await import(path.join(DIST, "daemon/metrics/Metrics.js"))) as typeof MetricsModule;
const { ModelRegistry } = (await import(path.join(DIST, "daemon/models/ModelRegistry.js"))) as typeof ModelRegistryModule;
type LocalEngine = LocalEngineModule.LocalEngine;
type HttpApi = HttpApiModule.HttpApi;
type Metrics = MetricsModule.Metrics;

const logger = pino({ level: process.env["HEARTH_TEST_LOG"] ?? "silent" });
const API_KEY = "integration-test-key";
const KEEPALIVE_MS = 40;

interface Stack {
  engine: LocalEngine;
  api: HttpApi;
  metrics: Metrics;
  port: number;
  base: string;
}

let home: string;
let modelsDir: string;

function makeConfig(overrides: { limits?: Partial<LimitsConfig>; apiKey?: string } = {}): HearthConfig {
  return testConfig(defaults, path.join(home, "data"), {
    modelsDir,
    models: { aliases: { small: "tiny" } },
    limits: { maxBodyBytes: 256 * 1024, parallelSlots: 2, contextSize: 1024, maxEmbeddingInputs: 8, sseKeepAliveMs: KEEPALIVE_MS, ...overrides.limits },
    runner: { threads: 2 },
    ...(overrides.apiKey === undefined ? {} : { apiKey: overrides.apiKey }),
  });
}

async function startStack(config: HearthConfig): Promise<Stack> {
  const catalog = new ModelRegistry({ modelsDir: config.modelsDir, extraPaths: config.models.extraPaths, aliases: config.models.aliases, logger });
  const engine = new LocalEngine({ catalog, limits: config.limits, runner: config.runner, logger });
  const metrics = new Metrics({ stats: () => engine.stats() });
  const api = new HttpApi({ config, engine, metrics, logger, version: "test" });
  const { port } = await api.listen();
  return { engine, api, metrics, port, base: `http://127.0.0.1:${port}` };
}

async function stopStack(stack: Stack | undefined): Promise<void> {
  if (!stack) return;
  stack.api.setReady(false);
  await stack.engine.stop({ drainTimeoutMs: 1_000 });
  await stack.api.close();
}

function client(stack: Stack, apiKey = "unused"): OpenAI {
  return new OpenAI({ baseURL: `${stack.base}/v1`, apiKey, maxRetries: 0, timeout: 60_000 });
}

async function postJson(stack: Stack, route: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${stack.base}${route}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" || body instanceof Uint8Array ? body : JSON.stringify(body),
  });
}

async function errorBody(response: Response): Promise<{ code: string; param: string | null; type: string; message: string }> {
  return ((await response.json()) as { error: { code: string; param: string | null; type: string; message: string } }).error;
}

const chatMessages: OpenAI.Chat.ChatCompletionMessageParam[] = [
  { role: "system", content: "You are terse." },
  { role: "user", content: "Say something." },
];

let stack: Stack;

beforeAll(async () => {
  home = await fs.promises.mkdtemp(path.join(os.tmpdir(), "hearth-httpapi-"));
  modelsDir = path.join(home, "models");
  await fs.promises.mkdir(modelsDir, { recursive: true });
  await fs.promises.copyFile(await ensureTinyModel(), path.join(modelsDir, "tiny.gguf"));
  stack = await startStack(makeConfig());
});

afterAll(async () => {
  await stopStack(stack);
  await fs.promises.rm(home, { recursive: true, force: true });
});

describe("streaming while the model loads", () => {
  it("sends keepalive comments while a cold model loads, then a well-formed stream", async () => {
    const response = await postJson(stack, "/v1/chat/completions", {
      model: "tiny",
      messages: chatMessages,
      max_tokens: 4,
      temperature: 0,
      stream: true,
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const raw = await response.text();
    expect(raw).toContain(": keepalive\n\n");
    expect(raw.endsWith("data: [DONE]\n\n")).toBe(true);
  });
});

describe("models", () => {
  it("lists the model with its public metadata and no path", async () => {
    const models = await client(stack).models.list();
    const tiny = models.data.find((model) => model.id === "tiny");
    expect(tiny).toMatchObject({ id: "tiny", object: "model", owned_by: "hearth" });
    const hearth = (tiny as unknown as { hearth: Record<string, unknown> }).hearth;
    expect(hearth).toMatchObject({ architecture: "llama", aliases: ["small"] });
    expect(hearth["size_bytes"]).toBeGreaterThan(1_000_000);
    expect(JSON.stringify(models.data)).not.toContain(modelsDir);
  });

  it("retrieves a model by alias and answers 404 for an unknown one", async () => {
    expect((await client(stack).models.retrieve("small")).id).toBe("tiny");
    const error = await rejectionOf(client(stack).models.retrieve("no-such-model"), OpenAI.NotFoundError);
    expect(error.code).toBe("HEARTH_MODEL_NOT_FOUND");
  });

  it("decodes percent-encoded ids", async () => {
    const response = await fetch(`${stack.base}/v1/models/%74iny`);
    expect(response.status).toBe(200);
    expect(((await response.json()) as { id: string }).id).toBe("tiny");
  });
});

describe("chat completions", () => {
  it("streams exactly the text a non-streamed request returns (temperature 0)", async () => {
    const openai = client(stack);
    const params = { model: "small", messages: chatMessages, max_tokens: 12, temperature: 0 } as const;
    const whole = await openai.chat.completions.create(params);
    expect(whole.object).toBe("chat.completion");
    expect(whole.id).toMatch(/^chatcmpl-/);
    expect(whole.model).toBe("small");
    const choice = whole.choices[0]!;
    expect(choice.message.role).toBe("assistant");
    expect(typeof choice.message.content).toBe("string");
    expect(["stop", "length"]).toContain(choice.finish_reason);
    expect(whole.usage!.completion_tokens).toBeGreaterThan(0);
    expect(whole.usage!.completion_tokens).toBeLessThanOrEqual(12);
    expect(whole.usage!.total_tokens).toBe(whole.usage!.prompt_tokens + whole.usage!.completion_tokens);

    const stream = await openai.chat.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
    const chunks: OpenAI.Chat.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    const withChoices = chunks.filter((chunk) => chunk.choices.length > 0);
    expect(withChoices[0]!.choices[0]!.delta.role).toBe("assistant");
    const text = withChoices.map((chunk) => chunk.choices[0]!.delta.content ?? "").join("");
    expect(text).toBe(choice.message.content);
    const finishes = withChoices.map((chunk) => chunk.choices[0]!.finish_reason);
    expect(finishes.slice(0, -1).every((reason) => reason === null)).toBe(true);
    expect(finishes[finishes.length - 1]).toBe(choice.finish_reason);
    const usageChunk = chunks[chunks.length - 1]!;
    expect(usageChunk.choices).toEqual([]);
    expect(usageChunk.usage!.completion_tokens).toBe(whole.usage!.completion_tokens);
    expect(usageChunk.usage!.prompt_tokens).toBe(whole.usage!.prompt_tokens);
    expect(new Set(chunks.map((chunk) => chunk.id)).size).toBe(1);
  });

  it("frames the raw stream as data lines ending with [DONE]", async () => {
    const response = await postJson(stack, "/v1/chat/completions", { model: "tiny", messages: chatMessages, max_tokens: 3, stream: true });
    expect(response.headers.get("cache-control")).toBe("no-cache");
    const events: unknown[] = [];
    for await (const event of readSse(response)) events.push(event.data);
    expect(events[events.length - 1]).toBe("[DONE]");
    expect(events.slice(0, -1).every((event) => (event as { object: string }).object === "chat.completion.chunk")).toBe(true);
  });

  it("produces JSON matching a json_schema response_format", async () => {
    const schema = {
      type: "object",
      properties: { color: { type: "string", enum: ["red", "green", "blue"] }, ok: { type: "boolean" } },
      required: ["color", "ok"],
      additionalProperties: false,
    };
    const completion = await client(stack).chat.completions.create({
      model: "tiny",
      messages: [{ role: "user", content: "Pick a color." }],
      max_tokens: 64,
      temperature: 0,
      response_format: { type: "json_schema", json_schema: { name: "pick", schema, strict: true } },
    });
    const parsed = JSON.parse(completion.choices[0]!.message.content!) as { color: string; ok: boolean };
    expect(["red", "green", "blue"]).toContain(parsed.color);
    expect(typeof parsed.ok).toBe("boolean");
    expect(Object.keys(parsed).sort()).toEqual(["color", "ok"]);
  });

  it("a request that requires a tool call is answered with tool_calls in OpenAI's shape, arguments matching the tool's schema", async () => {
    const completion = await client(stack).chat.completions.create({
      model: "tiny",
      messages: [{ role: "user", content: "What is the weather in Oslo?" }],
      max_tokens: 96,
      temperature: 0,
      tool_choice: "required",
      tools: [{ type: "function", function: { name: "get_weather", parameters: { type: "object", properties: { city: { enum: ["Oslo", "Bergen"] } }, required: ["city"] } } }],
    });
    const choice = completion.choices[0]!;
    // A random-weight model may go on writing calls: "tool_calls" only if it ended within the limit, else "length" with the completed ones.
    expect(choice.finish_reason).toBe(completion.usage!.completion_tokens >= 96 ? "length" : "tool_calls");
    const calls = choice.message.tool_calls ?? [];
    expect(calls.length).toBeGreaterThan(0);
    for (const call of calls) {
      expect(call.id).toMatch(/^call_[A-Za-z0-9_-]{8,}$/);
      expect(call.type).toBe("function");
      if (call.type !== "function") continue;
      expect(call.function.name).toBe("get_weather");
      expect(["Oslo", "Bergen"]).toContain((JSON.parse(call.function.arguments) as { city: unknown }).city);
    }
    expect(new Set(calls.map((call) => call.id)).size).toBe(calls.length);
  });
});

describe("text completions", () => {
  it("streams exactly the text a non-streamed request returns", async () => {
    const openai = client(stack);
    const params = { model: "tiny", prompt: "Once upon a time", max_tokens: 10, temperature: 0 } as const;
    const whole = await openai.completions.create(params);
    expect(whole.object).toBe("text_completion");
    expect(whole.id).toMatch(/^cmpl-/);
    expect(whole.usage!.completion_tokens).toBeGreaterThan(0);
    const stream = await openai.completions.create({ ...params, stream: true });
    let text = "";
    let finish: string | null = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.text ?? "";
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect(text).toBe(whole.choices[0]!.text);
    expect(finish).toBe(whole.choices[0]!.finish_reason);
  });

  it("uses OpenAI's default of 16 tokens", async () => {
    const whole = await client(stack).completions.create({ model: "tiny", prompt: "Hello", temperature: 0 });
    expect(whole.usage!.completion_tokens).toBeLessThanOrEqual(16);
  });

  it("prepends the prompt with echo", async () => {
    const prompt = "The cat";
    const plain = await client(stack).completions.create({ model: "tiny", prompt, max_tokens: 5, temperature: 0 });
    const echoed = await client(stack).completions.create({ model: "tiny", prompt, max_tokens: 5, temperature: 0, echo: true });
    expect(echoed.choices[0]!.text).toBe(prompt + plain.choices[0]!.text);
  });

  it("refuses a fill-in-the-middle suffix on a model without infill tokens, naming the suffix", async () => {
    const error = await rejectionOf(client(stack).completions.create({ model: "tiny", prompt: "def f(", suffix: "return x", max_tokens: 5 }), OpenAI.BadRequestError);
    expect(error.status).toBe(400);
    expect(error.error).toMatchObject({ code: "HEARTH_INVALID_REQUEST", param: "suffix", message: "This model has no fill-in-the-middle tokens, so it cannot complete text before a suffix." });
  });
});

describe("embeddings", () => {
  it("returns the same vector as floats and as base64 (the client's default)", async () => {
    const openai = client(stack);
    const asFloat = await openai.embeddings.create({ model: "tiny", input: ["hello world", "second"], encoding_format: "float" });
    const asDefault = await openai.embeddings.create({ model: "tiny", input: ["hello world", "second"] });
    expect(asFloat.data).toHaveLength(2);
    expect(asFloat.usage.prompt_tokens).toBeGreaterThan(0);
    for (const index of [0, 1]) {
      const floats = asFloat.data[index]!.embedding;
      const decoded = asDefault.data[index]!.embedding;
      expect(floats.length).toBeGreaterThan(0);
      expect(decoded).toHaveLength(floats.length);
      decoded.forEach((value, i) => expect(value).toBeCloseTo(floats[i]!, 5));
      expect(asFloat.data[index]!.index).toBe(index);
    }
    expect(asFloat.data[0]!.embedding).not.toEqual(asFloat.data[1]!.embedding);
  });

  it("rejects dimensions the model does not produce", async () => {
    const error = await rejectionOf(client(stack).embeddings.create({ model: "tiny", input: "x", dimensions: 3 }), OpenAI.BadRequestError);
    expect(error.param).toBe("dimensions");
  });

  it("rejects more inputs than the limit", async () => {
    const response = await postJson(stack, "/v1/embeddings", { model: "tiny", input: Array.from({ length: 9 }, (_, i) => `t${i}`) });
    expect(response.status).toBe(400);
    expect((await errorBody(response)).param).toBe("input");
  });
});

describe("error statuses", () => {
  it("400 with param through the openai client", async () => {
    const error = await rejectionOf(client(stack).chat.completions.create({ model: "tiny", messages: chatMessages, max_tokens: -4 }), OpenAI.BadRequestError);
    expect(error.param).toBe("max_tokens");
    expect(error.code).toBe("HEARTH_INVALID_REQUEST");
  });

  it("404 for an unknown model, also when streaming", async () => {
    for (const stream of [false, true]) {
      const response = await postJson(stack, "/v1/chat/completions", { model: "ghost", messages: chatMessages, stream });
      expect(response.status).toBe(404);
      expect(response.headers.get("content-type")).toMatch(/^application\/json/);
      expect((await errorBody(response)).code).toBe("HEARTH_MODEL_NOT_FOUND");
    }
  });

  it("413 for a huge body", async () => {
    const response = await postJson(stack, "/v1/chat/completions", JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "x".repeat(2 * 1024 * 1024) }] }));
    expect(response.status).toBe(413);
    expect((await errorBody(response)).code).toBe("HEARTH_BODY_TOO_LARGE");
  });

  it("415 for a form body", async () => {
    const response = await fetch(`${stack.base}/v1/completions`, { method: "POST", headers: { "content-type": "text/plain" }, body: "model=tiny" });
    expect(response.status).toBe(415);
  });

  it("403 for a foreign Host header", async () => {
    const status = await new Promise<number>((resolve, reject) => {
      http
        .get({ host: "127.0.0.1", port: stack.port, path: "/v1/models", headers: { host: "attacker.example" } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        })
        .on("error", reject);
    });
    expect(status).toBe(403);
  });

  it("401 without the API key and success with it (same engine, second listener)", async () => {
    const config = makeConfig({ apiKey: API_KEY });
    const metrics = new Metrics({ stats: () => stack.engine.stats() });
    const guarded = new HttpApi({ config, engine: stack.engine, metrics, logger });
    const { port } = await guarded.listen();
    try {
      const guardedStack = { ...stack, api: guarded, metrics, port, base: `http://127.0.0.1:${port}` };
      await rejectionOf(client(guardedStack, "wrong-key").models.list(), OpenAI.AuthenticationError);
      const completion = await client(guardedStack, API_KEY).chat.completions.create({ model: "tiny", messages: chatMessages, max_tokens: 2 });
      expect(completion.choices[0]!.message.role).toBe("assistant");
      expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200);
    } finally {
      await guarded.close();
    }
  });

  it("503 with retry-after for new work while not ready", async () => {
    stack.api.setReady(false);
    try {
      expect((await fetch(`${stack.base}/health`)).status).toBe(503);
      const error = await rejectionOf(client(stack).chat.completions.create({ model: "tiny", messages: chatMessages, max_tokens: 2 }), OpenAI.InternalServerError);
      expect(error.status).toBe(503);
      expect(error.headers?.get("retry-after")).toBe("1");
    } finally {
      stack.api.setReady(true);
    }
  });
});

describe("load shedding and failures", () => {
  it("429 with retry-after when the model's queue is full", async () => {
    const busy = await startStack(makeConfig({ limits: { parallelSlots: 1, queueDepth: 0, retryAfterSeconds: 2 } }));
    try {
      const long = await postJson(busy, "/v1/completions", { model: "tiny", prompt: "Go", max_tokens: 400, temperature: 0, stream: true });
      const events = readSse(long);
      await events.next();
      await events.next();
      const response = await postJson(busy, "/v1/completions", { model: "tiny", prompt: "Again", max_tokens: 2 });
      expect(response.status).toBe(429);
      expect(response.headers.get("retry-after")).toBe("2");
      expect((await errorBody(response)).code).toBe("HEARTH_QUEUE_FULL");
      await events.return(undefined);
    } finally {
      await stopStack(busy);
    }
  });

  it("cancels the generation when the client disconnects, freeing the slot", async () => {
    const controller = new AbortController();
    const response = await fetch(`${stack.base}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny", prompt: "Tell a long story", max_tokens: 800, temperature: 0, stream: true }),
      signal: controller.signal,
    });
    const reader = response.body!.getReader();
    await reader.read();
    await waitFor(() => stack.engine.stats().loaded.some((model) => model.running > 0), 10_000, "the generation to run", 20);
    const completedBefore = stack.metrics.completionTokens.get({ model: "tiny" });
    controller.abort();
    await waitFor(() => stack.engine.stats().loaded.every((model) => model.running === 0), 5_000, "the slot to be freed", 20);
    // The server saw the client leave (499), and the cancelled job produced no result.
    await waitFor(() => stack.metrics.httpRequests.get({ endpoint: "/v1/completions", status: "499" }) === 1, 2_000, "the 499 to be counted", 20);
    expect(stack.metrics.completionTokens.get({ model: "tiny" })).toBe(completedBefore);
    const after = await client(stack).completions.create({ model: "tiny", prompt: "Hi", max_tokens: 2 });
    expect(after.choices).toHaveLength(1);
  });

  it("reports a runner crash mid-stream as an error event, then recovers", async () => {
    const response = await postJson(stack, "/v1/completions", { model: "tiny", prompt: "Keep going", max_tokens: 800, temperature: 0, stream: true });
    const events = readSse(response);
    const first = await events.next();
    expect(first.done).toBe(false);
    const pid = stack.engine.stats().loaded.find((model) => model.modelId === "tiny")?.pid;
    expect(pid).toBeGreaterThan(0);
    process.kill(pid!, "SIGKILL");
    const rest: unknown[] = [];
    for await (const event of events) rest.push(event.data);
    expect(rest).not.toContain("[DONE]");
    const last = rest[rest.length - 1] as { error?: { code: string; type: string } };
    expect(last.error?.code).toBe("HEARTH_RUNNER_CRASHED");
    const after = await client(stack).chat.completions.create({ model: "tiny", messages: chatMessages, max_tokens: 2 });
    expect(after.choices[0]!.message.role).toBe("assistant");
  });
});

describe("bad input never crashes the server", () => {
  it("survives a barrage of malformed requests and still answers a normal one", async () => {
    const user = [{ role: "user", content: "x" }];
    const bad: [route: string, body: string | Buffer, status: number, code: string, param?: string][] = [
      ["/v1/chat/completions", "{not json", 400, "HEARTH_INVALID_JSON"],
      ["/v1/chat/completions", "null", 400, "HEARTH_INVALID_REQUEST"],
      ["/v1/chat/completions", "[]", 400, "HEARTH_INVALID_REQUEST"],
      ["/v1/chat/completions", Buffer.from([0xff, 0xfe, 0x00]), 400, "HEARTH_INVALID_JSON"],
      ["/v1/chat/completions", JSON.stringify({ model: ["tiny"], messages: "hi" }), 400, "HEARTH_INVALID_REQUEST", "model"],
      ["/v1/chat/completions", JSON.stringify({ model: "tiny", messages: [{ role: "root", content: "x" }] }), 400, "HEARTH_INVALID_REQUEST", "messages[0].role"],
      ["/v1/chat/completions", JSON.stringify({ model: "tiny", messages: user, max_tokens: 1e12 }), 400, "HEARTH_INVALID_REQUEST", "max_tokens"],
      ["/v1/chat/completions", JSON.stringify({ model: "tiny", messages: user, max_tokens: -1 }), 400, "HEARTH_INVALID_REQUEST", "max_tokens"],
      [
        "/v1/chat/completions",
        JSON.stringify({ model: "tiny", messages: [{ role: "user", content: [{ type: "image_url" }] }] }),
        400,
        "HEARTH_INVALID_REQUEST",
        "messages[0].content[0].type",
      ],
      ["/v1/chat/completions", JSON.stringify({ model: "tiny", messages: user, temperature: "hot", stream: "yes" }), 400, "HEARTH_INVALID_REQUEST", "temperature"],
      [
        "/v1/chat/completions",
        JSON.stringify({ model: "tiny", messages: user, tool_choice: { type: "function", function: { name: "nope" } } }),
        400,
        "HEARTH_INVALID_REQUEST",
        "tool_choice.function.name",
      ],
      ["/v1/completions", JSON.stringify({ model: "tiny", prompt: { nested: { deeper: [1, 2, 3] } } }), 400, "HEARTH_INVALID_REQUEST", "prompt"],
      ["/v1/completions", JSON.stringify({ model: "tiny", prompt: "x", stop: ["a", "b", "c", "d", "e"] }), 400, "HEARTH_INVALID_REQUEST", "stop"],
      ["/v1/embeddings", JSON.stringify({ model: "tiny", input: [[1, 2, 3]] }), 400, "HEARTH_INVALID_REQUEST", "input"],
      ["/v1/embeddings", JSON.stringify({ model: "tiny", input: "" }), 400, "HEARTH_INVALID_REQUEST", "input"],
      ["/v1/embeddings", `{"model":"tiny","input":${"[".repeat(5000)}${"]".repeat(5000)}}`, 400, "HEARTH_INVALID_REQUEST", "input"],
      ["/v1/chat/completions", Buffer.alloc(1024 * 1024, 0x7b), 413, "HEARTH_BODY_TOO_LARGE"],
    ];
    for (const [route, body, status, code, param] of bad) {
      const response = await postJson(stack, route, body);
      const label = `${route} ${String(body).slice(0, 60)}`;
      expect(response.status, label).toBe(status);
      const error = await errorBody(response);
      expect(error.code, label).toBe(code);
      if (param !== undefined) expect(error.param, label).toBe(param);
    }
    const completion = await client(stack).chat.completions.create({ model: "tiny", messages: chatMessages, max_tokens: 3 });
    expect(completion.choices[0]!.message.role).toBe("assistant");
  });
});

describe("observability", () => {
  it("exposes generation metrics and loaded-model gauges", async () => {
    const text = await (await fetch(`${stack.base}/metrics`)).text();
    const value = (pattern: RegExp): number => Number(pattern.exec(text)?.[1] ?? NaN);
    expect(value(/^hearth_completion_tokens_total\{model="tiny"\} (\S+)$/m)).toBeGreaterThan(0);
    expect(value(/^hearth_prompt_tokens_total\{model="tiny"\} (\S+)$/m)).toBeGreaterThan(0);
    expect(value(/^hearth_time_to_first_token_seconds_count\{model="tiny"\} (\S+)$/m)).toBeGreaterThan(0);
    expect(value(/^hearth_generation_tokens_per_second_count\{model="tiny"\} (\S+)$/m)).toBeGreaterThan(0);
    expect(value(/^hearth_models_loaded (\S+)$/m)).toBe(1);
    expect(value(/^hearth_queue_depth\{model="tiny"\} (\S+)$/m)).toBe(0);
    expect(value(/^hearth_http_requests_total\{endpoint="\/v1\/chat\/completions",status="200"\} (\S+)$/m)).toBeGreaterThan(0);
    expect(value(/^hearth_http_requests_total\{endpoint="\/v1\/chat\/completions",status="400"\} (\S+)$/m)).toBeGreaterThan(0);
  });

  it("reports status with the loaded model", async () => {
    const status = (await (await fetch(`${stack.base}/hearth/v1/status`)).json()) as {
      version: string;
      listen: { host: string; port: number };
      models: { modelId: string; state: string }[];
    };
    expect(status.version).toBe("test");
    expect(status.listen).toEqual({ host: "127.0.0.1", port: stack.port });
    expect(status.models.map((model) => model.modelId)).toContain("tiny");
  });
});
