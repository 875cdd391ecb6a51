/**
 * Everything a runner holds for its one model: the llama.cpp bindings, the model, one
 * context with a sequence per parallel slot, the chat wrapper, compiled grammars and the
 * lazily created embedding context. Loading and disposal happen here, in that order and
 * its reverse.
 */

import os from "node:os";
import type { BatchingOptions, ChatWrapper, Llama, LlamaContext, LlamaModel } from "node-llama-cpp";
import { LlamaLogLevel, getLlama, resolveChatWrapper } from "node-llama-cpp";
import { errors } from "../../protocol/errors.js";
import type { DecodeBatching, RunnerLoadOptions, RunnerLogLevel, RunnerModelInfo } from "../../protocol/runnerIpc.js";
import { exactChunkLength } from "../../scheduler/exactDecoding.js";
import { Embedder } from "./Embedder.js";
import { GrammarCache } from "./grammars.js";
import type { RunnerLog } from "./parentChannel.js";
import { SlotPool } from "./SlotPool.js";

const LLAMA_LOG_LEVELS: Partial<Record<LlamaLogLevel, RunnerLogLevel>> = {
  [LlamaLogLevel.fatal]: "fatal",
  [LlamaLogLevel.error]: "error",
  [LlamaLogLevel.warn]: "warn",
  [LlamaLogLevel.info]: "info",
  [LlamaLogLevel.log]: "debug",
  [LlamaLogLevel.debug]: "debug",
};

/** llama.cpp error lines kept during a load, to explain a failure. */
const MAX_LOAD_ERRORS_KEPT = 8;

export class RunnerModel {
  readonly info: RunnerModelInfo;
  readonly llama: Llama;
  readonly model: LlamaModel;
  readonly context: LlamaContext;
  readonly slots: SlotPool;
  readonly chatWrapper: ChatWrapper;
  readonly supportsFunctions: boolean;
  readonly grammars: GrammarCache;
  readonly embedder: Embedder | undefined;
  /** Tokens per slot. */
  readonly contextSize: number;
  readonly log: RunnerLog;

  private constructor(parts: Omit<RunnerModel, "dispose">) {
    this.info = parts.info;
    this.llama = parts.llama;
    this.model = parts.model;
    this.context = parts.context;
    this.slots = parts.slots;
    this.chatWrapper = parts.chatWrapper;
    this.supportsFunctions = parts.supportsFunctions;
    this.grammars = parts.grammars;
    this.embedder = parts.embedder;
    this.contextSize = parts.contextSize;
    this.log = parts.log;
  }

  /** Loads the model; every failure becomes HEARTH_MODEL_LOAD_FAILED with the reason. */
  static async load(options: RunnerLoadOptions, log: RunnerLog): Promise<RunnerModel> {
    const started = Date.now();
    // node-llama-cpp's load errors are generic ("Failed to load model"); llama.cpp logs why.
    const loadErrors: string[] = [];
    let loading = true;
    let llama: Llama | undefined;
    try {
      llama = await getLlama({
        build: "never",
        // A split's runner: the shim's RPC devices must be the only offload devices (docs/splitting.md, "What llama.cpp can do, and how a plan is realised").
        ...(options.rpcDevicesOnly === true ? { gpu: false as const } : {}),
        progressLogs: false,
        logLevel: LlamaLogLevel.warn,
        logger: (level, message) => {
          const mapped = LLAMA_LOG_LEVELS[level];
          const text = message.trimEnd();
          if (!mapped || text === "") return;
          if (loading && (mapped === "error" || mapped === "fatal") && loadErrors.length < MAX_LOAD_ERRORS_KEPT) loadErrors.push(text);
          log(mapped, text, { source: "llama.cpp" });
        },
      });
      // node-llama-cpp's default thread count can exceed the cores this process may use;
      // oversubscribed ggml threads spin against each other and slow decoding by orders of magnitude.
      const threads = options.threads > 0 ? options.threads : Math.max(1, Math.min(llama.cpuMathCores, os.availableParallelism()));
      const model = await llama.loadModel({ modelPath: options.modelPath, gpuLayers: options.gpuLayers });
      const contextSize = Math.min(options.contextSize, model.trainContextSize);
      const context = await model.createContext({
        sequences: options.parallelSlots,
        // Per sequence: node-llama-cpp 3.22 allocates contextSize * sequences cells in total.
        contextSize,
        batchSize: options.batchSize,
        batching: contextBatching(options.batching),
        // llama.cpp's CPU flash attention rounds differently depending on how a prompt is cut
        // into batches, so a cached prefix would change the answer (scheduler/exactDecoding.ts).
        // node-llama-cpp's estimate of a context without it is 3-8 times the buffer llama.cpp
        // reserves (tiny preset: 212 vs 41 MiB), and would refuse a split's RPC devices the
        // share Hearth planned for them (scheduler/modelLayout.ts counts the real one);
        // llama.cpp itself still fails the load cleanly when memory is short.
        ...(options.batching === "exact" ? { flashAttention: false, ignoreMemorySafetyChecks: true } : {}),
        threads,
        failedCreationRemedy: false,
      });
      const sequences = Array.from({ length: options.parallelSlots }, () => context.getSequence());
      const chatWrapper = resolveChatWrapper(model);
      const supportsFunctions = chatWrapper.settings.functions != null;
      const info: RunnerModelInfo = {
        modelId: options.modelId,
        trainContextSize: model.trainContextSize,
        contextSize: context.contextSize,
        parallelSlots: options.parallelSlots,
        embeddingSize: model.embeddingVectorSize,
        layers: model.fileInsights.totalLayers,
        gpuLayers: model.gpuLayers,
        chatWrapper: chatWrapper.wrapperName,
        supportsFunctions,
        loadMs: Date.now() - started,
      };
      loading = false;
      return new RunnerModel({
        info,
        llama,
        model,
        context,
        slots: new SlotPool(sequences, options.batching),
        chatWrapper,
        supportsFunctions,
        grammars: new GrammarCache(llama),
        embedder: options.embeddings ? new Embedder(model, { contextSize: context.contextSize, threads }) : undefined,
        contextSize: context.contextSize,
        log,
      });
    } catch (error) {
      await llama?.dispose().catch(() => undefined);
      const reason = error instanceof Error ? error.message : String(error);
      const detail = loadErrors.length > 0 ? ` (llama.cpp: ${loadErrors[0]})` : "";
      throw errors.modelLoadFailed(`Loading model "${options.modelId}" failed: ${reason}${detail}`, { cause: error });
    }
  }

  /** Frees the embedding context, the context and the model, then the bindings. */
  async dispose(): Promise<void> {
    this.slots.rejectWaiters(errors.shuttingDown());
    await this.embedder?.dispose();
    await this.context.dispose();
    await this.model.dispose();
    await this.llama.dispose();
  }
}

/**
 * Exact batching gives each llama.cpp batch to one sequence, the first in line: the one
 * whose tokens have waited longest, so slots still take turns token by token.
 */
function contextBatching(batching: DecodeBatching): BatchingOptions {
  if (batching === "throughput") return { itemPrioritizationStrategy: "maximumParallelism" };
  return {
    itemPrioritizationStrategy: ({ items, size }) => {
      const first = items[0];
      return first === undefined ? [] : [{ item: first, processAmount: exactChunkLength(first.tokens.length, size) }];
    },
  };
}
