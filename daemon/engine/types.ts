/**
 * What the HTTP API (and later the peer links) needs from whatever runs models.
 *
 * The local implementation is `LocalEngine` (daemon/engine/LocalEngine.ts), which resolves
 * model ids through the model registry and executes jobs in runner child processes. Errors
 * are always thrown as `HearthError` with a code from protocol/errors.ts.
 */

import type {
  EmbeddingJob,
  EmbeddingResult,
  GenerationDelta,
  GenerationJob,
  GenerationResult,
} from "../../protocol/inference.js";

export interface ModelDescriptor {
  /** File name without `.gguf`; what clients put in `model`. */
  id: string;
  /** Other names that resolve to this model (from config). */
  aliases: string[];
  /** Absolute path on this machine. Never derived from network input. */
  path: string;
  sizeBytes: number;
  /** File mtime, seconds since the epoch (OpenAI's `created`). */
  createdAt: number;
  /** From the GGUF metadata; undefined when the header could not be read. */
  architecture?: string;
  parameterCount?: number;
  /** Predominant tensor type, e.g. "F32", "Q8_0". */
  quantization?: string;
  contextLength?: number;
  layerCount?: number;
  embeddingLength?: number;
}

export interface GenerateOptions {
  /** Aborting cancels the job wherever it is: queued, loading or generating. */
  signal: AbortSignal;
  /** Called for every streamed piece, in order, before the promise resolves. */
  onDelta?: (delta: GenerationDelta) => void;
}

export interface LoadedModelStats {
  modelId: string;
  pid: number | undefined;
  state: "loading" | "ready" | "stopping";
  running: number;
  queued: number;
  lastUsedAt: number;
}

export interface EngineStats {
  loaded: LoadedModelStats[];
}

export interface InferenceEngine {
  listModels(): Promise<ModelDescriptor[]>;
  /** Resolves an id or alias; throws HEARTH_MODEL_NOT_FOUND. */
  resolveModel(idOrAlias: string): Promise<ModelDescriptor>;
  generate(job: GenerationJob, options: GenerateOptions): Promise<GenerationResult>;
  embed(job: EmbeddingJob, options: { signal: AbortSignal }): Promise<EmbeddingResult>;
  stats(): EngineStats;
}

/** Where model ids come from. Implemented by daemon/models/ModelRegistry.ts. */
export interface ModelCatalog {
  list(): Promise<ModelDescriptor[]>;
  /** Resolves an id or alias; throws HearthError HEARTH_MODEL_NOT_FOUND. */
  resolve(idOrAlias: string): Promise<ModelDescriptor>;
}
