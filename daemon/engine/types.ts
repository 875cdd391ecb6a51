/**
 * What the HTTP API (and later the peer links) needs from whatever runs models.
 *
 * The local implementation is `LocalEngine` (daemon/engine/LocalEngine.ts), which resolves
 * model ids through the model registry and executes jobs in runner child processes. Errors
 * are always thrown as `HearthError` with a code from protocol/errors.ts.
 */

import type { LoadedModelStats } from "../../protocol/api/status.js";
import type { EmbeddingJob, EmbeddingResult, GenerationDelta, GenerationJob, GenerationResult } from "../../protocol/inference.js";
import type { ResumeState } from "../../protocol/runnerIpc.js";

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

/**
 * What a model is, wherever in the cluster it lives: a ModelDescriptor without the file path
 * (a peer's model has none here). The cluster router (daemon/routing/) adds `cluster`.
 */
export type ModelInfo = Omit<ModelDescriptor, "path"> & {
  /** Where the model is in the cluster: its file's hash and every node holding it. */
  cluster?: ModelPlacementInfo;
};

export interface ModelPlacementInfo {
  /** Null until hashed; models are deduplicated across nodes by it. */
  sha256: string | null;
  nodes: Array<{ nodeId: string; modelId: string; loaded: boolean }>;
}

/** How the cluster router may place a job (daemon/routing/RoutingEngine.ts); a local engine ignores it. */
export interface RouteOptions {
  /** A full node id or a unique prefix (>= 6 characters): run there or fail, never retried elsewhere. */
  pinnedNodeId?: string;
  /** Nodes that must not run this job (a caller's own retry). */
  excludeNodeIds?: readonly string[];
  /** Retry once on another node when the chosen one fails before the first token. Default true. */
  retry?: boolean;
  /** A layer split the request forces (`hearth.placement`; daemon/split/). Node ids may be prefixes. */
  placement?: { nodes: readonly string[]; layers: readonly number[] };
}

export interface GenerateOptions {
  /** Aborting cancels the job wherever it is: queued, loading or generating. */
  signal: AbortSignal;
  /** The job's model as resolveModel() gave it to the caller (the HTTP handler), so the name is resolved once. */
  model?: ModelInfo;
  /** Called for every streamed piece, in order, before the promise resolves. */
  onDelta?: (delta: GenerationDelta) => void;
  route?: RouteOptions;
  /** Called with the node id each time an attempt is placed on a node, before it runs there. */
  onNode?: (nodeId: string) => void;
  /**
   * How long this node keeps the model loaded once idle after the job, when the job runs
   * whole here (Ollama's `keep_alive`): 0 unloads it right after, Infinity never. Absent, or
   * a job run on a peer or split: the executing node's `limits.keep_alive`.
   */
  keepAliveMs?: number;
}

export interface EmbedOptions {
  signal: AbortSignal;
  model?: ModelInfo;
  route?: RouteOptions;
  onNode?: (nodeId: string) => void;
  /** As GenerateOptions.keepAliveMs. */
  keepAliveMs?: number;
}

/** What GET /hearth/v1/status shows under `models`. */
export interface EngineStats {
  loaded: LoadedModelStats[];
}

export interface InferenceEngine {
  listModels(): Promise<ModelInfo[]>;
  /** Resolves an id or alias; throws HEARTH_MODEL_NOT_FOUND. */
  resolveModel(idOrAlias: string): Promise<ModelInfo>;
  generate(job: GenerationJob, options: GenerateOptions): Promise<GenerationResult>;
  embed(job: EmbeddingJob, options: EmbedOptions): Promise<EmbeddingResult>;
  stats(): EngineStats;
}

/** How a job runs on this machine (LocalEngine). */
export interface LocalJobOptions {
  signal: AbortSignal;
  onDelta?: (delta: GenerationDelta) => void;
  /** The model, already resolved by the caller; resolved from the job's name otherwise. */
  descriptor?: ModelDescriptor;
  /** Token ids as they are generated, for exact continuation (daemon/split/continuation.ts). */
  onTokens?: (tokens: number[]) => void;
  /** Continue a generation a lost runner started. */
  resume?: ResumeState;
  /** How long the model stays loaded once idle after this job (ModelHost SubmitOptions). */
  keepAliveMs?: number;
}

/** An engine that runs models from files on this machine (LocalEngine): its models have paths. */
export interface LocalInferenceEngine {
  listModels(): Promise<ModelDescriptor[]>;
  resolveModel(idOrAlias: string): Promise<ModelDescriptor>;
  generate(job: GenerationJob, options: LocalJobOptions): Promise<GenerationResult>;
  embed(job: EmbeddingJob, options: Pick<LocalJobOptions, "signal" | "descriptor" | "keepAliveMs">): Promise<EmbeddingResult>;
  stats(): EngineStats;
}

/** Where model ids come from. Implemented by daemon/models/ModelRegistry.ts. */
export interface ModelCatalog {
  list(): Promise<ModelDescriptor[]>;
  /** Resolves an id or alias; throws HearthError HEARTH_MODEL_NOT_FOUND. */
  resolve(idOrAlias: string): Promise<ModelDescriptor>;
}
