/**
 * The Responses API (docs/api.md, "Responses API"):
 *
 *   POST   /v1/responses                     create: one response, or its stream of events
 *   GET    /v1/responses/{id}                a stored response
 *   DELETE /v1/responses/{id}                remove it
 *   POST   /v1/responses/{id}/cancel         only background responses can be; Hearth has none
 *   GET    /v1/responses/{id}/input_items    the input items it was given, a page at a time
 *
 * A create is the same ChatJob and generation path as every other family (generation.ts); the
 * request schema, the job and the bodies and events are in protocol/responses/. With
 * `store` (the default) the finished response is kept in the response store before it is
 * answered, so a GET right after finds it; `previous_response_id` puts the stored conversation
 * before the new input.
 */

import { errors, type HearthError } from "../../../protocol/errors.js";
import type { GenerationResult } from "../../../protocol/inference.js";
import type { ResponseMeta, StreamFrame } from "../../../protocol/generationStream.js";
import { unixSeconds } from "../../../protocol/openai/ids.js";
import { newResponseId } from "../../../protocol/responses/ids.js";
import { inputItemsPage, parseInputItemsQuery } from "../../../protocol/responses/inputItemsPage.js";
import { parseResponsesRequest, responsesChatJob, type ParsedResponsesRequest } from "../../../protocol/responses/request.js";
import { finishedResponse } from "../../../protocol/responses/responseBody.js";
import { ResponseEventSequence } from "../../../protocol/responses/streamEvents.js";
import { storedResponse, type StoredResponse } from "../../../protocol/responses/storedResponse.js";
import type { ChatMessage } from "../../../protocol/inference.js";
import type { Logger } from "pino";
import type { RequestContext, ResponseRecords } from "../context.js";
import { readJsonBody } from "../requestBody.js";
import { sendJson } from "../responses.js";
import { serveGeneration, type GenerationFormat, type GenerationRequest } from "./generation.js";

/** How much of a client's id an error message echoes. */
const MAX_ECHOED_ID = 100;

function echoedId(id: string): string {
  return JSON.stringify(id.slice(0, MAX_ECHOED_ID));
}

/** The stored response `id`, or HEARTH_RESPONSE_NOT_FOUND (404) naming `param`. */
async function storedOrNotFound(store: ResponseRecords | undefined, id: string, what: "Response" | "Previous response", param: string | null): Promise<StoredResponse> {
  const record = await store?.get(id);
  if (record === undefined) throw errors.responseNotFound(`${what} with id ${echoedId(id)} not found.`, { param });
  return record;
}

/** One request's format: its echo, its stream's events, and storing the finished response. */
function responsesFormat(request: ParsedResponsesRequest, conversation: readonly ChatMessage[], store: ResponseRecords | undefined, log: Logger): GenerationFormat {
  let events: ResponseEventSequence | undefined;
  let completedAt: number | undefined;
  // One completion time for the answer, the stream's last event and the stored copy.
  const now = (): number => (completedAt ??= unixSeconds());
  const { echo } = request;
  return {
    newId: newResponseId,
    buildBody: (meta, result) => finishedResponse(meta, echo, result, now()),
    createChunks: (meta) => (events = new ResponseEventSequence(meta, echo, now)),
    transport: { kind: "sse", doneMarker: false },
    errorFrame: (error: HearthError): StreamFrame => events?.failed(error) ?? { event: "error", data: { type: "error", sequence_number: 0, code: error.code, message: error.message, param: error.param } },
    completed: async (meta: ResponseMeta, result: GenerationResult) => {
      if (!echo.store || store === undefined) return;
      const record = storedResponse({ response: finishedResponse(meta, echo, result, now()), input: request.input, conversation, result, echo, storedAt: Date.now() });
      try {
        await store.put(record);
      } catch (error) {
        // The answer exists; losing it over a full disk helps nobody. A later GET is a 404.
        log.error({ err: error, response: meta.id }, "could not store a response; answering it anyway");
      }
    },
  };
}

export async function handleCreateResponse(context: RequestContext): Promise<void> {
  const body = await readJsonBody(context.req, { maxBytes: context.services.config.limits.maxBodyBytes });
  const request = parseResponsesRequest(body);
  const store = context.services.responses;
  const previousId = request.echo.previous_response_id;
  const history = previousId === null ? [] : (await storedOrNotFound(store, previousId, "Previous response", "previous_response_id")).conversation;
  const { job, conversation } = responsesChatJob(request, history);
  const generation: GenerationRequest = { job, delivery: request.delivery };
  if (request.hearth !== undefined) generation.hearth = request.hearth;
  await serveGeneration(context, generation, responsesFormat(request, conversation, store, context.log));
}

function queryOf(context: RequestContext): URLSearchParams {
  return new URL(context.req.url ?? "/", "http://hearth.invalid").searchParams;
}

function idParam(context: RequestContext): string {
  return context.params["id"] ?? "";
}

export async function handleGetResponse(context: RequestContext): Promise<void> {
  if (queryOf(context).get("stream") === "true") {
    throw errors.invalidRequest("Invalid value for 'stream': Hearth does not stream a stored response again; GET it without stream.", { param: "stream" });
  }
  const record = await storedOrNotFound(context.services.responses, idParam(context), "Response", null);
  sendJson(context.res, 200, record.response);
}

export async function handleDeleteResponse(context: RequestContext): Promise<void> {
  const id = idParam(context);
  const deleted = (await context.services.responses?.delete(id)) ?? false;
  if (!deleted) throw errors.responseNotFound(`Response with id ${echoedId(id)} not found.`);
  sendJson(context.res, 200, { id, object: "response", deleted: true });
}

export async function handleCancelResponse(context: RequestContext): Promise<void> {
  const record = await storedOrNotFound(context.services.responses, idParam(context), "Response", null);
  throw errors.invalidRequest(`Only background responses can be cancelled, and Hearth runs none in the background; this one is ${record.response.status}. A running response is cancelled by closing its request.`);
}

export async function handleListInputItems(context: RequestContext): Promise<void> {
  const query = parseInputItemsQuery(queryOf(context));
  const record = await storedOrNotFound(context.services.responses, idParam(context), "Response", null);
  sendJson(context.res, 200, inputItemsPage(record.inputItems, query));
}
