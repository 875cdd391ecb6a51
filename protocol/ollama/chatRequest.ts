/**
 * POST /api/chat request body: its schema and its conversion to a ChatJob.
 *
 * - roles system (also "developer"), user, assistant, tool, in any case; `content` a string (null: "");
 *   an assistant turn's `thinking` is passed on as its reasoning; `images` are refused.
 * - `tool_calls` of an assistant turn are `[{id?, function: {index?, name, arguments: {...}}}]`
 *   (Ollama's arguments are an object; internally they are JSON text). A call keeps the `id` it
 *   comes with (Hearth's answers carry one, as Ollama's do since 0.12.10); a call without one
 *   (older clients) gets `call_<message>_<call>`. Each tool message answers a call of the latest
 *   assistant turn: the one with its `tool_call_id`, else the one with its `tool_name`, else the
 *   next unanswered one. A tool message with no call to answer, or a call left
 *   unanswered when the conversation moves on, is HEARTH_INVALID_REQUEST naming the message.
 * - `tools`: `[{type: "function", function: {name, description, parameters}}]`.
 * - `messages` empty or absent: not a generation but a load (or, with `keep_alive: 0`, an
 *   unload) of the model, as in Ollama.
 *
 * Pure: no I/O.
 */

import { z } from "zod";
import { errors } from "../errors.js";
import type { ChatJob, ChatMessage, ToolDefinition } from "../inference.js";
import { FUNCTION_NAME_PATTERN } from "../openai/chatRequest.js";
import { parseWith } from "../openai/validation.js";
import { formatField, imagesField, logprobsField, requiredModel, thinkField, topLogprobsField } from "./common.js";
import { parseKeepAlive } from "./keepAlive.js";
import { modelNameFields, optionsSchema, streamField, streams, toSampling } from "./options.js";

const toolCallSchema = z.object({
  id: z.string().min(1).nullish(),
  function: z.object({
    name: z.string().min(1),
    arguments: z.record(z.string(), z.unknown()).nullish(),
  }),
});

/** Ollama reads a role in any case ("User" is "user"). */
const roleField = z.preprocess((role) => (typeof role === "string" ? role.toLowerCase() : role), z.enum(["system", "developer", "user", "assistant", "tool"]));

const messageSchema = z.object({
  role: roleField,
  content: z.string().nullish(),
  thinking: z.string().nullish(),
  images: imagesField,
  tool_calls: z.array(toolCallSchema).nullish(),
  tool_name: z.string().nullish(),
  tool_call_id: z.string().nullish(),
});

const toolSchema = z.object({
  type: z.literal("function"),
  function: z.object({
    name: z.string().regex(FUNCTION_NAME_PATTERN),
    description: z.string().nullish(),
    parameters: z.record(z.string(), z.unknown()).nullish(),
  }),
});

export const chatRequestSchema = z.object({
  ...modelNameFields,
  messages: z.array(messageSchema).nullish(),
  tools: z.array(toolSchema).nullish(),
  format: formatField,
  options: optionsSchema,
  stream: streamField,
  keep_alive: z.unknown().optional(),
  think: thinkField,
  logprobs: logprobsField,
  top_logprobs: topLogprobsField,
});

type OllamaMessage = z.output<typeof messageSchema>;

/** A chat request: a generation, or (no messages) a load or unload of the model. */
export type OllamaChatRequest =
  | { kind: "generate"; job: ChatJob; stream: boolean; keepAliveMs?: number }
  | { kind: "load"; model: string; keepAliveMs?: number };

interface PendingCall {
  id: string;
  name: string;
  at: string;
  answered: boolean;
}

function invalid(message: string, param = "messages"): never {
  throw errors.invalidRequest(message, { param });
}

/** Ollama's messages as internal ones, with call ids made up consistently for calls and results. */
export function toChatMessages(messages: readonly OllamaMessage[]): ChatMessage[] {
  let pending: PendingCall[] = [];
  const closeRound = (): void => {
    const open = pending.find((call) => !call.answered);
    if (open !== undefined) invalid(`${open.at} (${open.name}) has no tool message answering it before the conversation goes on`);
    pending = [];
  };
  const converted = messages.map((message, index): ChatMessage => {
    const content = message.content ?? "";
    switch (message.role) {
      case "system":
      case "developer":
        closeRound();
        return { role: "system", content };
      case "user":
        closeRound();
        return { role: "user", content };
      case "assistant": {
        closeRound();
        const converted: ChatMessage = { role: "assistant", content };
        if (message.thinking !== undefined && message.thinking !== null && message.thinking !== "") converted.reasoning = message.thinking;
        const calls = message.tool_calls ?? [];
        if (calls.length > 0) {
          converted.toolCalls = calls.map((call, callIndex) => {
            const id = call.id ?? `call_${index}_${callIndex}`;
            pending.push({ id, name: call.function.name, at: `messages[${index}].tool_calls[${callIndex}]`, answered: false });
            return { id, name: call.function.name, arguments: JSON.stringify(call.function.arguments ?? {}) };
          });
        }
        return converted;
      }
      case "tool": {
        const unanswered = pending.filter((call) => !call.answered);
        if (unanswered.length === 0) {
          invalid(`messages[${index}] is a tool result, but no earlier assistant message made a tool call that is still unanswered`);
        }
        const byId = message.tool_call_id ?? undefined;
        const byName = message.tool_name ?? undefined;
        const call =
          byId !== undefined ? unanswered.find((candidate) => candidate.id === byId)
          : byName !== undefined ? unanswered.find((candidate) => candidate.name === byName)
          : unanswered[0];
        if (call === undefined) {
          const what = byId !== undefined ? `tool_call_id '${byId.slice(0, 64)}'` : `tool_name '${(byName ?? "").slice(0, 64)}'`;
          invalid(`messages[${index}] answers ${what}, which names no unanswered tool call of the assistant message before it`, `messages[${index}].${byId !== undefined ? "tool_call_id" : "tool_name"}`);
        }
        call.answered = true;
        return { role: "tool", content, toolCallId: call.id };
      }
    }
  });
  closeRound();
  return converted;
}

function toToolDefinition(tool: z.output<typeof toolSchema>): ToolDefinition {
  const definition: ToolDefinition = { name: tool.function.name };
  if (tool.function.description !== undefined && tool.function.description !== null) definition.description = tool.function.description;
  if (tool.function.parameters !== undefined && tool.function.parameters !== null) definition.parameters = tool.function.parameters;
  return definition;
}

/** Validates an /api/chat body and converts it; throws HEARTH_INVALID_REQUEST. */
export function parseChatRequest(body: unknown): OllamaChatRequest {
  const request = parseWith(chatRequestSchema, body);
  const model = requiredModel(request);
  const keepAliveMs = parseKeepAlive(request.keep_alive);
  const keepAlive = keepAliveMs === undefined ? {} : { keepAliveMs };
  const messages = request.messages ?? [];
  if (messages.length === 0) return { kind: "load", model, ...keepAlive };
  const tools = (request.tools ?? []).map(toToolDefinition);
  const names = new Set<string>();
  for (const [index, tool] of tools.entries()) {
    if (names.has(tool.name)) invalid(`duplicate function name '${tool.name}'`, `tools[${index}].function.name`);
    names.add(tool.name);
  }
  const job: ChatJob = {
    kind: "chat",
    model,
    messages: toChatMessages(messages),
    sampling: toSampling(request.options),
    responseFormat: request.format,
    tools,
    toolChoice: tools.length > 0 ? "auto" : "none",
    thinking: request.think,
  };
  return { kind: "generate", job, stream: streams(request.stream), ...keepAlive };
}
