// The response store (daemon/responses/ResponseStore.ts) on real files: what is stored is read
// back after a restart, the count, byte and age bounds remove the oldest first, a corrupt or
// foreign file is an unknown response, and an id that is not Hearth's never reaches a path.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DEFAULT_RESPONSES, type ResponsesConfig } from "../../daemon/config/defaults.js";
import { ResponseStore } from "../../daemon/responses/ResponseStore.js";
import type { GenerationResult } from "../../protocol/inference.js";
import { newResponseId } from "../../protocol/responses/ids.js";
import { parseResponsesRequest } from "../../protocol/responses/request.js";
import { finishedResponse } from "../../protocol/responses/responseBody.js";
import { storedResponse, type StoredResponse } from "../../protocol/responses/storedResponse.js";

const logger = pino({ level: "silent" });
let root: string;
let clock: number;

beforeEach(async () => {
  root = await fs.promises.mkdtemp(path.join(os.tmpdir(), "hearth-responses-"));
  clock = 1_000_000_000_000;
});
afterEach(async () => {
  await fs.promises.rm(root, { recursive: true, force: true });
});

const RESULT: GenerationResult = { text: "ANSWER", reasoning: "", toolCalls: [], finishReason: "stop", usage: { promptTokens: 3, completionTokens: 1, reasoningTokens: 0 }, cachedPromptTokens: 0 };

function record(text = "Hello", id = newResponseId()): StoredResponse {
  const request = parseResponsesRequest({ model: "m", input: text });
  const response = finishedResponse({ id, created: 1, model: "m" }, request.echo, RESULT, 2);
  return storedResponse({ response, input: request.input, conversation: [{ role: "user", content: text }], result: RESULT, echo: request.echo, storedAt: clock });
}

function store(limits: Partial<ResponsesConfig> = {}): ResponseStore {
  return new ResponseStore({ directory: path.join(root, "responses"), limits: { ...DEFAULT_RESPONSES, ...limits }, logger, now: () => clock });
}

function filesIn(directory: string): string[] {
  return fs.readdirSync(directory).sort();
}

describe("the response store", () => {
  it("keeps a response in one file, reads it back, and deletes it", async () => {
    const responses = store();
    await responses.start();
    const stored = record();
    await responses.put(stored);
    expect(filesIn(responses.directory)).toEqual([`${stored.id}.json`]);
    expect((fs.statSync(path.join(responses.directory, `${stored.id}.json`)).mode & 0o777).toString(8)).toBe("600");
    expect(await responses.get(stored.id)).toEqual(stored);
    expect(await responses.delete(stored.id)).toBe(true);
    expect(await responses.get(stored.id)).toBeUndefined();
    expect(await responses.delete(stored.id)).toBe(false);
    expect(filesIn(responses.directory)).toEqual([]);
  });

  it("finds what an earlier run stored, oldest first, and leaves foreign files alone", async () => {
    const first = store();
    await first.start();
    const older = record("old");
    await first.put(older);
    clock += 1000;
    const newer = { ...record("new"), storedAt: clock };
    await first.put(newer);
    await first.stop();
    fs.writeFileSync(path.join(first.directory, "notes.txt"), "mine");
    fs.writeFileSync(path.join(first.directory, ".writing-resp_x"), "half");

    const second = store({ maxStored: 2 });
    await second.start();
    expect(second.size).toBe(2);
    expect(await second.get(newer.id)).toEqual(newer);
    // A third record pushes out the oldest.
    clock += 1000;
    await second.put({ ...record("third"), storedAt: clock });
    expect(await second.get(older.id)).toBeUndefined();
    expect(await second.get(newer.id)).toEqual(newer);
    expect(filesIn(second.directory)).toContain("notes.txt");
    expect(filesIn(second.directory)).not.toContain(".writing-resp_x");
  });

  it("removes the oldest responses while the bytes exceed max_stored_bytes, and refuses one larger than the budget", async () => {
    const one = Buffer.byteLength(`${JSON.stringify(record("x".repeat(100)))}\n`);
    const responses = store({ maxStoredBytes: one * 2 + 10 });
    await responses.start();
    const records = [record("a".repeat(100)), record("b".repeat(100)), record("c".repeat(100))];
    for (const each of records) await responses.put(each);
    expect(responses.size).toBe(2);
    expect(responses.totalBytes).toBeLessThanOrEqual(one * 2 + 10);
    expect(await responses.get(records[0]!.id)).toBeUndefined();
    expect(await responses.get(records[2]!.id)).toEqual(records[2]);
    const huge = record("z".repeat(one * 3));
    await responses.put(huge);
    expect(await responses.get(huge.id)).toBeUndefined();
    expect(responses.size).toBe(2);
  });

  it("a response older than max_age is gone, on read and on the next write", async () => {
    const responses = store({ maxAgeMs: 60_000 });
    await responses.start();
    const first = record();
    const second = record();
    await responses.put(first);
    await responses.put(second);
    clock += 60_001;
    expect(await responses.get(first.id)).toBeUndefined();
    expect(await responses.delete(second.id)).toBe(false);
    expect(responses.size).toBe(0);
    expect(filesIn(responses.directory)).toEqual([]);
  });

  it("a restart expires what has grown too old while the daemon was down", async () => {
    const first = store();
    await first.start();
    await first.put(record());
    await first.stop();
    clock += 2 * 60_000;
    const second = store({ maxAgeMs: 60_000 });
    await second.start();
    expect(second.size).toBe(0);
    expect(filesIn(second.directory)).toEqual([]);
  });

  it("a corrupt or mismatched record is an unknown response, and is removed", async () => {
    const responses = store();
    await responses.start();
    const good = record();
    const other = record();
    await responses.put(good);
    await responses.put(other);
    fs.writeFileSync(path.join(responses.directory, `${good.id}.json`), "{not json");
    fs.writeFileSync(path.join(responses.directory, `${other.id}.json`), JSON.stringify(record("x", newResponseId())));
    expect(await responses.get(good.id)).toBeUndefined();
    expect(await responses.get(other.id)).toBeUndefined();
    expect(filesIn(responses.directory)).toEqual([]);
  });

  it("ids that are not Hearth's never touch the filesystem", async () => {
    const responses = store();
    await responses.start();
    const outside = path.join(root, "secret.json");
    fs.writeFileSync(outside, JSON.stringify(record()));
    for (const id of ["../secret", "../secret.json", `resp_${"a".repeat(47)}/`, "resp_..", "", "%2e%2e/secret", `resp_${"A".repeat(48)}`]) {
      expect(await responses.get(id)).toBeUndefined();
      expect(await responses.delete(id)).toBe(false);
    }
    expect(fs.existsSync(outside)).toBe(true);
    await expect(responses.put({ ...record(), id: "../escape" })).rejects.toThrow(/not a response id/);
    expect(fs.existsSync(path.join(root, "escape.json"))).toBe(false);
  });
});
