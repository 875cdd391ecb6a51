/**
 * Single-machine benchmark: the daemon's HTTP API against node-llama-cpp called directly,
 * measured side by side in one run on the same model with the same threads and context
 * shape, plus concurrency scaling and prefix reuse. Figures are printed as ratios; nothing
 * here asserts a speed, because a noisy machine must not fail a build.
 *
 * Two daemons run beside the direct baseline, one run of each in turn: the default one
 * ([runner] batching = "exact": flash attention off, one sequence per batch), whose ratio over
 * direct is what a user gets, and one with batching = "throughput", which computes with
 * node-llama-cpp's own settings, so its ratio over direct is the daemon's overhead alone.
 */

import { getLlama, LlamaCompletion } from "node-llama-cpp";
import { startDaemon, type RunningDaemon } from "../support/daemon.js";
import { readSse } from "../support/sse.js";
import { median } from "./stats.js";

export interface FoundationBenchOptions {
  modelPath: string;
  threads: number;
  parallelSlots: number;
  contextSize: number;
  promptChars: number;
  genTokens: number;
  repeats: number;
}

interface Timing {
  promptTokens: number;
  completionTokens: number;
  /** Seconds from sending the request to the first token. */
  ttft: number;
  /** Seconds from the first token to the last. */
  genSeconds: number;
}

const BASE_TEXT = "The quick brown fox jumps over the lazy dog while the hearth keeps the house warm. ";

function promptFor(tag: string, chars: number): string {
  return `${tag} ${BASE_TEXT.repeat(Math.ceil(chars / BASE_TEXT.length))}`.slice(0, chars);
}

const ppRate = (t: Timing): number => t.promptTokens / t.ttft;
const tgRate = (t: Timing): number => (t.completionTokens - 1) / t.genSeconds;

async function streamCompletion(daemon: RunningDaemon, prompt: string, maxTokens: number): Promise<Timing> {
  const started = performance.now();
  const response = await fetch(`${daemon.url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "bench", prompt, max_tokens: maxTokens, temperature: 0, stream: true, stream_options: { include_usage: true } }),
  });
  if (!response.ok) throw new Error(`completion failed: ${response.status} ${await response.text()}`);
  let first = 0;
  let last = 0;
  let usage: { prompt_tokens: number; completion_tokens: number } | undefined;
  for await (const event of readSse(response)) {
    if (event.data === "[DONE]") break;
    const chunk = event.data as { choices: { text: string }[]; usage?: typeof usage };
    if (chunk.choices.length > 0 && chunk.choices[0]!.text !== "") {
      if (first === 0) first = event.at;
      last = event.at;
    }
    if (chunk.usage) usage = chunk.usage;
  }
  if (!usage) throw new Error("no usage chunk in the stream");
  return { promptTokens: usage.prompt_tokens, completionTokens: usage.completion_tokens, ttft: (first - started) / 1000, genSeconds: (last - first) / 1000 };
}

async function streamChat(daemon: RunningDaemon, messages: { role: string; content: string }[], maxTokens: number): Promise<{ timing: Timing; text: string; cached: number }> {
  const started = performance.now();
  const response = await fetch(`${daemon.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "bench", messages, max_tokens: maxTokens, temperature: 0, stream: true, stream_options: { include_usage: true } }),
  });
  if (!response.ok) throw new Error(`chat failed: ${response.status} ${await response.text()}`);
  let first = 0;
  let last = 0;
  let text = "";
  let usage: { prompt_tokens: number; completion_tokens: number; prompt_tokens_details?: { cached_tokens?: number } } | undefined;
  for await (const event of readSse(response)) {
    if (event.data === "[DONE]") break;
    const chunk = event.data as { choices: { delta: { content?: string } }[]; usage?: typeof usage };
    const piece = chunk.choices[0]?.delta.content ?? "";
    if (piece !== "") {
      if (first === 0) first = event.at;
      last = event.at;
      text += piece;
    }
    if (chunk.usage) usage = chunk.usage;
  }
  if (!usage) throw new Error("no usage chunk in the stream");
  return {
    timing: { promptTokens: usage.prompt_tokens, completionTokens: usage.completion_tokens, ttft: (first - started) / 1000, genSeconds: (last - first) / 1000 },
    text,
    cached: usage.prompt_tokens_details?.cached_tokens ?? 0,
  };
}

function startFoundationDaemon(options: FoundationBenchOptions, batching: "exact" | "throughput"): Promise<RunningDaemon> {
  return startDaemon({
    models: { bench: options.modelPath },
    args: ["--log-level", "warn"],
    configToml: [
      "[runner]", `threads = ${options.threads}`, `batching = "${batching}"`,
      "[limits]", `parallel_slots = ${options.parallelSlots}`, `context_size = ${options.contextSize}`,
    ].join("\n"),
    readyTimeoutMs: 60_000,
  });
}

export async function benchFoundation(options: FoundationBenchOptions): Promise<Record<string, number>> {
  const log = (line: string): void => { process.stderr.write(`[foundation] ${line}\n`); };
  const daemon = await startFoundationDaemon(options, "exact");
  const throughputDaemon = await startFoundationDaemon(options, "throughput");
  // node-llama-cpp in this process, shaped like the runner's context (same sequences and size).
  const llama = await getLlama({ build: "never" });
  const model = await llama.loadModel({ modelPath: options.modelPath });
  const context = await model.createContext({
    // node-llama-cpp 3.22 gives each sequence contextSize cells, as the runner does.
    contextSize: options.contextSize,
    sequences: options.parallelSlots,
    threads: options.threads,
  });
  try {
    log("warming up (loads the model in each daemon's runner)");
    await streamCompletion(daemon, promptFor("warmup", 32), 4);
    await streamCompletion(throughputDaemon, promptFor("warmup", 32), 4);

    const viaDaemon: Timing[] = [];
    const viaThroughputDaemon: Timing[] = [];
    const direct: Timing[] = [];
    for (let run = 0; run < options.repeats; run++) {
      // A fresh tag per run defeats prefix reuse, so every side evaluates the whole prompt.
      const daemonTiming = await streamCompletion(daemon, promptFor(`d${run}`, options.promptChars), options.genTokens);
      viaDaemon.push(daemonTiming);
      const throughputTiming = await streamCompletion(throughputDaemon, promptFor(`t${run}`, options.promptChars), options.genTokens);
      viaThroughputDaemon.push(throughputTiming);

      const sequence = context.getSequence();
      const completion = new LlamaCompletion({ contextSequence: sequence });
      const prompt = promptFor(`n${run}`, options.promptChars);
      let first = 0;
      let last = 0;
      const started = performance.now();
      const { response } = await completion.generateCompletionWithMeta(prompt, {
        maxTokens: options.genTokens,
        temperature: 0,
        onTextChunk: () => {
          const now = performance.now();
          if (first === 0) first = now;
          last = now;
        },
      });
      const completionTokens = model.tokenize(response).length;
      direct.push({ promptTokens: model.tokenize(prompt).length + 1, completionTokens, ttft: (first - started) / 1000, genSeconds: (last - first) / 1000 });
      completion.dispose();
      await sequence.dispose();
      log(`run ${run}: daemon pp ${ppRate(daemonTiming).toFixed(1)} tg ${tgRate(daemonTiming).toFixed(2)} | throughput daemon pp ${ppRate(throughputTiming).toFixed(1)} tg ${tgRate(throughputTiming).toFixed(2)} | direct pp ${ppRate(direct.at(-1)!).toFixed(1)} tg ${tgRate(direct.at(-1)!).toFixed(2)} tok/s`);
    }

    log("concurrency: 1 client, then 4 clients at once");
    const aggregate = async (target: RunningDaemon, clients: number): Promise<number> => {
      const started = performance.now();
      const timings = await Promise.all(Array.from({ length: clients }, (_, i) => streamCompletion(target, promptFor(`c${clients}-${i}`, 24), options.genTokens)));
      const seconds = (performance.now() - started) / 1000;
      return timings.reduce((sum, t) => sum + t.completionTokens, 0) / seconds;
    };
    const oneClient = await aggregate(daemon, 1);
    const fourClients = await aggregate(daemon, 4);
    // The same on a daemon that decodes its slots together ([runner] batching = "throughput"): what exact batching costs under load.
    log("concurrency again with batching = \"throughput\"");
    await aggregate(throughputDaemon, 1);
    const fourClientsThroughput = await aggregate(throughputDaemon, 4);

    log("prefix reuse: a long conversation, then a follow-up turn");
    const conversation = [
      { role: "system", content: promptFor("sys", 200) },
      { role: "user", content: promptFor("u1", 400) },
      { role: "assistant", content: promptFor("a1", 300) },
      { role: "user", content: promptFor("u2", 400) },
    ];
    const turn1 = await streamChat(daemon, conversation, 8);
    const turn2 = await streamChat(daemon, [...conversation, { role: "assistant", content: turn1.text }, { role: "user", content: "And then?" }], 8);

    const daemonPp = median(viaDaemon.map(ppRate));
    const directPp = median(direct.map(ppRate));
    const daemonTg = median(viaDaemon.map(tgRate));
    const directTg = median(direct.map(tgRate));
    const throughputPp = median(viaThroughputDaemon.map(ppRate));
    const throughputTg = median(viaThroughputDaemon.map(tgRate));
    return {
      "daemon.pp_tok_s": daemonPp,
      "direct.pp_tok_s": directPp,
      "ratio.pp_daemon_over_direct": daemonPp / directPp,
      "daemon.tg_tok_s": daemonTg,
      "direct.tg_tok_s": directTg,
      "ratio.tg_daemon_over_direct": daemonTg / directTg,
      "throughput_batching.pp_tok_s": throughputPp,
      "throughput_batching.tg_tok_s": throughputTg,
      "ratio.pp_throughput_batching_daemon_over_direct": throughputPp / directPp,
      "ratio.tg_throughput_batching_daemon_over_direct": throughputTg / directTg,
      "concurrency.1_client_tok_s": oneClient,
      "concurrency.4_clients_tok_s": fourClients,
      "ratio.4_clients_over_1": fourClients / oneClient,
      "concurrency.4_clients_throughput_batching_tok_s": fourClientsThroughput,
      "ratio.4_clients_exact_over_throughput_batching": fourClients / fourClientsThroughput,
      "prefix.turn1_prompt_tokens": turn1.timing.promptTokens,
      "prefix.turn1_ttft_s": turn1.timing.ttft,
      "prefix.turn2_prompt_tokens": turn2.timing.promptTokens,
      "prefix.turn2_cached_tokens": turn2.cached,
      "prefix.turn2_ttft_s": turn2.timing.ttft,
      "ratio.ttft_turn2_over_turn1": turn2.timing.ttft / turn1.timing.ttft,
    };
  } finally {
    await context.dispose();
    await model.dispose();
    await llama.dispose();
    await daemon.stop();
    await throughputDaemon.stop();
  }
}
