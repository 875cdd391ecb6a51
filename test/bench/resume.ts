/**
 * What continuing a lost generation costs (docs/splitting.md, "How failure recovery works"):
 * a real runner generates N tokens, then the same job is continued from those N tokens as a
 * re-placed runner would continue it, replaying each token one at a time (exact), side by side
 * with the one-batch alternative, evaluating the prompt and the N tokens as one prompt (not
 * exact: a batch rounds differently from the single-token decodes the original made). Times are
 * from sending the job to its first new token; the re-plan and model load come on top of both.
 */

import { pino } from "pino";
import { RunnerProcess } from "../../daemon/engine/RunnerProcess.js";
import { ContinuationLedger } from "../../daemon/split/continuation.js";
import type { CompletionJob, GenerationDelta } from "../../protocol/inference.js";
import { median } from "./stats.js";

export interface ResumeBenchOptions {
  modelPath: string;
  threads: number;
  repeats: number;
  generatedTokens: readonly number[];
}

export const DEFAULT_RESUME_POINTS = [50, 200, 1000] as const;

const PROMPT = "The quick brown fox jumps over the lazy dog while the hearth keeps the house warm.";

function completion(prompt: string, maxTokens: number): CompletionJob {
  return { kind: "completion", model: "bench", prompt, sampling: { temperature: 0, stop: [], maxTokens }, echo: false };
}

export async function benchResume(options: ResumeBenchOptions): Promise<Record<string, number>> {
  const log = (line: string): void => { process.stderr.write(`[resume] ${line}\n`); };
  const longest = Math.max(...options.generatedTokens);
  const runner = new RunnerProcess({
    load: { modelPath: options.modelPath, modelId: "bench", contextSize: longest + 256, parallelSlots: 1, threads: options.threads, gpuLayers: 0, batchSize: 512, batching: "exact", embeddings: false },
    loadTimeoutMs: 120_000,
    stopTimeoutMs: 5_000,
    logger: pino({ level: "silent" }),
  });
  await runner.start();
  const figures: Record<string, number> = {};
  try {
    log(`reference: ${longest + 1} tokens`);
    const ledger = new ContinuationLedger();
    const tokensAfter: number[] = [];
    const textAfter: string[] = [];
    let text = "";
    const reference = await runner.generate(completion(PROMPT, longest + 1), {
      onTokens: (tokens) => {
        ledger.recordTokens(tokens);
        tokensAfter.push(...tokens);
      },
      onDelta: (delta) => {
        ledger.recordDelta(delta);
        text += delta.text;
        textAfter[tokensAfter.length] = text;
      },
    });
    for (const generated of options.generatedTokens) {
      // What the ledger held when the Nth token's text had gone out.
      const cut = new ContinuationLedger();
      cut.recordTokens(tokensAfter.slice(0, generated));
      const sentText = textAfter.slice(0, generated + 1).findLast((value) => value !== undefined) ?? "";
      cut.recordDelta({ part: "answer", text: sentText });
      const resume = cut.resumeState()!;
      const exact: number[] = [];
      const oneBatch: number[] = [];
      for (let round = 0; round < options.repeats; round++) {
        const started = performance.now();
        let first = 0;
        let resumedText = sentText;
        await runner.generate(completion(PROMPT, longest + 1), { resume, onDelta: (delta: GenerationDelta) => { first ||= performance.now(); resumedText += delta.text; } });
        exact.push(first - started);
        if (resumedText !== reference.text) throw new Error(`the continuation after ${generated} tokens is not the reference answer`);
        const batchStarted = performance.now();
        let batchFirst = 0;
        await runner.generate(completion(PROMPT + sentText, 1), { onDelta: () => { batchFirst ||= performance.now(); } });
        oneBatch.push(batchFirst - batchStarted);
      }
      figures[`exact.after_${generated}_tokens_ms`] = median(exact);
      figures[`one_batch.after_${generated}_tokens_ms`] = median(oneBatch);
      figures[`ratio.exact_over_one_batch.after_${generated}`] = median(exact) / median(oneBatch);
      log(`after ${generated} tokens: exact ${median(exact).toFixed(0)} ms, one batch ${median(oneBatch).toFixed(0)} ms`);
    }
  } finally {
    await runner.stop();
  }
  return figures;
}
