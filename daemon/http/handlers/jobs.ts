/**
 * Batch jobs under /hearth/v1/jobs (docs/api.md, "Batch jobs"):
 *
 *   POST /hearth/v1/jobs               submit: a JSONL body (application/jsonl or x-ndjson,
 *                                      options in the query: ?model=M&skip_invalid=true), or
 *                                      application/json {"input": "<jsonl>", "model"?, "skip_invalid"?}
 *   GET  /hearth/v1/jobs               every job, newest first
 *   GET  /hearth/v1/jobs/{id}          one job with its progress
 *   POST /hearth/v1/jobs/{id}/cancel   stop it; unfinished items become HEARTH_CANCELLED lines
 *   GET  /hearth/v1/jobs/{id}/output   the output, JSONL in input order, once finished
 *
 * The body limit is jobs.max_input_bytes, not limits.max_body_bytes: a batch file is meant to be
 * large. A refused input answers 400 HEARTH_BATCH_INVALID with every invalid line (number,
 * code, param, message) in `invalid_lines`. The shapes are in protocol/api/jobs.ts.
 */

import type { BatchRefusal, JobList } from "../../../protocol/api/jobs.js";
import { BatchInputError } from "../../../protocol/batch/batchInput.js";
import { errors } from "../../../protocol/errors.js";
import type { JobCoordinator, SubmitOptions } from "../../jobs/JobCoordinator.js";
import type { RequestContext } from "../context.js";
import { isJsonContentType, parseJsonObject, readBodyBytes } from "../requestBody.js";
import { sendJson, sendText } from "../responses.js";

const JSONL_MEDIA_TYPES = new Set(["application/jsonl", "application/x-ndjson", "application/x-jsonlines", "application/jsonlines", "text/jsonl"]);

function jobsOf(context: RequestContext): JobCoordinator {
  const { jobs } = context.services;
  if (jobs === undefined) throw errors.notFound("Batch jobs are not available on this API.");
  return jobs;
}

function mediaType(header: string | undefined): string {
  return (header?.split(";")[0] ?? "").trim().toLowerCase();
}

function parseFlag(value: unknown, name: string): boolean | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === "boolean") return value;
  if (value === "true" || value === "1") return true;
  if (value === "false" || value === "0") return false;
  throw errors.invalidRequest(`Invalid value for '${name}': expected true or false.`, { param: name });
}

function parseModel(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string" || value.trim() === "") throw errors.invalidRequest("Invalid value for 'model': expected a non-empty string.", { param: "model" });
  return value;
}

function submitOptions(model: unknown, skipInvalid: unknown): SubmitOptions {
  const options: SubmitOptions = { skipInvalid: parseFlag(skipInvalid, "skip_invalid") ?? false };
  const override = parseModel(model);
  if (override !== undefined) options.model = override;
  return options;
}

export async function handleSubmitJob(context: RequestContext): Promise<void> {
  const { req, res } = context;
  const jobs = jobsOf(context);
  const query = new URL(req.url ?? "/", "http://hearth.invalid").searchParams;
  const type = mediaType(req.headers["content-type"]);
  let input: Uint8Array;
  let options: SubmitOptions;
  if (JSONL_MEDIA_TYPES.has(type)) {
    options = submitOptions(query.get("model") ?? undefined, query.get("skip_invalid") ?? undefined);
    input = await readBodyBytes(req, jobs.maxInputBytes);
  } else if (isJsonContentType(req.headers["content-type"])) {
    const body = parseJsonObject(await readBodyBytes(req, jobs.maxInputBytes));
    if (typeof body["input"] !== "string") {
      throw errors.invalidRequest("Missing required parameter: 'input' (the batch as JSONL text).", { param: "input" });
    }
    options = submitOptions(body["model"] ?? query.get("model") ?? undefined, body["skip_invalid"] ?? query.get("skip_invalid") ?? undefined);
    input = Buffer.from(body["input"], "utf8");
  } else {
    throw errors.unsupportedMediaType(`A batch is submitted as application/jsonl (or application/x-ndjson), or as application/json {"input": ...}; got ${type === "" ? "no Content-Type" : JSON.stringify(type)}.`,
    );
  }
  try {
    sendJson(res, 200, await jobs.submit(input, options));
  } catch (error) {
    if (!(error instanceof BatchInputError)) throw error;
    context.log.debug({ invalidLines: error.invalidLineCount }, "batch input refused");
    const refusal: BatchRefusal = {
      ...error.toOpenAiBody(),
      invalid_line_count: error.invalidLineCount,
      invalid_lines: error.lines.map((line) => ({ line: line.line, custom_id: line.customId, code: line.code, param: line.param, message: line.message })),
    };
    sendJson(res, 400, refusal);
  }
}

export async function handleListJobs(context: RequestContext): Promise<void> {
  const body: JobList = { object: "list", data: jobsOf(context).list() };
  sendJson(context.res, 200, body);
  return Promise.resolve();
}

export async function handleGetJob(context: RequestContext): Promise<void> {
  sendJson(context.res, 200, jobsOf(context).view(context.params["id"] ?? ""));
  return Promise.resolve();
}

export async function handleCancelJob(context: RequestContext): Promise<void> {
  sendJson(context.res, 200, await jobsOf(context).cancel(context.params["id"] ?? ""));
}

export async function handleJobOutput(context: RequestContext): Promise<void> {
  const lines = jobsOf(context).output(context.params["id"] ?? "");
  sendText(context.res, 200, lines.map((line) => `${JSON.stringify(line)}\n`).join(""), "application/jsonl; charset=utf-8");
  return Promise.resolve();
}
