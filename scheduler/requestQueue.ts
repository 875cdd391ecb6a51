/**
 * Admission for one model: a fixed number of running slots plus a bounded FIFO of waiters.
 *
 * A model serves `slots` requests at once (its parallel context sequences); up to `depth`
 * more wait in arrival order; anything beyond that is turned away so the caller can answer
 * 429 instead of letting latency grow without bound. The queue only does the bookkeeping:
 * it never starts, times or cancels anything. Whoever owns it reacts to what `admit` and
 * `release` return.
 *
 * Pure: no timers, no I/O. Items are compared by identity.
 */

export interface RequestQueueOptions {
  /** Items that may run at once (at least 1). */
  slots: number;
  /** Items that may wait beyond the running ones (0 means "run or reject"). */
  depth: number;
}

/** What happened to an item offered to `admit`. */
export type Admission = "running" | "queued" | "rejected";

/** Where an item currently is. */
export type ItemState = "running" | "queued" | "absent";

export class RequestQueue<T> {
  readonly slots: number;
  readonly depth: number;
  readonly #running = new Set<T>();
  // FIFO of waiters; removal from the middle is O(n), fine for queue depths in the hundreds.
  readonly #waiting: T[] = [];

  constructor(options: RequestQueueOptions) {
    if (!Number.isInteger(options.slots) || options.slots < 1) throw new RangeError(`slots must be an integer >= 1, got ${options.slots}`);
    if (!Number.isInteger(options.depth) || options.depth < 0) throw new RangeError(`depth must be an integer >= 0, got ${options.depth}`);
    this.slots = options.slots;
    this.depth = options.depth;
  }

  get running(): number {
    return this.#running.size;
  }

  get queued(): number {
    return this.#waiting.length;
  }

  /** Running plus waiting items: what the model is committed to. */
  get size(): number {
    return this.#running.size + this.#waiting.length;
  }

  /** The most items the queue holds at once. */
  get capacity(): number {
    return this.slots + this.depth;
  }

  get idle(): boolean {
    return this.size === 0;
  }

  /**
   * Offers an item: it takes a free slot ("running"), joins the end of the line ("queued"), or
   * is turned away ("rejected", nothing changes). An item already present is a caller bug.
   */
  admit(item: T): Admission {
    if (this.stateOf(item) !== "absent") throw new Error("item is already in the queue");
    // release() always promotes a waiter into a freed slot, so a free slot never coexists
    // with waiters; the second check keeps FIFO order explicit rather than implied.
    if (this.#running.size < this.slots && this.#waiting.length === 0) {
      this.#running.add(item);
      return "running";
    }
    if (this.#waiting.length < this.depth) {
      this.#waiting.push(item);
      return "queued";
    }
    return "rejected";
  }

  /**
   * A running item finished: frees its slot and promotes the longest waiter into it.
   * Returns the promoted item (now running), or undefined when nobody waits.
   * Releasing an item that is not running is a caller bug.
   */
  release(item: T): T | undefined {
    if (!this.#running.delete(item)) throw new Error("item is not running");
    return this.#promote();
  }

  /**
   * Takes a waiting item out of the line (its client gave up). Returns false when the item
   * is not waiting; a running item must be released instead.
   */
  remove(item: T): boolean {
    const index = this.#waiting.indexOf(item);
    if (index < 0) return false;
    this.#waiting.splice(index, 1);
    return true;
  }

  stateOf(item: T): ItemState {
    if (this.#running.has(item)) return "running";
    return this.#waiting.includes(item) ? "queued" : "absent";
  }

  /** Position in line, 0 for the next to run; -1 when not waiting. */
  positionOf(item: T): number {
    return this.#waiting.indexOf(item);
  }

  /** Empties the line (shutdown, load failure) and returns the waiters in arrival order. */
  drainWaiting(): T[] {
    return this.#waiting.splice(0, this.#waiting.length);
  }

  runningItems(): T[] {
    return [...this.#running];
  }

  waitingItems(): T[] {
    return [...this.#waiting];
  }

  #promote(): T | undefined {
    if (this.#running.size >= this.slots) return undefined;
    const next = this.#waiting.shift();
    if (next !== undefined) this.#running.add(next);
    return next;
  }
}
