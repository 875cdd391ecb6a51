/**
 * Small JSON caches in the data dir (`<dataDir>/cache/*.json`): model hashes and speed scores,
 * so a restart does not hash gigabytes or re-measure a model again.
 *
 * A cache is only ever an optimisation: a missing, unreadable or malformed file reads as empty
 * (and is replaced on the next write), never as an error. Writes go to a temp file that is
 * renamed into place, so a crash mid-write leaves the old file, not half a new one.
 */

import fs from "node:fs";
import path from "node:path";
import type { z } from "zod";

export const CACHE_DIR_NAME = "cache";
/** A cache of a few thousand entries is well under this; anything bigger is not ours. */
const MAX_CACHE_FILE_BYTES = 8 * 1024 * 1024;

export function cacheFilePath(dataDir: string, name: string): string {
  return path.join(dataDir, CACHE_DIR_NAME, name);
}

/** The file's entries, or an empty map when it is absent or not valid. */
export async function readJsonCache<T>(file: string, entrySchema: z.ZodType<T>): Promise<Map<string, T>> {
  const entries = new Map<string, T>();
  let text: string;
  try {
    const stat = await fs.promises.stat(file);
    if (!stat.isFile() || stat.size > MAX_CACHE_FILE_BYTES) return entries;
    text = await fs.promises.readFile(file, "utf8");
  } catch {
    return entries;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return entries;
  }
  const raw = (json as { entries?: unknown } | null)?.entries;
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return entries;
  for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
    const parsed = entrySchema.safeParse(value);
    if (parsed.success) entries.set(key, parsed.data);
  }
  return entries;
}

/** Replaces the file with `entries`, atomically. */
export async function writeJsonCache<T>(file: string, entries: ReadonlyMap<string, T>): Promise<void> {
  await fs.promises.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const temp = `${file}.${process.pid}.${Date.now()}.tmp`;
  const body = `${JSON.stringify({ format: 1, entries: Object.fromEntries(entries) }, null, 1)}\n`;
  try {
    await fs.promises.writeFile(temp, body, { mode: 0o600 });
    await fs.promises.rename(temp, file);
  } catch (error) {
    await fs.promises.rm(temp, { force: true }).catch(() => undefined);
    throw error;
  }
}

/** What identifies one version of a file without reading it. */
export interface FileVersion {
  size: number;
  mtimeMs: number;
}

export async function fileVersion(filePath: string): Promise<FileVersion> {
  const stat = await fs.promises.stat(filePath);
  return { size: stat.size, mtimeMs: stat.mtimeMs };
}

export function fileVersionKey(filePath: string, version: FileVersion): string {
  return `${filePath}|${version.size}|${version.mtimeMs}`;
}
