/**
 * How the CLI talks to people and scripts: exit codes, error lines, tables and JSON.
 *
 * Exit codes (docs/configuration.md): 0 ok, 1 runtime failure, 2 usage or configuration
 * error, 3 daemon unreachable, 130 interrupted with Ctrl-C. Errors are one line on stderr, `error [CODE]: message`, so a
 * script can branch on the code and a person can read the message.
 */

import { HearthError, type HearthErrorCode } from "../protocol/errors.js";

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
export const EXIT_UNREACHABLE = 3;
/** 128 + SIGINT, as shells report a command stopped with Ctrl-C. */
export const EXIT_INTERRUPTED = 130;

/** Errors the user fixes by changing what they typed: a bad token, or a membership that needs --force. */
const USAGE_CODES: ReadonlySet<HearthErrorCode> = new Set(["HEARTH_CLI_USAGE", "HEARTH_CONFIG_INVALID", "HEARTH_JOIN_TOKEN_INVALID", "HEARTH_CLUSTER_CONFLICT"]);

export function exitCodeFor(error: unknown): number {
  if (!(error instanceof HearthError)) return EXIT_FAILURE;
  if (USAGE_CODES.has(error.code)) return EXIT_USAGE;
  if (error.code === "HEARTH_DAEMON_UNREACHABLE") return EXIT_UNREACHABLE;
  if (error.code === "HEARTH_CANCELLED") return EXIT_INTERRUPTED;
  return EXIT_FAILURE;
}

export function formatError(error: unknown): string {
  if (error instanceof HearthError) return `error [${error.code}]: ${error.message}`;
  // Not a HearthError means a bug in Hearth; the stack is what a bug report needs.
  const detail = error instanceof Error ? (error.stack ?? error.message) : String(error);
  return `error [HEARTH_INTERNAL]: ${detail}`;
}

export function printError(error: unknown, stream: NodeJS.WritableStream = process.stderr): void {
  stream.write(`${formatError(error)}\n`);
}

export function printJson(value: unknown, stream: NodeJS.WritableStream = process.stdout): void {
  stream.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** 7_340_032 -> "7.0 MiB". */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** 2_097_152 -> "2.1M", 1_100_048_384 -> "1.1B". */
export function formatCount(count: number): string {
  for (const [suffix, size] of [["T", 1e12], ["B", 1e9], ["M", 1e6], ["K", 1e3]] as const) {
    if (count >= size) return `${(count / size).toFixed(1)}${suffix}`;
  }
  return String(count);
}

/** Left-aligned columns separated by two spaces; the last column is not padded. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, column) => (column === cells.length - 1 ? cell : cell.padEnd(widths[column] ?? 0)))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)].join("\n") + "\n";
}
