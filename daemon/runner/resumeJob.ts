/**
 * Continues a chat or completion a lost runner started (a split placement whose peer died,
 * docs/splitting.md "How failure recovery works"). The previous runner reported the ids of
 * the tokens it generated; this one evaluates prompt + those tokens in one batch and goes on
 * decoding from there, so under greedy decoding it produces exactly the tokens the lost
 * runner would have. Text is computed from all generated tokens the way node-llama-cpp
 * computes the answer (continuationText.ts), and only what the client has not received yet
 * is sent.
 *
 * Grammars and tool calls keep parser state that cannot be rebuilt from tokens here, so a job
 * with either is not resumed: it fails with HEARTH_RUNNER_FAILED, as without recovery.
 */

import type { Token } from "node-llama-cpp";
import { HearthError } from "../../protocol/errors.js";
import type { ChatJob, CompletionJob, GenerationResult } from "../../protocol/inference.js";
import type { ResumeState } from "../../protocol/runnerIpc.js";
import { toChatHistory } from "./chatHistory.js";
import { beginningToken } from "./completionJob.js";
import { firstStopIndex, releasableLength, unsentText } from "./continuationText.js";
import { EvaluationMeter, alignToPrompt, finishReason, samplingSettings, tokenBudget, type JobContext } from "./generation.js";
import type { RunnerModel } from "./RunnerModel.js";

/** Tokens of context the detokenizer gets before a chat answer (node-llama-cpp uses its last tokens too). */
const DETOKENIZER_CONTEXT_TOKENS = 16;

interface ResumePrompt {
  promptTokens: Token[];
  /** Text the answer starts with before any generated token (a completion's echoed prompt). */
  leadingText: string;
  stops: string[];
  /** Detokenizer context: chat answers are detokenized after the prompt's last tokens. */
  contextTokens: Token[] | undefined;
}

function chatPrompt(runner: RunnerModel, job: ChatJob): ResumePrompt {
  if (job.tools.length > 0 && job.toolChoice !== "none") throw notResumable("it may call tools");
  if (job.responseFormat.type !== "text") throw notResumable("it is constrained by a response_format grammar");
  if (job.sampling.frequencyPenalty !== undefined || job.sampling.presencePenalty !== undefined) throw notResumable("it uses frequency or presence penalties");
  const history = toChatHistory(job.messages, runner.supportsFunctions);
  if (history.at(-1)?.type !== "model") history.push({ type: "model", response: [] });
  const state = runner.chatWrapper.generateContextState({ chatHistory: history });
  const promptTokens = state.contextText.tokenize(runner.model.tokenizer);
  // Stop triggers made of text only; special-token triggers (end of turn) are end-of-generation tokens.
  const wrapperStops = (state.stopGenerationTriggers ?? [])
    .filter((trigger) => trigger.values.every((value) => typeof value === "string"))
    .map((trigger) => trigger.toString())
    .filter((text) => text !== "");
  return { promptTokens, leadingText: "", stops: [...job.sampling.stop, ...wrapperStops], contextTokens: promptTokens.slice(-DETOKENIZER_CONTEXT_TOKENS) };
}

function completionPrompt(runner: RunnerModel, job: CompletionJob): ResumePrompt {
  const { model } = runner;
  if (job.sampling.frequencyPenalty !== undefined || job.sampling.presencePenalty !== undefined) throw notResumable("it uses frequency or presence penalties");
  const beginning = beginningToken(model);
  const textTokens = model.tokenize(job.prompt, false, beginning === undefined ? undefined : "trimLeadingSpace");
  const promptTokens = beginning === undefined ? textTokens : [beginning, ...textTokens];
  // LlamaCompletion detokenizes its answer without the prompt as context.
  return { promptTokens, leadingText: job.echo ? job.prompt : "", stops: [...job.sampling.stop], contextTokens: undefined };
}

export async function runResumedJob(runner: RunnerModel, job: ChatJob | CompletionJob, resume: ResumeState, context: JobContext): Promise<GenerationResult> {
  const { model, slots, contextSize } = runner;
  const prompt = job.kind === "chat" ? chatPrompt(runner, job) : completionPrompt(runner, job);
  const budget = tokenBudget(prompt.promptTokens.length, contextSize, job.sampling.maxTokens, job.kind === "chat" ? "messages" : "prompt");
  const generated = resume.tokens.slice() as Token[];
  const stops = prompt.stops.filter((stop) => stop !== "");
  const textOf = (tokens: readonly Token[]): string => prompt.leadingText + model.detokenize(tokens, false, prompt.contextTokens);
  let sent = resume.sentText.length;
  let stopReason = "maxTokens";
  let finalText = textOf(generated);
  const input = [...prompt.promptTokens, ...generated];

  const slot = await slots.acquire(input, context.signal);
  try {
    const cached = await alignToPrompt(slot.sequence, input);
    const meter = new EvaluationMeter(slot.sequence);
    const existingStop = firstStopIndex(finalText.slice(prompt.leadingText.length), stops);
    if (existingStop !== undefined) {
      // The lost runner had already produced the stop string but not released it.
      finalText = finalText.slice(0, prompt.leadingText.length + existingStop);
      stopReason = "stopGenerationTrigger";
    } else if (generated.length < budget.maxTokens) {
      const sampling = samplingSettings(job.sampling);
      const iterator = slot.sequence.evaluate(input.slice(cached), {
        temperature: sampling.temperature,
        ...(sampling.topP === undefined ? {} : { topP: sampling.topP }),
        ...(sampling.seed === undefined ? {} : { seed: sampling.seed }),
      });
      for await (const token of iterator) {
        if (context.signal.aborted) throw new HearthError("HEARTH_CANCELLED", "The request was cancelled.");
        if (model.isEogToken(token)) {
          stopReason = "eogToken";
          break;
        }
        generated.push(token);
        context.onTokens([token]);
        const text = textOf(generated);
        const stop = firstStopIndex(text.slice(prompt.leadingText.length), stops);
        if (stop !== undefined) {
          finalText = text.slice(0, prompt.leadingText.length + stop);
          stopReason = "stopGenerationTrigger";
          break;
        }
        finalText = text;
        const piece = unsentText(text.slice(0, releasableLength(text, stops)), sent);
        if (piece !== "") {
          context.onDelta(piece);
          sent += piece.length;
        }
        if (generated.length >= budget.maxTokens) break;
      }
    }
    const rest = unsentText(finalText, sent);
    if (rest !== "") context.onDelta(rest);
    if (!finalText.startsWith(resume.sentText)) {
      runner.log("warn", "the resumed generation does not extend the text already sent; the client keeps what it has", { sentChars: resume.sentText.length });
    }
    const counts = meter.read();
    runner.log("debug", `${job.kind} job resumed`, { slot: slot.index, resumedTokens: resume.tokens.length, decodedTokens: counts.decoded, stopReason });
    return {
      text: finalText,
      toolCalls: [],
      finishReason: finishReason(stopReason, false),
      usage: { promptTokens: prompt.promptTokens.length, completionTokens: generated.length },
      cachedPromptTokens: 0,
    };
  } finally {
    slots.release(slot);
  }
}

function notResumable(why: string): HearthError {
  return new HearthError("HEARTH_RUNNER_FAILED", `The generation was interrupted by a lost node and cannot be continued because ${why}.`);
}
