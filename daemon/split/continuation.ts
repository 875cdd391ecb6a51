/**
 * What one generation has delivered so far, kept by the daemon so a split placement that
 * loses a node can continue it exactly (docs/splitting.md "How failure recovery works"): the
 * ids of the tokens the runner sampled, in order, and how much of each part (answer,
 * reasoning) the client received. The runner reports a token before the text it produces,
 * over the same ordered channel, so the text here never runs ahead of the tokens.
 *
 * Pure: no I/O.
 */

import type { GenerationDelta, GenerationPart } from "../../protocol/inference.js";
import type { ResumeState } from "../../protocol/runnerIpc.js";

export class ContinuationLedger {
  readonly #tokens: number[] = [];
  readonly #sent: Record<GenerationPart, number> = { answer: 0, reasoning: 0 };

  recordTokens(tokens: readonly number[]): void {
    for (const token of tokens) this.#tokens.push(token);
  }

  recordDelta(delta: GenerationDelta): void {
    this.#sent[delta.part] += delta.text.length;
  }

  get tokenCount(): number {
    return this.#tokens.length;
  }

  /** Characters of each part the client has. */
  get sent(): Readonly<Record<GenerationPart, number>> {
    return this.#sent;
  }

  /** Undefined until anything was generated or sent: such a job simply starts again. */
  resumeState(): ResumeState | undefined {
    if (this.#tokens.length === 0 && this.#sent.answer === 0 && this.#sent.reasoning === 0) return undefined;
    return { tokens: [...this.#tokens], sent: { ...this.#sent } };
  }
}
