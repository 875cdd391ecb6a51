/**
 * POST /v1/messages and POST /v1/messages/count_tokens request bodies: their schemas and their
 * conversion to the one internal ChatJob.
 *
 * How Anthropic's conversation maps onto ChatMessages:
 * - `system` (a string or text blocks) becomes the first system message; text blocks of one
 *   message are joined with "\n" everywhere;
 * - a user message's `tool_result` blocks become tool messages answering their `tool_use_id`,
 *   in order, and its text blocks one user message after them; a result with `is_error` is
 *   shown to the model as "Error: <content>";
 * - an assistant message's `thinking` blocks become its reasoning (signatures are not checked),
 *   `redacted_thinking` blocks are dropped, `tool_use` blocks become its tool calls;
 * - `image` and `document` blocks are refused naming the block: no Hearth model reads them;
 * - `thinking` {type:"disabled"} turns thinking off; "enabled" (its budget_tokens is checked,
 *   not enforced as a budget), "adaptive" or no `thinking` leave it to the model;
 * - `tool_choice` auto/any/tool/none map to auto/required/{name}/none, and
 *   `disable_parallel_tool_use` allows at most one call.
 *
 * Validation failures are HEARTH_INVALID_REQUEST with `param` naming the field.
 * Pure: no I/O.
 */

import { z } from "zod";
import type { ChatJob, ChatMessage, SamplingOptions, ThinkingMode, ToolCall, ToolChoice, ToolDefinition } from "../inference.js";
import { FUNCTION_NAME_PATTERN } from "../openai/chatRequest.js";
import { MAX_TOKENS_CEILING, modelField, type DeliveryOptions } from "../openai/common.js";
import { hearthExtensionField, hearthExtensionOf, type HearthExtension } from "../openai/hearthExtension.js";
import { addIssue, describeValue, parseWith } from "../openai/validation.js";
import { INFER_WIRE_LIMITS } from "../peer/inferenceWire.js";

/** Anthropic's default temperature. */
export const DEFAULT_TEMPERATURE = 1;

/** As many stop strings as a job may carry to a peer. */
export const MAX_STOP_SEQUENCES = INFER_WIRE_LIMITS.maxStopSequences;

/** What a tool result flagged `is_error` is prefixed with, so the model reads it as a failure. */
export const TOOL_ERROR_PREFIX = "Error: ";

const TEXT_BLOCK_SEPARATOR = "\n";

type Ctx = z.core.$RefinementCtx;

const textBlock = z.object({ type: z.literal("text"), text: z.string() });

/** A block type Hearth knows and cannot serve: chosen by its `type`, then refused naming it. */
function refusedBlock<T extends string>(type: T, reason: string) {
  return z.object({ type: z.literal(type) }).superRefine((_block, ctx) => addIssue(ctx, `'${type}' blocks are not supported by Hearth: ${reason}`, ["type"]));
}

const imageBlock = refusedBlock("image", "no Hearth model reads images");
const documentBlock = refusedBlock("document", "no Hearth model reads documents");

/**
 * A string, or an array of `blocks`. Checked by hand rather than with z.union, so that an
 * issue inside a block (a refused image) is reported at its own path instead of as "does not
 * match any accepted form".
 */
function stringOrBlocks<T extends z.ZodType>(blocks: T) {
  const array = z.array(blocks);
  return z.unknown().transform((value, ctx): string | z.output<T>[] => {
    if (typeof value === "string") return value;
    if (!Array.isArray(value)) {
      if (value === undefined) ctx.addIssue({ code: "invalid_type", expected: "string", input: value, path: [] });
      else addIssue(ctx, `expected a string or an array of content blocks, got ${describeValue(value)}`);
      return z.NEVER;
    }
    const parsed = array.safeParse(value, { reportInput: true });
    if (parsed.success) return parsed.data;
    for (const issue of parsed.error.issues) ctx.addIssue(issue as Parameters<Ctx["addIssue"]>[0] & object);
    return z.NEVER;
  });
}

const toolResultBlock = z.object({
  type: z.literal("tool_result"),
  tool_use_id: z.string().min(1),
  content: stringOrBlocks(z.discriminatedUnion("type", [textBlock, imageBlock, documentBlock])).optional(),
  is_error: z.boolean().nullish(),
});

const userBlock = z.discriminatedUnion("type", [textBlock, toolResultBlock, imageBlock, documentBlock]);

const toolUseBlock = z.object({
  type: z.literal("tool_use"),
  id: z.string().min(1),
  name: z.string().min(1),
  input: z.record(z.string(), z.unknown()),
});

const thinkingBlock = z.object({ type: z.literal("thinking"), thinking: z.string(), signature: z.string().nullish() });
const redactedThinkingBlock = z.object({ type: z.literal("redacted_thinking"), data: z.string().nullish() });

const assistantBlock = z.discriminatedUnion("type", [textBlock, toolUseBlock, thinkingBlock, redactedThinkingBlock]);

const messageSchema = z.discriminatedUnion("role", [
  z.object({ role: z.literal("user"), content: stringOrBlocks(userBlock) }),
  z.object({ role: z.literal("assistant"), content: stringOrBlocks(assistantBlock) }),
  z.object({ role: z.literal("system"), content: stringOrBlocks(textBlock) }),
]);

type MessageBody = z.output<typeof messageSchema>;

const customToolSchema = z.object({
  name: z.string().regex(FUNCTION_NAME_PATTERN),
  description: z.string().nullish(),
  input_schema: z.record(z.string(), z.unknown()),
});

/** Anthropic's server tools (web search, code execution, …) carry a `type`; Hearth runs none of them. */
const toolSchema = z
  .unknown()
  .superRefine((value, ctx) => {
    if (typeof value !== "object" || value === null || Array.isArray(value)) return;
    const type = (value as { type?: unknown }).type;
    if (type === undefined || type === null || type === "custom") return;
    addIssue(ctx, `${describeValue(type)} is a server tool, which Hearth cannot run; only custom tools (name, description, input_schema) are supported`, ["type"]);
  })
  .pipe(customToolSchema);

const parallelField = z.boolean().nullish();

const toolChoiceField = z
  .discriminatedUnion("type", [
    z.object({ type: z.literal("auto"), disable_parallel_tool_use: parallelField }),
    z.object({ type: z.literal("any"), disable_parallel_tool_use: parallelField }),
    z.object({ type: z.literal("tool"), name: z.string().min(1), disable_parallel_tool_use: parallelField }),
    z.object({ type: z.literal("none") }),
  ])
  .nullish();

const thinkingField = z
  .discriminatedUnion("type", [
    z.object({ type: z.literal("enabled"), budget_tokens: z.number().int().min(1) }),
    z.object({ type: z.literal("adaptive") }),
    z.object({ type: z.literal("disabled") }),
  ])
  .nullish();

/** What both endpoints read: the conversation, its tools, and how the model may think. */
const conversationFields = {
  model: modelField,
  messages: z.array(messageSchema).min(1).max(INFER_WIRE_LIMITS.maxMessages),
  system: stringOrBlocks(textBlock).optional(),
  tools: z.array(toolSchema).max(INFER_WIRE_LIMITS.maxTools).nullish(),
  tool_choice: toolChoiceField,
  thinking: thinkingField,
  hearth: hearthExtensionField,
};

function checkTools(request: { tools?: z.output<typeof customToolSchema>[] | null | undefined; tool_choice?: z.output<typeof toolChoiceField> }, ctx: Ctx): void {
  const tools = request.tools ?? [];
  const seen = new Set<string>();
  for (const [index, tool] of tools.entries()) {
    if (seen.has(tool.name)) addIssue(ctx, `duplicate tool name '${tool.name}'`, ["tools", index, "name"]);
    seen.add(tool.name);
  }
  const choice = request.tool_choice;
  if ((choice?.type === "any" || choice?.type === "tool") && tools.length === 0) {
    addIssue(ctx, `'${choice.type}' needs at least one tool in 'tools'`, ["tool_choice", "type"]);
  } else if (choice?.type === "tool" && !seen.has(choice.name)) {
    addIssue(ctx, `no tool named '${choice.name}' in 'tools'`, ["tool_choice", "name"]);
  }
}

const stopSequencesField = z.array(z.string()).max(MAX_STOP_SEQUENCES).nullish();

export const messagesRequestSchema = z
  .object({
    ...conversationFields,
    max_tokens: z.number().int().min(1).max(MAX_TOKENS_CEILING),
    stop_sequences: stopSequencesField,
    temperature: z.number().min(0).max(1).nullish(),
    top_p: z.number().gt(0).max(1).nullish(),
    top_k: z.number().int().min(1).max(INFER_WIRE_LIMITS.maxTopK).nullish(),
    metadata: z.object({ user_id: z.string().nullish() }).nullish(),
    stream: z.boolean().nullish(),
  })
  .superRefine(checkTools);

export const countTokensRequestSchema = z.object(conversationFields).superRefine(checkTools);

type ConversationBody = z.output<typeof countTokensRequestSchema>;

function joinTexts(blocks: readonly { text: string }[]): string {
  return blocks.map((block) => block.text).join(TEXT_BLOCK_SEPARATOR);
}

function textOf(content: string | readonly { type: string; text?: string }[] | undefined): string {
  if (content === undefined) return "";
  if (typeof content === "string") return content;
  return joinTexts(content.filter((block): block is { type: "text"; text: string } => block.type === "text"));
}

function toolResultMessage(block: z.output<typeof toolResultBlock>): ChatMessage {
  const text = textOf(block.content);
  return { role: "tool", content: block.is_error === true ? `${TOOL_ERROR_PREFIX}${text}` : text, toolCallId: block.tool_use_id };
}

function userMessages(content: z.output<typeof userBlock>[] | string): ChatMessage[] {
  if (typeof content === "string") return [{ role: "user", content }];
  const results: ChatMessage[] = [];
  const texts: { text: string }[] = [];
  for (const block of content) {
    if (block.type === "tool_result") results.push(toolResultMessage(block));
    else if (block.type === "text") texts.push(block);
  }
  // Anthropic puts tool results first in the turn; the text after them is the user's next words.
  if (texts.length > 0 || results.length === 0) results.push({ role: "user", content: joinTexts(texts) });
  return results;
}

function assistantMessage(content: z.output<typeof assistantBlock>[] | string): ChatMessage {
  if (typeof content === "string") return { role: "assistant", content };
  const texts: string[] = [];
  const thoughts: string[] = [];
  const toolCalls: ToolCall[] = [];
  for (const block of content) {
    if (block.type === "text") texts.push(block.text);
    else if (block.type === "thinking") thoughts.push(block.thinking);
    else if (block.type === "tool_use") toolCalls.push({ id: block.id, name: block.name, arguments: JSON.stringify(block.input) });
  }
  const message: ChatMessage = { role: "assistant", content: texts.join(TEXT_BLOCK_SEPARATOR) };
  if (toolCalls.length > 0) message.toolCalls = toolCalls;
  const reasoning = thoughts.join(TEXT_BLOCK_SEPARATOR);
  if (reasoning !== "") message.reasoning = reasoning;
  return message;
}

function toChatMessages(system: ConversationBody["system"], messages: readonly MessageBody[]): ChatMessage[] {
  const converted: ChatMessage[] = [];
  const systemText = textOf(system);
  if (systemText !== "") converted.push({ role: "system", content: systemText });
  for (const message of messages) {
    if (message.role === "user") converted.push(...userMessages(message.content));
    else if (message.role === "assistant") converted.push(assistantMessage(message.content));
    else converted.push({ role: "system", content: textOf(message.content) });
  }
  return converted;
}

function toToolDefinition(tool: z.output<typeof customToolSchema>): ToolDefinition {
  const definition: ToolDefinition = { name: tool.name, parameters: tool.input_schema };
  if (tool.description !== undefined && tool.description !== null) definition.description = tool.description;
  return definition;
}

function toToolChoice(choice: ConversationBody["tool_choice"], hasTools: boolean): ToolChoice {
  switch (choice?.type) {
    case undefined:
      return hasTools ? "auto" : "none";
    case "auto":
      return hasTools ? "auto" : "none";
    case "any":
      return "required";
    case "tool":
      return { name: choice.name };
    case "none":
      return "none";
  }
}

export function thinkingModeOf(thinking: ConversationBody["thinking"]): ThinkingMode {
  return thinking?.type === "disabled" ? "off" : "auto";
}

function toChatJob(request: ConversationBody, sampling: SamplingOptions): ChatJob {
  const tools = (request.tools ?? []).map(toToolDefinition);
  const job: ChatJob = {
    kind: "chat",
    model: request.model,
    messages: toChatMessages(request.system, request.messages),
    sampling,
    responseFormat: { type: "text" },
    tools,
    toolChoice: toToolChoice(request.tool_choice, tools.length > 0),
    thinking: thinkingModeOf(request.thinking),
  };
  const choice = request.tool_choice;
  if (choice !== undefined && choice !== null && choice.type !== "none" && choice.disable_parallel_tool_use === true) job.parallelToolCalls = false;
  return job;
}

export interface ParsedMessagesRequest {
  job: ChatJob;
  delivery: DeliveryOptions;
  /** Hearth's extension (protocol/openai/hearthExtension.ts), when the body has one. */
  hearth?: HearthExtension;
}

function withHearth<T extends { hearth?: HearthExtension }>(parsed: T, value: ConversationBody["hearth"]): T {
  const hearth = hearthExtensionOf(value);
  if (hearth !== undefined) parsed.hearth = hearth;
  return parsed;
}

/** Validates a /v1/messages body and converts it; throws HEARTH_INVALID_REQUEST. */
export function parseMessagesRequest(body: unknown): ParsedMessagesRequest {
  const request = parseWith(messagesRequestSchema, body);
  const sampling: SamplingOptions = {
    maxTokens: request.max_tokens,
    temperature: request.temperature ?? DEFAULT_TEMPERATURE,
    // An empty stop string would end generation before it starts; no client means that.
    stop: (request.stop_sequences ?? []).filter((stop) => stop !== ""),
  };
  if (request.top_p !== undefined && request.top_p !== null) sampling.topP = request.top_p;
  if (request.top_k !== undefined && request.top_k !== null) sampling.topK = request.top_k;
  const stream = request.stream === true;
  return withHearth<ParsedMessagesRequest>({ job: toChatJob(request, sampling), delivery: { stream, includeUsage: false } }, request.hearth);
}

/**
 * The prompt is counted by evaluating it: a one-token generation of the same conversation
 * reports exactly the prompt tokens a messages request would (and leaves them in the KV cache).
 */
export const COUNT_TOKENS_MAX_TOKENS = 1;

export interface ParsedCountTokensRequest {
  job: ChatJob;
  hearth?: HearthExtension;
}

/** Validates a /v1/messages/count_tokens body and converts it to the job that measures it. */
export function parseCountTokensRequest(body: unknown): ParsedCountTokensRequest {
  const request = parseWith(countTokensRequestSchema, body);
  const job = toChatJob(request, { maxTokens: COUNT_TOKENS_MAX_TOKENS, temperature: 0, stop: [] });
  return withHearth<ParsedCountTokensRequest>({ job }, request.hearth);
}

