/**
 * SHA-256 of model files, streamed (never the whole file in memory) and remembered per
 * (path, size, mtime) so hashing a multi-gigabyte model happens once per version of the file.
 * Hashing is slow (seconds per GB), so nothing on the listing path calls it.
 */

import { createHash } from "node:crypto";
import fs from "node:fs";

/** Streams a file through SHA-256; lowercase hex. */
export async function sha256File(filePath: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of fs.createReadStream(filePath, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

interface CachedHash {
  size: number;
  mtimeMs: number;
  digest: Promise<string>;
}

export class FileHashCache {
  private readonly entries = new Map<string, CachedHash>();

  constructor(private readonly hashFile: (filePath: string) => Promise<string> = sha256File) {}

  /** Hash of the file as it is now; concurrent calls for the same version share one read. */
  async sha256(filePath: string): Promise<string> {
    const stat = await fs.promises.stat(filePath);
    const cached = this.entries.get(filePath);
    if (cached && cached.size === stat.size && cached.mtimeMs === stat.mtimeMs) return cached.digest;
    const digest = this.hashFile(filePath);
    const entry: CachedHash = { size: stat.size, mtimeMs: stat.mtimeMs, digest };
    this.entries.set(filePath, entry);
    try {
      return await digest;
    } catch (error) {
      // A failed read must not be remembered as the file's hash.
      if (this.entries.get(filePath) === entry) this.entries.delete(filePath);
      throw error;
    }
  }
}
