/**
 * The batch jobs this node coordinates: submission, the run queue, cancellation, output, and
 * resuming unfinished jobs when the daemon starts.
 *
 * A submission is parsed and checked whole (protocol/batch/batchInput.ts) before anything is
 * stored, so a refused input leaves nothing behind; an accepted one is stored durably
 * (daemon/jobs/JobStore.ts) before the client hears its id. Jobs run in submission order, at
 * most jobs.max_running at once, each as a JobRun. On start, jobs the last process left
 * queued or running are re-parsed from their stored input and continue with the items that
 * have no result yet.
 */

import type { Logger } from "pino";
import type { JobView } from "../../protocol/api/jobs.js";
import { parseBatchInput, type BatchItem } from "../../protocol/batch/batchInput.js";
import { errorLine, type BatchOutputLine } from "../../protocol/batch/batchOutput.js";
import { errors, HearthError } from "../../protocol/errors.js";
import type { JobsConfig } from "../config/defaults.js";
import { newJobId } from "./jobId.js";
import { CANCELLED, JobRun, type JobExecutor } from "./JobRun.js";
import type { ItemRecord, JobParseOptions, JobStore, StoredJob } from "./JobStore.js";
import { buildJobView } from "./jobView.js";

export interface SubmitOptions {
  /** Replaces `body.model` on every line. */
  model?: string;
  skipInvalid: boolean;
}

export interface JobCoordinatorOptions {
  store: JobStore;
  executor: JobExecutor;
  config: JobsConfig;
  /** limits.max_embedding_inputs, applied to embedding lines as to /v1/embeddings. */
  maxEmbeddingInputs: number;
  logger: Logger;
  now?: () => number;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

export class JobCoordinator {
  readonly #store: JobStore;
  readonly #executor: JobExecutor;
  readonly #config: JobsConfig;
  readonly #maxEmbeddingInputs: number;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #queue: StoredJob[] = [];
  readonly #running = new Map<string, { run: JobRun; done: Promise<void> }>();
  #stopped = false;

  constructor(options: JobCoordinatorOptions) {
    this.#store = options.store;
    this.#executor = options.executor;
    this.#config = options.config;
    this.#maxEmbeddingInputs = options.maxEmbeddingInputs;
    this.#log = options.logger.child({ component: "jobs" });
    this.#now = options.now ?? Date.now;
  }

  get maxInputBytes(): number {
    return this.#config.maxInputBytes;
  }

  /** Loads the stored jobs and resumes the unfinished ones, oldest first. */
  async start(): Promise<void> {
    const jobs = await this.#store.load();
    const unfinished = jobs.filter((job) => job.meta.status === "queued" || job.meta.status === "running").reverse();
    for (const job of unfinished) {
      this.#log.info({ job: job.id, done: job.doneCount, total: job.meta.total }, "resuming a job left unfinished");
      this.#queue.push(job);
    }
    this.#pump();
  }

  async submit(input: Uint8Array, options: SubmitOptions): Promise<JobView> {
    if (this.#stopped) throw errors.shuttingDown();
    let text: string;
    try {
      text = utf8.decode(input);
    } catch {
      throw errors.batchInvalid("The batch input is not valid UTF-8.");
    }
    const parse: JobParseOptions = { model: options.model ?? null, skipInvalid: options.skipInvalid, maxEmbeddingInputs: this.#maxEmbeddingInputs, maxItems: this.#config.maxItems };
    const parsed = parseBatchInput(text, toInputOptions(parse));
    const candidates = await this.#executor.batchNodes(parsed.model).catch((error: unknown) => {
      if (error instanceof HearthError && error.code === "HEARTH_MODEL_NOT_FOUND") return [];
      throw error;
    });
    if (candidates.length === 0) {
      throw errors.modelNotFound(`No reachable node in the cluster has the model ${JSON.stringify(parsed.model)}.`, { param: "model" });
    }
    const now = this.#now();
    const records: ItemRecord[] = parsed.invalid.map((line) => ({
      index: line.index,
      node: null,
      ok: false,
      at: now,
      out: errorLine({ customId: line.customId, line: line.line }, { code: line.code, message: `line ${line.line}: ${line.message}` }, null),
    }));
    const job = await this.#store.create({
      input,
      meta: { id: newJobId(), status: "queued", model: parsed.model, createdAt: now, startedAt: null, finishedAt: null, total: parsed.total, invalid: parsed.invalid.length, parse },
      records,
    });
    this.#log.info({ job: job.id, model: parsed.model, items: parsed.total, invalid: parsed.invalid.length, nodes: candidates.map((candidate) => candidate.nodeId) }, "job submitted");
    this.#queue.push(job);
    this.#pump();
    return this.view(job.id);
  }

  list(): JobView[] {
    return this.#store.list().map((job) => buildJobView(job, this.#running.get(job.id)?.run.progress()));
  }

  view(id: string): JobView {
    const job = this.#get(id);
    return buildJobView(job, this.#running.get(job.id)?.run.progress());
  }

  /** Stops a queued or running job; its unfinished items become HEARTH_CANCELLED lines. A finished job is left as it is. */
  async cancel(id: string): Promise<JobView> {
    const job = this.#get(id);
    const running = this.#running.get(id);
    if (running !== undefined) {
      await running.run.cancel();
      await running.done;
    } else if (job.meta.status === "queued" || job.meta.status === "running") {
      const queued = this.#queue.indexOf(job);
      if (queued !== -1) this.#queue.splice(queued, 1);
      const now = this.#now();
      const items = await this.#itemsOf(job);
      for (const index of job.pendingIndexes()) {
        const item = items.get(index);
        job.record({ index, node: null, ok: false, at: now, out: errorLine({ customId: item?.customId ?? null, line: item?.line ?? 0 }, CANCELLED, null) });
      }
      await job.updateMeta({ status: "cancelled", finishedAt: now });
      this.#log.info({ job: id }, "queued job cancelled");
    }
    return this.view(id);
  }

  /** The output lines in input order; only once the job has finished (completed or cancelled). */
  output(id: string): BatchOutputLine[] {
    const job = this.#get(id);
    if (job.meta.status !== "completed" && job.meta.status !== "cancelled") {
      throw errors.jobNotFinished(`Job ${id} is ${job.meta.status} (${job.doneCount}/${job.meta.total} items done); its output is ready once it has finished.`);
    }
    return job.outputLines();
  }

  /** Daemon shutdown: in-flight items are aborted and nothing more is written; unfinished jobs resume on the next start. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#queue.length = 0;
    const running = [...this.#running.values()];
    await Promise.all(running.map(async ({ run, done }) => {
      await run.stop();
      await done;
    }));
    await this.#store.close();
  }

  #get(id: string): StoredJob {
    const job = this.#store.get(id);
    if (job === undefined) throw errors.jobNotFound(`No batch job ${JSON.stringify(id)}.`);
    return job;
  }

  #pump(): void {
    while (!this.#stopped && this.#running.size < this.#config.maxRunning) {
      const job = this.#queue.shift();
      if (job === undefined) return;
      this.#startRun(job);
    }
  }

  #startRun(job: StoredJob): void {
    const run = new JobRun({ job, loadItems: () => this.#itemsOf(job), executor: this.#executor, config: this.#config, logger: this.#log, now: this.#now });
    // run() never rejects: a failure leaves the job unfinished, to be resumed on the next start.
    const done = run.run().finally(() => {
      this.#running.delete(job.id);
      this.#pump();
    });
    this.#running.set(job.id, { run, done });
  }

  async #itemsOf(job: StoredJob): Promise<Map<number, BatchItem>> {
    const parsed = parseBatchInput(await job.readInput(), toInputOptions(job.meta.parse));
    return new Map(parsed.items.map((item) => [item.index, item]));
  }
}

function toInputOptions(parse: JobParseOptions): Parameters<typeof parseBatchInput>[1] {
  return { skipInvalid: parse.skipInvalid, maxItems: parse.maxItems, maxEmbeddingInputs: parse.maxEmbeddingInputs, ...(parse.model === null ? {} : { model: parse.model }) };
}
