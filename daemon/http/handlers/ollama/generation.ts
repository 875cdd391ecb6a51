/**
 * POST /api/chat and POST /api/generate: Ollama's requests onto the one generation path
 * (../generation.ts), answered as one JSON object (`stream: false`) or NDJSON chunks (the
 * default), with a failure after the first chunk as an `{"error": "..."}` line.
 *
 * A request without messages (chat) or prompt (generate) runs nothing: it loads the model
 * here and answers done_reason "load", or with `keep_alive: 0` unloads it ("unload"), as
 * Ollama does. A model only a peer holds is not loaded by it (its node loads it on first use).
 */

import type { ChatJob, CompletionJob } from "../../../../protocol/inference.js";
import { parseChatRequest } from "../../../../protocol/ollama/chatRequest.js";
import { parseGenerateRequest } from "../../../../protocol/ollama/generateRequest.js";
import {
  buildChatAnswer,
  buildGenerateAnswer,
  ChatChunks,
  GenerateChunks,
  loadChatAnswer,
  loadGenerateAnswer,
  type OllamaAnswerContext,
} from "../../../../protocol/ollama/generationResponse.js";
import type { RequestContext } from "../../context.js";
import { sendJson } from "../../responses.js";
import { serveGeneration, type GenerationFormat } from "../generation.js";
import { loadOrUnload } from "./modelLoading.js";
import { resolveOllamaModel } from "./modelNames.js";
import { readOllamaBody } from "./requestBody.js";
import { nowIso, OllamaRequestEngine } from "./requestEngine.js";

type Answers = "chat" | "generate";

export async function handleOllamaChat(context: RequestContext): Promise<void> {
  const request = parseChatRequest(await readOllamaBody(context));
  if (request.kind === "load") {
    const reason = await loadOrUnload(context, request.model, request.keepAliveMs);
    sendJson(context.res, 200, loadChatAnswer(request.model, nowIso(), reason));
    return;
  }
  await generate(context, request.job, request.stream, request.keepAliveMs, "chat");
}

export async function handleOllamaGenerate(context: RequestContext): Promise<void> {
  const request = parseGenerateRequest(await readOllamaBody(context));
  if (request.kind === "load") {
    const reason = await loadOrUnload(context, request.model, request.keepAliveMs);
    sendJson(context.res, 200, loadGenerateAnswer(request.model, nowIso(), reason));
    return;
  }
  await generate(context, request.job, request.stream, request.keepAliveMs, "generate");
}

async function generate(context: RequestContext, job: ChatJob | CompletionJob, stream: boolean, keepAliveMs: number | undefined, answers: Answers): Promise<void> {
  const requested = job.model;
  const resolved = await resolveOllamaModel(context.services.engine, requested);
  const engine = new OllamaRequestEngine(context.services.engine, keepAliveMs);
  const answer: OllamaAnswerContext = { model: requested, now: nowIso, timings: (result) => engine.timings(result) };
  const format: GenerationFormat = {
    newId: () => "",
    buildBody: (_meta, result) => (answers === "chat" ? buildChatAnswer(answer, result) : buildGenerateAnswer(answer, result)),
    createChunks: () => (answers === "chat" ? new ChatChunks(answer) : new GenerateChunks(answer)),
    transport: { kind: "ndjson" },
  };
  await serveGeneration(
    { ...context, services: { ...context.services, engine } },
    { job: { ...job, model: resolved.name }, delivery: { stream, includeUsage: false } },
    format,
  );
}
