/**
 * What each API family's adapter costs against Chat Completions: one daemon, one model, the
 * same one-message conversation streamed greedily through Chat Completions, Responses,
 * Anthropic Messages and Ollama /api/chat, interleaved in every round so drift hits all alike.
 * The target is a generation rate within 2% of chat's and at most 2 ms more to the first token;
 * figures only, nothing asserts a speed. On a machine whose rates jitter by more than that from
 * run to run, the daemon's own CPU time per request (`*.daemon_cpu_ms`: parsing, translation,
 * stream writing; its runner is a child process and not counted) shows what each adapter adds
 * without the runner's noise. Every family must answer chat's text, or the
 * comparison would not be like for like, and the bench throws.
 */

import { processRunTimeMs } from "../support/clusterNet.js";
import { startDaemon, type RunningDaemon } from "../support/daemon.js";
import { readNdjson, readSse } from "../support/sse.js";
import { median } from "./stats.js";

export interface AdaptersBenchOptions {
  modelPath: string;
  threads: number;
  genTokens: number;
  repeats: number;
}

/** Rounds below this give medians too jumpy to compare a 2% difference. */
const MIN_ROUNDS = 5;
const PROMPT = "Tell me a short story about the fire in the hearth and the people who gather around it.";

type Family = "chat" | "responses" | "messages" | "ollama";
const FAMILIES: readonly Family[] = ["chat", "responses", "messages", "ollama"];

interface Run {
  text: string;
  tokens: number;
  ttftMs: number;
  tgTokS: number;
  /** CPU the daemon process itself spent during the request. */
  daemonCpuMs: number;
}

/** What one streamed event says: a piece of answer text and/or the final token count. */
interface Reading {
  text?: string;
  tokens?: number;
}

interface FamilyRequest {
  path: string;
  headers?: Record<string, string>;
  body: Record<string, unknown>;
  ndjson?: boolean;
  read(data: unknown): Reading;
}

function requestFor(family: Family, maxTokens: number): FamilyRequest {
  const messages = [{ role: "user", content: PROMPT }];
  switch (family) {
    case "chat":
      return {
        path: "/v1/chat/completions",
        body: { model: "bench", messages, max_tokens: maxTokens, temperature: 0, stream: true, stream_options: { include_usage: true } },
        read: (data) => {
          const chunk = data as { choices: { delta: { content?: string } }[]; usage?: { completion_tokens: number } | null };
          return { text: chunk.choices[0]?.delta.content ?? "", ...(chunk.usage ? { tokens: chunk.usage.completion_tokens } : {}) };
        },
      };
    case "responses":
      return {
        path: "/v1/responses",
        body: { model: "bench", input: PROMPT, max_output_tokens: maxTokens, temperature: 0, stream: true, store: false },
        read: (data) => {
          const event = data as { type: string; delta?: string; response?: { usage: { output_tokens: number } } };
          if (event.type === "response.output_text.delta") return { text: event.delta ?? "" };
          // A response cut off at max_output_tokens ends as incomplete, with the same usage.
          if (event.type === "response.completed" || event.type === "response.incomplete") return { tokens: event.response!.usage.output_tokens };
          return {};
        },
      };
    case "messages":
      return {
        path: "/v1/messages",
        headers: { "anthropic-version": "2023-06-01" },
        body: { model: "bench", messages, max_tokens: maxTokens, temperature: 0, stream: true },
        read: (data) => {
          const event = data as { type: string; delta?: { type: string; text?: string }; usage?: { output_tokens: number } };
          if (event.type === "content_block_delta" && event.delta?.type === "text_delta") return { text: event.delta.text ?? "" };
          if (event.type === "message_delta") return { tokens: event.usage!.output_tokens };
          return {};
        },
      };
    case "ollama":
      return {
        path: "/api/chat",
        body: { model: "bench", messages, stream: true, options: { temperature: 0, num_predict: maxTokens } },
        ndjson: true,
        read: (data) => {
          const chunk = data as { message?: { content?: string }; done: boolean; eval_count?: number };
          return { text: chunk.message?.content ?? "", ...(chunk.done ? { tokens: chunk.eval_count ?? 0 } : {}) };
        },
      };
  }
}

async function stream(daemon: RunningDaemon, family: Family, maxTokens: number): Promise<Run> {
  const request = requestFor(family, maxTokens);
  const cpuBefore = processRunTimeMs(daemon.process.pid!);
  const started = performance.now();
  const response = await fetch(`${daemon.url}${request.path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...request.headers },
    body: JSON.stringify(request.body),
  });
  if (!response.ok) throw new Error(`${family} failed: ${response.status} ${await response.text()}`);
  let first = 0;
  let last = 0;
  let text = "";
  let tokens: number | undefined;
  for await (const event of request.ndjson === true ? readNdjson(response) : readSse(response)) {
    if (event.data === "[DONE]") break;
    const reading = request.read(event.data);
    if (reading.text !== undefined && reading.text !== "") {
      if (first === 0) first = event.at;
      last = event.at;
      text += reading.text;
    }
    if (reading.tokens !== undefined) tokens = reading.tokens;
  }
  if (tokens === undefined) throw new Error(`${family}: no token count in the stream`);
  if (first === 0) throw new Error(`${family}: no text in the stream`);
  return { text, tokens, ttftMs: first - started, tgTokS: (tokens - 1) / ((last - first) / 1000), daemonCpuMs: processRunTimeMs(daemon.process.pid!) - cpuBefore };
}

export async function benchAdapters(options: AdaptersBenchOptions): Promise<Record<string, number>> {
  const log = (line: string): void => { process.stderr.write(`[adapters] ${line}\n`); };
  const rounds = Math.max(options.repeats, MIN_ROUNDS);
  const daemon = await startDaemon({
    models: { bench: options.modelPath },
    args: ["--log-level", "warn"],
    configToml: ["[runner]", `threads = ${options.threads}`, "[limits]", "parallel_slots = 1"].join("\n"),
    readyTimeoutMs: 60_000,
  });
  try {
    log("warming up (loads the model, then one request per family)");
    for (const family of FAMILIES) await stream(daemon, family, options.genTokens);
    const runs = new Map<Family, Run[]>(FAMILIES.map((family) => [family, []]));
    const extraTtft = new Map<Family, number[]>(FAMILIES.map((family) => [family, []]));
    for (let round = 0; round < rounds; round++) {
      // Rotate who goes first, so no family always follows the same neighbour.
      const order = FAMILIES.map((_, i) => FAMILIES[(i + round) % FAMILIES.length]!);
      const inRound = new Map<Family, Run>();
      for (const family of order) inRound.set(family, await stream(daemon, family, options.genTokens));
      const chat = inRound.get("chat")!;
      for (const family of FAMILIES) {
        const run = inRound.get(family)!;
        if (run.text !== chat.text) throw new Error(`${family} answered differently from chat in round ${round}:\n  chat: ${JSON.stringify(chat.text)}\n  ${family}: ${JSON.stringify(run.text)}`);
        if (run.tokens !== chat.tokens) throw new Error(`${family} counted ${run.tokens} tokens, chat ${chat.tokens}, in round ${round}`);
        runs.get(family)!.push(run);
        extraTtft.get(family)!.push(run.ttftMs - chat.ttftMs);
      }
      log(`round ${round}: ${FAMILIES.map((family) => `${family} ${inRound.get(family)!.tgTokS.toFixed(1)} tok/s ttft ${inRound.get(family)!.ttftMs.toFixed(1)} ms`).join(" | ")}`);
    }
    const figures: Record<string, number> = { "rounds": rounds, "tokens": runs.get("chat")![0]!.tokens };
    const chatTg = median(runs.get("chat")!.map((run) => run.tgTokS));
    const chatCpu = median(runs.get("chat")!.map((run) => run.daemonCpuMs));
    for (const family of FAMILIES) {
      const tg = median(runs.get(family)!.map((run) => run.tgTokS));
      const cpu = median(runs.get(family)!.map((run) => run.daemonCpuMs));
      figures[`${family}.ttft_ms`] = median(runs.get(family)!.map((run) => run.ttftMs));
      figures[`${family}.tg_tok_s`] = tg;
      figures[`${family}.daemon_cpu_ms`] = cpu;
      if (family === "chat") continue;
      figures[`ratio.${family}_tg_over_chat`] = tg / chatTg;
      figures[`${family}.extra_ttft_ms`] = median(extraTtft.get(family)!);
      figures[`${family}.extra_daemon_cpu_ms_per_token`] = (cpu - chatCpu) / figures["tokens"]!;
    }
    return figures;
  } finally {
    await daemon.stop();
  }
}
