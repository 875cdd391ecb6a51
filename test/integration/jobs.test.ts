/**
 * Batch jobs on one real daemon (dist), driven through `hearth submit` / `hearth jobs` and
 * /hearth/v1/jobs: output in input order with each custom_id once and results equal to the
 * same requests sent alone, invalid lines refused with line numbers (or kept with
 * --skip-invalid), cancellation, a job that survives its daemon being SIGKILLed, limits and
 * usage errors.
 */

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli, type CliResult } from "../support/cli.js";
import { startDaemon, type RunningDaemon } from "../support/daemon.js";
import { ensureTinyModel } from "../support/models.js";
import { waitForValue } from "../support/wait.js";
import type { JobView } from "../../protocol/api/jobs.js";
import type { BatchOutputLine } from "../../protocol/batch/batchOutput.js";

const CONFIG = `
[runner]
threads = 1
[limits]
context_size = 512
[jobs]
max_input_bytes = 200000
max_items = 400
refresh_interval = "1s"
`;

let home: string;
let daemon: RunningDaemon;
let modelPath: string;
const workDir = fs.mkdtempSync(path.join(os.tmpdir(), "hearth-jobs-it-"));

beforeAll(async () => {
  modelPath = await ensureTinyModel();
  home = path.join(workDir, "home");
  daemon = await start();
});

afterAll(async () => {
  await daemon?.stop();
  fs.rmSync(workDir, { recursive: true, force: true });
});

function start(): Promise<RunningDaemon> {
  return startDaemon({ home, models: { tiny: modelPath }, configToml: CONFIG, args: ["--parallel", "1"] });
}

function completionLine(customId: string, prompt: string, maxTokens = 6): string {
  return JSON.stringify({ custom_id: customId, method: "POST", url: "/v1/completions", body: { model: "tiny", prompt, max_tokens: maxTokens, temperature: 0 } });
}

function writeInput(name: string, lines: readonly string[]): string {
  const file = path.join(workDir, name);
  fs.writeFileSync(file, `${lines.join("\n")}\n`);
  return file;
}

function hearth(args: string[], timeoutMs = 60_000): Promise<CliResult> {
  return runCli([...args, "--url", daemon.url], { env: { ...process.env, XDG_CONFIG_HOME: path.join(workDir, "xdg"), HEARTH_API_KEY: "" }, timeoutMs });
}

async function api(method: string, requestPath: string, body?: string, contentType = "application/jsonl"): Promise<{ status: number; json: unknown; text: string }> {
  const response = await fetch(`${daemon.url}${requestPath}`, { method, ...(body === undefined ? {} : { body, headers: { "content-type": contentType } }) });
  const text = await response.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, json, text };
}

function parseOutput(text: string): BatchOutputLine[] {
  return text
    .trimEnd()
    .split("\n")
    .map((line) => JSON.parse(line) as BatchOutputLine);
}

async function soloText(line: string): Promise<string> {
  const request = JSON.parse(line) as { url: string; body: unknown };
  const response = await api("POST", request.url, JSON.stringify(request.body), "application/json");
  expect(response.status).toBe(200);
  const choice = (response.json as { choices: { text?: string; message?: { content: string } }[] }).choices[0]!;
  return choice.text ?? choice.message!.content;
}

function resultText(line: BatchOutputLine): string {
  const choice = (line.response!.body as { choices: { text?: string; message?: { content: string } }[] }).choices[0]!;
  return choice.text ?? choice.message!.content;
}

function waitForStatus(id: string, predicate: (view: JobView) => boolean, timeoutMs: number): Promise<JobView> {
  return waitForValue(
    async () => {
      const view = (await api("GET", `/hearth/v1/jobs/${id}`)).json as JobView;
      return predicate(view) && view;
    },
    timeoutMs,
    `job ${id} to reach the expected state`,
    100,
  );
}

describe("batch jobs on one daemon", () => {
  it("`hearth submit` runs chat, completion and embedding lines and writes one output line per input line, in input order, equal to each request run alone", async () => {
    const lines = [
      ...Array.from({ length: 12 }, (_, i) => completionLine(`c-${i}`, `Number ${i} is`)),
      JSON.stringify({ custom_id: "chat", method: "POST", url: "/v1/chat/completions", body: { model: "tiny", messages: [{ role: "user", content: "Hello" }], max_tokens: 5, temperature: 0 } }),
      JSON.stringify({ custom_id: "emb", method: "POST", url: "/v1/embeddings", body: { model: "tiny", input: ["a", "b"] } }),
    ];
    const input = writeInput("mixed.jsonl", lines);
    const outFile = path.join(workDir, "mixed.out.jsonl");
    const result = await hearth(["submit", input, "-o", outFile]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/submitted job_[0-9a-f]{24}: 14 items on tiny/);
    expect(result.stderr).toMatch(/completed: 14 ok, 0 failed of 14/);
    const output = parseOutput(fs.readFileSync(outFile, "utf8"));
    expect(output.map((line) => line.custom_id)).toEqual(lines.map((line) => (JSON.parse(line) as { custom_id: string }).custom_id));
    expect(output.map((line) => line.hearth.line)).toEqual(lines.map((_, i) => i + 1));
    for (const line of output) {
      expect(line.id).toMatch(/^batch_req_/);
      expect(line.error).toBeNull();
      expect(line.response?.status_code).toBe(200);
      expect(typeof line.hearth.node).toBe("string");
    }
    for (const [i, line] of lines.slice(0, 13).entries()) expect(resultText(output[i]!), `item ${i}`).toBe(await soloText(line));
    const embedding = output[13]!.response!.body as { object: string; data: { embedding: number[] }[] };
    expect(embedding.object).toBe("list");
    expect(embedding.data).toHaveLength(2);
    const solo = await api("POST", "/v1/embeddings", JSON.stringify({ model: "tiny", input: ["a", "b"] }), "application/json");
    expect(embedding.data.map((entry) => entry.embedding)).toEqual((solo.json as { data: { embedding: number[] }[] }).data.map((entry) => entry.embedding));
  });

  it("refuses a file with invalid lines before anything runs, naming each line and its code; --skip-invalid keeps them as error lines in place", async () => {
    const before = ((await api("GET", "/hearth/v1/jobs")).json as { data: unknown[] }).data.length;
    const lines = [completionLine("a", "One"), "{oops", completionLine("a", "dup"), JSON.stringify({ custom_id: "u", method: "POST", url: "/v1/nope", body: {} }), completionLine("d", "Four")];
    const input = writeInput("invalid.jsonl", lines);
    const refused = await hearth(["submit", input]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`${input}:2: [HEARTH_INVALID_JSON]`);
    expect(refused.stderr).toContain(`${input}:3: [HEARTH_INVALID_REQUEST] duplicate custom_id "a" (first on line 1)`);
    expect(refused.stderr).toContain(`${input}:4: [HEARTH_INVALID_REQUEST] unknown url "/v1/nope"`);
    expect(refused.stderr).toMatch(/error \[HEARTH_BATCH_INVALID\]: Line 2: not valid JSON/);
    expect(((await api("GET", "/hearth/v1/jobs")).json as { data: unknown[] }).data).toHaveLength(before);

    const http = await api("POST", "/hearth/v1/jobs", lines.join("\n"));
    expect(http.status).toBe(400);
    expect(http.json).toMatchObject({
      error: { code: "HEARTH_BATCH_INVALID", type: "invalid_request_error" },
      invalid_line_count: 3,
      invalid_lines: [
        { line: 2, code: "HEARTH_INVALID_JSON", custom_id: null },
        { line: 3, code: "HEARTH_INVALID_REQUEST", custom_id: "a", param: "custom_id" },
        { line: 4, code: "HEARTH_INVALID_REQUEST", custom_id: "u", param: "url" },
      ],
    });

    const kept = await hearth(["submit", input, "--skip-invalid"]);
    expect(kept.code, kept.stderr).toBe(0);
    const output = parseOutput(kept.stdout);
    expect(output.map((line) => [line.hearth.line, line.custom_id, line.error?.code ?? "ok"])).toEqual([
      [1, "a", "ok"],
      [2, null, "HEARTH_INVALID_JSON"],
      [3, "a", "HEARTH_INVALID_REQUEST"],
      [4, "u", "HEARTH_INVALID_REQUEST"],
      [5, "d", "ok"],
    ]);
    expect(output[1]?.response).toBeNull();
  });

  it("--detach returns the job id; `hearth jobs`, `jobs show` and `jobs output` follow it; the JSON form and --model work over HTTP", async () => {
    const lines = Array.from({ length: 6 }, (_, i) => JSON.stringify({ custom_id: `m-${i}`, method: "POST", url: "/v1/completions", body: { prompt: `Say ${i}`, max_tokens: 4, temperature: 0 } }));
    const input = writeInput("nomodel.jsonl", lines);
    const detached = await hearth(["submit", input, "--detach", "--model", "tiny"]);
    expect(detached.code, detached.stderr).toBe(0);
    const id = detached.stdout.trim();
    expect(id).toMatch(/^job_[0-9a-f]{24}$/);
    const finished = await waitForStatus(id, (view) => view.status === "completed", 60_000);
    expect(finished.request_counts).toEqual({ total: 6, completed: 6, failed: 0 });
    expect(finished.nodes.reduce((sum, node) => sum + node.done, 0)).toBe(6);

    const listed = await hearth(["jobs", "--json"]);
    expect((JSON.parse(listed.stdout) as JobView[]).map((view) => view.id)).toContain(id);
    const table = await hearth(["jobs"]);
    expect(table.stdout).toMatch(new RegExp(`${id}\\s+completed\\s+tiny\\s+6/6`));
    const shown = await hearth(["jobs", "show", id]);
    expect(shown.stdout).toMatch(/status\s+completed/);
    const printed = await hearth(["jobs", "output", id]);
    expect(parseOutput(printed.stdout).map((line) => line.custom_id)).toEqual(lines.map((_, i) => `m-${i}`));

    const viaJson = await api("POST", "/hearth/v1/jobs", JSON.stringify({ input: lines.join("\n"), model: "tiny" }), "application/json");
    expect(viaJson.status).toBe(200);
    expect(viaJson.json).toMatchObject({ object: "hearth.job", model: "tiny", progress: { total: 6 } });
    await waitForStatus((viaJson.json as JobView).id, (view) => view.status === "completed", 60_000);
  });

  it("cancel stops a running job at once; every line is still in the output, unfinished ones as HEARTH_CANCELLED", async () => {
    const lines = Array.from({ length: 150 }, (_, i) => completionLine(`k-${i}`, `Long story ${i}`, 48));
    const submitted = await api("POST", "/hearth/v1/jobs", lines.join("\n"));
    expect(submitted.status).toBe(200);
    const { id } = submitted.json as JobView;
    await waitForStatus(id, (view) => view.progress.done >= 3, 60_000);
    const early = await api("GET", `/hearth/v1/jobs/${id}/output`);
    expect(early.status).toBe(409);
    expect(early.json).toMatchObject({ error: { code: "HEARTH_JOB_NOT_FINISHED" } });

    const cancelled = await hearth(["jobs", "cancel", id, "--json"]);
    expect(cancelled.code, cancelled.stderr).toBe(0);
    const view = JSON.parse(cancelled.stdout) as JobView;
    expect(view.status).toBe("cancelled");
    expect(view.progress.done).toBe(150);
    // Nothing of the job is left running on the daemon.
    const status = (await api("GET", "/hearth/v1/status")).json as { models: { running: number; queued: number }[] };
    expect(status.models.every((model) => model.running === 0 && model.queued === 0)).toBe(true);
    const output = parseOutput((await api("GET", `/hearth/v1/jobs/${id}/output`)).text);
    expect(output.map((line) => line.custom_id)).toEqual(lines.map((_, i) => `k-${i}`));
    const cancelledLines = output.filter((line) => line.error?.code === "HEARTH_CANCELLED");
    expect(cancelledLines.length).toBeGreaterThan(0);
    expect(output.filter((line) => line.error === null).length + cancelledLines.length).toBe(150);
    // Cancelling again changes nothing.
    expect(((await api("POST", `/hearth/v1/jobs/${id}/cancel`)).json as JobView).status).toBe("cancelled");
  });

  it("a job whose daemon is SIGKILLed mid-run resumes on restart and completes with every item exactly once", async () => {
    const lines = Array.from({ length: 120 }, (_, i) => completionLine(`r-${i}`, `Resume ${i}`, 24));
    const submitted = await api("POST", "/hearth/v1/jobs", lines.join("\n"));
    const { id } = submitted.json as JobView;
    const before = await waitForStatus(id, (view) => view.progress.done >= 20, 60_000);
    expect(before.progress.done).toBeLessThan(120);
    await daemon.stop("SIGKILL");
    daemon = await start();
    const finished = await waitForStatus(id, (view) => view.status === "completed", 120_000);
    expect(finished.request_counts).toEqual({ total: 120, completed: 120, failed: 0 });
    const output = parseOutput((await api("GET", `/hearth/v1/jobs/${id}/output`)).text);
    expect(output.map((line) => line.custom_id)).toEqual(lines.map((_, i) => `r-${i}`));
    expect(new Set(output.map((line) => line.id)).size).toBe(120);
    for (const index of [0, 19, 60, 119]) expect(resultText(output[index]!), `item ${index}`).toBe(await soloText(lines[index]!));
  });

  it("limits and mistakes: too large, unknown model, unknown job, bad arguments", async () => {
    const big = await api("POST", "/hearth/v1/jobs", "x".repeat(200_001));
    expect(big.status).toBe(413);
    expect(big.json).toMatchObject({ error: { code: "HEARTH_BODY_TOO_LARGE" } });
    const unknownModel = await api("POST", "/hearth/v1/jobs", JSON.stringify({ custom_id: "a", method: "POST", url: "/v1/completions", body: { model: "nope", prompt: "x" } }));
    expect(unknownModel.status).toBe(404);
    expect(unknownModel.json).toMatchObject({ error: { code: "HEARTH_MODEL_NOT_FOUND" } });
    const wrongType = await api("POST", "/hearth/v1/jobs", "a,b", "text/csv");
    expect(wrongType.status).toBe(415);
    expect((await api("GET", "/hearth/v1/jobs/job_000000000000000000000000")).status).toBe(404);
    expect(((await api("GET", "/hearth/v1/jobs/..%2F..%2Fetc")).json as { error: { code: string } }).error.code).toBe("HEARTH_JOB_NOT_FOUND");

    const missing = await hearth(["submit", path.join(workDir, "missing.jsonl")]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/error \[HEARTH_CLI_USAGE\]: cannot read the batch file .*missing\.jsonl: no such file/);
    const badId = await hearth(["jobs", "show", "../../etc"]);
    expect(badId.code).toBe(2);
    expect(badId.stderr).toMatch(/not a job id/);
    const conflicting = await hearth(["submit", path.join(workDir, "mixed.jsonl"), "--detach", "-o", "x.jsonl"]);
    expect(conflicting.code).toBe(2);
    const noDir = await hearth(["submit", path.join(workDir, "mixed.jsonl"), "-o", path.join(workDir, "no", "such", "dir.jsonl")]);
    expect(noDir.code).toBe(2);
    expect(noDir.stderr).toMatch(/--output: the directory .* does not exist/);
    const unknownJob = await hearth(["jobs", "output", "job_000000000000000000000000"]);
    expect(unknownJob.code).toBe(1);
    expect(unknownJob.stderr).toMatch(/HEARTH_JOB_NOT_FOUND/);
    const extra = await hearth(["jobs", "frobnicate"]);
    expect(extra.code).toBe(2);
  });
});
