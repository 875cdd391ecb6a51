/**
 * Checks a daemon's answer against its contract (a schema of protocol/api/) before the CLI
 * reads a field of it. A daemon of another version, or something else on the port, then
 * fails with one line naming the endpoint and the first field that does not fit, instead of
 * a TypeError deep inside a command.
 */

import type { z } from "zod";
import { errors } from "../protocol/errors.js";

/** `peers[0].state`; the whole body is `(body)`. */
export function formatIssuePath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return "(body)";
  return path.map((key, index) => (typeof key === "number" ? `[${key}]` : `${index === 0 ? "" : "."}${String(key)}`)).join("");
}

/**
 * The body, typed by its contract. The daemon's own object is returned, not zod's copy: the
 * schemas have no transforms or defaults, so a body that passes already has the contract's
 * type, and `--json` then prints exactly what the daemon sent, fields from a newer daemon
 * and their order included.
 */
export function checkShape<T>(contract: z.ZodType<T>, body: unknown, request: string): T {
  const result = contract.safeParse(body);
  if (result.success) return body as T;
  const issue = result.error.issues[0];
  const detail = issue === undefined ? "it does not match" : `${formatIssuePath(issue.path)}: ${issue.message.replace(/\s+/g, " ")}`;
  throw errors.internal(`the daemon answered ${request} with an unexpected shape: ${detail}`);
}
