/**
 * OpenAI-shaped chat messages -> node-llama-cpp chat history.
 *
 * node-llama-cpp keeps a tool call inside the model turn that made it, together with its
 * result, and the model's answer after the result continues that same turn:
 *   model: ["text", {functionCall, params, result}, "answer after the result"]
 * OpenAI spreads that over an assistant message with `tool_calls`, one `tool` message per
 * call, and a following assistant message. This module folds the second form into the
 * first, so the chat wrapper renders tool calls in the syntax the model was trained on.
 *
 * Pure: no I/O, only node-llama-cpp types.
 */

import type { ChatHistoryItem, ChatModelFunctionCall, ChatModelResponse } from "node-llama-cpp";
import { errors } from "../../protocol/errors.js";
import type { ChatMessage } from "../../protocol/inference.js";

interface PendingCall {
  item: ChatModelFunctionCall;
  answered: boolean;
}

/**
 * Builds the history for `messages`. With `supportsFunctions` false the wrapper has no
 * syntax for calls, so calls and results are written as plain text instead.
 * Throws HEARTH_INVALID_REQUEST (param "messages") for tool messages that answer no call,
 * and for calls left unanswered before the conversation moves on.
 */
export function toChatHistory(messages: readonly ChatMessage[], supportsFunctions: boolean): ChatHistoryItem[] {
  const history: ChatHistoryItem[] = [];
  // Calls of the latest model turn, by id, until the conversation moves past them.
  let pending = new Map<string, PendingCall>();
  let openModelTurn: ChatModelResponse | undefined;

  const closeToolRound = (): void => {
    for (const [id, call] of pending) {
      if (!call.answered) invalid(`tool call "${id}" has no tool message answering it before the conversation goes on`);
    }
    pending = new Map();
  };

  messages.forEach((message, index) => {
    switch (message.role) {
      case "system":
        closeToolRound();
        openModelTurn = undefined;
        history.push({ type: "system", text: message.content });
        return;
      case "user":
        closeToolRound();
        openModelTurn = undefined;
        history.push({ type: "user", text: message.content });
        return;
      case "assistant": {
        // An answer that follows tool results continues the turn that made the calls.
        const continues = openModelTurn !== undefined && pending.size > 0;
        closeToolRound();
        const turn: ChatModelResponse = continues ? openModelTurn! : { type: "model", response: [] };
        if (!continues) history.push(turn);
        // The chat wrapper decides whether past thoughts are rendered (Qwen3's template leaves them out).
        if (message.reasoning !== undefined && message.reasoning !== "") turn.response.push({ type: "segment", segmentType: "thought", text: message.reasoning, ended: true });
        if (message.content !== "") turn.response.push(message.content);
        (message.toolCalls ?? []).forEach((call, callIndex) => {
          if (pending.has(call.id)) invalid(`messages[${index}] repeats tool call id "${call.id}"`);
          const item: ChatModelFunctionCall = {
            type: "functionCall",
            name: call.name,
            params: parseArguments(call.arguments, index),
            result: undefined,
            // Calls of one assistant message were made together (parallel calls).
            startsNewChunk: callIndex === 0,
          };
          pending.set(call.id, { item, answered: false });
          if (supportsFunctions) turn.response.push(item);
          else turn.response.push(`[calls ${call.name}(${call.arguments})]`);
        });
        openModelTurn = turn;
        return;
      }
      case "tool": {
        const id = message.toolCallId;
        const call = id === undefined ? undefined : pending.get(id);
        if (!call || !openModelTurn) invalid(`messages[${index}] is a tool result for ${id === undefined ? "no tool call id" : `"${id}", which no earlier assistant message called`}`);
        if (call.answered) invalid(`messages[${index}] answers tool call "${id}" a second time`);
        call.answered = true;
        call.item.result = parseResult(message.content);
        if (!supportsFunctions) openModelTurn.response.push(`[${call.item.name} returned ${message.content}]`);
        return;
      }
    }
  });
  closeToolRound();
  return history;
}

function parseArguments(text: string, index: number): unknown {
  if (text.trim() === "") return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return invalid(`messages[${index}] has tool call arguments that are not valid JSON`);
  }
}

/** Results are shown to the model as JSON when they are JSON, else as the text they are. */
function parseResult(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

function invalid(message: string): never {
  throw errors.invalidRequest(message, { param: "messages" });
}
