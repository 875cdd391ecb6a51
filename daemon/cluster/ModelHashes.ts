/**
 * SHA-256 of every model this node offers, computed once per file version in the background
 * and remembered across restarts (`<dataDir>/cache/model-hashes.json`, keyed by path, size
 * and mtime).
 *
 * Peers compare hashes to know who already has a model's weights. Hashing streams the file
 * (daemon/models/fileHash.ts) one model at a time, so it never holds a file in memory and never
 * competes with itself for the disk; nothing waits on it. A model reports `sha256: null`
 * until its hash is known. A file that changes while it is hashed is hashed again next time.
 */

import { EventEmitter } from "node:events";
import type { Logger } from "pino";
import { z } from "zod";
import type { ModelDescriptor } from "../engine/types.js";
import { FileHashCache } from "../models/fileHash.js";
import { cacheFilePath, fileVersion, fileVersionKey, readJsonCache, writeJsonCache, type FileVersion } from "./jsonCache.js";

export const MODEL_HASH_CACHE_FILE = "model-hashes.json";

const hashEntrySchema = z.object({ sha256: z.string().regex(/^[0-9a-f]{64}$/) });
type HashEntry = z.infer<typeof hashEntrySchema>;

export interface ModelHashesOptions {
  dataDir: string;
  logger: Logger;
  /**
   * False: only report hashes already cached, compute none (a standalone node has nobody to
   * tell, and hashing gigabytes would compete with its requests). Default true.
   */
  compute?: boolean;
  /** Injected for tests. */
  hashes?: FileHashCache;
}

/** `hashed` follows each newly known hash, so the node's state can be re-published. */
export interface ModelHashesEvents {
  hashed: [modelId: string, sha256: string];
}

export class ModelHashes extends EventEmitter<ModelHashesEvents> {
  readonly #logger: Logger;
  readonly #file: string;
  readonly #options: ModelHashesOptions;
  readonly #hashes: FileHashCache;
  #known = new Map<string, HashEntry>();
  /** path -> current file version key, as of the last refresh. */
  readonly #currentKeys = new Map<string, string>();
  #loaded: Promise<void> | undefined;
  #queue: ModelDescriptor[] = [];
  #working = false;
  #stopped = false;

  constructor(options: ModelHashesOptions) {
    super();
    this.#options = options;
    this.#logger = options.logger.child({ component: "cluster" });
    this.#file = cacheFilePath(options.dataDir, MODEL_HASH_CACHE_FILE);
    this.#hashes = options.hashes ?? new FileHashCache();
  }

  /** The hash of the model's file as of the last refresh(), or null when not (yet) known. */
  hashOf(model: Pick<ModelDescriptor, "path">): string | null {
    const key = this.#currentKeys.get(model.path);
    return key === undefined ? null : (this.#known.get(key)?.sha256 ?? null);
  }

  /** Whether hashing is still going on. */
  get pending(): number {
    return this.#queue.length + (this.#working ? 1 : 0);
  }

  /**
   * Notes the current file versions of `models` and queues the ones whose hash is unknown.
   * Returns once the versions are noted (cheap stats); the hashing itself runs in the background.
   */
  async refresh(models: readonly ModelDescriptor[]): Promise<void> {
    await this.#load();
    for (const model of models) {
      let version: FileVersion;
      try {
        version = await fileVersion(model.path);
      } catch {
        continue;
      }
      const key = fileVersionKey(model.path, version);
      this.#currentKeys.set(model.path, key);
      if (this.#options.compute !== false && !this.#known.has(key) && !this.#queue.some((queued) => queued.path === model.path)) this.#queue.push(model);
    }
    if (!this.#working && this.#queue.length > 0) void this.#work();
  }

  /**
   * Records a hash learnt without reading the file here (a fetched model, verified while it
   * arrived) for the file's current version, so it is advertised at once and never re-hashed.
   */
  async remember(filePath: string, sha256: string): Promise<void> {
    await this.#load();
    const key = fileVersionKey(filePath, await fileVersion(filePath));
    this.#known.set(key, { sha256 });
    this.#currentKeys.set(filePath, key);
    this.#forgetOtherVersions(filePath, key);
    await writeJsonCache(this.#file, this.#known).catch((error: unknown) => this.#logger.warn({ err: error, file: this.#file }, "could not save the model hash cache"));
  }

  #load(): Promise<void> {
    this.#loaded ??= readJsonCache(this.#file, hashEntrySchema).then((entries) => {
      // Keep anything computed while the file was being read.
      for (const [key, entry] of this.#known) entries.set(key, entry);
      this.#known = entries;
    });
    return this.#loaded;
  }

  stop(): void {
    this.#stopped = true;
    this.#queue = [];
  }

  async #work(): Promise<void> {
    this.#working = true;
    try {
      while (!this.#stopped) {
        const model = this.#queue.shift();
        if (model === undefined) break;
        await this.#hashOne(model);
      }
    } finally {
      this.#working = false;
    }
  }

  async #hashOne(model: ModelDescriptor): Promise<void> {
    const started = Date.now();
    try {
      const before = await fileVersion(model.path);
      const key = fileVersionKey(model.path, before);
      if (this.#known.has(key)) return;
      const sha256 = await this.#hashes.sha256(model.path);
      const after = await fileVersion(model.path);
      // Changed underneath us (still being copied?): the next refresh queues it again.
      if (after.size !== before.size || after.mtimeMs !== before.mtimeMs || this.#stopped) return;
      this.#known.set(key, { sha256 });
      this.#forgetOtherVersions(model.path, key);
      this.#logger.info({ model: model.id, sha256, ms: Date.now() - started }, "model hashed");
      await writeJsonCache(this.#file, this.#known).catch((error: unknown) => this.#logger.warn({ err: error, file: this.#file }, "could not save the model hash cache"));
      this.emit("hashed", model.id, sha256);
    } catch (error) {
      this.#logger.warn({ err: error, model: model.id }, "could not hash a model file");
    }
  }

  /** One entry per path: older versions of the same file are of no further use. */
  #forgetOtherVersions(filePath: string, keep: string): void {
    for (const key of this.#known.keys()) {
      if (key !== keep && key.startsWith(`${filePath}|`)) this.#known.delete(key);
    }
  }
}
