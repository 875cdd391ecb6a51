/**
 * Aliases made through the API (Ollama's `POST /api/copy`), kept in `<data_dir>/aliases.json`
 * so they outlive the process. The registry (ModelRegistry.ts) reads them beside the configured
 * aliases (`models.aliases`), which come first: a stored alias never hides a configured one, and,
 * like every alias, it never hides a model id.
 *
 * Writes are atomic (temp file, fsync, rename) and run one at a time in call order, so the file
 * always holds some complete table. A file that is not this table stops the start with
 * HEARTH_CONFIG_INVALID naming it, rather than silently forgetting the names in it.
 */

import path from "node:path";
import type { Logger } from "pino";
import { errors } from "../../protocol/errors.js";
import { readPrivateFile, writePrivateFileAtomic } from "../identity/secureFiles.js";
import { MAX_MODEL_NAME_LENGTH } from "./aliases.js";

export const ALIAS_FILE_NAME = "aliases.json";
const FORMAT = 1;
/** Thousands of aliases are far below this; a bigger file is not ours. */
const MAX_ALIAS_FILE_BYTES = 4 * 1024 * 1024;

/** Whether `name` can be an alias: one line, no surrounding spaces, bounded. */
export function isAliasName(name: string): boolean {
  return name !== "" && name === name.trim() && name.length <= MAX_MODEL_NAME_LENGTH && !/\p{Cc}/u.test(name);
}

export class AliasStore {
  readonly #file: string;
  readonly #entries: Map<string, string>;
  #writing: Promise<void> = Promise.resolve();

  private constructor(file: string, entries: Map<string, string>) {
    this.#file = file;
    this.#entries = entries;
  }

  /** Reads `<dataDir>/aliases.json` (an absent file is an empty table). */
  static async load(dataDir: string, logger: Logger): Promise<AliasStore> {
    const file = path.join(dataDir, ALIAS_FILE_NAME);
    const invalid = (why: string): Error => errors.configInvalid(`${file}: ${why}; fix or remove the file (it holds the aliases made with POST /api/copy)`, { param: "data_dir" });
    let bytes: Buffer | undefined;
    try {
      bytes = await readPrivateFile(file, MAX_ALIAS_FILE_BYTES);
    } catch (error) {
      throw invalid((error as Error).message);
    }
    const entries = new Map<string, string>();
    if (bytes !== undefined) {
      let json: unknown;
      try {
        json = JSON.parse(bytes.toString("utf8"));
      } catch {
        throw invalid("not valid JSON");
      }
      const aliases = (json as { aliases?: unknown } | null)?.aliases;
      if (typeof aliases !== "object" || aliases === null || Array.isArray(aliases)) throw invalid('expected {"aliases": {"<name>": "<model id>"}}');
      for (const [name, target] of Object.entries(aliases as Record<string, unknown>)) {
        if (!isAliasName(name) || typeof target !== "string" || !isAliasName(target) || target === name) {
          logger.warn({ component: "models", alias: name.slice(0, 80) }, "ignoring an invalid stored alias");
          continue;
        }
        entries.set(name, target);
      }
    }
    return new AliasStore(file, entries);
  }

  entries(): ReadonlyMap<string, string> {
    return this.#entries;
  }

  /** Creates or replaces `name` → `modelId`, on disk before it resolves. */
  set(name: string, modelId: string): Promise<void> {
    this.#entries.set(name, modelId);
    return this.#persist();
  }

  /** Removes `name`; false when there was no such stored alias. */
  async remove(name: string): Promise<boolean> {
    if (!this.#entries.delete(name)) return false;
    await this.#persist();
    return true;
  }

  #persist(): Promise<void> {
    const body = `${JSON.stringify({ format: FORMAT, aliases: Object.fromEntries(this.#entries) }, null, 1)}\n`;
    const write = this.#writing.then(() => writePrivateFileAtomic(this.#file, body, "replace")).then(() => undefined);
    // A failed write does not block the next one.
    this.#writing = write.catch(() => undefined);
    return write;
  }
}
