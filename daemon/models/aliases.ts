/**
 * Model alias rules, checked once when the configuration is loaded.
 *
 * An alias maps one extra name onto a model id, one level only: an alias that names another
 * alias is a configuration error, because chains make "what does this name mean" depend on
 * the order of lookups. Whether an alias collides with a real model id can only be known when
 * the models dir is scanned (files come and go), so that is the registry's job: a real id
 * always wins, so every id listed by /v1/models resolves to itself, and the shadowed alias is
 * ignored with a warning.
 */

import type { HearthError } from "../../protocol/errors.js";
import { errors } from "../../protocol/errors.js";

/** Longest accepted alias or target; ids are file names, which are shorter than this everywhere. */
export const MAX_MODEL_NAME_LENGTH = 255;

/** Throws HearthError HEARTH_CONFIG_INVALID (param `models.aliases.<name>`) for an unusable alias table. */
export function validateModelAliases(aliases: Readonly<Record<string, unknown>>): void {
  for (const [alias, target] of Object.entries(aliases)) {
    const param = `models.aliases.${alias}`;
    const fail = (message: string): HearthError => errors.configInvalid(message, { param });
    if (alias.trim() === "" || alias !== alias.trim()) throw fail(`alias ${JSON.stringify(alias)} must be non-empty without surrounding spaces`);
    if (alias.length > MAX_MODEL_NAME_LENGTH) throw fail(`alias ${JSON.stringify(alias.slice(0, 40))}... is longer than ${MAX_MODEL_NAME_LENGTH} characters`);
    if (typeof target !== "string" || target.trim() === "") throw fail(`alias "${alias}" must name a model id`);
    if (target.length > MAX_MODEL_NAME_LENGTH) throw fail(`alias "${alias}" target is longer than ${MAX_MODEL_NAME_LENGTH} characters`);
    if (target === alias) throw fail(`alias "${alias}" points to itself`);
    if (Object.hasOwn(aliases, target)) throw fail(`alias "${alias}" points to alias "${target}"; aliases resolve one level only, so name the model id`);
  }
}

/** The alias table as a Map, so names like "constructor" or "__proto__" are plain keys. */
export function aliasMap(aliases: Readonly<Record<string, string>>): Map<string, string> {
  return new Map(Object.entries(aliases));
}
