/**
 * One chat job on one slot: history, tools and grammar in, LlamaChat on the slot's sequence,
 * text, tool calls and honest token counts out.
 *
 * The prompt is rendered here with the same chat wrapper and history LlamaChat will use, so
 * its tokens are known before generation: they choose the slot with the longest cached
 * prefix, bound the context (HEARTH_CONTEXT_OVERFLOW instead of node-llama-cpp's silent
 * history compression), and count prompt and cached tokens.
 *
 * A job a lost runner started (`resume`) runs the same way, its sampled tokens forced first
 * (samplingReplay.ts).
 */

import type { ChatHistoryItem, ChatWrapper, LlamaChatResponseChunk, Token } from "node-llama-cpp";
import { LlamaChat } from "node-llama-cpp";
import { errors } from "../../protocol/errors.js";
import type { ChatJob, GenerationResult } from "../../protocol/inference.js";
import type { ResumeState } from "../../protocol/runnerIpc.js";
import { toChatHistory } from "./chatHistory.js";
import { EvaluationMeter, alignToPrompt, generationResult, samplingSettings, tokenBudget, traceJobSampling, type JobContext } from "./generation.js";
import { ResponseParts, responseText } from "./responseParts.js";
import type { RunnerModel } from "./RunnerModel.js";
import { planTools, toToolCalls, withForcedFunctionCall } from "./toolFunctions.js";

export async function runChatJob(runner: RunnerModel, job: ChatJob, context: JobContext, resume?: ResumeState): Promise<GenerationResult> {
  const { slots, contextSize } = runner;
  const history = toChatHistory(job.messages, runner.supportsFunctions);
  // LlamaChat answers into a trailing model turn, appending an empty one when there is none;
  // doing the same here keeps the rendered prompt identical to what it will evaluate.
  if (history.at(-1)?.type !== "model") history.push({ type: "model", response: [] });

  const tools = planTools(job.tools, job.toolChoice);
  const grammar = await runner.grammars.forResponseFormat(job.responseFormat);
  if (grammar && tools.functions) {
    throw errors.invalidRequest('response_format cannot be combined with tools unless tool_choice is "none".', { param: "response_format" });
  }
  const wrapper = tools.forceCall ? withForcedFunctionCall(runner.chatWrapper) : runner.chatWrapper;

  const promptTokens = renderPrompt(wrapper, history, tools.functions, runner);
  const budget = tokenBudget(promptTokens.length, contextSize, job.sampling.maxTokens, "messages");
  const slot = await slots.acquire(promptTokens, context.signal);
  try {
    const cachedPromptTokens = await alignToPrompt(slot.sequence, promptTokens);
    const meter = new EvaluationMeter(slot.sequence);
    const sampling = traceJobSampling(runner, slot.sequence, context, resume);
    const parts = new ResponseParts(sampling.emit);
    const chat = new LlamaChat({ contextSequence: slot.sequence, chatWrapper: wrapper });
    try {
      const common = {
        ...samplingSettings(job.sampling),
        maxTokens: budget.maxTokens,
        signal: context.signal,
        onResponseChunk: (chunk: LlamaChatResponseChunk) => parts.chunk(chunk),
        // A thought budget of zero makes node-llama-cpp close a thought as soon as the model opens it.
        ...(job.thinking === "off" ? { budgets: { thoughtTokens: 0 } } : {}),
      };
      // node-llama-cpp takes either a grammar or functions, never both (checked above).
      const response = tools.functions
        ? await chat.generateResponse(history, { ...common, functions: tools.functions, ...(job.parallelToolCalls === false ? { maxParallelFunctionCalls: 1 } : {}) })
        : await chat.generateResponse(history, grammar ? { ...common, grammar } : common);
      const toolCalls = toToolCalls("functionCalls" in response ? response.functionCalls : undefined);
      const text = responseText(response.fullResponse);
      return generationResult(runner, {
        kind: "chat",
        slotIndex: slot.index,
        promptTokens: promptTokens.length,
        cachedPromptTokens,
        meter,
        stopReason: response.metadata.stopReason,
        customStopTrigger: response.metadata.stopReason === "customStopTrigger" ? response.metadata.customStopTrigger : undefined,
        text: text.answer,
        reasoning: text.reasoning,
        reasoningTokens: parts.reasoningTokens,
        toolCalls,
        firstTokenAt: sampling.firstTokenAt(),
        resumedTokens: resume?.tokens.length ?? 0,
      }, context);
    } finally {
      sampling.stop();
      chat.dispose({ disposeSequence: false });
    }
  } finally {
    slots.release(slot);
  }
}

export function renderPrompt(wrapper: ChatWrapper, history: ChatHistoryItem[], functions: ReturnType<typeof planTools>["functions"], runner: RunnerModel): Token[] {
  let state: ReturnType<ChatWrapper["generateContextState"]>;
  try {
    state = wrapper.generateContextState(functions ? { chatHistory: history, availableFunctions: functions } : { chatHistory: history });
  } catch (error) {
    // Model chat templates reject some conversations (e.g. roles that do not alternate).
    const reason = error instanceof Error ? error.message : String(error);
    throw errors.invalidRequest(`The model's chat template cannot render these messages: ${reason}`, { param: "messages", cause: error });
  }
  return state.contextText.tokenize(runner.model.tokenizer);
}
