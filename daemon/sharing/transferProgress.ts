/**
 * What a model transfer looks like from outside (`GET /hearth/v1/status`, `hearth status`,
 * `hearth pull --from-peer`), and the rate meter behind its bytes per second.
 */

import type { ErrorPayload } from "../../protocol/errors.js";
import type { FetchOrigin } from "./sharePolicy.js";

export type TransferState = "connecting" | "transferring" | "waiting" | "verifying" | "done" | "failed";

export interface TransferView {
  sha256: string;
  /** The name it was asked for (a model id, a sha256, or the router's model name). */
  model: string;
  /** The id it has (or will have) in this node's models dir. */
  modelId: string;
  origin: FetchOrigin;
  state: TransferState;
  /** The peer it is coming from (null while none is chosen). */
  fromNodeId: string | null;
  bytesDone: number;
  totalBytes: number;
  /** Over the last few seconds; 0 when nothing arrives. */
  bytesPerSecond: number;
  /** Times it continued from a partial file (after a link drop, a stall or a restart). */
  resumes: number;
  startedAt: string;
  finishedAt: string | null;
  error: ErrorPayload | null;
}

/** Bytes per second over a sliding window of samples. */
export class RateMeter {
  readonly #windowMs: number;
  readonly #samples: { at: number; total: number }[] = [];
  #total = 0;

  constructor(windowMs = 3_000) {
    this.#windowMs = windowMs;
  }

  add(bytes: number, now = performance.now()): void {
    this.#total += bytes;
    this.#samples.push({ at: now, total: this.#total });
    this.#trim(now);
  }

  rate(now = performance.now()): number {
    this.#trim(now);
    const first = this.#samples[0];
    if (first === undefined) return 0;
    // Measured from the window's start, so a rate decays to 0 when bytes stop coming.
    const spanMs = Math.max(now - first.at, 1);
    const bytes = this.#total - first.total;
    return spanMs < 50 ? 0 : Math.round((bytes * 1000) / spanMs);
  }

  #trim(now: number): void {
    // Keep one sample older than the window as its baseline.
    while (this.#samples.length > 1 && now - this.#samples[1]!.at > this.#windowMs) this.#samples.shift();
    const first = this.#samples[0];
    if (first !== undefined && this.#samples.length === 1 && now - first.at > this.#windowMs) this.#samples.shift();
  }
}
