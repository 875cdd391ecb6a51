/**
 * Files that hold secrets (the node's private key, the cluster secret): a private directory
 * (0700), files readable by the owner only (0600), and writes that are atomic, so a crash
 * or a full disk leaves either the old file or the new one, never half of one.
 *
 * Writes go to a temporary file in the same directory, are fsynced, then either renamed over
 * the target (replace) or hard-linked to it (create only if absent: two processes creating
 * an identity at once end up sharing the first one instead of each keeping its own).
 */

import { randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import type { Logger } from "pino";

export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

/** Creates `directory` (and parents) and makes sure only the owner can enter it. */
export async function ensurePrivateDirectory(directory: string, logger?: Logger): Promise<void> {
  await fs.mkdir(directory, { recursive: true, mode: PRIVATE_DIR_MODE });
  const stat = await fs.stat(directory);
  if ((stat.mode & 0o077) !== 0) {
    logger?.warn({ directory, mode: (stat.mode & 0o777).toString(8) }, "secret directory was accessible to others; restricting it to its owner");
    await fs.chmod(directory, PRIVATE_DIR_MODE);
  }
}

/** Tightens a secret file that others could read (copied around, restored from a backup). */
export async function restrictFileMode(file: string, logger?: Logger): Promise<void> {
  const stat = await fs.stat(file);
  if ((stat.mode & 0o077) !== 0) {
    logger?.warn({ file, mode: (stat.mode & 0o777).toString(8) }, "secret file was readable by others; restricting it to its owner");
    await fs.chmod(file, PRIVATE_FILE_MODE);
  }
}

async function syncDirectory(directory: string): Promise<void> {
  let handle: fs.FileHandle | undefined;
  try {
    handle = await fs.open(directory, "r");
    await handle.sync();
  } catch {
    // Some filesystems cannot fsync a directory; the rename is still atomic there.
  } finally {
    await handle?.close();
  }
}

export type AtomicWriteMode = "replace" | "createOnly";

/**
 * Writes `data` to `file` with mode 0600, atomically. In "createOnly" mode it returns false
 * (and writes nothing) when `file` already exists.
 */
export async function writePrivateFileAtomic(file: string, data: string | Uint8Array, mode: AtomicWriteMode): Promise<boolean> {
  const directory = path.dirname(file);
  const temporary = path.join(directory, `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
  const handle = await fs.open(temporary, "wx", PRIVATE_FILE_MODE);
  let created = false;
  try {
    try {
      await handle.writeFile(data);
      await handle.chmod(PRIVATE_FILE_MODE); // the umask may only remove bits, but be explicit
      await handle.sync();
    } finally {
      await handle.close();
    }
    if (mode === "replace") {
      await fs.rename(temporary, file);
      created = true;
    } else {
      try {
        await fs.link(temporary, file);
        created = true;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "EEXIST") return false;
        throw error;
      }
    }
    await syncDirectory(directory);
    return true;
  } finally {
    if (!(created && mode === "replace")) await fs.rm(temporary, { force: true });
  }
}

/**
 * Reads a small secret file. Returns undefined when it does not exist; throws the file
 * system's error for anything else (unreadable, a directory, too large).
 */
export async function readPrivateFile(file: string, maxBytes: number): Promise<Buffer | undefined> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(file, "r");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw Object.assign(new Error("not a regular file"), { code: "EISDIR" });
    if (stat.size > maxBytes) throw new Error(`${stat.size} bytes is larger than any valid file of this kind (${maxBytes})`);
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}
