/**
 * One text completion job on one slot, with node-llama-cpp's LlamaCompletion.
 *
 * The prompt is tokenized here exactly as LlamaCompletion would (beginning-of-text token
 * first when the tokenizer wants one) and handed over as tokens, so the count, the overflow
 * check and the slot choice all see the tokens that are evaluated.
 */

import type { LlamaModel, Token } from "node-llama-cpp";
import { LlamaCompletion, LlamaVocabularyType } from "node-llama-cpp";
import { errors } from "../../protocol/errors.js";
import type { CompletionJob, GenerationResult } from "../../protocol/inference.js";
import { EvaluationMeter, alignToPrompt, generationResult, samplingSettings, tokenBudget, type JobContext } from "./generation.js";
import type { RunnerModel } from "./RunnerModel.js";

export async function runCompletionJob(runner: RunnerModel, job: CompletionJob, context: JobContext): Promise<GenerationResult> {
  const { model, slots, contextSize } = runner;
  const beginning = beginningToken(model);
  // LlamaCompletion prepends the beginning token itself, so it gets the text tokens alone.
  const textTokens = model.tokenize(job.prompt, false, beginning === undefined ? undefined : "trimLeadingSpace");
  const promptTokens = beginning === undefined ? textTokens : [beginning, ...textTokens];
  if (promptTokens.length === 0) throw errors.invalidRequest("The prompt is empty and the model has no beginning-of-text token to start from.", { param: "prompt" });
  const budget = tokenBudget(promptTokens.length, contextSize, job.sampling.maxTokens, "prompt");

  if (job.echo && job.prompt !== "") context.onDelta(job.prompt);
  const slot = await slots.acquire(promptTokens, context.signal);
  try {
    const cachedPromptTokens = await alignToPrompt(slot.sequence, promptTokens);
    const meter = new EvaluationMeter(slot.sequence);
    let firstTokenAt: number | undefined;
    const completion = new LlamaCompletion({ contextSequence: slot.sequence });
    try {
      const response = await completion.generateCompletionWithMeta(textTokens, {
        ...samplingSettings(job.sampling),
        maxTokens: budget.maxTokens,
        // The budget already keeps generation inside the context. Without these,
        // LlamaCompletion would cut a prompt longer than 90% of the context to its tail.
        contextShiftSize: 1,
        disableContextShift: true,
        signal: context.signal,
        onToken: (tokens) => {
          firstTokenAt ??= Date.now();
          context.onTokens(tokens);
        },
        onTextChunk: (text) => {
          if (text !== "") context.onDelta(text);
        },
      });
      return generationResult(runner, {
        kind: "completion",
        slotIndex: slot.index,
        promptTokens: promptTokens.length,
        cachedPromptTokens,
        meter,
        stopReason: response.metadata.stopReason,
        text: job.echo ? job.prompt + response.response : response.response,
        toolCalls: [],
        firstTokenAt,
      }, context);
    } finally {
      completion.dispose({ disposeSequence: false });
    }
  } finally {
    slots.release(slot);
  }
}

/** The token llama.cpp's tokenizer puts first, mirroring node-llama-cpp's own rule. */
export function beginningToken(model: LlamaModel): Token | undefined {
  const type = model.vocabularyType;
  if (type === LlamaVocabularyType.rwkv || type === LlamaVocabularyType.ugm) return undefined;
  if (type === LlamaVocabularyType.wpm) return model.tokens.bos ?? undefined;
  return model.tokens.shouldPrependBosToken ? (model.tokens.bos ?? undefined) : undefined;
}
