/**
 * Durable batch jobs under `<data_dir>/jobs/<job id>/`:
 *
 *   input.jsonl    the submitted input, byte for byte (a resumed job re-parses it)
 *   meta.json      status, model, counts, timestamps, parse options; replaced atomically
 *                  (written to a temp file, fsynced, renamed over the old one)
 *   results.jsonl  one record per finished item, appended and fdatasynced as each item
 *                  completes: {"index","node","ok","at","out":<batch output line>}
 *
 * A job directory is built under a temporary name and renamed into place, so a crash during
 * submission leaves no half job. Loading tolerates a crash at any moment: a torn last record
 * (the process died mid-append) is cut off the file before anything is appended again, and
 * records are deduplicated by item index (the first wins), so an item is never counted or
 * output twice. Directory names are only ever ids this module generated (daemon/jobs/jobId.ts);
 * anything else found in the jobs dir is skipped.
 */

import fs from "node:fs";
import path from "node:path";
import type { Logger } from "pino";
import { z } from "zod";
import { isValidJobId, type JobStatus } from "../../protocol/api/jobs.js";
import type { BatchOutputLine } from "../../protocol/batch/batchOutput.js";
import { errors } from "../../protocol/errors.js";

export interface JobParseOptions {
  /** The --model override, if any. */
  model: string | null;
  skipInvalid: boolean;
  maxEmbeddingInputs: number;
  maxItems: number;
}

export interface JobMeta {
  version: 1;
  id: string;
  status: JobStatus;
  /** The one model the job's items use. */
  model: string;
  /** Epoch ms. */
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  /** Items in the output (valid + invalid lines). */
  total: number;
  /** Invalid lines kept as error items (skip_invalid). */
  invalid: number;
  parse: JobParseOptions;
}

export interface ItemRecord {
  index: number;
  /** The node that ran it; null for invalid lines and cancelled items. */
  node: string | null;
  ok: boolean;
  /** Epoch ms at which it finished. */
  at: number;
  out: BatchOutputLine;
}

const INPUT_FILE = "input.jsonl";
const META_FILE = "meta.json";
const RESULTS_FILE = "results.jsonl";
const CREATING_PREFIX = ".creating-";

const metaSchema = z.object({
  version: z.literal(1),
  id: z.string().refine(isValidJobId),
  status: z.enum(["queued", "running", "completed", "cancelled"]),
  model: z.string().min(1),
  createdAt: z.number(),
  startedAt: z.number().nullable(),
  finishedAt: z.number().nullable(),
  total: z.number().int().min(1),
  invalid: z.number().int().min(0),
  parse: z.object({
    model: z.string().nullable(),
    skipInvalid: z.boolean(),
    maxEmbeddingInputs: z.number().int().positive(),
    maxItems: z.number().int().positive(),
  }),
});

const recordSchema = z.object({
  index: z.number().int().min(0),
  node: z.string().nullable(),
  ok: z.boolean(),
  at: z.number(),
  out: z.looseObject({ id: z.string(), custom_id: z.string().nullable() }),
});

/** One job on disk, with its finished items in memory. */
export class StoredJob {
  readonly directory: string;
  #meta: JobMeta;
  readonly #records: Map<number, ItemRecord>;
  readonly #log: Logger;
  #handle: fs.promises.FileHandle | undefined;
  /** Every write of this job, in order: a result never lands after the meta that says "completed". */
  #writes: Promise<void> = Promise.resolve();

  /** @internal Made by JobStore. */
  constructor(directory: string, meta: JobMeta, records: Map<number, ItemRecord>, log: Logger) {
    this.directory = directory;
    this.#meta = meta;
    this.#records = records;
    this.#log = log;
  }

  get id(): string {
    return this.#meta.id;
  }

  get meta(): Readonly<JobMeta> {
    return this.#meta;
  }

  get doneCount(): number {
    return this.#records.size;
  }

  isDone(index: number): boolean {
    return this.#records.has(index);
  }

  records(): IterableIterator<ItemRecord> {
    return this.#records.values();
  }

  /** Indexes in [0, total) with no result yet, ascending. */
  pendingIndexes(): number[] {
    const pending: number[] = [];
    for (let index = 0; index < this.#meta.total; index++) if (!this.#records.has(index)) pending.push(index);
    return pending;
  }

  /**
   * Records a finished item and queues its append. Returns false, writing nothing, when the
   * item already has a result (a late duplicate) or is out of range.
   */
  record(record: ItemRecord): boolean {
    if (record.index < 0 || record.index >= this.#meta.total || this.#records.has(record.index)) return false;
    this.#records.set(record.index, record);
    void this.#enqueue(async () => {
      this.#handle ??= await fs.promises.open(path.join(this.directory, RESULTS_FILE), "a", 0o600);
      await this.#handle.write(`${JSON.stringify(record)}\n`);
      await this.#handle.datasync();
    }, "append a result");
    return true;
  }

  /** Updates the meta in memory now and on disk (atomically) after every earlier write. */
  updateMeta(patch: Partial<Pick<JobMeta, "status" | "startedAt" | "finishedAt">>): Promise<void> {
    this.#meta = { ...this.#meta, ...patch };
    const snapshot = this.#meta;
    return this.#enqueue(() => writeFileAtomic(path.join(this.directory, META_FILE), `${JSON.stringify(snapshot, null, 2)}\n`), "write the meta");
  }

  readInput(): Promise<string> {
    return fs.promises.readFile(path.join(this.directory, INPUT_FILE), "utf8");
  }

  /** The output lines of the finished items, in input order. */
  outputLines(): BatchOutputLine[] {
    return [...this.#records.values()].sort((a, b) => a.index - b.index).map((record) => record.out);
  }

  /** Resolves once everything queued so far is on disk. */
  flush(): Promise<void> {
    return this.#writes;
  }

  async close(): Promise<void> {
    await this.#writes;
    const handle = this.#handle;
    this.#handle = undefined;
    await handle?.close();
  }

  #enqueue(write: () => Promise<void>, what: string): Promise<void> {
    // A failed write (disk full) is logged and does not stop later ones; an item whose result
    // never reached the disk simply runs again if the daemon restarts.
    this.#writes = this.#writes.then(write).catch((error: unknown) => {
      this.#log.error({ err: error, job: this.id }, `could not ${what}`);
    });
    return this.#writes;
  }
}

export interface NewJob {
  input: Uint8Array;
  meta: Omit<JobMeta, "version">;
  /** Records known at submission (invalid lines kept with skip_invalid). */
  records: ItemRecord[];
}

export class JobStore {
  readonly directory: string;
  readonly #log: Logger;
  readonly #jobs = new Map<string, StoredJob>();

  constructor(options: { directory: string; logger: Logger }) {
    this.directory = options.directory;
    this.#log = options.logger.child({ component: "jobs" });
  }

  /** Reads every job in the directory (creating it if needed); broken ones are logged and skipped. */
  async load(): Promise<StoredJob[]> {
    await fs.promises.mkdir(this.directory, { recursive: true, mode: 0o700 });
    const entries = await fs.promises.readdir(this.directory, { withFileTypes: true });
    for (const entry of entries) {
      if (!entry.isDirectory()) continue;
      if (entry.name.startsWith(CREATING_PREFIX)) {
        // A submission that crashed before its rename: never acknowledged, so nobody expects it.
        await fs.promises.rm(path.join(this.directory, entry.name), { recursive: true, force: true });
        continue;
      }
      if (!isValidJobId(entry.name)) {
        this.#log.warn({ entry: entry.name }, "ignoring an unexpected entry in the jobs dir");
        continue;
      }
      if (this.#jobs.has(entry.name)) continue;
      try {
        this.#jobs.set(entry.name, await this.#loadJob(entry.name));
      } catch (error) {
        this.#log.error({ err: error, job: entry.name }, "cannot load a stored job; skipping it");
      }
    }
    return this.list();
  }

  async create(job: NewJob): Promise<StoredJob> {
    const { id } = job.meta;
    if (!isValidJobId(id)) throw errors.internal(`not a job id: ${String(id)}`);
    await fs.promises.mkdir(this.directory, { recursive: true, mode: 0o700 });
    const meta: JobMeta = { version: 1, ...job.meta };
    const staging = path.join(this.directory, `${CREATING_PREFIX}${id}`);
    const target = path.join(this.directory, id);
    await fs.promises.mkdir(staging, { mode: 0o700 });
    try {
      await writeFileSynced(path.join(staging, INPUT_FILE), job.input);
      await writeFileSynced(path.join(staging, RESULTS_FILE), job.records.map((record) => `${JSON.stringify(record)}\n`).join(""));
      await writeFileSynced(path.join(staging, META_FILE), `${JSON.stringify(meta, null, 2)}\n`);
      await fs.promises.rename(staging, target);
      await syncDirectory(this.directory);
    } catch (error) {
      await fs.promises.rm(staging, { recursive: true, force: true });
      throw error;
    }
    const records = new Map(job.records.map((record) => [record.index, record]));
    const stored = new StoredJob(target, meta, records, this.#log);
    this.#jobs.set(id, stored);
    return stored;
  }

  /** Undefined for an unknown or malformed id (never touches the filesystem). */
  get(id: string): StoredJob | undefined {
    return isValidJobId(id) ? this.#jobs.get(id) : undefined;
  }

  /** Newest first. */
  list(): StoredJob[] {
    return [...this.#jobs.values()].sort((a, b) => b.meta.createdAt - a.meta.createdAt || b.id.localeCompare(a.id));
  }

  async close(): Promise<void> {
    await Promise.all([...this.#jobs.values()].map((job) => job.close()));
  }

  async #loadJob(id: string): Promise<StoredJob> {
    const directory = path.join(this.directory, id);
    const metaText = await fs.promises.readFile(path.join(directory, META_FILE), "utf8");
    const parsed = metaSchema.safeParse(JSON.parse(metaText));
    if (!parsed.success || parsed.data.id !== id) throw errors.internal(`${id}/${META_FILE} is not a valid job meta`);
    const meta: JobMeta = parsed.data;
    const records = await readResults(path.join(directory, RESULTS_FILE), meta.total, (problem) => this.#log.warn({ job: id }, problem));
    return new StoredJob(directory, meta, records, this.#log);
  }
}

/**
 * Reads the records, cutting off a torn final line (no newline: the writer died mid-append)
 * so the next append starts on a fresh line, and keeping the first record of each index.
 */
export async function readResults(file: string, total: number, warn: (problem: string) => void): Promise<Map<number, ItemRecord>> {
  let bytes: Buffer;
  try {
    bytes = await fs.promises.readFile(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return new Map();
    throw error;
  }
  const complete = bytes.lastIndexOf(0x0a) + 1;
  if (complete < bytes.length) {
    warn(`cutting a torn last result record (${bytes.length - complete} bytes)`);
    await fs.promises.truncate(file, complete);
  }
  const records = new Map<number, ItemRecord>();
  for (const line of bytes.subarray(0, complete).toString("utf8").split("\n")) {
    if (line.trim() === "") continue;
    let record: ItemRecord;
    try {
      const result = recordSchema.safeParse(JSON.parse(line));
      if (!result.success) throw new Error("not a result record");
      record = result.data as unknown as ItemRecord;
    } catch {
      warn("skipping an unreadable result record");
      continue;
    }
    if (record.index >= total) {
      warn(`skipping a result record for item ${record.index} of ${total}`);
      continue;
    }
    if (!records.has(record.index)) records.set(record.index, record);
  }
  return records;
}

async function writeFileSynced(file: string, data: Uint8Array | string): Promise<void> {
  const handle = await fs.promises.open(file, "w", 0o600);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Readers see the old file or the new one, never a mix: temp file, fsync, rename. */
async function writeFileAtomic(file: string, data: string): Promise<void> {
  const temp = `${file}.tmp`;
  await writeFileSynced(temp, data);
  await fs.promises.rename(temp, file);
}

async function syncDirectory(directory: string): Promise<void> {
  const handle = await fs.promises.open(directory, "r");
  try {
    await handle.sync();
  } catch {
    // Some filesystems refuse fsync on a directory; the rename is still atomic.
  } finally {
    await handle.close();
  }
}
