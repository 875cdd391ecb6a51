/**
 * What chat and completion jobs share: the token budget, sampling options, finish reasons,
 * and the measurement of what a job actually evaluated.
 *
 * The budget is checked before generation on purpose: node-llama-cpp would otherwise fit an
 * over-long prompt by silently dropping its beginning (context shift) and keep generating
 * past a full context the same way. Hearth answers HEARTH_CONTEXT_OVERFLOW instead, and caps
 * generation so the sequence never fills up: node-llama-cpp shifts once the next token index
 * reaches contextSize - 1, and after k generated tokens that index is prompt + k - 1.
 */

import type { LlamaContextSequence, TokenMeterState } from "node-llama-cpp";
import { TokenMeter } from "node-llama-cpp";
import { errors } from "../../protocol/errors.js";
import type { FinishReason, GenerationDelta, GenerationResult, SamplingOptions, ToolCall } from "../../protocol/inference.js";
import type { ResumeState } from "../../protocol/runnerIpc.js";
import type { RunnerModel } from "./RunnerModel.js";
import { traceSampling } from "./samplingReplay.js";
import { SentFilter } from "./sentFilter.js";

/** Recent tokens OpenAI-style frequency/presence penalties look back over. */
export const PENALTY_WINDOW_TOKENS = 256;

export interface JobContext {
  signal: AbortSignal;
  /** Date.now() when the runner received the job. */
  startedAt: number;
  onDelta(delta: GenerationDelta): void;
  /** Token ids of the text about to be sent, so a lost generation can be continued exactly. */
  onTokens(tokens: number[]): void;
}

export interface TokenBudget {
  /** Tokens to generate at most: the client's max_tokens, capped by the room left. */
  maxTokens: number;
}

/** Throws HEARTH_CONTEXT_OVERFLOW (with `param`) when no room is left to generate. */
export function tokenBudget(promptTokens: number, contextSize: number, requestedMaxTokens: number | undefined, param: string): TokenBudget {
  const room = contextSize - promptTokens - 1;
  if (room < 1) {
    throw errors.contextOverflow(`The prompt is ${promptTokens} tokens, but each request gets a context of ${contextSize} tokens, which must also hold at least one generated token.`,
      { param },
    );
  }
  if (requestedMaxTokens === undefined || requestedMaxTokens > room) return { maxTokens: room };
  return { maxTokens: Math.max(1, requestedMaxTokens) };
}

export interface SamplingSettings {
  temperature: number;
  topP?: number;
  topK?: number;
  seed?: number;
  repeatPenalty: false | { lastTokens: number; penalty: number; frequencyPenalty?: number; presencePenalty?: number; penalizeNewLine: boolean };
  customStopTriggers?: string[];
}

/**
 * node-llama-cpp options for `sampling`. Its own defaults differ from OpenAI's (it applies a
 * 1.1 repeat penalty unless told otherwise), so every knob is set explicitly: no penalty
 * unless the client asked for frequency/presence or repeat penalties.
 */
export function samplingSettings(sampling: SamplingOptions): SamplingSettings {
  const settings: SamplingSettings = { temperature: sampling.temperature, repeatPenalty: false };
  if (sampling.topP !== undefined) settings.topP = sampling.topP;
  if (sampling.topK !== undefined) settings.topK = sampling.topK;
  if (sampling.seed !== undefined) settings.seed = sampling.seed;
  const stops = sampling.stop.filter((stop) => stop !== "");
  if (stops.length > 0) settings.customStopTriggers = stops;
  const frequency = sampling.frequencyPenalty ?? 0;
  const presence = sampling.presencePenalty ?? 0;
  const repeat = sampling.repeatPenalty ?? 1;
  if (frequency !== 0 || presence !== 0 || repeat !== 1) {
    settings.repeatPenalty = { lastTokens: PENALTY_WINDOW_TOKENS, penalty: repeat, penalizeNewLine: true };
    if (frequency !== 0) settings.repeatPenalty.frequencyPenalty = frequency;
    if (presence !== 0) settings.repeatPenalty.presencePenalty = presence;
  }
  return settings;
}

/**
 * node-llama-cpp's stop reason as a finish reason: "functionCalls" only when it parsed every
 * call to its end, "maxTokens" even if some calls were complete before the limit cut the next.
 */
export function finishReason(stopReason: string): FinishReason {
  if (stopReason === "functionCalls") return "tool_calls";
  return stopReason === "maxTokens" ? "length" : "stop";
}

/**
 * The client stop string that ended generation. node-llama-cpp reports the trigger it matched
 * as the parts it was resolved to; a string trigger stays one string part.
 */
export function matchedStopSequence(finished: Pick<FinishedGeneration, "stopReason" | "customStopTrigger">): string | undefined {
  if (finished.stopReason !== "customStopTrigger" || finished.customStopTrigger === undefined) return undefined;
  const parts = finished.customStopTrigger.filter((part): part is string => typeof part === "string");
  return parts.length === finished.customStopTrigger.length && parts.length > 0 ? parts.join("") : undefined;
}

/**
 * Token counts of one job on one sequence, from node-llama-cpp's own meter: `decoded` is
 * every token that went through the model (prompt tokens that were not cached, plus each
 * generated token fed back), `sampled` is how many tokens the model produced.
 */
export class EvaluationMeter {
  readonly #sequence: LlamaContextSequence;
  readonly #before: TokenMeterState;

  constructor(sequence: LlamaContextSequence) {
    this.#sequence = sequence;
    this.#before = sequence.tokenMeter.getState();
  }

  read(): { decoded: number; sampled: number } {
    const diff = TokenMeter.diff(this.#sequence.tokenMeter, this.#before);
    return { decoded: diff.usedInputTokens + diff.usedOutputTokens, sampled: diff.usedOutputTokens };
  }
}

/**
 * Makes `sequence` hold the longest cached prefix of `promptTokens` and nothing after it, the
 * same alignment LlamaChat and LlamaCompletion perform before evaluating (they keep the last
 * prompt token to evaluate, since its logits produce the first new token). Returns how many
 * prompt tokens stay cached: node-llama-cpp then finds them in place and evaluates only the rest.
 */
export async function alignToPrompt(sequence: LlamaContextSequence, promptTokens: readonly number[]): Promise<number> {
  const keep = promptTokens.slice(0, -1) as Parameters<LlamaContextSequence["adaptStateToTokens"]>[0];
  await sequence.adaptStateToTokens(keep, false);
  return sequence.nextTokenIndex;
}

/** What a finished chat or completion job knows about itself. */
export interface FinishedGeneration {
  kind: "chat" | "completion";
  slotIndex: number;
  promptTokens: number;
  cachedPromptTokens: number;
  meter: EvaluationMeter;
  stopReason: string;
  /** node-llama-cpp's `customStopTrigger` when a client stop string ended generation. */
  customStopTrigger?: readonly unknown[] | undefined;
  text: string;
  reasoning: string;
  reasoningTokens: number;
  toolCalls: ToolCall[];
  /** Date.now() when the first token was sampled; undefined when none was. */
  firstTokenAt: number | undefined;
  /** Tokens forced from a lost runner's report (0 for a fresh job). */
  resumedTokens: number;
}

export interface JobSampling {
  /** Sends a delta on, minus what a lost runner already delivered. */
  emit: (delta: GenerationDelta) => void;
  /** Date.now() when the first token was sampled; undefined when none was. */
  firstTokenAt: () => number | undefined;
  /** Stops watching the sequence; call when the job ends, however it ends. */
  stop: () => void;
}

/**
 * Reports every token the job samples (so a lost job can be continued), forcing a lost
 * runner's tokens first when the job continues one (samplingReplay.ts).
 */
export function traceJobSampling(runner: RunnerModel, sequence: LlamaContextSequence, context: JobContext, resume: ResumeState | undefined): JobSampling {
  let firstTokenAt: number | undefined;
  const filter = new SentFilter(resume?.sent);
  const stop = traceSampling(sequence, runner.model, resume?.tokens ?? [], (token) => {
    firstTokenAt ??= Date.now();
    context.onTokens([token]);
  });
  return {
    emit: (delta) => {
      const unsent = filter.pass(delta);
      if (unsent !== undefined) context.onDelta(unsent);
    },
    firstTokenAt: () => firstTokenAt,
    stop,
  };
}

/** Logs a job's token accounting and turns it into the result the daemon receives. */
export function generationResult(runner: RunnerModel, finished: FinishedGeneration, context: JobContext): GenerationResult {
  const counts = finished.meter.read();
  runner.log("debug", `${finished.kind} job done`, {
    slot: finished.slotIndex,
    promptTokens: finished.promptTokens,
    cachedPromptTokens: finished.cachedPromptTokens,
    decodedTokens: counts.decoded,
    sampledTokens: counts.sampled,
    resumedTokens: finished.resumedTokens,
    stopReason: finished.stopReason,
  });
  const result: GenerationResult = {
    text: finished.text,
    reasoning: finished.reasoning,
    toolCalls: finished.toolCalls,
    finishReason: finishReason(finished.stopReason),
    usage: { promptTokens: finished.promptTokens, completionTokens: counts.sampled, reasoningTokens: finished.reasoningTokens },
    cachedPromptTokens: finished.cachedPromptTokens,
  };
  const stopSequence = matchedStopSequence(finished);
  if (stopSequence !== undefined) result.stopSequence = stopSequence;
  if (finished.firstTokenAt !== undefined) result.timeToFirstTokenMs = finished.firstTokenAt - context.startedAt;
  return result;
}
