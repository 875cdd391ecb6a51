/**
 * Text bookkeeping of a resumed generation (docs/splitting.md "How failure recovery works").
 *
 * A resumed runner knows every token generated so far, by its predecessor and by itself, so it
 * can always compute the whole answer text; the client has already received a prefix of it
 * (`sentText`). It sends only what lies beyond that prefix, and holds back what might still
 * change: a tail that could be the start of a stop string (the stop would cut it) and a
 * trailing U+FFFD (a multi-byte character whose remaining bytes are still to come). This is
 * the same rule node-llama-cpp's own streaming follows, so an interrupted stream and an
 * uninterrupted one deliver the same text.
 *
 * Pure: no I/O.
 */

const REPLACEMENT_CHARACTER = "\uFFFD";

/** Where the earliest stop string starts in `text`, or undefined. */
export function firstStopIndex(text: string, stops: readonly string[]): number | undefined {
  let first: number | undefined;
  for (const stop of stops) {
    if (stop === "") continue;
    const index = text.indexOf(stop);
    if (index >= 0 && (first === undefined || index < first)) first = index;
  }
  return first;
}

/**
 * How much of `text` is final: all but a tail that may still become a stop string or a longer
 * character, and, with `holdTrailingWhitespace` (a grammar that trims its answer's whitespace
 * suffix, as node-llama-cpp's JSON grammars do), trailing whitespace, which may yet be cut.
 */
export function releasableLength(text: string, stops: readonly string[], holdTrailingWhitespace = false): number {
  let end = text.length;
  while (end > 0 && text[end - 1] === REPLACEMENT_CHARACTER) end--;
  if (holdTrailingWhitespace) end = text.slice(0, end).trimEnd().length;
  let held = 0;
  for (const stop of stops) {
    for (let length = Math.min(stop.length - 1, end); length > held; length--) {
      if (text.endsWith(stop.slice(0, length), end)) {
        held = length;
        break;
      }
    }
  }
  return end - held;
}

/**
 * What to send next: the part of `releasable` beyond the `sentLength` characters the client has.
 * A resumed runner whose text does not extend what was sent (it would only happen if the new
 * placement computed differently) sends nothing it cannot append; the caller logs it.
 */
export function unsentText(releasable: string, sentLength: number): string {
  return releasable.length > sentLength ? releasable.slice(sentLength) : "";
}
