/**
 * Hearth's version, read once from the package.json this code ships in.
 *
 * Found by walking up from this file, so it works both from the TypeScript sources (tests)
 * and from dist/ (the installed CLI), whose depths differ.
 */

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

let cached: string | undefined;

export function hearthVersion(): string {
  if (cached !== undefined) return cached;
  let directory = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = path.join(directory, "package.json");
    try {
      const manifest = JSON.parse(fs.readFileSync(candidate, "utf8")) as { name?: unknown; version?: unknown };
      if (manifest.name === "hearth" && typeof manifest.version === "string") {
        cached = manifest.version;
        return cached;
      }
    } catch {
      // No (readable) manifest here: keep walking up.
    }
    const parent = path.dirname(directory);
    if (parent === directory) break;
    directory = parent;
  }
  cached = "0.0.0-unknown";
  return cached;
}
