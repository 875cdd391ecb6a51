/**
 * The foundation's acceptance path, exactly as a new user walks it: `hearth synth` makes a
 * model, `hearth serve` runs as its own process, and the official openai client talks to it.
 * Greedy output is compared with node-llama-cpp called directly on the same file.
 */

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { getLlama, LlamaCompletion, type Llama, type LlamaModel } from "node-llama-cpp";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../support/cli.js";
import { startDaemon, type RunningDaemon } from "../support/daemon.js";

let workDir: string;
let modelPath: string;
let daemon: RunningDaemon;
let client: OpenAI;
let llama: Llama;
let model: LlamaModel;

async function runnerPid(): Promise<number> {
  const response = await fetch(`${daemon.url}/hearth/v1/status`);
  const status = (await response.json()) as { models: { modelId: string; pid?: number }[] };
  const pid = status.models.find((entry) => entry.modelId === "tiny")?.pid;
  if (pid === undefined) throw new Error(`no runner for tiny in ${JSON.stringify(status)}`);
  return pid;
}

beforeAll(async () => {
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), "hearth-acceptance-"));
  modelPath = path.join(workDir, "tiny.gguf");
  const synth = await runCli(["synth", modelPath, "--preset", "tiny", "--json"]);
  expect(synth.code, synth.stderr).toBe(0);
  expect(JSON.parse(synth.stdout)).toMatchObject({ path: modelPath });
  daemon = await startDaemon({
    models: { tiny: modelPath },
    configToml: "[runner]\nthreads = 1\n[limits]\ncontext_size = 1024\nparallel_slots = 2\n",
  });
  client = new OpenAI({ baseURL: `${daemon.url}/v1`, apiKey: "not-needed-on-loopback", maxRetries: 0 });
  llama = await getLlama({ build: "never" });
  model = await llama.loadModel({ modelPath });
});

afterAll(async () => {
  await model?.dispose();
  await llama?.dispose();
  const exit = await daemon?.stop();
  fs.rmSync(workDir, { recursive: true, force: true });
  expect(exit).toBe(0);
});

describe("a new user's first session against hearth serve", () => {
  it("lists the synthesized model", async () => {
    const models = await client.models.list();
    expect(models.data.map((entry) => entry.id)).toContain("tiny");
  });

  it("greedy completions through the daemon equal node-llama-cpp called directly", async () => {
    const prompt = "The hearth keeps the house warm and";
    const viaDaemon = await client.completions.create({ model: "tiny", prompt, max_tokens: 24, temperature: 0 });

    const context = await model.createContext({ contextSize: 1024, threads: 1 });
    try {
      const completion = new LlamaCompletion({ contextSequence: context.getSequence() });
      const direct = await completion.generateCompletion(prompt, { maxTokens: 24, temperature: 0 });
      expect(viaDaemon.choices[0]!.text).toBe(direct);
      expect(direct.length).toBeGreaterThan(0);
    } finally {
      await context.dispose();
    }
  });

  it("streams chat chunks that concatenate to the non-streamed greedy answer", async () => {
    const messages = [{ role: "user" as const, content: "Tell me about fire." }];
    const whole = await client.chat.completions.create({ model: "tiny", messages, max_tokens: 20, temperature: 0 });
    const stream = await client.chat.completions.create({ model: "tiny", messages, max_tokens: 20, temperature: 0, stream: true, stream_options: { include_usage: true } });
    let text = "";
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? "";
      finish = chunk.choices[0]?.finish_reason ?? finish;
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toBe(whole.choices[0]!.message.content);
    expect(finish).toBe(whole.choices[0]!.finish_reason);
    expect(usage?.completion_tokens).toBe(whole.usage?.completion_tokens);
  });

  it("reuses the KV cache for a follow-up turn and still answers like a cold run", async () => {
    const first = [
      { role: "system" as const, content: "You are a careful assistant who answers briefly." },
      { role: "user" as const, content: "Name three things found near a fireplace." },
    ];
    const turn1 = await client.chat.completions.create({ model: "tiny", messages: first, max_tokens: 12, temperature: 0 });
    const followUp = [...first, { role: "assistant" as const, content: turn1.choices[0]!.message.content ?? "" }, { role: "user" as const, content: "And one more?" }];
    const turn2 = await client.chat.completions.create({ model: "tiny", messages: followUp, max_tokens: 12, temperature: 0 });
    const cached = turn2.usage?.prompt_tokens_details?.cached_tokens ?? 0;
    expect(cached).toBeGreaterThanOrEqual(turn1.usage!.prompt_tokens);
    expect(cached).toBeLessThan(turn2.usage!.prompt_tokens);
  });

  it("embeddings: the client's default base64 and explicit floats decode to node-llama-cpp's vector", async () => {
    const input = "warm stones";
    const viaBase64 = await client.embeddings.create({ model: "tiny", input });
    const viaFloat = await client.embeddings.create({ model: "tiny", input, encoding_format: "float" });
    expect(viaBase64.data[0]!.embedding).toEqual(viaFloat.data[0]!.embedding);

    const context = await model.createEmbeddingContext({ contextSize: 1024, threads: 1 });
    try {
      const direct = (await context.getEmbeddingFor(input)).vector;
      expect(viaFloat.data[0]!.embedding).toHaveLength(direct.length);
      viaFloat.data[0]!.embedding.forEach((value, i) => expect(value).toBeCloseTo(direct[i]!, 4));
    } finally {
      await context.dispose();
    }
  });

  it("a runner killed mid-stream fails that stream cleanly; the daemon stays up and serves the next request", async () => {
    const stream = await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "Go on at length." }], max_tokens: 400, temperature: 0, stream: true });
    const pid = await runnerPid();
    let failure: unknown;
    let chunks = 0;
    try {
      for await (const chunk of stream) {
        chunks += 1;
        if (chunks === 2) process.kill(pid, "SIGKILL");
        void chunk;
      }
    } catch (error) {
      failure = error;
    }
    expect(failure).toBeInstanceOf(OpenAI.APIError);
    // The stream's error event carries the catalogue code, which the client exposes as `code`.
    expect((failure as InstanceType<typeof OpenAI.APIError>).code).toBe("HEARTH_RUNNER_CRASHED");

    const next = await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "Still there?" }], max_tokens: 4, temperature: 0 });
    expect(next.choices[0]!.message.role).toBe("assistant");
    expect(await runnerPid()).not.toBe(pid);
  });

  it("answers errors in OpenAI's shape with stable codes", async () => {
    const unknown = await client.chat.completions.create({ model: "no-such-model", messages: [{ role: "user", content: "hi" }] }).catch((error: unknown) => error);
    expect(unknown).toBeInstanceOf(OpenAI.NotFoundError);
    expect((unknown as InstanceType<typeof OpenAI.NotFoundError>).code).toBe("HEARTH_MODEL_NOT_FOUND");

    const badTokens = await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: -5 }).catch((error: unknown) => error);
    expect(badTokens).toBeInstanceOf(OpenAI.BadRequestError);
    expect((badTokens as InstanceType<typeof OpenAI.BadRequestError>).param).toBe("max_tokens");
  });
});
