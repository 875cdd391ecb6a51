/**
 * Batch input: OpenAI Batch API JSONL, one request per line,
 * `{"custom_id", "method":"POST", "url", "body"}`, checked and turned into inference jobs.
 *
 * Every non-blank line is one item; its `index` (0-based, blank lines not counted) is its place
 * in the output. A line is invalid when it is not JSON, not an object, lacks a non-empty string
 * `custom_id`, repeats an earlier `custom_id`, has a method other than POST, names a url Hearth
 * does not batch, has no body object, asks to stream, names another model than the batch's
 * first valid line, or has a body the endpoint's own request parser (protocol/openai/) rejects.
 * Each problem is reported with its 1-based line number and a stable code.
 *
 * Without `skipInvalid` any invalid line rejects the whole input (BatchInputError) so nothing
 * runs; with it, invalid lines are kept as error items and appear in the output as error lines.
 *
 * Pure: no I/O.
 */

import { HearthError, type HearthErrorCode } from "../errors.js";
import type { ChatJob, CompletionJob, EmbeddingJob } from "../inference.js";
import { parseChatRequest } from "../openai/chatRequest.js";
import { parseCompletionRequest } from "../openai/completionRequest.js";
import { parseEmbeddingRequest, type EmbeddingEncoding } from "../openai/embeddingRequest.js";

export const BATCH_URLS = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"] as const;
export type BatchUrl = (typeof BATCH_URLS)[number];

/** At most this many line errors are listed in a rejection; the count says how many there were. */
export const MAX_REPORTED_LINE_ERRORS = 100;

export type BatchRequest =
  | { url: "/v1/chat/completions"; job: ChatJob }
  | { url: "/v1/completions"; job: CompletionJob }
  | { url: "/v1/embeddings"; job: EmbeddingJob; encodingFormat: EmbeddingEncoding; dimensions?: number };

export interface BatchItem {
  /** Place in the output (0-based over non-blank lines). */
  index: number;
  /** 1-based line number in the input. */
  line: number;
  customId: string;
  request: BatchRequest;
}

export interface BatchLineError {
  index: number;
  line: number;
  /** Null when the line has no usable custom_id. */
  customId: string | null;
  code: HearthErrorCode;
  message: string;
  /** The offending field, e.g. `custom_id` or `body.messages[0].role`. */
  param: string | null;
}

export interface BatchInputOptions {
  /** Replaces (or supplies) `body.model` on every line. */
  model?: string;
  /** Keep invalid lines as error items instead of rejecting the input. */
  skipInvalid: boolean;
  /** Most items (non-blank lines) accepted. */
  maxItems: number;
  /** limits.max_embedding_inputs, as for /v1/embeddings. */
  maxEmbeddingInputs: number;
}

export interface ParsedBatchInput {
  /** Valid items, in input order. */
  items: BatchItem[];
  /** Invalid lines (only ever non-empty with skipInvalid), in input order. */
  invalid: BatchLineError[];
  /** The one model every valid item uses. */
  model: string;
  /** Items in the output: valid + invalid. */
  total: number;
}

/** The whole input is refused; `lines` lists the first MAX_REPORTED_LINE_ERRORS problems. */
export class BatchInputError extends HearthError {
  readonly lines: BatchLineError[];
  readonly invalidLineCount: number;

  constructor(message: string, lines: BatchLineError[] = [], invalidLineCount = lines.length) {
    super("HEARTH_BATCH_INVALID", message, { param: null });
    this.lines = lines.slice(0, MAX_REPORTED_LINE_ERRORS);
    this.invalidLineCount = invalidLineCount;
  }
}

type LineOutcome = { ok: true; item: BatchItem } | { ok: false; error: BatchLineError };

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isBatchUrl(value: unknown): value is BatchUrl {
  return typeof value === "string" && (BATCH_URLS as readonly string[]).includes(value);
}

/** Splits into lines (LF or CRLF) and parses every non-blank one. */
export function parseBatchInput(text: string, options: BatchInputOptions): ParsedBatchInput {
  const lines = text.split("\n");
  const items: BatchItem[] = [];
  const invalid: BatchLineError[] = [];
  const seen = new Map<string, number>();
  let model: string | undefined;
  let index = 0;
  for (const [offset, raw] of lines.entries()) {
    const content = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    if (content.trim() === "") continue;
    if (index >= options.maxItems) {
      throw new BatchInputError(`The batch has more than ${options.maxItems} lines (jobs.max_items); split it into several jobs.`);
    }
    const outcome = parseLine(content, { index, line: offset + 1 }, options, seen, model);
    if (outcome.ok) {
      model ??= outcome.item.request.job.model;
      items.push(outcome.item);
    } else {
      invalid.push(outcome.error);
    }
    index++;
  }
  if (index === 0) throw new BatchInputError("The batch input has no lines; expected one JSON request per line.");
  if (invalid.length > 0 && !options.skipInvalid) {
    const first = invalid[0]!;
    const more = invalid.length > 1 ? ` (and ${invalid.length - 1} more invalid line${invalid.length > 2 ? "s" : ""})` : "";
    throw new BatchInputError(`Line ${first.line}: ${first.message}${more}. Nothing was run; fix the lines or submit with skip_invalid.`, invalid, invalid.length);
  }
  if (model === undefined) throw new BatchInputError(`None of the ${index} lines is a valid request; nothing to run.`, invalid, invalid.length);
  return { items, invalid, model, total: index };
}

function parseLine(
  content: string,
  where: { index: number; line: number },
  options: BatchInputOptions,
  seen: Map<string, number>,
  batchModel: string | undefined,
): LineOutcome {
  let customId: string | null = null;
  const fail = (code: HearthErrorCode, message: string, param: string | null): LineOutcome => ({
    ok: false,
    error: { ...where, customId, code, message, param },
  });
  let value: unknown;
  try {
    value = JSON.parse(content);
  } catch (error) {
    return fail("HEARTH_INVALID_JSON", `not valid JSON${error instanceof SyntaxError ? `: ${error.message}` : ""}`, null);
  }
  if (!isPlainObject(value)) return fail("HEARTH_INVALID_REQUEST", "expected a JSON object with custom_id, method, url and body", null);

  const rawId = value["custom_id"];
  if (typeof rawId !== "string" || rawId === "") {
    return fail("HEARTH_INVALID_REQUEST", rawId === undefined ? "missing custom_id" : "custom_id must be a non-empty string", "custom_id");
  }
  const firstLine = seen.get(rawId);
  if (firstLine !== undefined) {
    customId = rawId;
    return fail("HEARTH_INVALID_REQUEST", `duplicate custom_id ${JSON.stringify(rawId)} (first on line ${firstLine})`, "custom_id");
  }
  seen.set(rawId, where.line);
  customId = rawId;

  const method = value["method"];
  if (method !== "POST") {
    return fail("HEARTH_INVALID_REQUEST", method === undefined ? "missing method (must be \"POST\")" : `method must be "POST", got ${JSON.stringify(method)}`, "method");
  }
  const url = value["url"];
  if (!isBatchUrl(url)) {
    const got = url === undefined ? "missing url" : `unknown url ${JSON.stringify(url)}`;
    return fail("HEARTH_INVALID_REQUEST", `${got}; expected one of ${BATCH_URLS.join(", ")}`, "url");
  }
  const rawBody = value["body"];
  if (!isPlainObject(rawBody)) return fail("HEARTH_INVALID_REQUEST", rawBody === undefined ? "missing body" : "body must be a JSON object", "body");
  const body = options.model === undefined ? rawBody : { ...rawBody, model: options.model };
  if (body["stream"] === true) return fail("HEARTH_INVALID_REQUEST", "stream is not supported in a batch; each result is written whole", "body.stream");

  let request: BatchRequest;
  try {
    request = parseBody(url, body, options);
  } catch (error) {
    if (!(error instanceof HearthError)) throw error;
    return fail(error.code, error.message, error.param === null ? "body" : `body.${error.param}`);
  }
  if (batchModel !== undefined && request.job.model !== batchModel) {
    return fail("HEARTH_INVALID_REQUEST", `all lines of a batch must use one model; this line uses ${JSON.stringify(request.job.model)}, earlier lines ${JSON.stringify(batchModel)}`, "body.model");
  }
  return { ok: true, item: { ...where, customId: rawId, request } };
}

function parseBody(url: BatchUrl, body: Record<string, unknown>, options: BatchInputOptions): BatchRequest {
  switch (url) {
    case "/v1/chat/completions":
      return { url, job: parseChatRequest(body).job };
    case "/v1/completions":
      return { url, job: parseCompletionRequest(body).job };
    case "/v1/embeddings": {
      const parsed = parseEmbeddingRequest(body, { maxInputs: options.maxEmbeddingInputs });
      const request: BatchRequest = { url, job: parsed.job, encodingFormat: parsed.encodingFormat };
      if (parsed.dimensions !== undefined) request.dimensions = parsed.dimensions;
      return request;
    }
  }
}
