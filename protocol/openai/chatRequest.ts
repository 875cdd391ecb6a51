/**
 * POST /v1/chat/completions request body: its schema and its conversion to a ChatJob.
 *
 * What Hearth accepts, beyond OpenAI's own rules:
 * - roles system, developer (treated as system), user, assistant, tool;
 * - content as a string or an array of text parts (joined with "\n"); other part types
 *   (images, audio, files) are rejected naming the part, since no Hearth model reads them;
 * - `n` must be 1, `logprobs`/`top_logprobs` are rejected as unsupported;
 * - `max_tokens`/`max_completion_tokens` (the latter wins) up to MAX_TOKENS_CEILING;
 * - `frequency_penalty`/`presence_penalty` in -2..2 are passed on for the engine to apply
 *   if it can;
 * - `response_format.json_schema.name` is optional (default "response").
 *
 * Pure: no I/O.
 */

import { z } from "zod";
import type { ChatJob, ChatMessage, ResponseFormat, ToolCall, ThinkingMode, ToolChoice, ToolDefinition } from "../inference.js";
import {
  maxTokensField,
  modelField,
  samplingFields,
  toDeliveryOptions,
  toSamplingOptions,
  unsupportedFlag,
  type DeliveryOptions,
} from "./common.js";
import { hearthExtensionField, hearthExtensionOf, type HearthExtension } from "./hearthExtension.js";
import { addIssue, describeValue, parseWith } from "./validation.js";

/** OpenAI's rule for function and schema names. */
export const FUNCTION_NAME_PATTERN = /^[a-zA-Z0-9_-]{1,64}$/;

/** What separates the text parts of one message when they are joined. */
const TEXT_PART_SEPARATOR = "\n";

type Ctx = z.core.$RefinementCtx;

function contentText(value: unknown, ctx: Ctx, nullable: boolean): string | null {
  if (typeof value === "string") return value;
  if (value === null || value === undefined) {
    if (nullable) return null;
    ctx.addIssue({ code: "invalid_type", expected: "string", input: value, path: [] });
    return z.NEVER;
  }
  if (!Array.isArray(value)) {
    addIssue(ctx, `expected a string or an array of text parts, got ${describeValue(value)}`);
    return z.NEVER;
  }
  const texts: string[] = [];
  for (const [index, part] of value.entries()) {
    if (typeof part !== "object" || part === null || Array.isArray(part)) {
      addIssue(ctx, `expected a content part object, got ${describeValue(part)}`, [index]);
      return z.NEVER;
    }
    const { type, text } = part as { type?: unknown; text?: unknown };
    if (type !== "text") {
      addIssue(ctx, `only 'text' content parts are supported, got ${describeValue(type)}`, [index, "type"]);
      return z.NEVER;
    }
    if (typeof text !== "string") {
      addIssue(ctx, `expected a string, got ${describeValue(text)}`, [index, "text"]);
      return z.NEVER;
    }
    texts.push(text);
  }
  return texts.join(TEXT_PART_SEPARATOR);
}

function contentField(options: { nullable: boolean }) {
  return z
    .unknown()
    .optional()
    .transform((value, ctx) => contentText(value, ctx, options.nullable));
}

const toolCallSchema = z.object({
  id: z.string().min(1),
  type: z.literal("function").optional(),
  function: z.object({
    name: z.string().min(1),
    arguments: z.string(),
  }),
});

const messageSchema = z.discriminatedUnion("role", [
  z.object({ role: z.enum(["system", "developer"]), content: contentField({ nullable: false }) }),
  z.object({ role: z.literal("user"), content: contentField({ nullable: false }) }),
  z
    .object({
      role: z.literal("assistant"),
      content: contentField({ nullable: true }),
      tool_calls: z.array(toolCallSchema).nullish(),
      reasoning_content: z.string().nullish(),
    })
    .superRefine((message, ctx) => {
      if (message.content === null && (message.tool_calls ?? []).length === 0) {
        addIssue(ctx, "an assistant message needs content unless it carries tool_calls", ["content"]);
      }
    }),
  z.object({ role: z.literal("tool"), content: contentField({ nullable: false }), tool_call_id: z.string().min(1) }),
]);

const functionNameField = z.string().regex(FUNCTION_NAME_PATTERN);

const toolSchema = z.object({
  type: z.literal("function"),
  function: z.object({
    name: functionNameField,
    description: z.string().nullish(),
    parameters: z.record(z.string(), z.unknown()).nullish(),
    strict: z.boolean().nullish(),
  }),
});

function toolChoice(value: unknown, ctx: Ctx): ToolChoice | undefined {
  if (value === undefined || value === null) return undefined;
  if (value === "none" || value === "auto" || value === "required") return value;
  if (typeof value === "object" && !Array.isArray(value)) {
    const { type, function: fn } = value as { type?: unknown; function?: unknown };
    if (type !== "function") {
      addIssue(ctx, `expected 'function', got ${describeValue(type)}`, ["type"]);
      return z.NEVER;
    }
    const name = typeof fn === "object" && fn !== null ? (fn as { name?: unknown }).name : undefined;
    if (typeof name !== "string" || name === "") {
      addIssue(ctx, `expected a function name, got ${describeValue(name)}`, ["function", "name"]);
      return z.NEVER;
    }
    return { name };
  }
  addIssue(ctx, `expected 'none', 'auto', 'required' or {"type":"function","function":{"name":...}}, got ${describeValue(value)}`);
  return z.NEVER;
}

const toolChoiceField = z.unknown().optional().transform(toolChoice);

const responseFormatField = z
  .discriminatedUnion("type", [
    z.object({ type: z.literal("text") }),
    z.object({ type: z.literal("json_object") }),
    z.object({
      type: z.literal("json_schema"),
      json_schema: z.object({
        name: functionNameField.nullish(),
        description: z.string().nullish(),
        schema: z.record(z.string(), z.unknown()),
        strict: z.boolean().nullish(),
      }),
    }),
  ])
  .nullish();

/**
 * OpenAI's reasoning_effort. Chat templates offer thinking on or off, not degrees, so "none"
 * turns it off and every other effort leaves it to the model.
 */
export const REASONING_EFFORTS = ["none", "minimal", "low", "medium", "high", "xhigh"] as const;
const reasoningEffortField = z.enum(REASONING_EFFORTS).nullish();

export function thinkingFor(effort: (typeof REASONING_EFFORTS)[number] | null | undefined): ThinkingMode {
  return effort === "none" ? "off" : "auto";
}

export const chatRequestSchema = z
  .object({
    model: modelField,
    messages: z.array(messageSchema).min(1),
    max_tokens: maxTokensField,
    max_completion_tokens: maxTokensField,
    ...samplingFields,
    response_format: responseFormatField,
    tools: z.array(toolSchema).nullish(),
    tool_choice: toolChoiceField,
    parallel_tool_calls: z.boolean().nullish(),
    reasoning_effort: reasoningEffortField,
    logprobs: unsupportedFlag("logprobs"),
    top_logprobs: z
      .number()
      .int()
      .refine((n) => n === 0, "top_logprobs is not supported by Hearth")
      .nullish(),
    hearth: hearthExtensionField,
  })
  .superRefine((request, ctx) => {
    const tools = request.tools ?? [];
    const seen = new Set<string>();
    for (const [index, tool] of tools.entries()) {
      if (seen.has(tool.function.name)) {
        addIssue(ctx, `duplicate function name '${tool.function.name}'`, ["tools", index, "function", "name"]);
      }
      seen.add(tool.function.name);
    }
    const choice = request.tool_choice;
    if (choice === "required" && tools.length === 0) {
      addIssue(ctx, "'required' needs at least one tool in 'tools'", ["tool_choice"]);
    } else if (typeof choice === "object" && !seen.has(choice.name)) {
      addIssue(ctx, `no tool named '${choice.name}' in 'tools'`, ["tool_choice", "function", "name"]);
    }
  });

export type ChatRequestBody = z.output<typeof chatRequestSchema>;

export interface ParsedChatRequest {
  job: ChatJob;
  delivery: DeliveryOptions;
  /** Hearth's extension (hearthExtension.ts), when the body has one. */
  hearth?: HearthExtension;
}

function toChatMessage(message: ChatRequestBody["messages"][number]): ChatMessage {
  switch (message.role) {
    case "system":
    case "developer":
      return { role: "system", content: message.content ?? "" };
    case "user":
      return { role: "user", content: message.content ?? "" };
    case "tool":
      return { role: "tool", content: message.content ?? "", toolCallId: message.tool_call_id };
    case "assistant": {
      const converted: ChatMessage = { role: "assistant", content: message.content ?? "" };
      const toolCalls: ToolCall[] = (message.tool_calls ?? []).map((call) => ({
        id: call.id,
        name: call.function.name,
        arguments: call.function.arguments,
      }));
      if (toolCalls.length > 0) converted.toolCalls = toolCalls;
      if (typeof message.reasoning_content === "string" && message.reasoning_content !== "") converted.reasoning = message.reasoning_content;
      return converted;
    }
  }
}

function toToolDefinition(tool: z.output<typeof toolSchema>): ToolDefinition {
  const definition: ToolDefinition = { name: tool.function.name };
  if (tool.function.description !== undefined && tool.function.description !== null) definition.description = tool.function.description;
  if (tool.function.parameters !== undefined && tool.function.parameters !== null) definition.parameters = tool.function.parameters;
  return definition;
}

function toResponseFormat(format: ChatRequestBody["response_format"]): ResponseFormat {
  if (format === undefined || format === null || format.type === "text") return { type: "text" };
  if (format.type === "json_object") return { type: "json_object" };
  return { type: "json_schema", name: format.json_schema.name ?? "response", schema: format.json_schema.schema };
}

/** Validates a chat completions body and converts it; throws HEARTH_INVALID_REQUEST. */
export function parseChatRequest(body: unknown): ParsedChatRequest {
  const request = parseWith(chatRequestSchema, body);
  const tools = (request.tools ?? []).map(toToolDefinition);
  const job: ChatJob = {
    kind: "chat",
    model: request.model,
    messages: request.messages.map(toChatMessage),
    sampling: toSamplingOptions(request, request.max_completion_tokens ?? request.max_tokens),
    responseFormat: toResponseFormat(request.response_format),
    tools,
    toolChoice: request.tool_choice ?? (tools.length > 0 ? "auto" : "none"),
    thinking: thinkingFor(request.reasoning_effort),
  };
  if (request.parallel_tool_calls === false) job.parallelToolCalls = false;
  const parsed: ParsedChatRequest = { job, delivery: toDeliveryOptions(request) };
  const hearth = hearthExtensionOf(request.hearth);
  if (hearth !== undefined) parsed.hearth = hearth;
  return parsed;
}
