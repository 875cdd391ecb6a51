/**
 * Exact continuation of a lost generation (docs/splitting.md "How failure recovery works").
 *
 * A runner reports every token it samples, whatever node-llama-cpp makes of it (answer text,
 * a thought, a tool call's name or arguments, template syntax it rewinds). A runner that
 * continues the job runs the very same job again, with LlamaChat or LlamaCompletion, and
 * forces the sampler to pick the reported tokens first: each reported token gets a logit
 * bias no other logit comes near. node-llama-cpp's own parsers (segments, function calls,
 * grammars, stop triggers) therefore pass through exactly the states they passed through the
 * first time, and the model's cache is built token by token as it was, so under greedy
 * decoding the continuation is the answer the lost runner would have given. What the client
 * already received is not sent again (sentFilter.ts).
 *
 * The forced tokens are decoded one at a time, as they were generated: continuing costs
 * about as long as generating them did.
 */

import type { LlamaContextSequence, LlamaModel, Token } from "node-llama-cpp";
import { TokenBias } from "node-llama-cpp";
import { errors } from "../../protocol/errors.js";

/** Far above any logit a model produces, and finite so the sampler's arithmetic stays sound. */
const FORCED_LOGIT = 1e9;

type SequenceEvaluate = LlamaContextSequence["evaluate"];
type EvaluateOptions = NonNullable<Parameters<SequenceEvaluate>[1]>;

/**
 * Watches every token sampled on `sequence` until the returned function is called, and forces
 * the first ones to be `replay`. node-llama-cpp samples only through `sequence.evaluate`, for
 * chat and completion alike, so wrapping it sees them all.
 */
export function traceSampling(sequence: LlamaContextSequence, model: LlamaModel, replay: readonly number[], onSampled: (token: Token) => void): () => void {
  const original = sequence.evaluate.bind(sequence);
  const ownBefore = Object.getOwnPropertyDescriptor(sequence, "evaluate");
  let sampled = 0;
  const forcedBias = (next: number): TokenBias => {
    const bias = new TokenBias(model.tokenizer);
    // TokenBias.set refuses end-of-generation tokens; a lost runner may have sampled one (a tool call section ends with it).
    const biases = (bias as unknown as { _biases?: unknown })._biases;
    if (!(biases instanceof Map)) throw errors.resumeUnsupported("This node-llama-cpp version keeps token biases where Hearth cannot set them, so the generation cannot be continued.");
    biases.set(next, FORCED_LOGIT);
    return bias;
  };
  const evaluate = (tokens: Token[], options: EvaluateOptions = {}): ReturnType<SequenceEvaluate> => {
    const ownBias = options.tokenBias;
    const tokenBias = (): TokenBias => {
      const next = replay[sampled];
      if (next !== undefined) return forcedBias(next);
      return (typeof ownBias === "function" ? ownBias() : ownBias) ?? new TokenBias(model.tokenizer);
    };
    const inner = original(tokens, sampled < replay.length ? { ...options, tokenBias } : options);
    // A hand-written iterator, not a generator: node-llama-cpp passes replacement tokens through next(value).
    const traced: ReturnType<SequenceEvaluate> = {
      async next(...args) {
        const step = await inner.next(...args);
        if (step.done !== true) {
          const expected = replay[sampled];
          // Only a grammar can veto a forced token: then the job is not the one that was lost.
          if (expected !== undefined && step.value !== expected) {
            throw errors.resumeUnsupported(`The generation cannot be continued: at token ${sampled} the continuation sampled ${step.value}, where the lost runner had sampled ${expected}.`);
          }
          sampled++;
          onSampled(step.value);
        }
        return step;
      },
      return: (value) => inner.return(value),
      throw: (error: unknown) => inner.throw(error),
      [Symbol.asyncIterator]() {
        return traced;
      },
    };
    return traced;
  };
  Object.defineProperty(sequence, "evaluate", { value: evaluate, configurable: true, writable: true });
  return () => {
    // Back to the prototype's method, or to whatever was there before.
    if (ownBefore === undefined) Reflect.deleteProperty(sequence, "evaluate");
    else Object.defineProperty(sequence, "evaluate", ownBefore);
  };
}
