/**
 * Every tunable limit and timing of the daemon, with its documented default, in one place.
 * docs/configuration.md mirrors this file; keep them in step.
 */

import os from "node:os";
import path from "node:path";
import type { DecodeBatching } from "../../protocol/runnerIpc.js";

export interface LimitsConfig {
  /** Largest accepted HTTP request body, in bytes. */
  maxBodyBytes: number;
  /** Requests waiting for a slot of one model, beyond those running; more get 429. */
  queueDepth: number;
  /** Requests one model serves at once (node-llama-cpp context sequences, batched). */
  parallelSlots: number;
  /** Idle time after which a loaded model's runner is stopped. */
  keepAliveMs: number;
  /** Context window per parallel slot, in tokens (capped at the model's training context). */
  contextSize: number;
  /** Largest number of inputs in one embeddings request. */
  maxEmbeddingInputs: number;
  /** Seconds suggested to clients in `retry-after` when the queue is full. */
  retryAfterSeconds: number;
  /** Period of `: keepalive` SSE comments while a streamed request waits (queue, model load). */
  sseKeepAliveMs: number;
}

export interface RunnerConfig {
  /** CPU threads per runner; 0 uses node-llama-cpp's math cores, capped at the cores this process may use. */
  threads: number;
  /** Layers offloaded to a GPU; "auto" lets node-llama-cpp decide (0 without a GPU). */
  gpuLayers: number | "auto";
  /** Logical batch size for prompt evaluation. */
  batchSize: number;
  /**
   * "exact": every answer is computed as it would be alone on a fresh runner, whatever runs
   * beside it; "throughput": parallel slots are decoded together (scheduler/exactDecoding.ts).
   */
  batching: DecodeBatching;
  /**
   * Let llama.cpp's CPU backend repack q4_0, q4_K, iq4_nl... weights for its faster kernels. A
   * split's peers (rpc-server) never repack, so with repacking a model's answer depends on
   * which layers the host holds; off keeps every placement's answer the same.
   */
  repackWeights: boolean;
  /**
   * Give each runner context a persistent CPU thread pool (native/hearth-threadpool.cpp).
   * Without it ggml starts and joins its threads for every decode, which inside a Node
   * process costs several milliseconds per token with more than one thread.
   */
  threadPool: boolean;
  /** How long a runner may take to load its model before it is killed. */
  loadTimeoutMs: number;
  /** How long a runner gets to exit after "shutdown" before SIGKILL. */
  stopTimeoutMs: number;
}

export interface ModelsConfig {
  /** alias -> model id (or another alias is not allowed: one level only). */
  aliases: Record<string, string>;
  /** Extra GGUF files outside the models dir. Their ids are their file names without .gguf. */
  extraPaths: string[];
  /**
   * Fetching a model this node lacks from a peer (daemon/sharing/): "always" fetches whenever
   * this node is asked to run it, "ask" only on `hearth pull MODEL --from-peer`, "never" not at all.
   */
  sharePolicy: SharePolicy;
  /** Serve this node's models to peers that ask for them by sha256. */
  serveToPeers: boolean;
  /** Free disk space that must remain in the models dir after a fetched model is complete. */
  diskReserveBytes: number;
  /** How long a fetch whose peer went away waits for a holder to come back before it fails. */
  fetchResumeTimeoutMs: number;
  /** A fetch that receives no byte for this long gives its peer up (and resumes elsewhere or later). */
  fetchStallTimeoutMs: number;
  /** Transfers this node serves to peers at once; more are refused (retryable) with HEARTH_QUEUE_FULL. */
  maxConcurrentServes: number;
  /**
   * How long a host waits for a peer it asked to fetch a model (`models.fetch`, before a split
   * over that peer) to have the whole file; after that the load pushes the weights over RPC.
   */
  peerFetchTimeoutMs: number;
}

export const SHARE_POLICIES = ["always", "ask", "never"] as const;
export type SharePolicy = (typeof SHARE_POLICIES)[number];

/** The model-sharing fields of ModelsConfig and their defaults. */
export const DEFAULT_MODEL_SHARING: Omit<ModelsConfig, "aliases" | "extraPaths"> = {
  sharePolicy: "always",
  serveToPeers: true,
  diskReserveBytes: 1024 * 1024 * 1024,
  fetchResumeTimeoutMs: 120_000,
  fetchStallTimeoutMs: 30_000,
  maxConcurrentServes: 4,
  peerFetchTimeoutMs: 30 * 60_000,
};

export interface LogConfig {
  level: "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "silent";
  /** Pretty-print logs; undefined means "when stdout is a TTY". */
  pretty?: boolean;
}

export interface HearthConfig {
  /** Address the HTTP API binds to. Anything but loopback requires an API key. */
  host: string;
  port: number;
  modelsDir: string;
  dataDir: string;
  /** Bearer token required on /v1 (and /hearth) requests when set. */
  apiKey?: string;
  /** Extra names accepted in the Host header besides this node's addresses and localhost. */
  allowedHosts: string[];
  models: ModelsConfig;
  limits: LimitsConfig;
  runner: RunnerConfig;
  log: LogConfig;
  /** How long SIGTERM waits for in-flight generations before aborting them. */
  drainTimeoutMs: number;
  /** Peer links, discovery and the cluster state this node shares; used only once the node has joined a cluster. */
  peer: PeerConfig;
  /** Batch jobs coordinated by this node (daemon/jobs/). */
  jobs: JobsConfig;
  /** Serving layers to hosts that split a model onto this node, and reaching peers' layers (daemon/rpc/). */
  rpc: RpcConfig;
  /** Stored responses of the Responses API (daemon/responses/). */
  responses: ResponsesConfig;
}

/**
 * The response store (daemon/responses/ResponseStore.ts) under `<data_dir>/responses/`: what
 * `store: true` keeps for GET /v1/responses/{id} and `previous_response_id`. Past any bound
 * the oldest responses are removed first.
 */
export interface ResponsesConfig {
  /** Most responses kept. */
  maxStored: number;
  /** Most bytes the stored responses take on disk together. */
  maxStoredBytes: number;
  /** A response older than this is removed (OpenAI keeps them 30 days). */
  maxAgeMs: number;
}

export const DEFAULT_RESPONSES: ResponsesConfig = {
  maxStored: 10_000,
  maxStoredBytes: 256 * 1024 * 1024,
  maxAgeMs: 30 * 24 * 60 * 60 * 1000,
};

export const RESPONSES_DIR_NAME = "responses";

/**
 * Layer splitting over llama.cpp RPC (daemon/rpc/): the rpc-server workers this node runs for
 * hosts that put layers on it, and their tensor cache. Ports are never configured: a worker
 * binds 127.0.0.1 on a free port and is reached only through the peer link.
 */
export interface RpcConfig {
  /** CPU threads of each worker; 0 uses every core (os.availableParallelism()). */
  threads: number;
  /** rpc-server's tensor cache (content-addressed, shared by all workers). Default: <data_dir>/rpc-cache. */
  cacheDir: string;
  /** Most bytes the tensor cache keeps; least recently used entries are removed first. */
  cacheMaxBytes: number;
  /** Pre-fill the cache from this node's own copy of a model a host is about to split onto it. */
  prefill: boolean;
  /** A worker with no tunnel connection for this long is stopped. */
  idleTimeoutMs: number;
  /** How long a worker may take to start answering. */
  startTimeoutMs: number;
  /** Hosts served at once, one worker each; more are refused with HEARTH_RPC_UNAVAILABLE. */
  maxWorkers: number;
  /** How long a host waits for a peer's rpc.prepare (hashing a large model takes a while). */
  prepareTimeoutMs: number;
  /**
   * Bytes this node offers a model (whole, or its layers of a split), published to peers and
   * used by the split planner (daemon/split/). 0: detected free RAM (free VRAM with a GPU
   * backend) minus memoryHeadroomBytes.
   */
  memoryBudgetBytes: number;
  /** What the automatic budget leaves free for the OS and everything else. */
  memoryHeadroomBytes: number;
  /** How many times one request may be continued on a new placement after a node holding layers is lost. */
  recoveryAttempts: number;
  /** After a split's runner fails, how long to wait for the lost node's link to be declared down before re-planning. */
  lostNodeWaitMs: number;
}

/** Everything but cacheDir, which follows data_dir (loadConfig fills it in). */
export const DEFAULT_RPC: Omit<RpcConfig, "cacheDir"> = {
  threads: 0,
  cacheMaxBytes: 64 * 1024 * 1024 * 1024,
  prefill: true,
  idleTimeoutMs: 10 * 60 * 1000,
  startTimeoutMs: 15_000,
  maxWorkers: 4,
  prepareTimeoutMs: 10 * 60 * 1000,
  memoryBudgetBytes: 0,
  memoryHeadroomBytes: 1024 * 1024 * 1024,
  recoveryAttempts: 2,
  lostNodeWaitMs: 5_000,
};

export const RPC_CACHE_DIR_NAME = "rpc-cache";

/** Batch jobs (daemon/jobs/): submission limits and how items are spread over the nodes. */
export interface JobsConfig {
  /** Largest accepted batch input (the POST /hearth/v1/jobs body), in bytes; max_body_bytes does not apply to it. */
  maxInputBytes: number;
  /** Most items (non-blank lines) in one job. */
  maxItems: number;
  /** Items one node runs at once for a job (each node still queues them behind its own parallel slots). */
  inFlightPerNode: number;
  /** Runs of one item on failing nodes (node gone, link dropped, runner crashed) before it becomes an error line. */
  maxAttempts: number;
  /** How often a running job re-reads the cluster, so nodes that joined get work and nodes that left lose theirs. */
  refreshIntervalMs: number;
  /** Jobs running at once on this node; later ones wait in order. */
  maxRunning: number;
}

export const DEFAULT_JOBS: JobsConfig = {
  maxInputBytes: 64 * 1024 * 1024,
  maxItems: 50_000,
  inFlightPerNode: 4,
  maxAttempts: 3,
  refreshIntervalMs: 5_000,
  maxRunning: 1,
};

export const DEFAULT_PORT = 4327;
export const DEFAULT_HOST = "127.0.0.1";

export const DEFAULT_LIMITS: LimitsConfig = {
  maxBodyBytes: 4 * 1024 * 1024,
  queueDepth: 64,
  parallelSlots: 4,
  keepAliveMs: 5 * 60 * 1000,
  contextSize: 4096,
  maxEmbeddingInputs: 2048,
  retryAfterSeconds: 1,
  sseKeepAliveMs: 15_000,
};

export const DEFAULT_RUNNER: RunnerConfig = {
  threads: 0,
  gpuLayers: "auto",
  batchSize: 512,
  batching: "exact",
  repackWeights: false,
  threadPool: true,
  loadTimeoutMs: 120_000,
  stopTimeoutMs: 5_000,
};

export const DEFAULT_DRAIN_TIMEOUT_MS = 10_000;

/**
 * Caps on what the GGUF header reader (daemon/gguf/reader.ts) accepts, so a corrupt or hostile
 * file in the models dir cannot make the daemon allocate without bound. Real models stay far
 * below them: a 256k-token vocabulary is ~4 MB of header and 256k array entries.
 */
export interface GgufLimitsConfig {
  /** Most header bytes (metadata + tensor infos) read from one file. */
  maxHeaderBytes: number;
  /** Most metadata key/value pairs. */
  maxMetadataEntries: number;
  /** Most tensors. */
  maxTensors: number;
  /** Longest single string (key, value or tensor name), in bytes. */
  maxStringBytes: number;
  /** Most elements in one metadata array. */
  maxArrayLength: number;
}

export const DEFAULT_GGUF_LIMITS: GgufLimitsConfig = {
  maxHeaderBytes: 256 * 1024 * 1024,
  maxMetadataEntries: 65_536,
  maxTensors: 1_048_576,
  maxStringBytes: 16 * 1024 * 1024,
  maxArrayLength: 16 * 1024 * 1024,
};

/**
 * Peer links (daemon/peers/): where the peer listener binds, the frame limits, the handshake
 * and liveness timings, and the listener's abuse limits. docs/protocol.md explains each.
 * A heartbeat every 2 s and a 9 s silence timeout find a frozen or cut-off peer within the
 * 10 s / 15 s targets; a killed peer usually shows at once through the TCP reset.
 */
export interface PeerConfig {
  /** Address the peer listener binds to; peers on the LAN must reach it. */
  host: string;
  port: number;
  /** Largest frame accepted or sent, in bytes; also the WebSocket `maxPayload`. */
  maxFrameBytes: number;
  /** Largest `streamData` chunk accepted or sent, in bytes. */
  maxStreamChunkBytes: number;
  /** Deepest nesting of arrays and maps accepted in a frame. */
  maxNestingDepth: number;
  /** TLS + WebSocket upgrade + peer handshake must finish within this, or the link closes with 4408. */
  handshakeTimeoutMs: number;
  /** How often each side sends a heartbeat on an up link. */
  heartbeatIntervalMs: number;
  /** Silence (no frame at all) after which a link is declared dead and closed with 4408. */
  heartbeatTimeoutMs: number;
  /** How long a closing link waits for the peer's close frame before dropping the socket. */
  closeGraceMs: number;
  /** TCP connect + TLS + WebSocket upgrade when dialling. */
  dialTimeoutMs: number;
  /** First redial delay after a failed dial; doubles per failure up to `dialBackoffMaxMs`. */
  dialBackoffInitialMs: number;
  dialBackoffMaxMs: number;
  /** Fraction (0-1) of each backoff delay that is randomised, so peers do not redial in lockstep. */
  dialBackoffJitter: number;
  /** Default time a peer request may take before it is cancelled with HEARTH_PEER_TIMEOUT. */
  requestTimeoutMs: number;
  /** Requests from one peer handled at once; more are answered with HEARTH_QUEUE_FULL. */
  maxConcurrentRequests: number;
  /** Streams open at once on one link (both directions); more are refused with HEARTH_QUEUE_FULL. */
  maxOpenStreams: number;
  /** Bytes a stream receiver lets its peer send ahead of what has been read (per stream, per direction). */
  streamWindowBytes: number;
  /** Messages for never-opened streams tolerated per link before it is closed with 4404. */
  maxUnknownStreamMessages: number;
  /** Handshakes in progress on the listener at once; more are refused with HTTP 503. */
  maxPendingHandshakes: number;
  /** Open connections on the peer listener (links and handshakes). */
  maxConnections: number;
  /** Failed handshakes from one address within `failedAttemptWindowMs` before it is refused with HTTP 429. */
  maxFailedAttempts: number;
  failedAttemptWindowMs: number;
  /** Addresses the failed-attempt limiter remembers; the oldest is forgotten first. */
  maxTrackedAddresses: number;
  /** `host:port` entries dialled besides what mDNS finds, for networks that drop multicast. */
  staticPeers: string[];
  /** Advertise and browse `_hearth._tcp` on the LAN. */
  mdns: boolean;
  /** How often this node's state snapshot is re-sent to peers even when nothing else changed (free RAM drifts). */
  statePublishIntervalMs: number;
  /** Tokens generated by the one-off speed measurement of each model (greedy, fixed prompt). */
  speedProbeTokens: number;
  /** How long the GPU probe child process may take before it is killed (the node then reports no GPU). */
  hardwareProbeTimeoutMs: number;
}

export const DEFAULT_PEER_PORT = 4328;

export const DEFAULT_PEER: PeerConfig = {
  host: "0.0.0.0",
  port: DEFAULT_PEER_PORT,
  maxFrameBytes: 1024 * 1024,
  maxStreamChunkBytes: 256 * 1024,
  maxNestingDepth: 32,
  handshakeTimeoutMs: 10_000,
  heartbeatIntervalMs: 2_000,
  heartbeatTimeoutMs: 9_000,
  closeGraceMs: 1_000,
  dialTimeoutMs: 5_000,
  dialBackoffInitialMs: 500,
  dialBackoffMaxMs: 30_000,
  dialBackoffJitter: 0.5,
  requestTimeoutMs: 30_000,
  maxConcurrentRequests: 256,
  maxOpenStreams: 256,
  streamWindowBytes: 1024 * 1024,
  maxUnknownStreamMessages: 64,
  maxPendingHandshakes: 16,
  maxConnections: 64,
  maxFailedAttempts: 10,
  failedAttemptWindowMs: 60_000,
  maxTrackedAddresses: 4096,
  staticPeers: [],
  mdns: true,
  statePublishIntervalMs: 10_000,
  speedProbeTokens: 32,
  hardwareProbeTimeoutMs: 30_000,
};

export const DEFAULT_LOG_LEVEL: LogConfig["level"] = "info";

/** XDG base directories, resolved from the environment at call time. */
export function xdgConfigHome(env: NodeJS.ProcessEnv = process.env): string {
  return env["XDG_CONFIG_HOME"] || path.join(os.homedir(), ".config");
}

export function xdgDataHome(env: NodeJS.ProcessEnv = process.env): string {
  return env["XDG_DATA_HOME"] || path.join(os.homedir(), ".local", "share");
}

export function defaultConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(xdgConfigHome(env), "hearth", "config.toml");
}

export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(xdgDataHome(env), "hearth");
}
