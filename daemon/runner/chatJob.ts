/**
 * One chat job on one slot: history, tools and grammar in, LlamaChat on the slot's sequence,
 * text, tool calls and honest token counts out.
 *
 * The prompt is rendered here with the same chat wrapper and history LlamaChat will use, so
 * its tokens are known before generation: they choose the slot with the longest cached
 * prefix, bound the context (HEARTH_CONTEXT_OVERFLOW instead of node-llama-cpp's silent
 * history compression), and count prompt and cached tokens.
 */

import type { ChatHistoryItem, ChatWrapper, LlamaChatResponseChunk, Token } from "node-llama-cpp";
import { LlamaChat } from "node-llama-cpp";
import { errors } from "../../protocol/errors.js";
import type { ChatJob, GenerationResult } from "../../protocol/inference.js";
import { toChatHistory } from "./chatHistory.js";
import { EvaluationMeter, alignToPrompt, generationResult, samplingSettings, tokenBudget, type JobContext } from "./generation.js";
import type { RunnerModel } from "./RunnerModel.js";
import { planTools, toToolCalls, withForcedFunctionCall } from "./toolFunctions.js";

export async function runChatJob(runner: RunnerModel, job: ChatJob, context: JobContext): Promise<GenerationResult> {
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
    let firstTokenAt: number | undefined;
    const markFirstToken = (): void => {
      firstTokenAt ??= Date.now();
    };
    // node-llama-cpp reports tokens when it releases them, just before their text.
    const onToken = (tokens: Token[]): void => {
      markFirstToken();
      context.onTokens(tokens);
    };
    const chat = new LlamaChat({ contextSequence: slot.sequence, chatWrapper: wrapper });
    try {
      const common = {
        ...samplingSettings(job.sampling),
        maxTokens: budget.maxTokens,
        signal: context.signal,
        onToken,
        onResponseChunk: (chunk: LlamaChatResponseChunk) => {
          // Segments (e.g. a reasoning model's thoughts) are not part of the answer text.
          if (chunk.type === undefined && chunk.text !== "") context.onDelta(chunk.text);
        },
      };
      // node-llama-cpp takes either a grammar or functions, never both (checked above).
      const response = tools.functions
        ? await chat.generateResponse(history, { ...common, functions: tools.functions, onFunctionCallParamsChunk: markFirstToken })
        : await chat.generateResponse(history, grammar ? { ...common, grammar } : common);
      const toolCalls = toToolCalls("functionCalls" in response ? response.functionCalls : undefined);
      return generationResult(runner, {
        kind: "chat",
        slotIndex: slot.index,
        promptTokens: promptTokens.length,
        cachedPromptTokens,
        meter,
        stopReason: response.metadata.stopReason,
        text: response.response,
        toolCalls,
        firstTokenAt,
      }, context);
    } finally {
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
