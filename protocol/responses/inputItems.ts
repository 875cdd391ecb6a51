/**
 * The `input` of a Responses request: its items as Hearth accepts them, and their conversion to
 * the internal chat messages.
 *
 * Accepted items (the shapes the openai SDK sends, and what a previous response's `output`
 * holds when a client sends it back):
 * - messages `{type?:"message", role, content}` with role user, system, developer (treated as
 *   system) or assistant, and content a string or `input_text`/`output_text` parts (joined with
 *   "\n"); images, files and audio are refused naming the part, since no Hearth model reads them;
 * - `function_call` `{call_id, name, arguments}` and `function_call_output` `{call_id, output}`;
 * - `reasoning` `{summary, content?}`: its text (the `reasoning_text` content, else the summary)
 *   becomes the thoughts of the assistant turn that follows it. Encrypted reasoning is refused:
 *   Hearth issues none and cannot read another provider's.
 * Other item types (item_reference, tool calls of hosted tools) are refused naming the type.
 *
 * Items are normalised into the shapes GET /v1/responses/{id}/input_items lists.
 *
 * Pure: no I/O.
 */

import { z } from "zod";
import type { ChatMessage } from "../inference.js";
import { addIssue, describeValue } from "../openai/validation.js";

/** What separates the text parts of one message when they are joined (as for Chat Completions). */
const TEXT_PART_SEPARATOR = "\n";

/** Longest item id kept from a client (ids are only listed back, never looked up). */
const MAX_CLIENT_ITEM_ID = 256;

export type InputRole = "user" | "system" | "developer" | "assistant";

export interface InputTextPart {
  type: "input_text";
  text: string;
}

export interface OutputTextPart {
  type: "output_text";
  text: string;
  annotations: [];
}

export type InputMessageItem =
  | { type: "message"; id?: string; role: Exclude<InputRole, "assistant">; content: InputTextPart[]; status: "completed" }
  | { type: "message"; id?: string; role: "assistant"; content: OutputTextPart[]; status: "completed" };

export interface FunctionCallItem {
  type: "function_call";
  id?: string;
  call_id: string;
  name: string;
  arguments: string;
  status: "completed";
}

export interface FunctionCallOutputItem {
  type: "function_call_output";
  id?: string;
  call_id: string;
  output: string;
  status: "completed";
}

export interface ReasoningInputItem {
  type: "reasoning";
  id?: string;
  summary: { type: "summary_text"; text: string }[];
  content?: { type: "reasoning_text"; text: string }[];
}

export type InputItem = InputMessageItem | FunctionCallItem | FunctionCallOutputItem | ReasoningInputItem;

/** An input item as stored and listed: always with an id. */
export type ListedInputItem = InputItem & { id: string };

type Ctx = z.core.$RefinementCtx;
type Path = (string | number)[];

const TEXT_PART_TYPES = new Set(["input_text", "output_text"]);
const MEDIA_PART_TYPES = new Set(["input_image", "input_file", "input_audio"]);

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A required string field of an item; adds an issue and returns undefined when it is not one. */
function stringField(item: Record<string, unknown>, key: string, ctx: Ctx, path: Path, options: { nonEmpty?: boolean } = {}): string | undefined {
  const value = item[key];
  if (typeof value === "string" && (!options.nonEmpty || value !== "")) return value;
  if (value === undefined) ctx.addIssue({ code: "invalid_type", expected: "string", input: value, path: [...path, key] });
  else addIssue(ctx, options.nonEmpty && value === "" ? "must not be empty" : `expected a string, got ${describeValue(value)}`, [...path, key]);
  return undefined;
}

function clientItemId(item: Record<string, unknown>, ctx: Ctx, path: Path): string | undefined | false {
  const id = item["id"];
  if (id === undefined || id === null) return undefined;
  if (typeof id !== "string" || id === "" || id.length > MAX_CLIENT_ITEM_ID) {
    addIssue(ctx, `expected an item id (a string of 1 to ${MAX_CLIENT_ITEM_ID} characters), got ${describeValue(id)}`, [...path, "id"]);
    return false;
  }
  return id;
}

/** The text parts of `content` (a string or parts), or undefined after adding an issue. */
function textParts(value: unknown, ctx: Ctx, path: Path): string[] | undefined {
  if (typeof value === "string") return [value];
  if (!Array.isArray(value)) {
    if (value === undefined) ctx.addIssue({ code: "invalid_type", expected: "string", input: value, path });
    else addIssue(ctx, `expected a string or an array of input_text parts, got ${describeValue(value)}`, path);
    return undefined;
  }
  const texts: string[] = [];
  for (const [index, part] of value.entries()) {
    if (!isRecord(part)) {
      addIssue(ctx, `expected a content part object, got ${describeValue(part)}`, [...path, index]);
      return undefined;
    }
    const type = part["type"];
    if (typeof type !== "string" || !TEXT_PART_TYPES.has(type)) {
      const why = typeof type === "string" && MEDIA_PART_TYPES.has(type) ? `'${type}' parts are not supported by Hearth (its models read text only)` : `expected 'input_text' or 'output_text', got ${describeValue(type)}`;
      addIssue(ctx, why, [...path, index, "type"]);
      return undefined;
    }
    const text = stringField(part, "text", ctx, [...path, index]);
    if (text === undefined) return undefined;
    texts.push(text);
  }
  return texts;
}

const ROLES = new Set<string>(["user", "system", "developer", "assistant"]);

function messageItem(item: Record<string, unknown>, ctx: Ctx, path: Path): InputMessageItem | undefined {
  const role = item["role"];
  if (typeof role !== "string" || !ROLES.has(role)) {
    if (role === undefined) ctx.addIssue({ code: "invalid_type", expected: "string", input: role, path: [...path, "role"] });
    else addIssue(ctx, `expected one of 'user', 'system', 'developer', 'assistant', got ${describeValue(role)}`, [...path, "role"]);
    return undefined;
  }
  const texts = textParts(item["content"], ctx, [...path, "content"]);
  const id = clientItemId(item, ctx, path);
  if (texts === undefined || id === false) return undefined;
  const withId = id === undefined ? {} : { id };
  if (role === "assistant") {
    return { type: "message", ...withId, role, content: texts.map((text) => ({ type: "output_text", text, annotations: [] })), status: "completed" };
  }
  return { type: "message", ...withId, role: role as Exclude<InputRole, "assistant">, content: texts.map((text) => ({ type: "input_text", text })), status: "completed" };
}

function functionCallItem(item: Record<string, unknown>, ctx: Ctx, path: Path): FunctionCallItem | undefined {
  const callId = stringField(item, "call_id", ctx, path, { nonEmpty: true });
  const name = stringField(item, "name", ctx, path, { nonEmpty: true });
  const args = stringField(item, "arguments", ctx, path);
  const id = clientItemId(item, ctx, path);
  if (callId === undefined || name === undefined || args === undefined || id === false) return undefined;
  return { type: "function_call", ...(id === undefined ? {} : { id }), call_id: callId, name, arguments: args, status: "completed" };
}

function functionCallOutputItem(item: Record<string, unknown>, ctx: Ctx, path: Path): FunctionCallOutputItem | undefined {
  const callId = stringField(item, "call_id", ctx, path, { nonEmpty: true });
  const texts = textParts(item["output"], ctx, [...path, "output"]);
  const id = clientItemId(item, ctx, path);
  if (callId === undefined || texts === undefined || id === false) return undefined;
  return { type: "function_call_output", ...(id === undefined ? {} : { id }), call_id: callId, output: texts.join(TEXT_PART_SEPARATOR), status: "completed" };
}

/** `summary` (required, summary_text parts) or `content` (reasoning_text parts) of a reasoning item. */
function reasoningParts<T extends "summary_text" | "reasoning_text">(value: unknown, type: T, ctx: Ctx, path: Path): { type: T; text: string }[] | undefined {
  if (!Array.isArray(value)) {
    if (value === undefined) ctx.addIssue({ code: "invalid_type", expected: "array", input: value, path });
    else addIssue(ctx, `expected an array of ${type} parts, got ${describeValue(value)}`, path);
    return undefined;
  }
  const parts: { type: T; text: string }[] = [];
  for (const [index, part] of value.entries()) {
    if (!isRecord(part) || part["type"] !== type) {
      addIssue(ctx, `expected a '${type}' part, got ${describeValue(isRecord(part) ? part["type"] : part)}`, [...path, index, ...(isRecord(part) ? ["type"] : [])]);
      return undefined;
    }
    const text = stringField(part, "text", ctx, [...path, index]);
    if (text === undefined) return undefined;
    parts.push({ type, text });
  }
  return parts;
}

function reasoningItem(item: Record<string, unknown>, ctx: Ctx, path: Path): ReasoningInputItem | undefined {
  const encrypted = item["encrypted_content"];
  if (encrypted !== undefined && encrypted !== null) {
    addIssue(ctx, "encrypted reasoning cannot be read by Hearth (it issues none); send the reasoning as summary or reasoning_text content", [...path, "encrypted_content"]);
    return undefined;
  }
  const summary = reasoningParts(item["summary"] ?? [], "summary_text", ctx, [...path, "summary"]);
  const content = item["content"] === undefined || item["content"] === null ? [] : reasoningParts(item["content"], "reasoning_text", ctx, [...path, "content"]);
  const id = clientItemId(item, ctx, path);
  if (summary === undefined || content === undefined || id === false) return undefined;
  const parsed: ReasoningInputItem = { type: "reasoning", ...(id === undefined ? {} : { id }), summary };
  if (content.length > 0) parsed.content = content;
  return parsed;
}

const ITEM_PARSERS: Record<string, (item: Record<string, unknown>, ctx: Ctx, path: Path) => InputItem | undefined> = {
  message: messageItem,
  function_call: functionCallItem,
  function_call_output: functionCallOutputItem,
  reasoning: reasoningItem,
};

/** One element of `input`; `path` is its place relative to `input`. */
function inputItem(value: unknown, ctx: Ctx, path: Path): InputItem | undefined {
  if (!isRecord(value)) {
    addIssue(ctx, `expected an input item object, got ${describeValue(value)}`, path);
    return undefined;
  }
  // The SDK's EasyInputMessage leaves `type` out.
  const type = value["type"] ?? (value["role"] !== undefined ? "message" : undefined);
  const parse = typeof type === "string" && Object.hasOwn(ITEM_PARSERS, type) ? ITEM_PARSERS[type] : undefined;
  if (parse === undefined) {
    if (type === undefined) ctx.addIssue({ code: "invalid_type", expected: "string", input: type, path: [...path, "type"] });
    else addIssue(ctx, `input items of type ${describeValue(type)} are not supported by Hearth; send 'message', 'function_call', 'function_call_output' or 'reasoning' items`, [...path, "type"]);
    return undefined;
  }
  return parse(value, ctx, path);
}

/** `input`: a string (one user message) or an array of items. */
export function parseInput(value: unknown, ctx: Ctx): InputItem[] {
  if (value === undefined || value === null) return [];
  if (typeof value === "string") return [{ type: "message", role: "user", content: [{ type: "input_text", text: value }], status: "completed" }];
  if (!Array.isArray(value)) {
    addIssue(ctx, `expected a string or an array of input items, got ${describeValue(value)}`);
    return z.NEVER;
  }
  const items: InputItem[] = [];
  for (const [index, element] of value.entries()) {
    const item = inputItem(element, ctx, [index]);
    if (item === undefined) return z.NEVER;
    items.push(item);
  }
  return items;
}

function joinedText(parts: readonly { text: string }[]): string {
  return parts.map((part) => part.text).join(TEXT_PART_SEPARATOR);
}

/** A reasoning item's thoughts: its reasoning_text content, else its summary. */
function reasoningText(item: ReasoningInputItem): string {
  return item.content !== undefined && item.content.length > 0 ? joinedText(item.content) : joinedText(item.summary);
}

/**
 * The chat messages `items` say, in order. An assistant message and the function calls after it
 * are one assistant turn (as in a response's own output); a reasoning item's text goes to the
 * assistant turn after it (a reasoning item no assistant turn follows has nothing to attach to
 * and is left out). `callIds` are the calls already made earlier in the conversation.
 * Throws nothing; a function_call_output whose call is unknown is reported by `unknownCallAt`.
 */
export function toChatMessages(items: readonly InputItem[], earlierCallIds: ReadonlySet<string> = new Set()): { messages: ChatMessage[]; unknownCallAt?: number } {
  const messages: ChatMessage[] = [];
  const callIds = new Set(earlierCallIds);
  let pendingReasoning = "";
  let openAssistant: ChatMessage | undefined;
  const startAssistant = (content: string): ChatMessage => {
    const message: ChatMessage = { role: "assistant", content };
    if (pendingReasoning !== "") message.reasoning = pendingReasoning;
    pendingReasoning = "";
    messages.push(message);
    return message;
  };
  for (const [index, item] of items.entries()) {
    switch (item.type) {
      case "reasoning": {
        const text = reasoningText(item);
        pendingReasoning = pendingReasoning === "" ? text : `${pendingReasoning}${TEXT_PART_SEPARATOR}${text}`;
        openAssistant = undefined;
        break;
      }
      case "message":
        if (item.role === "assistant") {
          openAssistant = startAssistant(joinedText(item.content));
        } else {
          messages.push({ role: item.role === "user" ? "user" : "system", content: joinedText(item.content) });
          openAssistant = undefined;
        }
        break;
      case "function_call": {
        const turn = openAssistant ?? startAssistant("");
        (turn.toolCalls ??= []).push({ id: item.call_id, name: item.name, arguments: item.arguments });
        callIds.add(item.call_id);
        openAssistant = turn;
        break;
      }
      case "function_call_output":
        if (!callIds.has(item.call_id)) return { messages, unknownCallAt: index };
        messages.push({ role: "tool", content: item.output, toolCallId: item.call_id });
        openAssistant = undefined;
        break;
    }
  }
  return { messages };
}

/** The ids of every tool call made in `messages`. */
export function callIdsOf(messages: readonly ChatMessage[]): Set<string> {
  const ids = new Set<string>();
  for (const message of messages) for (const call of message.toolCalls ?? []) ids.add(call.id);
  return ids;
}

const ID_PREFIX: Record<InputItem["type"], "msg" | "fc" | "fco" | "rs"> = { message: "msg", function_call: "fc", function_call_output: "fco", reasoning: "rs" };

/** `items` with an id each: the client's, or one derived from the response id. */
export function withItemIds(items: readonly InputItem[], idFor: (prefix: "msg" | "fc" | "fco" | "rs", index: number) => string): ListedInputItem[] {
  return items.map((item, index) => ({ ...item, id: item.id ?? idFor(ID_PREFIX[item.type], index) }));
}
