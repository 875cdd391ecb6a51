/**
 * What one generation has delivered so far, kept by the daemon so a split placement that
 * loses a node can continue it exactly (docs/splitting.md "How failure recovery works"): the
 * ids of the tokens the runner generated, in order, and the text the client received. The
 * runner reports a token before the text it produces, over the same ordered channel, so the
 * text here never runs ahead of the tokens.
 *
 * Pure: no I/O.
 */

import type { ResumeState } from "../../protocol/runnerIpc.js";

export class ContinuationLedger {
  readonly #tokens: number[] = [];
  #sentText = "";

  recordTokens(tokens: readonly number[]): void {
    for (const token of tokens) this.#tokens.push(token);
  }

  recordText(text: string): void {
    this.#sentText += text;
  }

  get tokenCount(): number {
    return this.#tokens.length;
  }

  get sentText(): string {
    return this.#sentText;
  }

  /** Undefined until anything was generated or sent: such a job simply starts again. */
  resumeState(): ResumeState | undefined {
    if (this.#tokens.length === 0 && this.#sentText === "") return undefined;
    return { tokens: [...this.#tokens], sentText: this.#sentText };
  }
}
