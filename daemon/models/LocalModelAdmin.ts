/**
 * What the API may do to this node's models beyond running them (Ollama's `/api/copy`,
 * `/api/delete`, `/api/show` and `keep_alive`): load and unload a model, read the GGUF facts a
 * descriptor leaves out, make and remove aliases, and delete a model file.
 *
 * Every name a client sends is looked up in the registry first; a path is only ever the path
 * the registry found, never one built from the request. A file is deleted only when it sits
 * directly in the models dir (never an extra path), only its directory entry is removed (a
 * symbolic link goes, its target stays), and never while an alias still names it.
 */

import fs from "node:fs";
import path from "node:path";
import type { Logger } from "pino";
import { errors, HearthError } from "../../protocol/errors.js";
import type { LocalEngine } from "../engine/LocalEngine.js";
import type { ModelDescriptor } from "../engine/types.js";
import type { GgufDescription } from "../gguf/reader.js";
import { isAliasName, type AliasStore } from "./AliasStore.js";

export interface LocalModelDetails {
  /** The GGUF's chat template (Jinja), when it has one. */
  chatTemplate: string | undefined;
  /** The tokenizer has fill-in-the-middle tokens. */
  infill: boolean;
}

/** What a deleted name was. */
export type RemovedName = { kind: "alias"; modelId: string } | { kind: "file"; modelId: string };

/** The part the HTTP API sees (daemon/http/context.ts). */
export interface LocalModelsSource {
  /** This node's model id for an id or alias, when this node has the file. */
  localId(name: string): Promise<string | undefined>;
  /** Loads this node's model `modelId` whole and keeps it `keepAliveMs` (limits.keep_alive when absent). */
  load(modelId: string, options: { signal: AbortSignal; keepAliveMs?: number }): Promise<void>;
  /** Stops this node's runner of `modelId` once it is idle (at once when it is). */
  unload(modelId: string): Promise<void>;
  /** GGUF facts of this node's model `modelId`; undefined when this node has none by that id. */
  details(modelId: string): Promise<LocalModelDetails | undefined>;
  /** Makes (or repoints) the stored alias `name` for this node's model `modelId`. */
  createAlias(name: string, modelId: string): Promise<void>;
  /** Removes a stored alias, or the file of a model in the models dir; undefined when `name` is neither here. */
  remove(name: string): Promise<RemovedName | undefined>;
}

export interface LocalModelAdminInit {
  modelsDir: string;
  extraPaths: readonly string[];
  /** models.aliases: the config's, which the API does not change. */
  configuredAliases: Readonly<Record<string, string>>;
  registry: {
    list(): Promise<ModelDescriptor[]>;
    resolve(idOrAlias: string): Promise<ModelDescriptor>;
    description(model: Pick<ModelDescriptor, "path">): Promise<GgufDescription>;
    invalidate(): void;
  };
  engine: Pick<LocalEngine, "load" | "unload">;
  aliases: AliasStore;
  /** Collects the cluster state anew, so the next request sees a name made or removed a moment ago. */
  refresh(): Promise<unknown>;
  logger: Logger;
}

const MAX_ECHOED_NAME = 200;

export class LocalModelAdmin implements LocalModelsSource {
  readonly #init: LocalModelAdminInit;
  readonly #logger: Logger;
  readonly #modelsDir: string;
  readonly #extraPaths: Set<string>;

  constructor(init: LocalModelAdminInit) {
    this.#init = init;
    this.#logger = init.logger.child({ component: "models" });
    this.#modelsDir = path.resolve(init.modelsDir);
    this.#extraPaths = new Set(init.extraPaths.map((extra) => path.resolve(extra)));
  }

  async localId(name: string): Promise<string | undefined> {
    try {
      return (await this.#init.registry.resolve(name)).id;
    } catch (error) {
      if (error instanceof HearthError && error.code === "HEARTH_MODEL_NOT_FOUND") return undefined;
      throw error;
    }
  }

  async load(modelId: string, options: { signal: AbortSignal; keepAliveMs?: number }): Promise<void> {
    await this.#init.engine.load(await this.#model(modelId), options);
  }

  unload(modelId: string): Promise<void> {
    return this.#init.engine.unload(modelId);
  }

  async details(modelId: string): Promise<LocalModelDetails | undefined> {
    const model = (await this.#init.registry.list()).find((candidate) => candidate.id === modelId);
    if (model === undefined) return undefined;
    const description = await this.#init.registry.description(model);
    return { chatTemplate: description.chatTemplate, infill: description.infill };
  }

  async createAlias(name: string, modelId: string): Promise<void> {
    const shown = JSON.stringify(name.slice(0, MAX_ECHOED_NAME));
    if (!isAliasName(name)) throw errors.invalidRequest(`${shown} cannot be a model name: it must be 1 to 255 characters on one line, without surrounding spaces.`, { param: "destination" });
    const models = await this.#init.registry.list();
    if (models.some((model) => model.id === name)) throw errors.invalidRequest(`${shown} is the name of a model file on this node; choose another name.`, { param: "destination" });
    if (Object.hasOwn(this.#init.configuredAliases, name)) throw errors.invalidRequest(`${shown} is an alias in the configuration (models.aliases); change it there.`, { param: "destination" });
    await this.#model(modelId);
    await this.#init.aliases.set(name, modelId);
    this.#logger.info({ alias: name, modelId }, "alias created");
    await this.#changed();
  }

  async remove(name: string): Promise<RemovedName | undefined> {
    const shown = JSON.stringify(name.slice(0, MAX_ECHOED_NAME));
    const storedTarget = Object.hasOwn(this.#init.configuredAliases, name) ? undefined : this.#init.aliases.entries().get(name);
    if (storedTarget !== undefined) {
      await this.#init.aliases.remove(name);
      this.#logger.info({ alias: name }, "alias removed");
      await this.#changed();
      return { kind: "alias", modelId: storedTarget };
    }
    if (Object.hasOwn(this.#init.configuredAliases, name)) throw errors.invalidRequest(`${shown} is an alias in the configuration (models.aliases); remove it there.`, { param: "model" });
    const model = (await this.#init.registry.list()).find((candidate) => candidate.id === name);
    if (model === undefined) return undefined;
    if (model.aliases.length > 0) {
      throw errors.invalidRequest(`${shown} is still named by ${model.aliases.map((alias) => JSON.stringify(alias)).join(", ")}; delete those names first.`, { param: "model" });
    }
    const filePath = path.resolve(model.path);
    if (path.dirname(filePath) !== this.#modelsDir || this.#extraPaths.has(filePath)) {
      throw errors.invalidRequest(`${shown} is not in this node's models dir (it is a configured extra path); Hearth deletes only files in the models dir.`, { param: "model" });
    }
    // The directory entry itself: a regular file, or a link whose target is left alone.
    const entry = await fs.promises.lstat(filePath).catch(() => undefined);
    if (entry === undefined) return undefined;
    if (!entry.isFile() && !entry.isSymbolicLink()) throw errors.invalidRequest(`${shown} is not a regular file in the models dir.`, { param: "model" });
    await this.#init.engine.unload(model.id);
    await fs.promises.unlink(filePath);
    this.#logger.info({ modelId: model.id, link: entry.isSymbolicLink() }, "model file deleted");
    await this.#changed();
    return { kind: "file", modelId: model.id };
  }

  async #model(modelId: string): Promise<ModelDescriptor> {
    const model = (await this.#init.registry.list()).find((candidate) => candidate.id === modelId);
    if (model === undefined) throw errors.unknownModel(modelId, "on this node");
    return model;
  }

  async #changed(): Promise<void> {
    this.#init.registry.invalidate();
    await this.#init.refresh();
  }
}
