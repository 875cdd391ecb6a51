/**
 * Embeddings for a runner, in a context of their own.
 *
 * node-llama-cpp computes embeddings in a dedicated embedding context, separate from the
 * generation context and its slots. It is created on the first embedding job, so a model
 * used only for chat never pays its memory, and it is kept for the runner's lifetime.
 * Inputs are embedded one after another (node-llama-cpp serialises them anyway).
 */

import type { LlamaEmbeddingContext, LlamaModel } from "node-llama-cpp";
import { errors } from "../../protocol/errors.js";
import type { EmbeddingJob, EmbeddingResult } from "../../protocol/inference.js";

export interface EmbedderOptions {
  /** Tokens per input (the generation slots' context size). */
  contextSize: number;
  threads: number | undefined;
}

export class Embedder {
  readonly #model: LlamaModel;
  readonly #options: EmbedderOptions;
  #context: Promise<LlamaEmbeddingContext> | undefined;

  constructor(model: LlamaModel, options: EmbedderOptions) {
    this.#model = model;
    this.#options = options;
  }

  get created(): boolean {
    return this.#context !== undefined;
  }

  async embed(job: EmbeddingJob, signal: AbortSignal): Promise<EmbeddingResult> {
    const context = await this.#getContext();
    // Check every input before computing any, so a bad last input costs nothing.
    const lengths = job.inputs.map((input, index) => {
      if (input === "") throw errors.invalidRequest(`input[${index}] is empty.`, { param: "input" });
      const length = context.calculateInputLength(input);
      // node-llama-cpp needs one free cell beyond the input.
      if (length >= this.#options.contextSize) {
        throw errors.contextOverflow(`input[${index}] is ${length} tokens; inputs must be shorter than ${this.#options.contextSize} tokens.`, {
          param: "input",
        });
      }
      return length;
    });
    const vectors: number[][] = [];
    for (const input of job.inputs) {
      if (signal.aborted) throw errors.cancelled("The embedding request was cancelled.");
      const embedding = await context.getEmbeddingFor(input);
      vectors.push([...embedding.vector]);
    }
    return { vectors, promptTokens: lengths.reduce((sum, length) => sum + length, 0) };
  }

  async dispose(): Promise<void> {
    const context = this.#context;
    this.#context = undefined;
    if (context) await (await context).dispose();
  }

  #getContext(): Promise<LlamaEmbeddingContext> {
    if (!this.#context) {
      const { contextSize, threads } = this.#options;
      // One batch holds a whole input: llama.cpp needs that for models with non-causal attention.
      const pending = this.#model.createEmbeddingContext(threads === undefined ? { contextSize, batchSize: contextSize } : { contextSize, batchSize: contextSize, threads });
      this.#context = pending;
      pending.catch(() => {
        if (this.#context === pending) this.#context = undefined;
      });
    }
    return this.#context;
  }
}
