// The durable job store (daemon/jobs/JobStore.ts) on real files: what is written survives a
// reload, a torn last record is cut off and never duplicated, records are deduplicated by
// item index, and only ids the store generated ever become paths.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { errorLine } from "../../protocol/batch/batchOutput.js";
import { isValidJobId } from "../../protocol/api/jobs.js";
import { newJobId } from "../../daemon/jobs/jobId.js";
import { JobStore, type ItemRecord, type NewJob } from "../../daemon/jobs/JobStore.js";

const logger = pino({ level: "silent" });
let root: string;

beforeEach(async () => {
  root = await fs.promises.mkdtemp(path.join(os.tmpdir(), "hearth-jobstore-"));
});
afterEach(async () => {
  await fs.promises.rm(root, { recursive: true, force: true });
});

function record(index: number, node: string | null = "n1"): ItemRecord {
  return { index, node, ok: false, at: 1000 + index, out: errorLine({ customId: `c${index}`, line: index + 1 }, { code: "HEARTH_CANCELLED", message: "x" }, node) };
}

function newJob(total = 5, records: ItemRecord[] = []): NewJob {
  return {
    input: Buffer.from("line\n"),
    meta: {
      id: newJobId(),
      status: "queued",
      model: "tiny",
      createdAt: Date.now(),
      startedAt: null,
      finishedAt: null,
      total,
      invalid: records.length,
      parse: { model: null, skipInvalid: true, maxEmbeddingInputs: 16, maxItems: 100 },
    },
    records,
  };
}

async function reload(): Promise<JobStore> {
  const store = new JobStore({ directory: root, logger });
  await store.load();
  return store;
}

describe("JobStore", () => {
  it("keeps the input byte for byte, the meta and every recorded result across a reload", async () => {
    const store = new JobStore({ directory: root, logger });
    const job = await store.create(newJob(5, [record(1, null)]));
    expect(job.record(record(0))).toBe(true);
    expect(job.record(record(3))).toBe(true);
    await job.updateMeta({ status: "running", startedAt: 42 });
    await job.close();

    const again = await reload();
    const loaded = again.get(job.id)!;
    expect(loaded.meta).toMatchObject({ status: "running", startedAt: 42, total: 5, model: "tiny" });
    expect(await loaded.readInput()).toBe("line\n");
    expect(loaded.pendingIndexes()).toEqual([2, 4]);
    expect(loaded.outputLines().map((line) => line.custom_id)).toEqual(["c0", "c1", "c3"]);
    expect(fs.readdirSync(path.join(root, job.id)).sort()).toEqual(["input.jsonl", "meta.json", "results.jsonl"]);
  });

  it("records each item once: a second record of the same index is refused in memory and skipped on load", async () => {
    const store = new JobStore({ directory: root, logger });
    const job = await store.create(newJob(3));
    expect(job.record(record(0))).toBe(true);
    expect(job.record({ ...record(0), node: "late" })).toBe(false);
    expect(job.record(record(7))).toBe(false);
    await job.close();
    // A duplicate that reached the file anyway (two writers in some crash window) is ignored on load.
    fs.appendFileSync(path.join(root, job.id, "results.jsonl"), `${JSON.stringify({ ...record(0), node: "dup" })}\n`);
    const loaded = (await reload()).get(job.id)!;
    expect(loaded.doneCount).toBe(1);
    expect([...loaded.records()][0]?.node).toBe("n1");
  });

  it("cuts a torn final record on load so the next append starts a fresh line, and nothing is duplicated", async () => {
    const store = new JobStore({ directory: root, logger });
    const job = await store.create(newJob(4));
    job.record(record(0));
    job.record(record(1));
    await job.close();
    const file = path.join(root, job.id, "results.jsonl");
    // The daemon died in the middle of appending item 2's record.
    const torn = JSON.stringify(record(2)).slice(0, 40);
    fs.appendFileSync(file, torn);

    const loaded = (await reload()).get(job.id)!;
    expect(loaded.pendingIndexes()).toEqual([2, 3]);
    expect(fs.readFileSync(file, "utf8").endsWith("}\n")).toBe(true);
    loaded.record(record(2));
    loaded.record(record(3));
    await loaded.close();

    const final = (await reload()).get(job.id)!;
    expect(final.pendingIndexes()).toEqual([]);
    expect(final.outputLines().map((line) => line.custom_id)).toEqual(["c0", "c1", "c2", "c3"]);
    expect(fs.readFileSync(file, "utf8").trimEnd().split("\n")).toHaveLength(4);
  });

  it("writes the meta atomically: no temp file is left and the file always parses", async () => {
    const store = new JobStore({ directory: root, logger });
    const job = await store.create(newJob());
    await Promise.all([job.updateMeta({ status: "running" }), job.updateMeta({ status: "completed", finishedAt: 9 })]);
    expect(fs.readdirSync(path.join(root, job.id)).some((name) => name.endsWith(".tmp"))).toBe(false);
    expect(JSON.parse(fs.readFileSync(path.join(root, job.id, "meta.json"), "utf8"))).toMatchObject({ status: "completed", finishedAt: 9 });
  });

  it("never uses a foreign name as a path: malformed ids are unknown, stray dirs and half-created jobs are skipped", async () => {
    fs.mkdirSync(path.join(root, "..%2Fetc"), { recursive: true });
    fs.mkdirSync(path.join(root, ".creating-job_000000000000000000000000"), { recursive: true });
    const brokenId = newJobId();
    fs.mkdirSync(path.join(root, brokenId));
    fs.writeFileSync(path.join(root, brokenId, "meta.json"), "{ not json");
    const store = await reload();
    expect(store.list()).toEqual([]);
    expect(store.get("../../etc/passwd")).toBeUndefined();
    expect(store.get("job_../../x")).toBeUndefined();
    expect(fs.existsSync(path.join(root, ".creating-job_000000000000000000000000"))).toBe(false);
    expect(isValidJobId(newJobId())).toBe(true);
    expect(isValidJobId("job_ABC")).toBe(false);
  });

  it("lists jobs newest first", async () => {
    const store = new JobStore({ directory: root, logger });
    const older = newJob();
    older.meta.createdAt = 1;
    const newer = newJob();
    newer.meta.createdAt = 2;
    await store.create(older);
    await store.create(newer);
    expect((await reload()).list().map((job) => job.id)).toEqual([newer.meta.id, older.meta.id]);
  });
});
