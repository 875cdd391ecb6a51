/**
 * Messages between the daemon and a runner child process.
 *
 * A runner owns exactly one loaded model (see docs/architecture.md for why runners are
 * separate processes). The daemon forks it with `serialization: "advanced"` and speaks this
 * protocol over the IPC channel. Both directions are validated on receipt: the runner is
 * our own code, but it runs native code that can misbehave, and the daemon must never trust
 * a message enough to crash on it.
 *
 * Pure: types and validation only.
 */

import { z } from "zod";
import type { ErrorPayload } from "./errors.js";
import type { ChatJob, CompletionJob, EmbeddingJob, EmbeddingResult, GenerationDelta, GenerationPart, GenerationResult } from "./inference.js";
import { generationOutcomeSchema } from "./peer/inferenceWire.js";

/** How a runner's sequences share llama.cpp's batches (scheduler/exactDecoding.ts). */
export const DECODE_BATCHING_MODES = ["exact", "throughput"] as const;
export type DecodeBatching = (typeof DECODE_BATCHING_MODES)[number];

/** How the daemon asks a runner to load its model. Sent once, as the first message. */
export interface RunnerLoadOptions {
  /** Absolute path of the GGUF file; resolved by the daemon from its own model registry. */
  modelPath: string;
  /** Model id as the API knows it (for logs and metrics). */
  modelId: string;
  /** Tokens per sequence (each parallel slot gets this much context). */
  contextSize: number;
  /** Parallel sequences decoded together in one batch. */
  parallelSlots: number;
  /** CPU threads for evaluation; 0 lets node-llama-cpp decide. */
  threads: number;
  /** Layers to offload to GPU devices; 0 on CPU-only machines. "auto" lets node-llama-cpp decide. */
  gpuLayers: number | "auto";
  /** Logical batch size for prompt evaluation. */
  batchSize: number;
  /** How sequences share llama.cpp's batches (scheduler/exactDecoding.ts). */
  batching: DecodeBatching;
  /** Whether the runner should also create an embedding context. */
  embeddings: boolean;
  /**
   * A split placement's host runner: load the bindings without a GPU backend (getLlama
   * `gpu: false`), so the only offload devices are the RPC shim's (docs/splitting.md, "What llama.cpp can do, and how a plan is realised"), and
   * `gpuLayers` must be a number. Absent for single-node runners.
   */
  rpcDevicesOnly?: boolean;
}

/**
 * Continue a generation a previous runner started and lost (docs/splitting.md "How failure
 * recovery works"): `tokens` are the ids it had sampled, in order; `sent` how many characters
 * of each part the client already received. The runner runs the job again with those tokens
 * forced first and sends only what lies beyond `sent`.
 */
export interface ResumeState {
  tokens: number[];
  sent: Record<GenerationPart, number>;
}

export interface RunnerModelInfo {
  modelId: string;
  trainContextSize: number;
  contextSize: number;
  parallelSlots: number;
  embeddingSize: number;
  layers: number;
  gpuLayers: number;
  /** Name of the chat wrapper node-llama-cpp resolved for this model. */
  chatWrapper: string;
  /** Whether the chat wrapper can express function calls. */
  supportsFunctions: boolean;
  loadMs: number;
}

// ---- daemon -> runner ------------------------------------------------------------------

export type DaemonToRunner =
  | { type: "load"; options: RunnerLoadOptions }
  | { type: "chat"; id: string; job: ChatJob; resume?: ResumeState }
  | { type: "completion"; id: string; job: CompletionJob; resume?: ResumeState }
  | { type: "embedding"; id: string; job: EmbeddingJob }
  | { type: "cancel"; id: string }
  | { type: "shutdown" };

// ---- runner -> daemon ------------------------------------------------------------------

export type RunnerLogLevel = "trace" | "debug" | "info" | "warn" | "error" | "fatal";

export type RunnerToDaemon =
  | { type: "ready"; info: RunnerModelInfo }
  | { type: "loadFailed"; error: ErrorPayload }
  | { type: "delta"; id: string; delta: GenerationDelta }
  /** Token ids generated since the last report, sent before the text they produce. */
  | { type: "tokens"; id: string; tokens: number[] }
  | { type: "generationDone"; id: string; result: GenerationResult }
  | { type: "embeddingDone"; id: string; result: EmbeddingResult }
  | { type: "failed"; id: string; error: ErrorPayload }
  | { type: "log"; level: RunnerLogLevel; message: string; fields?: Record<string, unknown> };

const embeddingOutcomeSchema = z.object({ vectors: z.array(z.array(z.number())), promptTokens: z.int().min(0) });

/**
 * A runner's result, checked where it is used so a corrupted message fails one job instead
 * of crashing the daemon later; undefined when it is not a result of that kind. A generation
 * is checked by the same schema as on a peer link.
 */
export function runnerResultOf(kind: "generation", value: unknown): GenerationResult | undefined;
export function runnerResultOf(kind: "embedding", value: unknown): EmbeddingResult | undefined;
export function runnerResultOf(kind: "generation" | "embedding", value: unknown): GenerationResult | EmbeddingResult | undefined {
  const parsed = kind === "generation" ? generationOutcomeSchema.safeParse(value) : embeddingOutcomeSchema.safeParse(value);
  return parsed.success ? parsed.data : undefined;
}

const RUNNER_MESSAGE_TYPES = new Set(["ready", "loadFailed", "delta", "tokens", "generationDone", "embeddingDone", "failed", "log"]);

/**
 * Shallow structural check of a message from a runner. The runner is trusted code, so this
 * guards against corruption and version skew, not against an adversary.
 */
export function isRunnerToDaemon(value: unknown): value is RunnerToDaemon {
  if (typeof value !== "object" || value === null) return false;
  const message = value as { type?: unknown; id?: unknown };
  if (typeof message.type !== "string" || !RUNNER_MESSAGE_TYPES.has(message.type)) return false;
  if (["delta", "tokens", "generationDone", "embeddingDone", "failed"].includes(message.type)) {
    return typeof message.id === "string";
  }
  return true;
}

const DAEMON_MESSAGE_TYPES = new Set(["load", "chat", "completion", "embedding", "cancel", "shutdown"]);

export function isDaemonToRunner(value: unknown): value is DaemonToRunner {
  if (typeof value !== "object" || value === null) return false;
  const message = value as { type?: unknown; id?: unknown };
  if (typeof message.type !== "string" || !DAEMON_MESSAGE_TYPES.has(message.type)) return false;
  if (["chat", "completion", "embedding", "cancel"].includes(message.type)) return typeof message.id === "string";
  return true;
}
