/**
 * Counts failed peer handshakes per remote address, so a device on the LAN cannot guess at
 * the listener (or just burn its CPU on TLS and HMACs) without limit. After `maxFailures`
 * failures within `windowMs` the address is refused before TLS work is spent on a WebSocket,
 * until that window ends. A successful handshake clears the address.
 *
 * Memory is bounded: at most `maxTrackedAddresses` are remembered, the oldest forgotten first.
 * Clock injected for tests.
 */

export interface FailedAttemptLimiterOptions {
  maxFailures: number;
  windowMs: number;
  maxTrackedAddresses: number;
  now?: () => number;
}

interface Entry {
  failures: number;
  windowStartedAt: number;
}

export class FailedAttemptLimiter {
  readonly #options: FailedAttemptLimiterOptions;
  readonly #now: () => number;
  /** Insertion order = age, so the first key is the one to forget. */
  readonly #entries = new Map<string, Entry>();

  constructor(options: FailedAttemptLimiterOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  #current(address: string): Entry | undefined {
    const entry = this.#entries.get(address);
    if (entry !== undefined && this.#now() - entry.windowStartedAt >= this.#options.windowMs) {
      this.#entries.delete(address);
      return undefined;
    }
    return entry;
  }

  /** True while `address` has used up its failures for the current window. */
  isBlocked(address: string): boolean {
    const entry = this.#current(address);
    return entry !== undefined && entry.failures >= this.#options.maxFailures;
  }

  /** Seconds until `address` may try again (0 when it is not blocked). */
  retryAfterSeconds(address: string): number {
    const entry = this.#current(address);
    if (entry === undefined || entry.failures < this.#options.maxFailures) return 0;
    return Math.max(1, Math.ceil((entry.windowStartedAt + this.#options.windowMs - this.#now()) / 1000));
  }

  /** Records one failure; returns whether the address is now blocked. */
  recordFailure(address: string): boolean {
    const entry = this.#current(address);
    if (entry !== undefined) {
      entry.failures++;
      return entry.failures >= this.#options.maxFailures;
    }
    while (this.#entries.size >= this.#options.maxTrackedAddresses) {
      const oldest = this.#entries.keys().next();
      if (oldest.done === true) break;
      this.#entries.delete(oldest.value);
    }
    this.#entries.set(address, { failures: 1, windowStartedAt: this.#now() });
    return this.#options.maxFailures <= 1;
  }

  recordSuccess(address: string): void {
    this.#entries.delete(address);
  }

  get trackedAddresses(): number {
    return this.#entries.size;
  }
}
