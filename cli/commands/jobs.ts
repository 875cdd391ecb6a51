/**
 * `hearth jobs`: the batch jobs of the running daemon.
 *
 *   hearth jobs [--json]              every job, newest first
 *   hearth jobs show ID [--json]      status, counts, per-node progress, ETA
 *   hearth jobs cancel ID [--json]    stop it; unfinished items become HEARTH_CANCELLED lines
 *   hearth jobs output ID [-o FILE]   the output JSONL (input order) of a finished job
 */

import fs from "node:fs";
import path from "node:path";
import type { Command } from "commander";
import { errors } from "../../protocol/errors.js";
import { jobListSchema, jobViewSchema } from "../../protocol/api/jobs.js";
import { daemonClientFor } from "../client.js";
import type { LocalMachine } from "../localMachine.js";
import { checkJobId, formatJobDetail, JOB_TABLE_HEADER, jobRow } from "../jobFormat.js";
import { addClientOptions, type ClientCommandOptions } from "../options.js";
import { formatTable, printJson } from "../output.js";

const REQUEST_TIMEOUT_MS = 30_000;

export function registerJobsCommand(program: Command, machine: LocalMachine): void {
  const jobs = addClientOptions(
    program
      .command("jobs")
      .description("list the batch jobs of the running daemon (see also: jobs show|cancel|output)")
      .option("--json", "print the jobs as JSON"),
  ).action((options: ClientCommandOptions) => list(machine, options));
  addClientOptions(jobs.command("show").description("show one job: status, counts, per-node progress, ETA").argument("<id>", "job id").option("--json", "print the job as JSON")).action((id: string, options: ClientCommandOptions, command: Command) => show(machine, id, options, command));
  addClientOptions(jobs.command("cancel").description("cancel a job; its unfinished items become error lines").argument("<id>", "job id").option("--json", "print the job as JSON")).action((id: string, options: ClientCommandOptions, command: Command) => cancel(machine, id, options, command));
  addClientOptions(
    jobs
      .command("output")
      .description("print (or save) the output JSONL of a finished job, in input order")
      .argument("<id>", "job id")
      .option("-o, --output <file>", "write it to this file instead of stdout"),
  ).action((id: string, options: ClientCommandOptions, command: Command) => output(machine, id, options, command));
}

async function list(machine: LocalMachine, options: ClientCommandOptions): Promise<void> {
  const client = await daemonClientFor(machine, options);
  const { data } = await client.getJson("/hearth/v1/jobs", jobListSchema, { timeoutMs: REQUEST_TIMEOUT_MS });
  if (options.json) {
    printJson(data);
    return;
  }
  if (data.length === 0) {
    process.stdout.write("no batch jobs; submit one with: hearth submit FILE.jsonl\n");
    return;
  }
  process.stdout.write(formatTable(JOB_TABLE_HEADER, data.map(jobRow)));
}

/**
 * `jobs` and its subcommands share --url, --config and --json; commander hands an option to
 * whichever command declares it first, so each subcommand reads them merged with its parent's.
 */
function merged<T extends object>(command: Command): T {
  return command.optsWithGlobals<T>();
}

async function show(machine: LocalMachine, id: string, _options: ClientCommandOptions, command: Command): Promise<void> {
  const options = merged<ClientCommandOptions>(command);
  checkJobId(id);
  const client = await daemonClientFor(machine, options);
  const view = await client.getJson(`/hearth/v1/jobs/${id}`, jobViewSchema, { timeoutMs: REQUEST_TIMEOUT_MS });
  if (options.json) printJson(view);
  else process.stdout.write(formatJobDetail(view));
}

async function cancel(machine: LocalMachine, id: string, _options: ClientCommandOptions, command: Command): Promise<void> {
  const options = merged<ClientCommandOptions>(command);
  checkJobId(id);
  const client = await daemonClientFor(machine, options);
  const view = await client.postJson(`/hearth/v1/jobs/${id}/cancel`, {}, jobViewSchema, { timeoutMs: REQUEST_TIMEOUT_MS });
  if (options.json) printJson(view);
  else process.stdout.write(`${view.id} ${view.status}: ${view.request_counts.completed} ok, ${view.request_counts.failed} failed or cancelled of ${view.progress.total}\n`);
}

async function output(machine: LocalMachine, id: string, _options: ClientCommandOptions, command: Command): Promise<void> {
  const options = merged<ClientCommandOptions & { output?: string }>(command);
  checkJobId(id);
  const client = await daemonClientFor(machine, options);
  await writeOutput(await client.getText(`/hearth/v1/jobs/${id}/output`, { timeoutMs: REQUEST_TIMEOUT_MS }), options.output);
}

/** To stdout, or to a file that appears whole (temp file + rename) so a reader never sees half of it. */
export async function writeOutput(text: string, file: string | undefined): Promise<void> {
  if (file === undefined) {
    process.stdout.write(text);
    return;
  }
  const temp = path.join(path.dirname(path.resolve(file)), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    await fs.promises.writeFile(temp, text);
    await fs.promises.rename(temp, file);
  } catch (error) {
    await fs.promises.rm(temp, { force: true });
    throw errors.cliUsage(`cannot write the output to ${file}: ${(error as Error).message} (the job's output stays on the daemon: hearth jobs output ID)`, { param: "--output" });
  }
}
