/**
 * Ollama's model names (`name:tag`, the tag `latest` when left out) and Hearth's model ids
 * and aliases. `tiny:latest` and `tiny` both mean the Hearth model (or alias) `tiny`; a name
 * with another tag means exactly that name, so `tiny:q8` is an alias of its own.
 *
 * Pure: no I/O.
 */

export const DEFAULT_TAG = "latest";
const DEFAULT_SUFFIX = `:${DEFAULT_TAG}`;

/** The Hearth names an Ollama name may mean, in the order to try them: as sent, then without `:latest`. */
export function nameCandidates(name: string): string[] {
  const bare = canonicalName(name);
  return bare === name ? [name] : [name, bare];
}

/** The name Hearth keeps for an Ollama name: without the default tag. */
export function canonicalName(name: string): string {
  return name.endsWith(DEFAULT_SUFFIX) && name.length > DEFAULT_SUFFIX.length ? name.slice(0, -DEFAULT_SUFFIX.length) : name;
}

/** How a Hearth id or alias is listed to Ollama clients: with `:latest` unless it has a tag. */
export function ollamaName(name: string): string {
  return name.includes(":") ? name : `${name}${DEFAULT_SUFFIX}`;
}

/** Ollama's wording for a model nobody has, which its clients show as they get it. */
export function modelNotFoundMessage(name: string): string {
  return `model '${name.slice(0, 200)}' not found`;
}
