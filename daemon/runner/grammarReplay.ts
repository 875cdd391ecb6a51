/**
 * A grammar's parser state after tokens a lost runner already generated, so a resumed
 * `response_format` job samples its next token exactly where the lost one would have
 * (docs/splitting.md "How failure recovery works").
 *
 * node-llama-cpp advances a grammar evaluation state only as it samples; it has no public call
 * that feeds it known tokens. Its own samplers use the native `AddonSampler` functions below
 * for that, and so does this module. They are internal, so every use is checked: when the
 * installed node-llama-cpp lacks them, or a token does not fit the grammar (the check comes
 * first: llama.cpp aborts on accepting a token its grammar cannot take), the job is reported
 * as not resumable instead of continuing under a wrong grammar state.
 */

import { LlamaGrammarEvaluationState, type LlamaGrammar, type LlamaModel } from "node-llama-cpp";

interface NativeGrammarSampler {
  canBeNextTokenForGrammarEvaluationState(state: unknown, token: number): boolean;
  acceptGrammarEvaluationStateToken(state: unknown, token: number): void;
}

/** The internals this relies on, as node-llama-cpp 3.x has them. */
interface ModelInternals {
  _llama?: { _bindings?: { AddonSampler?: Partial<NativeGrammarSampler> } };
}

function nativeSampler(model: LlamaModel): NativeGrammarSampler | undefined {
  const sampler = (model as unknown as ModelInternals)._llama?._bindings?.AddonSampler;
  if (typeof sampler?.canBeNextTokenForGrammarEvaluationState !== "function" || typeof sampler.acceptGrammarEvaluationStateToken !== "function") return undefined;
  return sampler as NativeGrammarSampler;
}

const NO_REPLAY = "this node-llama-cpp offers no way to replay tokens into a grammar";

export type GrammarReplay = { ok: true; state: LlamaGrammarEvaluationState } | { ok: false; reason: string };

/** A fresh evaluation state of `grammar` that has accepted `tokens`, in order. */
export function replayGrammar(model: LlamaModel, grammar: LlamaGrammar, tokens: readonly number[]): GrammarReplay {
  const sampler = nativeSampler(model);
  if (sampler === undefined) return { ok: false, reason: NO_REPLAY };
  const state = new LlamaGrammarEvaluationState({ model, grammar });
  const native = (state as unknown as { _state?: unknown })._state;
  if (native === undefined) return { ok: false, reason: NO_REPLAY };
  for (const [index, token] of tokens.entries()) {
    if (!sampler.canBeNextTokenForGrammarEvaluationState(native, token)) return { ok: false, reason: `generated token ${index} does not fit its grammar` };
    sampler.acceptGrammarEvaluationStateToken(native, token);
  }
  return { ok: true, state };
}
