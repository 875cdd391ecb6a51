/**
 * Batch output: one line per input item in OpenAI's batch output format, plus Hearth's
 * `hearth` extension naming the node that ran the item and the input line it came from.
 *
 *   success: {"id":"batch_req_…","custom_id","response":{"status_code":200,"request_id","body"},"error":null,"hearth":{"node","line"}}
 *   failure: {"id":"batch_req_…","custom_id","response":null,"error":{"code","message"},"hearth":{"node","line"}}
 *
 * `body` is exactly what the item's endpoint would have answered over HTTP (chat.completion,
 * text_completion or the embeddings list). A failure is an invalid line (kept with
 * skip_invalid), an item the model could not serve (HEARTH_CONTEXT_OVERFLOW, ...), one whose
 * nodes kept failing past jobs.max_attempts, or one cancelled with its job (HEARTH_CANCELLED).
 *
 * Pure apart from random ids (like protocol/openai/ids.ts).
 */

import { randomBytes } from "node:crypto";
import type { EmbeddingResult, GenerationResult } from "../inference.js";
import { buildChatCompletion } from "../openai/chatResponse.js";
import { buildTextCompletion } from "../openai/completionResponse.js";
import { checkDimensions } from "../openai/embeddingRequest.js";
import { buildEmbeddingResponse } from "../openai/embeddingResponse.js";
import { newResponseId, unixSeconds } from "../openai/ids.js";
import type { BatchItem, BatchRequest } from "./batchInput.js";

export interface BatchOutputError {
  code: string;
  message: string;
}

export interface BatchOutputLine {
  id: string;
  custom_id: string | null;
  response: { status_code: number; request_id: string; body: unknown } | null;
  error: BatchOutputError | null;
  hearth: { node: string | null; line: number };
}

export function newBatchRequestId(): string {
  return `batch_req_${randomBytes(12).toString("hex")}`;
}

function newRequestId(): string {
  return `req_${randomBytes(12).toString("hex")}`;
}

export type ItemResult = GenerationResult | EmbeddingResult;

/** The HTTP body the item's endpoint would have sent; throws for an embedding whose `dimensions` does not match. */
export function buildResponseBody(request: BatchRequest, result: ItemResult, nowMs: number = Date.now()): unknown {
  switch (request.url) {
    case "/v1/chat/completions":
      return buildChatCompletion({ id: newResponseId("chatcmpl"), created: unixSeconds(nowMs), model: request.job.model }, result as GenerationResult);
    case "/v1/completions":
      return buildTextCompletion({ id: newResponseId("cmpl"), created: unixSeconds(nowMs), model: request.job.model }, result as GenerationResult);
    case "/v1/embeddings": {
      const embedding = result as EmbeddingResult;
      checkDimensions(request.dimensions, embedding.vectors[0]?.length);
      return buildEmbeddingResponse(request.job.model, embedding, request.encodingFormat);
    }
  }
}

export function successLine(item: Pick<BatchItem, "customId" | "line">, body: unknown, nodeId: string | null): BatchOutputLine {
  return {
    id: newBatchRequestId(),
    custom_id: item.customId,
    response: { status_code: 200, request_id: newRequestId(), body },
    error: null,
    hearth: { node: nodeId, line: item.line },
  };
}

export function errorLine(item: { customId: string | null; line: number }, error: BatchOutputError, nodeId: string | null): BatchOutputLine {
  return {
    id: newBatchRequestId(),
    custom_id: item.customId,
    response: null,
    error: { code: error.code, message: error.message },
    hearth: { node: nodeId, line: item.line },
  };
}
