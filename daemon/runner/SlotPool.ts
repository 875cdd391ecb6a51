/**
 * The parallel slots of a runner: one node-llama-cpp context sequence each, all in one
 * context so their decoding is batched together.
 *
 * A sequence keeps the KV cache of the last prompt and answer it evaluated. A follow-up turn
 * of the same conversation starts with exactly those tokens, so giving it the sequence whose
 * tokens share the longest prefix with the new prompt lets node-llama-cpp skip evaluating that
 * prefix. A short match is not worth it, though: two conversations under one chat template
 * share its first tokens, and taking a slot for those would throw away the rest of another
 * conversation's cache. So the best match is taken only when it keeps at least
 * REUSE_MIN_KEPT_FRACTION of the slot's tokens (llama.cpp's server applies a similar
 * threshold); otherwise an empty slot, else the least recently used one.
 *
 * How much of a match may be kept depends on the batching mode (scheduler/exactDecoding.ts):
 * under exact batching only the part of the cache that was evaluated as a prompt, never the
 * tokens generated after it, so a cached answer is computed as a fresh one would be.
 *
 * The daemon never sends more jobs than there are slots, but a job may arrive while the slot
 * of a cancelled job is still winding down; such a job waits here in arrival order.
 */

import type { LlamaContextSequence, Token } from "node-llama-cpp";
import { errors } from "../../protocol/errors.js";
import type { DecodeBatching } from "../../protocol/runnerIpc.js";
import { reusablePrefix } from "../../scheduler/exactDecoding.js";

export interface Slot {
  readonly index: number;
  readonly sequence: LlamaContextSequence;
}

/** A cached prefix is reused only if it is at least this share of the slot's tokens. */
export const REUSE_MIN_KEPT_FRACTION = 0.5;

interface SlotState {
  slot: Slot;
  busy: boolean;
  lastUsedAt: number;
  /** Leading tokens of the sequence that were evaluated as a prompt, not generated. */
  batchedPrefix: number;
}

interface Waiter {
  resolve: (slot: Slot) => void;
  reject: (error: unknown) => void;
  signal: AbortSignal;
  onAbort: () => void;
}

export class SlotPool {
  readonly #states: SlotState[];
  readonly #waiters: Waiter[] = [];
  // Monotonic use counter: ties in wall-clock time would make LRU order ambiguous.
  #useCounter = 0;
  readonly #batching: DecodeBatching;

  constructor(sequences: readonly LlamaContextSequence[], batching: DecodeBatching) {
    this.#states = sequences.map((sequence, index) => ({ slot: { index, sequence }, busy: false, lastUsedAt: 0, batchedPrefix: 0 }));
    this.#batching = batching;
  }

  get size(): number {
    return this.#states.length;
  }

  get busy(): number {
    return this.#states.filter((state) => state.busy).length;
  }

  /**
   * A free slot for a job whose prompt is `promptTokens`, preferring the longest shared
   * prefix. Waits when all slots are busy; rejects HEARTH_CANCELLED if `signal` aborts first.
   */
  acquire(promptTokens: readonly Token[], signal: AbortSignal): Promise<Slot> {
    if (signal.aborted) return Promise.reject(errors.cancelled("The request was cancelled while waiting for a slot."));
    const slot = this.#pick(promptTokens);
    if (slot) return Promise.resolve(slot);
    return new Promise<Slot>((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        signal,
        onAbort: () => {
          const index = this.#waiters.indexOf(waiter);
          if (index >= 0) this.#waiters.splice(index, 1);
          reject(errors.cancelled("The request was cancelled while waiting for a slot."));
        },
      };
      signal.addEventListener("abort", waiter.onAbort, { once: true });
      this.#waiters.push(waiter);
    });
  }

  /** Prompt tokens a job on `slot` keeps from its cache (reusablePrefix). */
  reusableTokens(slot: Slot, promptTokens: readonly Token[]): number {
    return this.#reusable(this.#stateOf(slot), promptTokens);
  }

  /**
   * Gives the slot back. `promptLength` is how many of its sequence's leading tokens the job
   * evaluated as its prompt (0 when they cannot be trusted to be the prompt, as for infill).
   */
  release(slot: Slot, promptLength: number): void {
    const state = this.#stateOf(slot);
    if (!state.busy) throw new Error(`slot ${slot.index} is not in use`);
    state.batchedPrefix = Math.min(promptLength, slot.sequence.nextTokenIndex);
    state.lastUsedAt = ++this.#useCounter;
    const waiter = this.#waiters.shift();
    if (waiter) {
      waiter.signal.removeEventListener("abort", waiter.onAbort);
      waiter.resolve(slot);
      return;
    }
    state.busy = false;
  }

  /** Fails every waiter (shutdown). Busy slots are left to their jobs. */
  rejectWaiters(error: unknown): void {
    for (const waiter of this.#waiters.splice(0)) {
      waiter.signal.removeEventListener("abort", waiter.onAbort);
      waiter.reject(error);
    }
  }

  #stateOf(slot: Slot): SlotState {
    const state = this.#states[slot.index];
    if (!state || state.slot !== slot) throw new Error(`slot ${slot.index} is not this pool's`);
    return state;
  }

  #reusable(state: SlotState, promptTokens: readonly Token[]): number {
    const shared = state.slot.sequence.compareContextTokens(promptTokens as Token[]).firstDifferentIndex;
    return reusablePrefix({ shared, batched: state.batchedPrefix, promptLength: promptTokens.length }, this.#batching);
  }

  #pick(promptTokens: readonly Token[]): Slot | undefined {
    const free = this.#states.filter((state) => !state.busy);
    if (free.length === 0) return undefined;
    const leastRecent = (a: SlotState, b: SlotState): SlotState => (b.lastUsedAt < a.lastUsedAt ? b : a);
    let best: { state: SlotState; shared: number } | undefined;
    for (const state of free) {
      const shared = this.#reusable(state, promptTokens);
      if (!best || shared > best.shared || (shared === best.shared && state.lastUsedAt < best.state.lastUsedAt)) best = { state, shared };
    }
    const worthReusing = best !== undefined && best.shared > 0 && best.shared >= REUSE_MIN_KEPT_FRACTION * best.state.slot.sequence.nextTokenIndex;
    const empty = free.filter((state) => state.slot.sequence.nextTokenIndex === 0);
    const chosen = worthReusing ? best!.state : empty.length > 0 ? empty.reduce(leastRecent) : free.reduce(leastRecent);
    chosen.busy = true;
    return chosen.slot;
  }
}
