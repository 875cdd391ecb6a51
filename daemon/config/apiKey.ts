/**
 * Reading the API key from a file, and where the key comes from.
 *
 * The key itself never appears in config.toml, flags or logs: a config file is often
 * shared or committed, and a flag shows up in `ps`. Only a path to a key file is configured,
 * or the key is passed in the HEARTH_API_KEY environment variable.
 */

import fs from "node:fs";
import { errors, HearthError } from "../../protocol/errors.js";

export interface ApiKeyFromFile {
  key: string;
  /** Set when the file is readable by group or others (the key still works). */
  warning?: string;
}

/** Reads and trims a key file; a missing, unreadable or empty file is a config error. */
export async function readApiKeyFile(filePath: string, describedAs: string): Promise<ApiKeyFromFile> {
  let text: string;
  let mode: number;
  try {
    const stat = await fs.promises.stat(filePath);
    if (!stat.isFile()) throw errors.configInvalid(`${describedAs}: ${filePath} is not a file`, { param: describedAs });
    mode = stat.mode;
    text = await fs.promises.readFile(filePath, "utf8");
  } catch (error) {
    if (error instanceof HearthError) throw error;
    const reason = (error as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (error as Error).message;
    throw errors.configInvalid(`${describedAs}: cannot read the API key file ${filePath}: ${reason}`, { param: describedAs, cause: error });
  }
  const key = text.trim();
  if (key === "") throw errors.configInvalid(`${describedAs}: the API key file ${filePath} is empty`, { param: describedAs });
  checkKeyCharacters(key, `${describedAs} (${filePath})`);
  const result: ApiKeyFromFile = { key };
  if ((mode & 0o077) !== 0) {
    result.warning = `the API key file ${filePath} is readable by other users (mode ${(mode & 0o777).toString(8).padStart(3, "0")}); run: chmod 600 ${filePath}`;
  }
  return result;
}

/** A key travels in an HTTP header, so it must be one line of visible characters. */
export function checkKeyCharacters(key: string, describedAs: string): void {
  if (!/^[\x21-\x7e]+$/.test(key)) {
    throw errors.configInvalid(`${describedAs}: the API key must be one line of printable ASCII without spaces`, { param: describedAs });
  }
}
