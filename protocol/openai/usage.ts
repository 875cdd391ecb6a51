/**
 * OpenAI's `usage` object, shared by chat and text completions.
 *
 * Pure: no I/O.
 */

import type { GenerationResult } from "../inference.js";

export interface OpenAiUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
  completion_tokens_details: { reasoning_tokens: number };
}

export function toOpenAiUsage(result: Pick<GenerationResult, "usage" | "cachedPromptTokens">): OpenAiUsage {
  const { promptTokens, completionTokens, reasoningTokens } = result.usage;
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
    prompt_tokens_details: { cached_tokens: result.cachedPromptTokens },
    completion_tokens_details: { reasoning_tokens: reasoningTokens },
  };
}
