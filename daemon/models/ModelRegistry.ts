/**
 * The model registry: which GGUF files this node can serve, under which ids.
 *
 * Ids are file names without `.gguf`, from the models dir (non-recursive) and then the
 * configured extra paths; the first file to claim an id wins. Aliases are the configured ones
 * (`models.aliases`) and those made through the API (AliasStore.ts), configured first. resolve() looks names up in the
 * scanned map and never turns one into a path: model names arrive from the network.
 *
 * The index: once started, the registry watches the models dir and the folders of the extra
 * paths, and keeps the last scan until one of them changes (a file added, removed, renamed or
 * written), so a request resolves its model from memory. A name that misses is looked up once
 * more in a fresh scan before it is refused, so a file added a moment ago is never missed.
 * Where a folder cannot be watched, or before start(), every list() rescans. Each file's
 * header is only parsed again when its size or mtime changes. `changed` fires when a watched
 * folder changes, so the state published to peers follows.
 */

import { EventEmitter } from "node:events";
import fs from "node:fs";
import path from "node:path";
import type { Logger } from "pino";
import type { GgufLimitsConfig } from "../config/defaults.js";
import type { ModelCatalog, ModelDescriptor } from "../engine/types.js";
import { describeGguf, readGgufHeader, type GgufDescription, type GgufHeader } from "../gguf/reader.js";
import { errors, HearthError } from "../../protocol/errors.js";
import { aliasMap } from "./aliases.js";
import { FileHashCache } from "./fileHash.js";

const GGUF_EXTENSION = ".gguf";

export interface ModelRegistryOptions {
  modelsDir: string;
  extraPaths?: readonly string[];
  /** alias -> model id (validated with validateModelAliases at config load). */
  aliases?: Readonly<Record<string, string>>;
  /** Aliases made through the API (AliasStore.ts); the configured ones win over them. */
  storedAliases?: { entries(): ReadonlyMap<string, string> };
  logger: Logger;
  ggufLimits?: Partial<GgufLimitsConfig>;
  /** Header reader; injectable so tests can observe how often files are parsed. */
  readHeader?: (filePath: string, limits: Partial<GgufLimitsConfig>) => Promise<GgufHeader>;
}

interface CachedDescription {
  size: number;
  mtimeMs: number;
  result: Promise<GgufDescription | HearthError>;
}

interface Candidate {
  id: string;
  path: string;
  size: number;
  mtimeMs: number;
}

/** Id of a model file: its name without the .gguf extension (any case). */
export function modelIdFromPath(filePath: string): string {
  const base = path.basename(filePath);
  return base.toLowerCase().endsWith(GGUF_EXTENSION) ? base.slice(0, -GGUF_EXTENSION.length) : base;
}

export interface ModelRegistryEvents {
  changed: [];
}

export class ModelRegistry extends EventEmitter<ModelRegistryEvents> implements ModelCatalog {
  private readonly modelsDir: string;
  private readonly extraPaths: string[];
  private readonly aliases: Map<string, string>;
  private readonly storedAliases: { entries(): ReadonlyMap<string, string> } | undefined;
  private readonly logger: Logger;
  private readonly limits: Partial<GgufLimitsConfig>;
  private readonly readHeader: (filePath: string, limits: Partial<GgufLimitsConfig>) => Promise<GgufHeader>;
  private readonly descriptions = new Map<string, CachedDescription>();
  private readonly hashes = new FileHashCache();
  /** Keys of warnings already logged, so a rescan every request does not repeat them. */
  private readonly warned = new Set<string>();
  private readonly watchers: fs.FSWatcher[] = [];
  /** True while every folder that holds models is watched: only then is a scan kept. */
  private watching = false;
  private index: Promise<ModelDescriptor[]> | undefined;

  constructor(options: ModelRegistryOptions) {
    super();
    this.modelsDir = path.resolve(options.modelsDir);
    this.extraPaths = (options.extraPaths ?? []).map((extra) => path.resolve(extra));
    this.aliases = aliasMap(options.aliases ?? {});
    this.storedAliases = options.storedAliases;
    this.logger = options.logger.child({ component: "models" });
    this.limits = options.ggufLimits ?? {};
    this.readHeader = options.readHeader ?? readGgufHeader;
  }

  /** Starts watching the folders that hold models; from now on a scan is kept until one changes. */
  start(): void {
    if (this.watching) return;
    const folders = new Set([this.modelsDir, ...this.extraPaths.map((extra) => path.dirname(extra))]);
    try {
      for (const folder of folders) {
        const watcher = fs.watch(folder, { persistent: false }, () => this.invalidate());
        watcher.on("error", (error) => {
          this.warnOnce(`watch-error:${folder}`, { dir: folder, err: error }, "cannot watch a models folder any more; every request rescans it");
          this.watching = false;
          this.invalidate();
        });
        this.watchers.push(watcher);
      }
      this.watching = true;
    } catch (error) {
      this.warnOnce(`watch:${(error as NodeJS.ErrnoException).code}`, { err: error }, "cannot watch the models folders; every request rescans them");
      this.stop();
    }
  }

  stop(): void {
    this.watching = false;
    this.index = undefined;
    for (const watcher of this.watchers.splice(0)) watcher.close();
  }

  /** Forgets the kept scan; the next list() rescans. */
  invalidate(): void {
    this.index = undefined;
    this.emit("changed");
  }

  list(): Promise<ModelDescriptor[]> {
    if (this.watching && this.index !== undefined) return this.index;
    const scan = this.scan();
    if (this.watching) {
      this.index = scan;
      // A failed scan is not kept.
      scan.catch(() => {
        if (this.index === scan) this.index = undefined;
      });
    }
    return scan;
  }

  /**
   * The GGUF facts of a listed model (architecture, layer sizes) from the scan that listed it;
   * read again only when the file's cached description is gone.
   */
  async description(model: Pick<ModelDescriptor, "path">): Promise<GgufDescription> {
    const cached = this.descriptions.get(model.path);
    const result = await (cached?.result ?? this.readHeader(model.path, this.limits).then(describeGguf));
    if (result instanceof HearthError) throw result;
    return result;
  }

  private async scan(): Promise<ModelDescriptor[]> {
    const candidates = [...(await this.scanModelsDir()), ...(await this.statExtraPaths())];
    const byId = new Map<string, ModelDescriptor>();
    for (const candidate of candidates) {
      const existing = byId.get(candidate.id);
      if (existing) {
        if (existing.path !== candidate.path) {
          this.warnOnce(`duplicate:${candidate.id}:${candidate.path}`, { id: candidate.id, path: candidate.path, kept: existing.path }, "duplicate model id; the first file keeps it");
        }
        continue;
      }
      const description = await this.describe(candidate);
      if (description instanceof HearthError) {
        this.warnOnce(`invalid:${candidate.path}:${candidate.mtimeMs}:${candidate.size}`, { path: candidate.path, reason: description.message }, "skipping model file that is not valid GGUF");
        continue;
      }
      byId.set(candidate.id, toDescriptor(candidate, description));
    }
    this.attachAliases(byId);
    this.forgetVanished(candidates);
    return [...byId.values()];
  }

  async resolve(idOrAlias: string): Promise<ModelDescriptor> {
    const found = this.lookUp(await this.list(), idOrAlias);
    if (found !== undefined) return found;
    // The kept scan may predate a file added a moment ago (its watch event still on the way).
    if (this.watching) {
      const fresh = this.lookUp(await this.scan(), idOrAlias);
      if (fresh !== undefined) {
        this.invalidate();
        return fresh;
      }
    }
    throw errors.unknownModel(idOrAlias, "on this node");
  }

  private lookUp(models: readonly ModelDescriptor[], idOrAlias: string): ModelDescriptor | undefined {
    if (typeof idOrAlias !== "string" || idOrAlias === "") return undefined;
    const byId = new Map(models.map((model) => [model.id, model]));
    const target = this.aliases.get(idOrAlias) ?? this.storedAliases?.entries().get(idOrAlias);
    return byId.get(idOrAlias) ?? (target === undefined ? undefined : byId.get(target));
  }

  /** SHA-256 of a model's file (resolving like resolve()); cached per file version. Slow the first time. */
  async sha256(idOrAlias: string): Promise<string> {
    const model = await this.resolve(idOrAlias);
    return this.hashes.sha256(model.path);
  }

  private async scanModelsDir(): Promise<Candidate[]> {
    let names: string[];
    try {
      names = await fs.promises.readdir(this.modelsDir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") {
        this.warnOnce(`readdir:${this.modelsDir}:${(error as NodeJS.ErrnoException).code}`, { dir: this.modelsDir, err: error }, "cannot read the models dir");
      }
      return [];
    }
    // Dotfiles are hidden or in-progress files (downloads, editors); never models.
    const modelNames = names.filter((name) => name.toLowerCase().endsWith(GGUF_EXTENSION) && !name.startsWith(".")).sort();
    const candidates: Candidate[] = [];
    for (const name of modelNames) {
      const candidate = await this.statCandidate(path.join(this.modelsDir, name), false);
      if (candidate) candidates.push(candidate);
    }
    return candidates;
  }

  private async statExtraPaths(): Promise<Candidate[]> {
    const candidates: Candidate[] = [];
    for (const extra of this.extraPaths) {
      const candidate = await this.statCandidate(extra, true);
      if (candidate) candidates.push(candidate);
    }
    return candidates;
  }

  /** stat() follows symlinks, so a link to a model counts; anything but a regular file does not. */
  private async statCandidate(filePath: string, configured: boolean): Promise<Candidate | undefined> {
    try {
      const stat = await fs.promises.stat(filePath);
      if (!stat.isFile()) {
        if (configured) this.warnOnce(`notfile:${filePath}`, { path: filePath }, "extra model path is not a regular file");
        return undefined;
      }
      return { id: modelIdFromPath(filePath), path: filePath, size: stat.size, mtimeMs: stat.mtimeMs };
    } catch (error) {
      // A file vanishing between readdir and stat is a normal race, not worth a warning.
      if (configured) this.warnOnce(`missing:${filePath}`, { path: filePath, err: error }, "extra model path cannot be read");
      return undefined;
    }
  }

  private describe(candidate: Candidate): Promise<GgufDescription | HearthError> {
    const cached = this.descriptions.get(candidate.path);
    if (cached && cached.size === candidate.size && cached.mtimeMs === candidate.mtimeMs) return cached.result;
    const result = this.readHeader(candidate.path, this.limits).then(
      (header) => describeGguf(header),
      (error: unknown) => HearthError.from(error, "HEARTH_GGUF_INVALID"),
    );
    this.descriptions.set(candidate.path, { size: candidate.size, mtimeMs: candidate.mtimeMs, result });
    return result;
  }

  /** Drops cached headers of files no longer present, so a long-running daemon does not accumulate them. */
  private forgetVanished(candidates: readonly Candidate[]): void {
    const present = new Set(candidates.map((candidate) => candidate.path));
    for (const cachedPath of this.descriptions.keys()) if (!present.has(cachedPath)) this.descriptions.delete(cachedPath);
  }

  /** Configured aliases, then stored ones that no configured alias already claims. */
  private allAliases(): Array<[string, string]> {
    const stored = [...(this.storedAliases?.entries() ?? [])].filter(([alias]) => !this.aliases.has(alias));
    return [...this.aliases, ...stored];
  }

  private attachAliases(byId: Map<string, ModelDescriptor>): void {
    for (const [alias, target] of this.allAliases()) {
      if (byId.has(alias)) {
        this.warnOnce(`alias-shadowed:${alias}`, { alias, target }, "alias has the same name as a model file; the model id wins");
        continue;
      }
      const model = byId.get(target);
      if (!model) {
        this.warnOnce(`alias-dangling:${alias}:${target}`, { alias, target }, "alias points to a model that is not present");
        continue;
      }
      model.aliases.push(alias);
    }
  }

  private warnOnce(key: string, fields: Record<string, unknown>, message: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.logger.warn(fields, message);
  }
}

function toDescriptor(candidate: Candidate, description: GgufDescription): ModelDescriptor {
  const descriptor: ModelDescriptor = {
    id: candidate.id,
    aliases: [],
    path: candidate.path,
    sizeBytes: candidate.size,
    createdAt: Math.floor(candidate.mtimeMs / 1000),
    parameterCount: description.parameterCount,
  };
  // exactOptionalPropertyTypes: absent metadata stays absent rather than `undefined`.
  if (description.architecture !== undefined) descriptor.architecture = description.architecture;
  if (description.quantization !== undefined) descriptor.quantization = description.quantization;
  if (description.contextLength !== undefined) descriptor.contextLength = description.contextLength;
  if (description.blockCount !== undefined) descriptor.layerCount = description.blockCount;
  if (description.embeddingLength !== undefined) descriptor.embeddingLength = description.embeddingLength;
  return descriptor;
}
