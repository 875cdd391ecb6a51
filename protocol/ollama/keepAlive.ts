/**
 * Ollama's `keep_alive`: how long the model stays loaded after the request.
 *
 *   a number        seconds (fractions allowed); negative: forever
 *   a string        a Go duration ("5m", "1h30m", "90s", "500ms", "0"); negative: forever; a bare
 *                   number in a string ("-1", "300") is seconds, as unquoted
 *   absent or null  the daemon's `limits.keep_alive`
 *
 * A keep-alive longer than a Node timer can hold (2^31-1 ms, about 24.8 days) is forever.
 *
 * Pure: no I/O.
 */

import { errors } from "../errors.js";

/** Forever: the model stays until a request asks otherwise or the daemon stops. */
export const KEEP_ALIVE_FOREVER = Number.POSITIVE_INFINITY;
const MAX_TIMER_MS = 2 ** 31 - 1;

const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, "\u00b5s": 1e-3, "\u03bcs": 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const BARE_SECONDS = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$/;
const PART = /(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)/y;

/** Milliseconds for a Go duration text (sign allowed), or undefined when it is not one. */
export function parseGoDuration(text: string): number | undefined {
  let rest = text;
  let sign = 1;
  if (rest.startsWith("-") || rest.startsWith("+")) {
    sign = rest.startsWith("-") ? -1 : 1;
    rest = rest.slice(1);
  }
  if (rest === "0") return 0;
  if (rest === "") return undefined;
  let total = 0;
  PART.lastIndex = 0;
  while (PART.lastIndex < rest.length) {
    const match = PART.exec(rest);
    if (!match) return undefined;
    total += Number(match[1]) * UNIT_MS[match[2]!]!;
  }
  return sign * total;
}

function fromMs(ms: number): number {
  if (ms < 0 || ms > MAX_TIMER_MS) return KEEP_ALIVE_FOREVER;
  return Math.round(ms);
}

/**
 * The keep-alive in milliseconds (KEEP_ALIVE_FOREVER for forever), or undefined when absent.
 * Throws HEARTH_INVALID_REQUEST (param `keep_alive`) for anything else.
 */
export function parseKeepAlive(value: unknown): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === "number" && Number.isFinite(value)) return fromMs(value * 1000);
  if (typeof value === "string") {
    const text = value.trim();
    // A bare number in a string ("-1", "300") means seconds, as the same number unquoted does.
    if (BARE_SECONDS.test(text)) return fromMs(Number(text) * 1000);
    const ms = parseGoDuration(text);
    if (ms !== undefined && Number.isFinite(ms)) return fromMs(ms);
  }
  throw errors.invalidRequest(`Invalid value for 'keep_alive': expected a duration such as "5m", "1h" or "0", or a number of seconds (negative: keep the model loaded).`, { param: "keep_alive" });
}
