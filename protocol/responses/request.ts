/**
 * POST /v1/responses request body: its schema, the fields a response echoes, and the ChatJob it
 * becomes (with the stored conversation of `previous_response_id` before the new input).
 *
 * What Hearth accepts, beyond OpenAI's own rules (docs/api.md, "Responses API", has the table):
 * - `input` as a string or items (inputItems.ts), `instructions` as the first system message;
 * - `tools` of type `function` only (the flat Responses shape); hosted tools (web_search,
 *   file_search, computer use, MCP, …) are refused naming the tool;
 * - `reasoning.effort`: "none" turns thinking off, every other effort (also "minimal") leaves it
 *   to the model: chat templates offer thinking on or off, not degrees;
 * - `truncation: "auto"` is accepted but never truncates: a prompt that does not fit is
 *   HEARTH_CONTEXT_OVERFLOW, as with "disabled";
 * - `parallel_tool_calls: false` and `max_tool_calls` keep the first call(s) the model made;
 * - `background`, `conversation`, `prompt` and logprobs are refused as unsupported.
 *
 * Pure: no I/O.
 */

import { z } from "zod";
import { errors } from "../errors.js";
import type { ChatJob, ChatMessage, ResponseFormat, ThinkingMode, ToolChoice, ToolDefinition } from "../inference.js";
import { FUNCTION_NAME_PATTERN, REASONING_EFFORTS, thinkingFor } from "../openai/chatRequest.js";
import { maxTokensField, modelField, streamField, temperatureField, toSamplingOptions, topPField, DEFAULT_TEMPERATURE, type DeliveryOptions } from "../openai/common.js";
import { hearthExtensionField, hearthExtensionOf, type HearthExtension } from "../openai/hearthExtension.js";
import { addIssue, describeValue, parseWith } from "../openai/validation.js";
import { callIdsOf, parseInput, toChatMessages, type InputItem } from "./inputItems.js";

/** OpenAI's bounds on `metadata`: at most 16 pairs, keys up to 64 characters, values up to 512. */
export const MAX_METADATA_PAIRS = 16;
export const MAX_METADATA_KEY_LENGTH = 64;
export const MAX_METADATA_VALUE_LENGTH = 512;

/** OpenAI's default `top_p` (a response echoes it). */
const DEFAULT_TOP_P = 1;

export const REASONING_SUMMARIES = ["auto", "concise", "detailed"] as const;
export type ReasoningEffort = (typeof REASONING_EFFORTS)[number];
export type ReasoningSummary = (typeof REASONING_SUMMARIES)[number];

/** A function tool as a response lists it. */
export interface FunctionToolView {
  type: "function";
  name: string;
  description: string | null;
  parameters: Record<string, unknown> | null;
  strict: boolean;
}

export type ResponseToolChoice = "auto" | "none" | "required" | { type: "function"; name: string };

export type TextFormatView =
  | { type: "text" }
  | { type: "json_object" }
  | { type: "json_schema"; name: string; schema: Record<string, unknown>; description: string | null; strict: boolean };

/** The request fields a response object repeats, as OpenAI's do. */
export interface ResponseEcho {
  instructions: string | null;
  max_output_tokens: number | null;
  max_tool_calls: number | null;
  metadata: Record<string, string>;
  parallel_tool_calls: boolean;
  previous_response_id: string | null;
  reasoning: { effort: ReasoningEffort | null; summary: ReasoningSummary | null };
  store: boolean;
  temperature: number;
  top_p: number;
  text: { format: TextFormatView; verbosity: "low" | "medium" | "high" };
  tool_choice: ResponseToolChoice;
  tools: FunctionToolView[];
  truncation: "auto" | "disabled";
}

type Ctx = z.core.$RefinementCtx;

/** A field Hearth cannot honour: absent or null is fine, anything else is refused with `why`. */
function refusedField(why: string) {
  return z
    .unknown()
    .optional()
    .superRefine((value, ctx) => {
      if (value !== undefined && value !== null) addIssue(ctx, why);
    });
}

const HOSTED_TOOL_HINT = "Hearth serves function tools only (the client runs them); hosted tools such as web_search or file_search are not available";

const functionToolSchema = z.object({
  type: z.literal("function"),
  name: z.string().regex(FUNCTION_NAME_PATTERN),
  description: z.string().nullish(),
  parameters: z.record(z.string(), z.unknown()).nullish(),
  strict: z.boolean().nullish(),
});

const toolField = z.unknown().transform((value, ctx): z.output<typeof functionToolSchema> => {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    addIssue(ctx, `expected a tool object, got ${describeValue(value)}`);
    return z.NEVER;
  }
  const type = (value as { type?: unknown }).type;
  if (type !== "function") {
    if (type === undefined) ctx.addIssue({ code: "invalid_type", expected: "string", input: type, path: ["type"] });
    else addIssue(ctx, `${HOSTED_TOOL_HINT}; got a tool of type ${describeValue(type)}`, ["type"]);
    return z.NEVER;
  }
  const parsed = functionToolSchema.safeParse(value, { reportInput: true });
  if (!parsed.success) {
    // The issues keep their paths (relative to the tool) and their received values.
    for (const issue of parsed.error.issues) ctx.addIssue(issue as Parameters<Ctx["addIssue"]>[0]);
    return z.NEVER;
  }
  return parsed.data;
});

function toolChoice(value: unknown, ctx: Ctx): ResponseToolChoice | undefined {
  if (value === undefined || value === null) return undefined;
  if (value === "none" || value === "auto" || value === "required") return value;
  if (typeof value === "object" && !Array.isArray(value)) {
    const { type, name } = value as { type?: unknown; name?: unknown };
    if (type !== "function") {
      addIssue(ctx, `only {"type":"function","name":...} choices are supported (${HOSTED_TOOL_HINT}), got ${describeValue(type)}`, ["type"]);
      return z.NEVER;
    }
    if (typeof name !== "string" || name === "") {
      addIssue(ctx, `expected a function name, got ${describeValue(name)}`, ["name"]);
      return z.NEVER;
    }
    return { type: "function", name };
  }
  addIssue(ctx, `expected 'none', 'auto', 'required' or {"type":"function","name":...}, got ${describeValue(value)}`);
  return z.NEVER;
}

const textFormatSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("text") }),
  z.object({ type: z.literal("json_object") }),
  z.object({
    type: z.literal("json_schema"),
    name: z.string().regex(FUNCTION_NAME_PATTERN).nullish(),
    schema: z.record(z.string(), z.unknown()),
    description: z.string().nullish(),
    strict: z.boolean().nullish(),
  }),
]);

const metadataField = z
  .record(z.string().max(MAX_METADATA_KEY_LENGTH), z.string().max(MAX_METADATA_VALUE_LENGTH))
  .refine((pairs) => Object.keys(pairs).length <= MAX_METADATA_PAIRS, `must have at most ${MAX_METADATA_PAIRS} key-value pairs`)
  .nullish();

/** `include` values that would ask for something Hearth does not produce. */
const REFUSED_INCLUDES = new Set(["message.output_text.logprobs"]);

const includeField = z
  .array(z.string())
  .superRefine((values, ctx) => {
    for (const [index, value] of values.entries()) {
      if (REFUSED_INCLUDES.has(value)) addIssue(ctx, `'${value}' is not supported by Hearth`, [index]);
    }
  })
  .nullish();

export const responsesRequestSchema = z
  .object({
    model: modelField,
    input: z.unknown().optional().transform(parseInput),
    instructions: z.string().nullish(),
    tools: z.array(toolField).nullish(),
    tool_choice: z.unknown().optional().transform(toolChoice),
    parallel_tool_calls: z.boolean().nullish(),
    max_tool_calls: z.number().int().min(1).nullish(),
    text: z.object({ format: textFormatSchema.nullish(), verbosity: z.enum(["low", "medium", "high"]).nullish() }).nullish(),
    max_output_tokens: maxTokensField,
    temperature: temperatureField,
    top_p: topPField,
    reasoning: z.object({ effort: z.enum(REASONING_EFFORTS).nullish(), summary: z.enum(REASONING_SUMMARIES).nullish(), generate_summary: z.enum(REASONING_SUMMARIES).nullish() }).nullish(),
    store: z.boolean().nullish(),
    previous_response_id: z.string().min(1).nullish(),
    metadata: metadataField,
    truncation: z.enum(["auto", "disabled"]).nullish(),
    stream: streamField,
    stream_options: z.object({ include_obfuscation: z.boolean().nullish() }).nullish(),
    include: includeField,
    top_logprobs: z
      .number()
      .int()
      .refine((n) => n === 0, "top_logprobs is not supported by Hearth")
      .nullish(),
    background: z
      .boolean()
      .refine((value) => !value, "background responses are not supported by Hearth; every response runs while the request is open")
      .nullish(),
    conversation: refusedField("conversations are not supported by Hearth; continue with previous_response_id"),
    prompt: refusedField("prompt templates are not supported by Hearth; send instructions and input"),
    hearth: hearthExtensionField,
  })
  .superRefine((request, ctx) => {
    const tools = request.tools ?? [];
    const seen = new Set<string>();
    for (const [index, tool] of tools.entries()) {
      if (seen.has(tool.name)) addIssue(ctx, `duplicate function name '${tool.name}'`, ["tools", index, "name"]);
      seen.add(tool.name);
    }
    const choice = request.tool_choice;
    if (choice === "required" && tools.length === 0) addIssue(ctx, "'required' needs at least one tool in 'tools'", ["tool_choice"]);
    else if (typeof choice === "object" && !seen.has(choice.name)) addIssue(ctx, `no tool named '${choice.name}' in 'tools'`, ["tool_choice", "name"]);
  });

export type ResponsesRequestBody = z.output<typeof responsesRequestSchema>;

/** A validated request, before the stored conversation (if any) is known. */
export interface ParsedResponsesRequest {
  model: string;
  input: InputItem[];
  echo: ResponseEcho;
  /** Everything of the ChatJob but its messages. */
  job: Omit<ChatJob, "messages">;
  delivery: DeliveryOptions;
  hearth?: HearthExtension;
}

function toToolDefinition(tool: z.output<typeof functionToolSchema>): ToolDefinition {
  const definition: ToolDefinition = { name: tool.name };
  if (tool.description !== undefined && tool.description !== null) definition.description = tool.description;
  if (tool.parameters !== undefined && tool.parameters !== null) definition.parameters = tool.parameters;
  return definition;
}

function toToolView(tool: z.output<typeof functionToolSchema>): FunctionToolView {
  // Hearth constrains arguments to the schema by grammar whether or not `strict` is asked for.
  return { type: "function", name: tool.name, description: tool.description ?? null, parameters: tool.parameters ?? null, strict: tool.strict ?? true };
}

function toFormatView(format: z.output<typeof textFormatSchema> | null | undefined): TextFormatView {
  if (format === undefined || format === null || format.type === "text") return { type: "text" };
  if (format.type === "json_object") return { type: "json_object" };
  return { type: "json_schema", name: format.name ?? "response", schema: format.schema, description: format.description ?? null, strict: format.strict ?? true };
}

function toResponseFormat(format: TextFormatView): ResponseFormat {
  if (format.type === "json_schema") return { type: "json_schema", name: format.name, schema: format.schema };
  return format;
}

function toJobToolChoice(choice: ResponseToolChoice): ToolChoice {
  return typeof choice === "object" ? { name: choice.name } : choice;
}

/** Validates a POST /v1/responses body; throws HEARTH_INVALID_REQUEST naming the field. */
export function parseResponsesRequest(body: unknown): ParsedResponsesRequest {
  const request = parseWith(responsesRequestSchema, body);
  const tools = request.tools ?? [];
  const toolChoice = request.tool_choice ?? (tools.length > 0 ? "auto" : "none");
  const format = toFormatView(request.text?.format);
  const effort = request.reasoning?.effort ?? null;
  const thinking: ThinkingMode = thinkingFor(effort);
  const echo: ResponseEcho = {
    instructions: request.instructions ?? null,
    max_output_tokens: request.max_output_tokens ?? null,
    max_tool_calls: request.max_tool_calls ?? null,
    metadata: request.metadata ?? {},
    parallel_tool_calls: request.parallel_tool_calls ?? true,
    previous_response_id: request.previous_response_id ?? null,
    reasoning: { effort, summary: request.reasoning?.summary ?? request.reasoning?.generate_summary ?? null },
    store: request.store ?? true,
    temperature: request.temperature ?? DEFAULT_TEMPERATURE,
    top_p: request.top_p ?? DEFAULT_TOP_P,
    text: { format, verbosity: request.text?.verbosity ?? "medium" },
    tool_choice: toolChoice,
    tools: tools.map(toToolView),
    truncation: request.truncation ?? "disabled",
  };
  const parsed: ParsedResponsesRequest = {
    model: request.model,
    input: request.input,
    echo,
    job: {
      kind: "chat",
      model: request.model,
      sampling: toSamplingOptions({ temperature: request.temperature, top_p: request.top_p, stop: [] }, request.max_output_tokens),
      responseFormat: toResponseFormat(format),
      tools: tools.map(toToolDefinition),
      toolChoice: toJobToolChoice(toolChoice),
      thinking,
      // The model is held to one call where the answer may hold only one, not trimmed afterwards.
      ...(echo.parallel_tool_calls === false || echo.max_tool_calls === 1 ? { parallelToolCalls: false } : {}),
    },
    delivery: { stream: request.stream === true, includeUsage: false },
  };
  const hearth = hearthExtensionOf(request.hearth);
  if (hearth !== undefined) parsed.hearth = hearth;
  return parsed;
}

/** A request's job, and the conversation it continues (without the instructions), which the store keeps. */
export interface ResponsesJob {
  job: ChatJob;
  conversation: ChatMessage[];
}

/**
 * The ChatJob of a request: `instructions` as the first system message, then the stored
 * conversation of the previous response (none without previous_response_id), then the new
 * input. Instructions are not part of the conversation: a later request that continues it
 * brings its own, as with OpenAI. Throws HEARTH_INVALID_REQUEST when nothing is left to answer
 * or an output answers a call that was never made.
 */
export function responsesChatJob(request: ParsedResponsesRequest, history: readonly ChatMessage[]): ResponsesJob {
  const { messages: inputMessages, unknownCallAt } = toChatMessages(request.input, callIdsOf(history));
  if (unknownCallAt !== undefined) {
    const param = `input[${unknownCallAt}].call_id`;
    throw errors.invalidRequest(`Invalid value for '${param}': no function_call with this call_id precedes it in the conversation.`, { param });
  }
  const conversation = [...history, ...inputMessages];
  if (!conversation.some((message) => message.role !== "system")) {
    throw errors.invalidRequest("Missing required parameter: 'input' (the conversation has no user message or other item to answer).", { param: "input" });
  }
  const messages: ChatMessage[] = request.echo.instructions === null ? conversation : [{ role: "system", content: request.echo.instructions }, ...conversation];
  return { job: { ...request.job, messages }, conversation };
}
