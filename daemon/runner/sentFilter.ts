/**
 * The deltas of a continued job beyond what the client already has (samplingReplay.ts). The
 * continuation produces the lost runner's text again, part by part and in the same pieces, so
 * skipping the characters already sent of each part leaves exactly what is new.
 *
 * Pure: no I/O.
 */

import type { GenerationDelta, GenerationPart } from "../../protocol/inference.js";

/** The first `sent[part]` characters of each part are the ones the client received from the lost runner. */
export class SentFilter {
  readonly #skip: Record<GenerationPart, number>;

  constructor(sent: Readonly<Record<GenerationPart, number>> = { answer: 0, reasoning: 0 }) {
    this.#skip = { ...sent };
  }

  /** The unsent rest of `delta`, or undefined when the client has all of it. */
  pass(delta: GenerationDelta): GenerationDelta | undefined {
    const skip = this.#skip[delta.part];
    if (skip >= delta.text.length) {
      this.#skip[delta.part] = skip - delta.text.length;
      return undefined;
    }
    this.#skip[delta.part] = 0;
    return skip === 0 ? delta : { part: delta.part, text: delta.text.slice(skip) };
  }
}
