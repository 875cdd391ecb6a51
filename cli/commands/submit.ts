/**
 * `hearth submit FILE.jsonl`: submits an OpenAI-format batch to the running daemon and follows
 * it with a progress bar on stderr (done/total, per-node rate, ETA), then writes the output
 * JSONL (input order) to -o FILE or stdout. --detach prints the job id and returns at once.
 *
 * A refused input lists every invalid line on stderr (`line 3: [HEARTH_INVALID_JSON] ...`) and
 * nothing runs. Ctrl-C stops following, not the job: it keeps running on the daemon
 * (`hearth jobs show ID`, `hearth jobs cancel ID`).
 */

import fs from "node:fs";
import path from "node:path";
import type { Command } from "commander";
import { errors } from "../../protocol/errors.js";
import { batchRefusalSchema, jobViewSchema, type JobView } from "../../protocol/api/jobs.js";
import { type DaemonClient, daemonClientFor, DaemonResponseError } from "../client.js";
import type { LocalMachine } from "../localMachine.js";
import { formatProgressLine } from "../jobFormat.js";
import { addClientOptions, type ClientCommandOptions } from "../options.js";
import { EXIT_FAILURE, EXIT_INTERRUPTED, printJson } from "../output.js";
import { writeOutput } from "./jobs.js";

/** How often a followed job is polled. */
const POLL_MS = 500;
const REQUEST_TIMEOUT_MS = 30_000;
/** Submitting a large file takes longer than a status call. */
const SUBMIT_TIMEOUT_MS = 10 * 60_000;

interface SubmitOptions extends ClientCommandOptions {
  output?: string;
  model?: string;
  detach?: boolean;
  skipInvalid?: boolean;
}

export function registerSubmitCommand(program: Command, machine: LocalMachine): void {
  addClientOptions(
    program
      .command("submit")
      .description("run a batch (OpenAI batch JSONL) across the cluster and write its output")
      .argument("<file>", "the batch: one {custom_id, method, url, body} request per line")
      .option("-o, --output <file>", "write the output JSONL here (default: stdout)")
      .option("--model <model>", "run every line on this model (replaces body.model)")
      .option("--detach", "print the job id and return without waiting")
      .option("--skip-invalid", "run the valid lines; invalid ones become error lines in the output")
      .option("--json", "with --detach, print the job as JSON instead of its id"),
  ).action((file: string, options: SubmitOptions) => submit(machine, file, options));
}

async function submit(machine: LocalMachine, file: string, options: SubmitOptions): Promise<void> {
  if (options.detach && options.output !== undefined) throw errors.cliUsage("--output cannot be used with --detach; fetch the output later with: hearth jobs output ID -o FILE");
  if (options.model !== undefined && options.model.trim() === "") throw errors.cliUsage("--model: expected a model name");
  if (options.output !== undefined) checkOutputDirectory(options.output);
  const input = readInput(file);
  const client = await daemonClientFor(machine, options);

  const query = new URLSearchParams();
  if (options.model !== undefined) query.set("model", options.model);
  if (options.skipInvalid) query.set("skip_invalid", "true");
  let job: JobView;
  try {
    job = await client.postBytes(`/hearth/v1/jobs${query.size > 0 ? `?${query.toString()}` : ""}`, input, "application/jsonl", jobViewSchema, { timeoutMs: SUBMIT_TIMEOUT_MS });
  } catch (error) {
    if (error instanceof DaemonResponseError) printInvalidLines(error.body, file);
    throw error;
  }
  if (options.detach) {
    if (options.json) printJson(job);
    else process.stdout.write(`${job.id}\n`);
    return;
  }
  process.stderr.write(`submitted ${job.id}: ${job.progress.total} items on ${job.model}${job.invalid_lines > 0 ? ` (${job.invalid_lines} invalid lines kept as errors)` : ""}\n`);
  const finished = await follow(client, job.id);
  if (finished === undefined) return;
  const output = await client.getText(`/hearth/v1/jobs/${finished.id}/output`, { timeoutMs: REQUEST_TIMEOUT_MS });
  await writeOutput(output, options.output);
  const elapsed = finished.started_at !== null && finished.finished_at !== null ? `, ${finished.finished_at - finished.started_at} s` : "";
  process.stderr.write(
    `${finished.id} ${finished.status}: ${finished.request_counts.completed} ok, ${finished.request_counts.failed} failed of ${finished.progress.total}${elapsed}${options.output !== undefined ? `; output in ${options.output}` : ""}\n`,
  );
  if (finished.status !== "completed") process.exitCode = EXIT_FAILURE;
}

function readInput(file: string): Buffer {
  try {
    return fs.readFileSync(file === "-" ? 0 : file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason = code === "ENOENT" ? "no such file" : code === "EISDIR" ? "it is a directory" : code === "EACCES" ? "permission denied" : (error as Error).message;
    throw errors.cliUsage(`cannot read the batch file ${file}: ${reason}`, { param: "file" });
  }
}

/** Fails before the job runs, not after, when the output could not be written. */
function checkOutputDirectory(file: string): void {
  const directory = path.dirname(path.resolve(file));
  if (!fs.statSync(directory, { throwIfNoEntry: false })?.isDirectory()) {
    throw errors.cliUsage(`--output: the directory ${directory} does not exist`, { param: "--output" });
  }
}

/** The lines a refused batch names; any other error body has none, and the error line says it all. */
function printInvalidLines(body: unknown, file: string): void {
  const refusal = batchRefusalSchema.safeParse(body);
  if (!refusal.success) return;
  const { invalid_lines: lines, invalid_line_count: count } = refusal.data;
  for (const entry of lines) process.stderr.write(`${file}:${entry.line}: [${entry.code}] ${entry.message}\n`);
  if (count > lines.length) process.stderr.write(`... and ${count - lines.length} more invalid lines\n`);
}

/** Polls until the job has finished; undefined when the user stopped following with Ctrl-C. */
async function follow(client: DaemonClient, id: string): Promise<JobView | undefined> {
  const controller = new AbortController();
  const onSigint = (): void => controller.abort();
  process.once("SIGINT", onSigint);
  const tty = process.stderr.isTTY === true;
  let drawn = false;
  try {
    for (;;) {
      const view = await client.getJson(`/hearth/v1/jobs/${id}`, jobViewSchema, { timeoutMs: REQUEST_TIMEOUT_MS, signal: controller.signal });
      if (tty) {
        process.stderr.write(`\r\x1b[2K${formatProgressLine(view)}`);
        drawn = true;
      }
      if (view.status === "completed" || view.status === "cancelled") return view;
      await sleep(POLL_MS, controller.signal);
    }
  } catch (error) {
    if (!controller.signal.aborted) throw error;
    if (drawn) process.stderr.write("\n");
    drawn = false;
    process.stderr.write(`stopped following; ${id} keeps running (hearth jobs show ${id}, hearth jobs cancel ${id})\n`);
    process.exitCode = EXIT_INTERRUPTED;
    return undefined;
  } finally {
    if (drawn) process.stderr.write("\n");
    process.off("SIGINT", onSigint);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(errors.cancelled("cancelled"));
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
