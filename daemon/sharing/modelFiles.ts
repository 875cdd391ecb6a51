/**
 * Where fetched model bytes live on disk, and how a verified file enters the models dir.
 *
 * A transfer writes `<models_dir>/.hearth-partial/<sha256>.part`. The registry lists only
 * `*.gguf` files directly in the models dir that do not start with a dot (ModelRegistry), so a
 * half file is never a model; keyed by content, a partial is resumed by whichever transfer
 * fetches the same file next, even after a restart. Once the whole file has verified, it is
 * hard-linked into the models dir under its name (atomic, and never replaces an existing
 * file) and the partial is removed.
 *
 * The name is the holder's model id, which the wire already restricts to
 * `[A-Za-z0-9][A-Za-z0-9._+:@-]*` (no separator, no leading dot); it is checked again here
 * and must name a file directly inside the models dir.
 */

import fs from "node:fs";
import path from "node:path";
import { errors } from "../../protocol/errors.js";
import { MODEL_ID_PATTERN, PEER_WIRE_LIMITS } from "../../protocol/peer/messages.js";
import { SHA256_HEX_PATTERN } from "../../protocol/peer/modelTransferWire.js";

export const PARTIAL_DIR_NAME = ".hearth-partial";
const PARTIAL_SUFFIX = ".part";
/** Same-named files with other content get `<id>-<sha prefix>` and then a counter, up to this many. */
const MAX_NAME_CANDIDATES = 10;
const SHA_PREFIX_LENGTH = 12;

export function partialDir(modelsDir: string): string {
  return path.join(modelsDir, PARTIAL_DIR_NAME);
}

export function partialPath(modelsDir: string, sha256: string): string {
  if (!SHA256_HEX_PATTERN.test(sha256)) throw errors.internal("a partial file is keyed by a sha256");
  return path.join(partialDir(modelsDir), `${sha256}${PARTIAL_SUFFIX}`);
}

/** Names to try for a fetched file, in order: the holder's id, then ones that cannot clash with a different file of that name. */
export function candidateModelIds(modelId: string, sha256: string): string[] {
  const base = isSafeModelId(modelId) ? modelId : "model";
  const tagged = `${base.slice(0, PEER_WIRE_LIMITS.maxModelIdLength - SHA_PREFIX_LENGTH - 4)}-${sha256.slice(0, SHA_PREFIX_LENGTH)}`;
  const names = [base, tagged];
  for (let i = 2; names.length < MAX_NAME_CANDIDATES; i++) names.push(`${tagged}-${i}`);
  return names;
}

export function isSafeModelId(id: string): boolean {
  return id.length > 0 && id.length <= PEER_WIRE_LIMITS.maxModelIdLength && MODEL_ID_PATTERN.test(id);
}

/** Bytes already fetched for `sha256` (0 when there is no partial file). */
export async function partialSize(modelsDir: string, sha256: string): Promise<number> {
  try {
    return (await fs.promises.stat(partialPath(modelsDir, sha256))).size;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return 0;
    throw error;
  }
}

export async function removePartial(modelsDir: string, sha256: string): Promise<void> {
  await fs.promises.rm(partialPath(modelsDir, sha256), { force: true });
}

export interface InstalledModel {
  id: string;
  path: string;
  /** False: a file with the same content was already there under this name. */
  created: boolean;
}

/**
 * Moves the verified partial into the models dir under the first free candidate name. A
 * candidate that exists is reused only if `sameContent` says it holds this very file.
 */
export async function installVerified(options: {
  modelsDir: string;
  sha256: string;
  modelId: string;
  sameContent: (filePath: string) => Promise<boolean>;
}): Promise<InstalledModel> {
  const modelsDir = path.resolve(options.modelsDir);
  const source = partialPath(modelsDir, options.sha256);
  for (const id of candidateModelIds(options.modelId, options.sha256)) {
    const target = path.join(modelsDir, `${id}.gguf`);
    // Belt and braces: the pattern already excludes separators and leading dots.
    if (path.dirname(target) !== modelsDir || path.basename(target).startsWith(".")) continue;
    try {
      await linkNoClobber(source, target);
      await fs.promises.rm(source, { force: true });
      return { id, path: target, created: true };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    if (await options.sameContent(target).catch(() => false)) {
      await fs.promises.rm(source, { force: true });
      return { id, path: target, created: false };
    }
  }
  throw errors.modelTransferFailed(`no free file name for model ${options.modelId} in the models dir`);
}

/** link() is atomic and fails with EEXIST rather than replacing; rename() (where links are unsupported) is guarded by a check. */
async function linkNoClobber(source: string, target: string): Promise<void> {
  try {
    await fs.promises.link(source, target);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== "EPERM" && code !== "ENOTSUP" && code !== "EOPNOTSUPP") throw error;
    const exists = await fs.promises.lstat(target).then(
      () => true,
      () => false,
    );
    if (exists) throw Object.assign(new Error(`${target} exists`), { code: "EEXIST" });
    await fs.promises.rename(source, target);
  }
}
