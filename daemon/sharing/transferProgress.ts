/**
 * The rate meter behind a model transfer's bytes per second (TransferView of
 * protocol/api/pulls.ts, shown by `GET /hearth/v1/status` and `hearth pull --from-peer`).
 */

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
