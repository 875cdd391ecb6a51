/**
 * One text completion job on one slot, with node-llama-cpp's LlamaCompletion.
 *
 * The prompt is tokenized here exactly as LlamaCompletion would (beginning-of-text token
 * first when the tokenizer wants one) and handed over as tokens, so the count, the overflow
 * check and the slot choice all see the tokens that are evaluated.
 *
 * With a `suffix` the job is a fill-in-the-middle: LlamaCompletion's infill wraps prefix and
 * suffix in the model's own infill tokens, and a model without them refuses the job. Its
 * prompt count is the prefix, suffix and the three infill markers.
 */

import type { LlamaModel, Token } from "node-llama-cpp";
import { LlamaCompletion, LlamaVocabularyType } from "node-llama-cpp";
import { errors } from "../../protocol/errors.js";
import type { CompletionJob, GenerationResult } from "../../protocol/inference.js";
import type { ResumeState } from "../../protocol/runnerIpc.js";
import { EvaluationMeter, alignToPrompt, generationResult, samplingSettings, tokenBudget, traceJobSampling, type JobContext } from "./generation.js";
import type { RunnerModel } from "./RunnerModel.js";

/** The prefix, suffix and middle markers an infill prompt adds. */
const INFILL_MARKERS = 3;

export async function runCompletionJob(runner: RunnerModel, job: CompletionJob, context: JobContext, resume?: ResumeState): Promise<GenerationResult> {
  const { model, slots, contextSize } = runner;
  const beginning = beginningToken(model);
  // LlamaCompletion prepends the beginning token itself, so it gets the text tokens alone.
  const textTokens = model.tokenize(job.prompt, false, beginning === undefined ? undefined : "trimLeadingSpace");
  const promptTokens = beginning === undefined ? textTokens : [beginning, ...textTokens];
  if (promptTokens.length === 0) throw errors.invalidRequest("The prompt is empty and the model has no beginning-of-text token to start from.", { param: "prompt" });
  const suffixTokens = job.suffix === undefined ? undefined : model.tokenize(job.suffix, false, "trimLeadingSpace");
  const promptCount = suffixTokens === undefined ? promptTokens.length : textTokens.length + suffixTokens.length + INFILL_MARKERS;
  const budget = tokenBudget(promptCount, contextSize, job.sampling.maxTokens, "prompt");

  const slot = await slots.acquire(promptTokens, context.signal);
  try {
    const cachedPromptTokens = await alignToPrompt(slot.sequence, promptTokens);
    const meter = new EvaluationMeter(slot.sequence);
    const sampling = traceJobSampling(runner, slot.sequence, context, resume);
    if (job.echo && job.prompt !== "") sampling.emit({ part: "answer", text: job.prompt });
    const completion = new LlamaCompletion({ contextSequence: slot.sequence });
    try {
      if (job.suffix !== undefined && !completion.infillSupported) {
        throw errors.invalidRequest("This model has no fill-in-the-middle tokens, so it cannot complete text before a suffix.", { param: "suffix" });
      }
      const options = {
        ...samplingSettings(job.sampling),
        maxTokens: budget.maxTokens,
        // The budget already keeps generation inside the context. Without these,
        // LlamaCompletion would cut a prompt longer than 90% of the context to its tail.
        contextShiftSize: 1,
        disableContextShift: true,
        signal: context.signal,
        onTextChunk: (text: string) => {
          if (text !== "") sampling.emit({ part: "answer", text });
        },
      };
      const response = job.suffix === undefined
        ? await completion.generateCompletionWithMeta(textTokens, options)
        : await completion.generateInfillCompletionWithMeta(textTokens, suffixTokens ?? [], options);
      return generationResult(runner, {
        kind: "completion",
        slotIndex: slot.index,
        promptTokens: promptCount,
        cachedPromptTokens,
        meter,
        stopReason: response.metadata.stopReason,
        customStopTrigger: response.metadata.stopReason === "customStopTrigger" ? response.metadata.customStopTrigger : undefined,
        text: job.echo ? job.prompt + response.response : response.response,
        reasoning: "",
        reasoningTokens: 0,
        toolCalls: [],
        firstTokenAt: sampling.firstTokenAt(),
        resumedTokens: resume?.tokens.length ?? 0,
      }, context);
    } finally {
      sampling.stop();
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
