/**
 * Continues a chat or completion a lost runner started (a split placement whose peer died,
 * docs/splitting.md "How failure recovery works"). The previous runner reported the ids of
 * the tokens it generated; this one evaluates prompt + those tokens in one batch and goes on
 * decoding from there, so under greedy decoding it produces exactly the tokens the lost
 * runner would have. Text is computed from all generated tokens the way node-llama-cpp
 * computes the answer (continuationText.ts), and only what the client has not received yet
 * is sent.
 *
 * Sampler state is rebuilt from the tokens too: a `response_format` grammar replays them into a
 * fresh parser state (grammarReplay.ts), and frequency/presence penalties count them as
 * node-llama-cpp does, over the last PENALTY_WINDOW_TOKENS generated tokens. (node-llama-cpp
 * counts only tokens it has released, so while a stop string is half matched the two windows
 * can differ by the held tokens.) Tool calls keep LlamaChat's function-call parser state, which
 * cannot be rebuilt from tokens here, so a job that may call tools is not resumed: it fails
 * with HEARTH_RESUME_UNSUPPORTED.
 */

import type { LlamaGrammar, LlamaGrammarEvaluationState, Token } from "node-llama-cpp";
import type { HearthError } from "../../protocol/errors.js";
import { errors } from "../../protocol/errors.js";
import type { ChatJob, CompletionJob, GenerationResult } from "../../protocol/inference.js";
import type { ResumeState } from "../../protocol/runnerIpc.js";
import { toChatHistory } from "./chatHistory.js";
import { beginningToken } from "./completionJob.js";
import { firstStopIndex, releasableLength, unsentText } from "./continuationText.js";
import { EvaluationMeter, alignToPrompt, finishReason, samplingSettings, tokenBudget, type JobContext } from "./generation.js";
import { replayGrammar } from "./grammarReplay.js";
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
  /** A chat's `response_format` grammar. */
  grammar: LlamaGrammar | undefined;
}

/**
 * The stop triggers made of text only, of a chat wrapper or a grammar (node-llama-cpp's JSON
 * grammars stop at four newlines); special-token triggers (end of turn) are end-of-generation
 * tokens, which the decoding loop sees anyway.
 */
function textTriggers(triggers: LlamaGrammar["stopGenerationTriggers"]): string[] {
  return triggers.flatMap((trigger) => {
    if (typeof trigger === "string") return [trigger];
    if (Array.isArray(trigger)) return trigger.every((value) => typeof value === "string") ? [trigger.join("")] : [];
    const llamaText = trigger as { values: readonly unknown[]; toString(): string };
    return llamaText.values.every((value) => typeof value === "string") ? [llamaText.toString()] : [];
  });
}

async function chatPrompt(runner: RunnerModel, job: ChatJob): Promise<ResumePrompt> {
  if (job.tools.length > 0 && job.toolChoice !== "none") throw notResumable("it may call tools");
  const grammar = await runner.grammars.forResponseFormat(job.responseFormat);
  const history = toChatHistory(job.messages, runner.supportsFunctions);
  if (history.at(-1)?.type !== "model") history.push({ type: "model", response: [] });
  const state = runner.chatWrapper.generateContextState({ chatHistory: history });
  const promptTokens = state.contextText.tokenize(runner.model.tokenizer);
  const wrapperStops = textTriggers(state.stopGenerationTriggers ?? []);
  const grammarStops = grammar === undefined ? [] : textTriggers(grammar.stopGenerationTriggers);
  return { promptTokens, leadingText: "", stops: [...job.sampling.stop, ...wrapperStops, ...grammarStops], contextTokens: promptTokens.slice(-DETOKENIZER_CONTEXT_TOKENS), grammar };
}

function completionPrompt(runner: RunnerModel, job: CompletionJob): ResumePrompt {
  const { model } = runner;
  const beginning = beginningToken(model);
  const textTokens = model.tokenize(job.prompt, false, beginning === undefined ? undefined : "trimLeadingSpace");
  const promptTokens = beginning === undefined ? textTokens : [beginning, ...textTokens];
  // LlamaCompletion detokenizes its answer without the prompt as context.
  return { promptTokens, leadingText: job.echo ? job.prompt : "", stops: [...job.sampling.stop], contextTokens: undefined, grammar: undefined };
}

/** The grammar's parser state after the tokens already generated; undefined without a grammar. */
function grammarStateAfter(runner: RunnerModel, grammar: LlamaGrammar | undefined, tokens: readonly number[]): LlamaGrammarEvaluationState | undefined {
  if (grammar === undefined) return undefined;
  const replay = replayGrammar(runner.model, grammar, tokens);
  if (!replay.ok) throw notResumable(`its response_format grammar cannot be restored: ${replay.reason}`);
  return replay.state;
}

export async function runResumedJob(runner: RunnerModel, job: ChatJob | CompletionJob, resume: ResumeState, context: JobContext): Promise<GenerationResult> {
  const { model, slots, contextSize } = runner;
  const prompt = job.kind === "chat" ? await chatPrompt(runner, job) : completionPrompt(runner, job);
  const budget = tokenBudget(prompt.promptTokens.length, contextSize, job.sampling.maxTokens, job.kind === "chat" ? "messages" : "prompt");
  const generated = resume.tokens.slice() as Token[];
  const stops = prompt.stops.filter((stop) => stop !== "");
  const textOf = (tokens: readonly Token[]): string => prompt.leadingText + model.detokenize(tokens, false, prompt.contextTokens);
  const trimsWhitespace = prompt.grammar?.trimWhitespaceSuffix ?? false;
  const grammarEvaluationState = grammarStateAfter(runner, prompt.grammar, generated);
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
      const penalty = sampling.repeatPenalty;
      const iterator = slot.sequence.evaluate(input.slice(cached), {
        // Without it the iterator just ends at an end-of-generation token, indistinguishable from running out.
        yieldEogToken: true,
        temperature: sampling.temperature,
        ...(sampling.topP === undefined ? {} : { topP: sampling.topP }),
        ...(sampling.seed === undefined ? {} : { seed: sampling.seed }),
        ...(grammarEvaluationState === undefined ? {} : { grammarEvaluationState }),
        ...(penalty === false
          ? {}
          : {
              // The window node-llama-cpp punishes: the answer's last tokens (newlines included, as samplingSettings asks).
              repeatPenalty: {
                punishTokens: () => generated.slice(-penalty.lastTokens),
                maxPunishTokens: penalty.lastTokens,
                penalty: penalty.penalty,
                ...(penalty.frequencyPenalty === undefined ? {} : { frequencyPenalty: penalty.frequencyPenalty }),
                ...(penalty.presencePenalty === undefined ? {} : { presencePenalty: penalty.presencePenalty }),
              },
            }),
      });
      for await (const token of iterator) {
        if (context.signal.aborted) throw errors.cancelled("The request was cancelled.");
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
        const piece = unsentText(text.slice(0, releasableLength(text, stops, trimsWhitespace)), sent);
        if (piece !== "") {
          context.onDelta(piece);
          sent += piece.length;
        }
        if (generated.length >= budget.maxTokens) break;
      }
    }
    if (trimsWhitespace) finalText = finalText.trimEnd();
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
      // node-llama-cpp's meter counts an end-of-generation token as sampled, and so does an uninterrupted job's usage.
      usage: { promptTokens: prompt.promptTokens.length, completionTokens: generated.length + (stopReason === "eogToken" ? 1 : 0) },
      cachedPromptTokens: 0,
    };
  } finally {
    slots.release(slot);
  }
}

function notResumable(why: string): HearthError {
  return errors.resumeUnsupported(`The generation was interrupted by a lost node and cannot be continued because ${why}.`);
}
