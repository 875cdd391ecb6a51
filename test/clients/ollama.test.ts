// Ollama's native API (/api/*) through the official `ollama` npm client against real daemons
// with scripted models (test/support/scripts.ts), so thoughts, answers and tool calls are exact:
// chat and generate streamed and not, think on and off, parallel tool calls, a call cut off by
// num_predict, tool results in the history (by tool_name and by call id), stop strings, format
// json and JSON schema, embeddings (/api/embed's scaled to length 1), tags, show,
// ps, version, keep_alive, name:tag resolution, copy and delete, the / probe, a failure after
// the stream began, fuzzed bodies on every endpoint, and a pull from a peer of a two-node cluster.

import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import fc from "fast-check";
import http from "node:http";
import { Ollama, type ChatResponse, type GenerateResponse, type ProgressResponse, type Tool } from "ollama";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ClusterView } from "../../protocol/api/cluster.js";
import { runCli } from "../support/cli.js";
import { freePort, startDaemon, type RunningDaemon } from "../support/daemon.js";
import { ensureScriptedModel, ensureTinyModel } from "../support/models.js";
import { ANSWER, THINK_THEN_ANSWER, THINK_THEN_CALL_TWO_TOOLS, THOUGHT, WEATHER_TOOLS } from "../support/scripts.js";
import { waitFor, waitForValue } from "../support/wait.js";

const TOOLS: Tool[] = WEATHER_TOOLS.map((tool) => ({ type: "function", function: { name: tool.name, description: tool.description ?? "", parameters: tool.parameters as NonNullable<Tool["function"]["parameters"]> } }));
// `id` and `index` (each call's place) are Ollama's too, though the client's type leaves them out.
const CALL_ID = expect.stringMatching(/^call_[\w-]+$/) as string;
const CALLS = [
  { id: CALL_ID, function: { index: 0, name: "get_weather", arguments: { city: "Paris" } } },
  { id: CALL_ID, function: { index: 1, name: "get_time", arguments: { zone: "CET" } } },
];

/** The ids of an answer's tool calls, which the client's type leaves out. */
function callIds(message: ChatResponse["message"]): string[] {
  return (message.tool_calls ?? []).map((call) => (call as unknown as { id: string }).id);
}
const GREEDY = { temperature: 0 };
const USER = [{ role: "user", content: "What is the weather and the time in Paris?" }];

let daemon: RunningDaemon;
let ollama: Ollama;
let tinyPath: string;
let outsidePath: string;
let scratch: string;

beforeAll(async () => {
  const [answer, tools, tiny] = await Promise.all([
    ensureScriptedModel("ollama-answer", THINK_THEN_ANSWER),
    ensureScriptedModel("ollama-tools", THINK_THEN_CALL_TWO_TOOLS),
    ensureTinyModel(),
  ]);
  tinyPath = tiny;
  // A model outside the models dir (an extra path), which /api/delete must never remove.
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), "hearth-ollama-test-"));
  outsidePath = path.join(scratch, "outside.gguf");
  fs.copyFileSync(tiny, outsidePath);
  daemon = await startDaemon({
    models: { answer, tools, tiny, victim: tiny },
    configToml: `[limits]\nparallel_slots = 2\ncontext_size = 2048\n\n[models]\nextra_paths = [${JSON.stringify(outsidePath)}]\n`,
    env: { HEARTH_API_KEY: "" },
  });
  ollama = new Ollama({ host: daemon.url });
});

afterAll(async () => {
  await daemon?.stop();
  if (scratch !== undefined) fs.rmSync(scratch, { recursive: true, force: true });
});

async function collect<T>(stream: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of stream) items.push(item);
  return items;
}

function joined(chunks: ChatResponse[], field: "content" | "thinking"): string {
  return chunks.map((chunk) => chunk.message[field] ?? "").join("");
}

/** What the client threw: its ResponseError carries the status and Ollama's `error` text. */
async function failure(promise: Promise<unknown>): Promise<{ status: number | undefined; message: string }> {
  try {
    await promise;
  } catch (error) {
    return { status: (error as { status_code?: number }).status_code, message: (error as Error).message };
  }
  throw new Error("expected the call to fail");
}

function expectCounters(answer: ChatResponse | GenerateResponse): void {
  expect(answer.done).toBe(true);
  expect(answer.prompt_eval_count).toBeGreaterThan(0);
  expect(answer.eval_count).toBeGreaterThan(0);
  for (const field of ["total_duration", "load_duration", "prompt_eval_duration", "eval_duration"] as const) expect(Number.isInteger(answer[field]), field).toBe(true);
  expect(answer.eval_duration).toBeGreaterThan(0);
  // The phases are measured from the same clock and add up to the whole (within rounding).
  expect(Math.abs(answer.load_duration + answer.prompt_eval_duration + answer.eval_duration - answer.total_duration)).toBeLessThan(10);
  expect(String(answer.created_at)).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
}

async function loadedNames(): Promise<string[]> {
  return (await ollama.ps()).models.map((model) => model.name);
}

describe("chat", () => {
  it("answers with the exact thoughts in message.thinking and the exact answer, not streamed", async () => {
    const answer = await ollama.chat({ model: "answer", messages: USER, options: GREEDY });
    expect(answer.model).toBe("answer");
    expect(answer.message).toEqual({ role: "assistant", content: ANSWER, thinking: THOUGHT });
    expect(answer.done_reason).toBe("stop");
    expectCounters(answer);
  });

  it("streams the thoughts, then the answer, then a done chunk with the counters", async () => {
    const chunks = await collect(await ollama.chat({ model: "answer:latest", messages: USER, options: GREEDY, stream: true }));
    expect(joined(chunks, "thinking")).toBe(THOUGHT);
    expect(joined(chunks, "content")).toBe(ANSWER);
    expect(chunks.length).toBeGreaterThan(3);
    // Every thought comes before any of the answer.
    const firstAnswer = chunks.findIndex((chunk) => chunk.message.content !== "");
    expect(chunks.slice(firstAnswer).every((chunk) => (chunk.message.thinking ?? "") === "")).toBe(true);
    expect(chunks.every((chunk) => chunk.model === "answer:latest" && chunk.message.role === "assistant")).toBe(true);
    const last = chunks.at(-1)!;
    expect(chunks.slice(0, -1).every((chunk) => !chunk.done)).toBe(true);
    expect(last.done_reason).toBe("stop");
    expect(last.message.content).toBe("");
    expectCounters(last);
  });

  it("think: false gives no thinking and the same answer, streamed and not", async () => {
    const answer = await ollama.chat({ model: "answer", messages: USER, think: false, options: GREEDY });
    expect(answer.message).toEqual({ role: "assistant", content: ANSWER });
    const chunks = await collect(await ollama.chat({ model: "answer", messages: USER, think: false, options: GREEDY, stream: true }));
    expect(chunks.every((chunk) => chunk.message.thinking === undefined)).toBe(true);
    expect(joined(chunks, "content")).toBe(ANSWER);
  });

  it("returns two parallel tool calls with exact names and object arguments, done_reason stop", async () => {
    const answer = await ollama.chat({ model: "tools", messages: USER, tools: TOOLS, options: GREEDY });
    expect(answer.message).toEqual({ role: "assistant", content: "", thinking: THOUGHT, tool_calls: CALLS });
    expect(new Set(callIds(answer.message)).size).toBe(2);
    expect(answer.done_reason).toBe("stop");
  });

  it("streams the tool calls in a chunk before the done chunk", async () => {
    const chunks = await collect(await ollama.chat({ model: "tools", messages: USER, tools: TOOLS, options: GREEDY, stream: true }));
    const withCalls = chunks.filter((chunk) => chunk.message.tool_calls !== undefined);
    expect(withCalls).toHaveLength(1);
    expect(withCalls[0]!.message.tool_calls).toEqual(CALLS);
    expect(withCalls[0]!.done).toBe(false);
    expect(joined(chunks, "thinking")).toBe(THOUGHT);
    expect(chunks.at(-1)).toMatchObject({ done: true, done_reason: "stop" });
  });

  it("a call cut off by num_predict ends with done_reason length and no tool_calls, streamed and not", async () => {
    const options = { ...GREEDY, num_predict: 16 };
    const answer = await ollama.chat({ model: "tools", messages: USER, tools: TOOLS, options });
    expect(answer.done_reason).toBe("length");
    expect(answer.message.tool_calls).toBeUndefined();
    expect(answer.eval_count).toBe(16);
    const chunks = await collect(await ollama.chat({ model: "tools", messages: USER, tools: TOOLS, options, stream: true }));
    expect(chunks.some((chunk) => chunk.message.tool_calls !== undefined)).toBe(false);
    expect(chunks.at(-1)).toMatchObject({ done: true, done_reason: "length", eval_count: 16 });
  });

  it("takes the calls and their results (tool messages with tool_name) back in the history", async () => {
    const first = await ollama.chat({ model: "tools", messages: USER, tools: TOOLS, options: GREEDY });
    const history = [
      ...USER,
      first.message,
      { role: "tool", content: '{"sky": "sunny"}', tool_name: "get_weather" },
      { role: "tool", content: "12:00", tool_name: "get_time" },
    ];
    const second = await ollama.chat({ model: "tools", messages: history, tools: TOOLS, options: GREEDY });
    // The scripted model answers every conversation the same way: the history was accepted.
    expect(second.message.tool_calls).toEqual(CALLS);
    // Answered by the ids Hearth gave the calls, in another order.
    const [weatherId, timeId] = callIds(first.message);
    const byId = [...USER, first.message, { role: "tool", content: "12:00", tool_call_id: timeId }, { role: "tool", content: '{"sky": "sunny"}', tool_call_id: weatherId }];
    expect((await ollama.chat({ model: "tools", messages: byId, tools: TOOLS, options: GREEDY })).message.tool_calls).toEqual(CALLS);
    const stray = [...USER, first.message, { role: "tool", content: "x", tool_call_id: "call_unknown" }];
    expect(await failure(ollama.chat({ model: "tools", messages: stray, tools: TOOLS, options: GREEDY }))).toEqual({
      status: 400,
      message: "messages[2] answers tool_call_id 'call_unknown', which names no unanswered tool call of the assistant message before it",
    });
    const orphan = await failure(ollama.chat({ model: "tools", messages: [...USER, { role: "tool", content: "x", tool_name: "get_time" }], options: GREEDY }));
    expect(orphan).toEqual({ status: 400, message: "messages[1] is a tool result, but no earlier assistant message made a tool call that is still unanswered" });
  });

  it("options.stop ends the answer before the stop string, done_reason stop", async () => {
    const answer = await ollama.chat({ model: "answer", messages: USER, think: false, options: { ...GREEDY, stop: ["Paris"] } });
    expect(answer.message).toEqual({ role: "assistant", content: "It is sunny in " });
    expect(answer.done_reason).toBe("stop");
    expect(ANSWER.startsWith("It is sunny in Paris")).toBe(true);
  });

  it("format json constrains the answer to JSON", async () => {
    const answer = await ollama.chat({ model: "tiny", messages: USER, format: "json", options: { ...GREEDY, num_predict: 24 } });
    expect(answer.done).toBe(true);
    expect(answer.message.content.trimStart().startsWith("{")).toBe(true);
  });

  it("format as a JSON schema holds the answer to that schema", async () => {
    const schema = { type: "object", properties: { sky: { type: "string", enum: ["sunny", "rainy"] } }, required: ["sky"], additionalProperties: false };
    const answer = await ollama.chat({ model: "tiny", messages: USER, format: schema, options: { ...GREEDY, num_predict: 64 } });
    expect(answer.done_reason).toBe("stop");
    const parsed = JSON.parse(answer.message.content) as { sky: string };
    expect(Object.keys(parsed)).toEqual(["sky"]);
    expect(["sunny", "rainy"]).toContain(parsed.sky);
  });
});

describe("generate", () => {
  it("renders the prompt with the chat template: exact thinking and response, not streamed", async () => {
    const answer = await ollama.generate({ model: "answer", prompt: "Weather?", system: "Be brief.", options: GREEDY });
    expect(answer.response).toBe(ANSWER);
    expect(answer.thinking).toBe(THOUGHT);
    expect(answer.done_reason).toBe("stop");
    expect(answer).not.toHaveProperty("context");
    expectCounters(answer);
  });

  it("streams thinking, then the response, then the done chunk", async () => {
    const chunks = await collect(await ollama.generate({ model: "answer", prompt: "Weather?", options: GREEDY, stream: true }));
    expect(chunks.map((chunk) => chunk.thinking ?? "").join("")).toBe(THOUGHT);
    expect(chunks.map((chunk) => chunk.response).join("")).toBe(ANSWER);
    expect(chunks.at(-1)).toMatchObject({ done: true, done_reason: "stop", response: "" });
  });

  it("think: false answers at once", async () => {
    const answer = await ollama.generate({ model: "answer", prompt: "Weather?", think: false, options: GREEDY });
    expect(answer.response).toBe(ANSWER);
    expect(answer.thinking).toBeUndefined();
  });

  it("raw completes the prompt as it is, up to num_predict", async () => {
    const answer = await ollama.generate({ model: "tiny", prompt: "Once upon a time", raw: true, options: { ...GREEDY, num_predict: 7 } });
    expect(answer.done_reason).toBe("length");
    // The random-weight model writes byte tokens; node-llama-cpp may take one more to finish a character.
    expect(answer.eval_count).toBeGreaterThanOrEqual(7);
    expect(answer.eval_count).toBeLessThanOrEqual(8);
    expect(answer.response?.length).toBeGreaterThan(0);
  });

  it("refuses a suffix on a model without infill tokens, images, a template and format with raw, with Ollama's error shape", async () => {
    expect(await failure(ollama.generate({ model: "tiny", prompt: "def f(", suffix: "):" }))).toEqual({ status: 400, message: "This model has no fill-in-the-middle tokens, so it cannot complete text before a suffix." });
    expect(await failure(ollama.generate({ model: "tiny", prompt: "x", images: ["aGk="] }))).toEqual({ status: 400, message: "Invalid value for 'images': images are not supported: Hearth's models read text only." });
    expect(await failure(ollama.generate({ model: "tiny", prompt: "x", template: "{{ .Prompt }}" }))).toEqual({
      status: 400,
      message: "Invalid value for 'template': a custom template is not supported: Hearth renders prompts with the model's own chat template (use raw to send a prompt as it is).",
    });
    expect(await failure(ollama.generate({ model: "tiny", prompt: "x", raw: true, format: "json" }))).toEqual({
      status: 400,
      message: "format cannot be used with raw: it needs the model's chat template; leave it out, or send the prompt without raw",
    });
    expect(await failure(ollama.chat({ model: "tiny", messages: [{ role: "user", content: "x", images: ["aGk="] }] }))).toEqual({
      status: 400,
      message: "Invalid value for 'messages[0].images': images are not supported: Hearth's models read text only.",
    });
  });
});

describe("models", () => {
  it("resolves name:tag: tiny:latest and tiny are the model tiny; an unknown name is 404 in Ollama's words", async () => {
    for (const model of ["tiny", "tiny:latest"]) {
      const answer = await ollama.generate({ model, prompt: "a", raw: true, options: { ...GREEDY, num_predict: 2 } });
      expect(answer.model).toBe(model);
      expect(answer.eval_count).toBe(2);
    }
    expect(await failure(ollama.chat({ model: "tiny:v2", messages: USER }))).toEqual({ status: 404, message: "model 'tiny:v2' not found" });
    expect(await failure(ollama.chat({ model: "nope", messages: USER, stream: true }))).toEqual({ status: 404, message: "model 'nope' not found" });
    expect(await failure(ollama.show({ model: "nope:latest" }))).toEqual({ status: 404, message: "model 'nope:latest' not found" });
  });

  it("tags lists every model as name:latest with its details", async () => {
    const { models } = await ollama.list();
    const names = models.map((model) => model.name).sort();
    expect(names).toEqual(["answer:latest", "outside:latest", "tiny:latest", "tools:latest", "victim:latest"]);
    const tiny = models.find((model) => model.name === "tiny:latest")!;
    expect(tiny).toMatchObject({ model: "tiny:latest", size: fs.statSync(tinyPath).size, details: { format: "gguf", family: "llama", families: ["llama"], parent_model: "", quantization_level: "F32" } });
    expect(tiny.details.parameter_size).toMatch(/^\d+(\.\d+)?[KMB]$/);
    expect(Number.isNaN(Date.parse(String(tiny.modified_at)))).toBe(false);
  });

  it("show gives the GGUF facts, the chat template and the capabilities", async () => {
    const shown = await ollama.show({ model: "tools" });
    expect(shown.details).toMatchObject({ format: "gguf", family: "llama" });
    expect(shown.template).toContain("<tool_call>");
    expect(shown.capabilities).toEqual(["completion", "tools", "thinking"]);
    const info = shown.model_info as unknown as Record<string, unknown>;
    expect(info["general.architecture"]).toBe("llama");
    expect(info["llama.context_length"]).toEqual(expect.any(Number));
    expect(shown.parameters).toBe("num_ctx                        2048");
  });

  it("ps lists the loaded models with their expiry; keep_alive -1 keeps one for ever, keep_alive 0 with no messages unloads it", async () => {
    await ollama.chat({ model: "answer", messages: USER, options: GREEDY });
    const before = Date.now();
    const entry = (await ollama.ps()).models.find((model) => model.name === "answer:latest")!;
    expect(entry).toMatchObject({ model: "answer:latest", size_vram: 0, details: { family: "llama" } });
    const expires = Date.parse(String(entry.expires_at));
    expect(expires).toBeGreaterThan(before + 4 * 60_000);
    expect(expires).toBeLessThanOrEqual(Date.now() + 5 * 60_000);

    await ollama.chat({ model: "answer", messages: USER, options: GREEDY, keep_alive: -1 });
    expect(String((await ollama.ps()).models.find((model) => model.name === "answer:latest")?.expires_at)).toBe("2318-01-01T00:00:00.000Z");

    const unload = await ollama.chat({ model: "answer", messages: [], keep_alive: 0 });
    expect(unload).toMatchObject({ done: true, done_reason: "unload" });
    expect(await loadedNames()).not.toContain("answer:latest");
  });

  it("a request with keep_alive 0 unloads the model right after it; an empty one with a keep-alive loads it", async () => {
    const loaded = await ollama.generate({ model: "answer", prompt: "", keep_alive: "10m" });
    expect(loaded).toMatchObject({ done: true, done_reason: "load", response: "" });
    expect(await loadedNames()).toContain("answer:latest");
    await ollama.generate({ model: "answer", prompt: "Weather?", options: GREEDY, keep_alive: 0 });
    await waitFor(async () => !(await loadedNames()).includes("answer:latest"), 10_000, "answer to be unloaded after its request");
  });

  it("version names the Ollama API version Hearth follows, and Hearth's own", async () => {
    const version = (await ollama.version()) as { version: string; hearth?: string };
    expect(version.version).toBe("0.12.10");
    const manifest = JSON.parse(fs.readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
    expect(version.hearth).toBe(manifest.version);
  });
});

describe("embeddings", () => {
  it("embed returns the vectors /v1/embeddings returns scaled to length 1, embeddings returns them as they are", async () => {
    const shown = await ollama.show({ model: "tiny" });
    const dimension = (shown.model_info as unknown as Record<string, number>)["llama.embedding_length"];
    const embedded = await ollama.embed({ model: "tiny:latest", input: ["hello", "world"] });
    expect(embedded.model).toBe("tiny:latest");
    expect(embedded.embeddings).toHaveLength(2);
    for (const vector of embedded.embeddings) expect(vector).toHaveLength(dimension!);
    expect(embedded.prompt_eval_count).toBeGreaterThan(0);

    const openai = (await (await fetch(`${daemon.url}/v1/embeddings`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: "tiny", input: ["hello", "world"] }) })).json()) as { data: { embedding: number[] }[] };
    // As Ollama's: unit vectors, so a dot product is the cosine.
    for (const [index, vector] of embedded.embeddings.entries()) {
      expect(Math.hypot(...vector)).toBeCloseTo(1, 5);
      const raw = openai.data[index]!.embedding;
      const length = Math.hypot(...raw);
      expect(length).not.toBeCloseTo(1, 2);
      vector.forEach((value, at) => expect(value).toBeCloseTo(raw[at]! / length, 6));
    }

    const single = await ollama.embeddings({ model: "tiny", prompt: "hello" });
    expect(single.embedding).toEqual(openai.data[0]!.embedding);
    expect((await ollama.embed({ model: "tiny", input: "hello" })).embeddings).toEqual([embedded.embeddings[0]]);
    // An empty string is no input: the model is loaded and no vector comes back, as with Ollama.
    const loaded = await ollama.embed({ model: "tiny", input: "" });
    expect(loaded).toMatchObject({ model: "tiny", embeddings: [], prompt_eval_count: 0 });
    expect(loaded.load_duration).toBe(loaded.total_duration);
  });

  it("refuses dimensions other than the model's, and an empty string in a list of inputs", async () => {
    const shown = await ollama.show({ model: "tiny" });
    const dimension = (shown.model_info as unknown as Record<string, number>)["llama.embedding_length"]!;
    expect(await failure(ollama.embed({ model: "tiny", input: "a", dimensions: 3 }))).toEqual({
      status: 400,
      message: `Invalid value for 'dimensions': this model produces ${dimension}-dimensional embeddings and Hearth does not truncate them; omit 'dimensions' or send ${dimension}.`,
    });
    expect((await ollama.embed({ model: "tiny", input: "a", dimensions: dimension })).embeddings[0]).toHaveLength(dimension);
    expect(await failure(ollama.embed({ model: "tiny", input: ["a", ""] }))).toEqual({ status: 400, message: "Invalid value for 'input[1]': must not be empty: an empty string has no embedding." });
  });
});

describe("copy and delete", () => {
  it("copy makes a name that chats and lists like the model; delete removes only that name", async () => {
    await ollama.copy({ source: "answer:latest", destination: "my-answer:latest" });
    expect((await ollama.list()).models.map((model) => model.name)).toContain("my-answer:latest");
    const answer = await ollama.chat({ model: "my-answer", messages: USER, options: GREEDY });
    expect(answer.message).toEqual({ role: "assistant", content: ANSWER, thinking: THOUGHT });
    expect(answer.model).toBe("my-answer");

    // The model cannot go while the copy names it.
    expect((await failure(ollama.delete({ model: "answer" }))).status).toBe(400);
    await ollama.delete({ model: "my-answer:latest" });
    expect((await ollama.list()).models.map((model) => model.name)).not.toContain("my-answer:latest");
    expect(await failure(ollama.chat({ model: "my-answer", messages: USER }))).toEqual({ status: 404, message: "model 'my-answer' not found" });
    expect(fs.existsSync(path.join(daemon.modelsDir, "answer.gguf"))).toBe(true);
  });

  it("a copy lives in the data dir and survives as long as the daemon's data", () => {
    const stored = JSON.parse(fs.readFileSync(path.join(daemon.home, "data", "aliases.json"), "utf8")) as { aliases: Record<string, string> };
    expect(stored.aliases).toEqual({});
  });

  it("delete refuses a name that is no model, and never removes a file outside the models dir", async () => {
    expect(await failure(ollama.delete({ model: "no-such-model" }))).toEqual({ status: 404, message: "model 'no-such-model' not found" });
    expect(await failure(ollama.delete({ model: "../models/tiny" }))).toEqual({ status: 404, message: "model '../models/tiny' not found" });
    const outside = await failure(ollama.delete({ model: "outside" }));
    expect(outside.status).toBe(400);
    expect(outside.message).toContain("not in this node's models dir");
    expect(fs.existsSync(outsidePath)).toBe(true);
    expect(await failure(ollama.copy({ source: "nope", destination: "x" }))).toEqual({ status: 404, message: "model 'nope' not found" });
  });

  it("delete removes a model's link from the models dir, not the file it points to", async () => {
    await ollama.delete({ model: "victim:latest" });
    expect(fs.existsSync(path.join(daemon.modelsDir, "victim.gguf"))).toBe(false);
    expect(fs.existsSync(tinyPath)).toBe(true);
    expect((await ollama.list()).models.map((model) => model.name)).not.toContain("victim:latest");
    expect((await ollama.generate({ model: "tiny", prompt: "a", raw: true, options: { ...GREEDY, num_predict: 1 } })).done_reason).toBe("length");
  });
});

describe("the server", () => {
  it("answers GET / and HEAD / as Ollama does", async () => {
    const get = await fetch(`${daemon.url}/`);
    expect(get.status).toBe(200);
    expect(get.headers.get("content-type")).toBe("text/plain; charset=utf-8");
    expect(await get.text()).toBe("Ollama is running");
    const head = await fetch(`${daemon.url}/`, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers.get("content-length")).toBe(String("Ollama is running".length));
    expect(await head.text()).toBe("");
  });

  it("reads a body sent the curl way (no JSON media type), but not from a browser page", async () => {
    const curl = await fetch(`${daemon.url}/api/show`, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: JSON.stringify({ model: "tiny" }) });
    expect(curl.status).toBe(200);
    const page = await fetch(`${daemon.url}/api/show`, { method: "POST", headers: { "content-type": "text/plain", origin: "http://evil.example" }, body: JSON.stringify({ model: "tiny" }) });
    expect(page.status).toBe(415);
    expect(await page.json()).toMatchObject({ error: expect.stringContaining("application/json") as string });
  });

  it("a failure after the stream began is one {error} line", async () => {
    const response = await fetch(`${daemon.url}/api/generate`, { method: "POST", body: JSON.stringify({ model: "tiny", prompt: "Once", raw: true, options: { ...GREEDY, num_predict: 1800 } }) });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("application/x-ndjson");
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let text = "";
    let killed = false;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += decoder.decode(value as Uint8Array, { stream: true });
      if (!killed && text.includes("\n")) {
        killed = true;
        const status = (await (await fetch(`${daemon.url}/hearth/v1/status`)).json()) as { models: { modelId: string; pid?: number }[] };
        const pid = status.models.find((model) => model.modelId === "tiny")?.pid;
        expect(pid).toEqual(expect.any(Number));
        process.kill(pid!, "SIGKILL");
      }
    }
    const lines = text.trim().split("\n").map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines.length).toBeGreaterThan(1);
    expect(lines.slice(0, -1).every((line) => line["done"] === false)).toBe(true);
    expect(lines.at(-1)).toEqual({ error: expect.stringContaining("runner") as string, code: "HEARTH_RUNNER_CRASHED" });
    expect((await fetch(`${daemon.url}/health`)).status).toBe(200);
  });
});

describe("fuzzed requests", () => {
  const KNOWN = new Set(["answer", "tools", "tiny", "outside", "victim"]);
  const unknownName = fc.string({ maxLength: 24 }).filter((name) => !KNOWN.has(name.replace(/:latest$/, "")));
  const value = fc.oneof(fc.anything({ maxDepth: 3 }), unknownName, fc.constant(null));
  const ENDPOINTS: Array<{ method: "POST" | "DELETE"; path: string; fields: string[] }> = [
    { method: "POST", path: "/api/chat", fields: ["messages", "tools", "format", "options", "stream", "keep_alive", "think"] },
    { method: "POST", path: "/api/generate", fields: ["prompt", "suffix", "system", "template", "context", "raw", "format", "images", "options", "stream", "keep_alive", "think"] },
    { method: "POST", path: "/api/embed", fields: ["input", "truncate", "dimensions", "options", "keep_alive"] },
    { method: "POST", path: "/api/embeddings", fields: ["prompt", "options", "keep_alive"] },
    { method: "POST", path: "/api/show", fields: ["verbose", "system", "template", "options"] },
    { method: "POST", path: "/api/pull", fields: ["insecure", "stream"] },
    { method: "POST", path: "/api/copy", fields: ["source", "destination"] },
    { method: "DELETE", path: "/api/delete", fields: [] },
  ];

  async function send(endpoint: (typeof ENDPOINTS)[number], body: string | Uint8Array, headers: Record<string, string> = { "content-type": "application/json" }): Promise<{ status: number; body: unknown }> {
    const response = await fetch(`${daemon.url}${endpoint.path}`, { method: endpoint.method, headers, body });
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = text;
    }
    return { status: response.status, body: parsed };
  }

  /** A body declared larger than max_body_bytes: refused on its Content-Length, before it is sent. */
  function declaredHuge(endpoint: (typeof ENDPOINTS)[number]): Promise<{ status: number; body: unknown }> {
    return new Promise((resolve, reject) => {
      const request = http.request(`${daemon.url}${endpoint.path}`, { method: endpoint.method, headers: { "content-type": "application/json", "content-length": String(5 * 1024 * 1024) } }, (response) => {
        let text = "";
        response.setEncoding("utf8");
        response.on("data", (chunk: string) => (text += chunk));
        response.on("end", () => {
          request.destroy();
          resolve({ status: response.statusCode ?? 0, body: JSON.parse(text) as unknown });
        });
      });
      request.on("error", reject);
      request.write('{"model": "x", "prompt": "');
    });
  }

  function expectOllamaError(answer: { status: number; body: unknown }, statuses: number[], what: string): void {
    expect(statuses, `${what}: ${JSON.stringify(answer.body).slice(0, 300)}`).toContain(answer.status);
    expect(answer.body, what).toEqual({ error: expect.any(String) as string, code: expect.stringMatching(/^HEARTH_/) as string });
  }

  for (const endpoint of ENDPOINTS) {
    it(`${endpoint.method} ${endpoint.path}: wrong types, unknown fields and names get Ollama's error shape`, async () => {
      const body = fc.record(
        Object.fromEntries([["model", fc.oneof(unknownName, value)], ["name", value], ...endpoint.fields.map((field) => [field, value]), ["unknown_field", value]]) as Record<string, fc.Arbitrary<unknown>>,
        { requiredKeys: [] },
      );
      await fc.assert(
        fc.asyncProperty(fc.oneof(body, fc.anything({ maxDepth: 2 })), async (generated) => {
          const text = JSON.stringify(generated) ?? "null";
          expectOllamaError(await send(endpoint, text), [400, 404], text.slice(0, 200));
        }),
        { numRuns: 60 },
      );
    });
  }

  it("non-JSON, bad UTF-8, empty, huge and deeply nested bodies get Ollama's error shape on every endpoint, and the daemon stays healthy", async () => {
    const deep = `${"[".repeat(100_000)}${"]".repeat(100_000)}`;
    const deepInModel = `{"model": ${"{\"a\":".repeat(5_000)}1${"}".repeat(5_000)}}`;
    for (const endpoint of ENDPOINTS) {
      expectOllamaError(await send(endpoint, "model=tiny"), [400], "form data");
      expectOllamaError(await send(endpoint, new Uint8Array([0x7b, 0x22, 0x6d, 0xff, 0xfe, 0x22, 0x7d])), [400], "bad UTF-8");
      expectOllamaError(await send(endpoint, ""), [400], "empty");
      expectOllamaError(await send(endpoint, "[1,2]"), [400], "an array");
      expectOllamaError(await send(endpoint, deep), [400], "deep array");
      expectOllamaError(await send(endpoint, deepInModel), [400], "deep object");
      expectOllamaError(await declaredHuge(endpoint), [413], "huge");
    }
    expect((await fetch(`${daemon.url}/health`)).status).toBe(200);
    expect((await ollama.list()).models.length).toBeGreaterThan(0);
  });
});

describe("pull from a peer", () => {
  const API_KEY = "ollama-pull-test-key-0123456789";
  let root: string;
  let holder: RunningDaemon | undefined;
  let puller: RunningDaemon | undefined;
  let tinySha256: string;

  beforeAll(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), "hearth-ollama-pull-"));
    tinySha256 = createHash("sha256").update(fs.readFileSync(tinyPath)).digest("hex");
    const env: NodeJS.ProcessEnv = { ...process.env, HOME: root, XDG_CONFIG_HOME: path.join(root, "xdg-config"), XDG_DATA_HOME: path.join(root, "xdg-data") };
    delete env["HEARTH_API_KEY"];
    delete env["HEARTH_URL"];
    const homes = { holder: path.join(root, "holder"), puller: path.join(root, "puller") };
    const init = await runCli(["cluster", "init", "--data-dir", path.join(homes.holder, "data"), "--json"], { env });
    expect(init.code, init.stderr).toBe(0);
    const { joinToken } = JSON.parse(init.stdout) as { joinToken: string };
    const join = await runCli(["cluster", "join", joinToken, "--data-dir", path.join(homes.puller, "data"), "--json"], { env });
    expect(join.code, join.stderr).toBe(0);
    const ports = { holder: await freePort(), puller: await freePort() };
    const configToml = '[peer]\ndial_backoff_max = "2s"\nstate_publish_interval = "1s"\n\n[limits]\nparallel_slots = 1\ncontext_size = 512\n';
    const peerArgs = (own: number, other: number): string[] => ["--no-mdns", "--peer-bind", "127.0.0.1", "--peer-port", String(own), "--peer", `127.0.0.1:${other}`];
    [holder, puller] = await Promise.all([
      startDaemon({ home: homes.holder, models: { tiny: tinyPath }, configToml, args: peerArgs(ports.holder, ports.puller), env: { HEARTH_API_KEY: "" } }),
      startDaemon({ home: homes.puller, configToml, args: peerArgs(ports.puller, ports.holder), env: { HEARTH_API_KEY: API_KEY } }),
    ]);
    await waitForValue(
      async () => {
        const view = (await (await fetch(`${puller!.url}/hearth/v1/cluster`, { headers: { authorization: `Bearer ${API_KEY}` } })).json()) as ClusterView;
        return view.peers.some((peer) => peer.state === "up" && peer.models?.some((model) => model.sha256 === tinySha256));
      },
      30_000,
      "the puller to see the holder's hashed tiny",
      { intervalMs: 200, retryErrors: true },
    );
  });

  afterAll(async () => {
    await Promise.all([holder?.stop(), puller?.stop()]);
    if (root !== undefined) fs.rmSync(root, { recursive: true, force: true });
  });

  it("needs the API key on a keyed node, sent as Authorization: Bearer", async () => {
    const anonymous = new Ollama({ host: puller!.url });
    expect(await failure(anonymous.list())).toEqual({ status: 401, message: "A valid API key is required: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'." });
  });

  it("an unknown model is 404 in Ollama's words before anything streams", async () => {
    const client = new Ollama({ host: puller!.url, headers: { Authorization: `Bearer ${API_KEY}` } });
    expect(await failure(client.pull({ model: "nope", stream: true }))).toEqual({ status: 404, message: "model 'nope' not found" });
  });

  it("fetches the model from the peer with Ollama's progress lines, then has it", async () => {
    const client = new Ollama({ host: puller!.url, headers: { Authorization: `Bearer ${API_KEY}` } });
    const size = fs.statSync(tinyPath).size;
    const progress: ProgressResponse[] = await collect(await client.pull({ model: "tiny:latest", stream: true }));
    expect(progress[0]).toEqual({ status: "pulling manifest" });
    const pulling = progress.slice(1, -2);
    expect(pulling.length).toBeGreaterThan(0);
    for (const line of pulling) expect(line).toMatchObject({ status: `pulling ${tinySha256.slice(0, 12)}`, digest: `sha256:${tinySha256}`, total: size });
    const completed = pulling.map((line) => line.completed);
    expect(completed).toEqual([...completed].sort((a, b) => a - b));
    expect(completed.at(-1)).toBe(size);
    expect(progress.slice(-2)).toEqual([{ status: "verifying sha256 digest" }, { status: "success" }]);

    const { models } = await client.list();
    expect(models.find((model) => model.name === "tiny:latest")).toMatchObject({ size, digest: tinySha256 });
    expect(fs.existsSync(path.join(puller!.modelsDir, "tiny.gguf"))).toBe(true);
    // Already here: success at once, also not streamed.
    expect(await client.pull({ model: "tiny", stream: false })).toEqual({ status: "success" });
    const again = await collect(await client.pull({ model: "tiny", stream: true }));
    expect(again).toEqual([{ status: "pulling manifest" }, { status: "success" }]);
  });
});
