/**
 * Human durations in the config file and on the command line: "500ms", "30s", "5m", "1h30m".
 *
 * A bare number is refused on purpose: `keep_alive = 300` could mean seconds (Ollama) or
 * milliseconds, and guessing wrong silently is worse than asking for a unit.
 *
 * Pure: no I/O.
 */

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;

const PART = /(\d+(?:\.\d+)?)(ms|s|m|h)/y;

/** Milliseconds for a duration text, or undefined when the text is not a duration. */
export function parseDuration(text: string): number | undefined {
  const trimmed = text.trim();
  if (trimmed === "") return undefined;
  let total = 0;
  PART.lastIndex = 0;
  while (PART.lastIndex < trimmed.length) {
    const match = PART.exec(trimmed);
    if (!match) return undefined;
    const amount = Number(match[1]);
    const unit = match[2] as keyof typeof UNIT_MS;
    total += amount * UNIT_MS[unit];
  }
  return Number.isFinite(total) ? Math.round(total) : undefined;
}

/** The shortest exact text for a duration, e.g. 300000 -> "5m", 1500 -> "1500ms". */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0s";
  for (const [unit, size] of [["h", UNIT_MS.h], ["m", UNIT_MS.m], ["s", UNIT_MS.s]] as const) {
    if (ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}
