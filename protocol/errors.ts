/**
 * The one catalogue of Hearth errors.
 *
 * Every failure a user, a client or a peer can observe is a `HearthError` with a stable
 * `code` from this table, made by one of the factories in `errors` (nothing else constructs
 * one; lint enforces it). The code is what callers branch on; it is also the OpenAI
 * `error.code`, and it travels unchanged over IPC and peer links so a remote failure keeps
 * its identity. Messages are for humans and may change.
 *
 * Each entry carries:
 *   - `fault`: who failed. Retry and failover decisions read this and nothing else
 *     (scheduler/retryPolicy.ts, daemon/jobs/JobRun.ts, daemon/split/SplitEngine.ts):
 *       client    the request (or the user's input) is wrong; it fails the same everywhere
 *       peer      another node, a link or a remote party failed or is unavailable
 *       runner    a model runner process failed (crash, load failure, a retired placement)
 *       resource  this node lacks capacity now: a full queue, memory, disk, native parts
 *       internal  a bug
 *   - `retryable`: sending the same request again later may succeed (429/503 answers carry
 *     `retry-after` when the error knows how long to wait).
 *   - `status` and `type`: the HTTP status and the OpenAI error type of the answer.
 *   - `closeCode`: the WebSocket close code when this error ends a peer link (4000-4999 ours).
 *
 * Pure: no I/O. docs/api.md lists the codes.
 */

export type OpenAiErrorType =
  | "invalid_request_error"
  | "authentication_error"
  | "permission_error"
  | "not_found_error"
  | "rate_limit_error"
  | "server_error"
  | "service_unavailable";

export type FaultClass = "client" | "peer" | "runner" | "resource" | "internal";

interface ErrorSpec {
  readonly status: number;
  readonly type: OpenAiErrorType;
  readonly closeCode: number;
  readonly fault: FaultClass;
  readonly retryable: boolean;
  readonly description: string;
}

export const ERROR_CATALOGUE = {
  // Request validation (HTTP 400 family)
  HEARTH_INVALID_JSON: { status: 400, type: "invalid_request_error", closeCode: 4400, fault: "client", retryable: false, description: "The request body is not valid JSON." },
  HEARTH_INVALID_REQUEST: { status: 400, type: "invalid_request_error", closeCode: 4400, fault: "client", retryable: false, description: "A field of the request is missing, has the wrong type, or has an invalid value." },
  HEARTH_UNSUPPORTED_SCHEMA: { status: 400, type: "invalid_request_error", closeCode: 4400, fault: "client", retryable: false, description: "The JSON schema in response_format or tools uses features Hearth cannot enforce." },
  HEARTH_CONTEXT_OVERFLOW: { status: 400, type: "invalid_request_error", closeCode: 4400, fault: "client", retryable: false, description: "The prompt does not fit in the model's context window." },
  HEARTH_UNSUPPORTED_MEDIA_TYPE: { status: 415, type: "invalid_request_error", closeCode: 4400, fault: "client", retryable: false, description: "The request body must be application/json." },
  HEARTH_BODY_TOO_LARGE: { status: 413, type: "invalid_request_error", closeCode: 4413, fault: "client", retryable: false, description: "The request body exceeds the configured limit." },
  HEARTH_NOT_FOUND: { status: 404, type: "not_found_error", closeCode: 4404, fault: "client", retryable: false, description: "No such endpoint." },
  HEARTH_METHOD_NOT_ALLOWED: { status: 405, type: "invalid_request_error", closeCode: 4400, fault: "client", retryable: false, description: "The endpoint does not accept this HTTP method." },
  HEARTH_MODEL_NOT_FOUND: { status: 404, type: "not_found_error", closeCode: 4404, fault: "client", retryable: false, description: "The requested model is not known to this node." },
  HEARTH_MODEL_NOT_CAPABLE: { status: 400, type: "invalid_request_error", closeCode: 4400, fault: "client", retryable: false, description: "The model cannot serve this kind of request." },

  // Access control
  HEARTH_UNAUTHORIZED: { status: 401, type: "authentication_error", closeCode: 4401, fault: "client", retryable: false, description: "A valid API key is required." },
  HEARTH_FORBIDDEN_HOST: { status: 403, type: "permission_error", closeCode: 4403, fault: "client", retryable: false, description: "The Host header does not name this node." },

  // Load shedding and capacity
  HEARTH_QUEUE_FULL: { status: 429, type: "rate_limit_error", closeCode: 4429, fault: "resource", retryable: true, description: "The model's request queue is full." },
  // 507 Insufficient Storage: the request is valid, the cluster lacks the memory to hold the model
  // (a server-side capacity state that changes when nodes join or free memory), unlike a 4xx.
  HEARTH_PLAN_DOES_NOT_FIT: { status: 507, type: "server_error", closeCode: 4507, fault: "resource", retryable: false, description: "The model does not fit in the memory budgets of the available nodes, whole or split." },
  HEARTH_SHUTTING_DOWN: { status: 503, type: "service_unavailable", closeCode: 1001, fault: "peer", retryable: true, description: "The daemon is shutting down." },
  HEARTH_CANCELLED: { status: 499, type: "invalid_request_error", closeCode: 4499, fault: "client", retryable: false, description: "The request was cancelled by the client." },
  HEARTH_INTERNAL: { status: 500, type: "server_error", closeCode: 1011, fault: "internal", retryable: false, description: "An unexpected internal error." },

  // Model runners (daemon/engine/, daemon/runner/)
  HEARTH_RUNNER_CRASHED: { status: 503, type: "service_unavailable", closeCode: 4503, fault: "runner", retryable: true, description: "The model's runner process exited or was killed while serving the request." },
  HEARTH_RUNNER_NOT_READY: { status: 503, type: "service_unavailable", closeCode: 4503, fault: "runner", retryable: true, description: "The request reached a runner that is not ready (loading, stopping or gone)." },
  HEARTH_MODEL_LOAD_FAILED: { status: 503, type: "service_unavailable", closeCode: 4503, fault: "runner", retryable: true, description: "The model could not be loaded." },
  HEARTH_PLACEMENT_RETIRED: { status: 503, type: "service_unavailable", closeCode: 4503, fault: "runner", retryable: true, description: "The split placement serving the request was retired: replaced, released, or it lost a node." },
  HEARTH_RECOVERY_EXHAUSTED: { status: 503, type: "service_unavailable", closeCode: 4503, fault: "runner", retryable: true, description: "The request was moved to a new placement as often as rpc.recovery_attempts allows, and failed again." },
  // The continuation sampled another token than the lost runner had (a grammar vetoed a forced
  // one): the request is not the one that was lost, and neither recovery nor another node could do better.
  HEARTH_RESUME_UNSUPPORTED: { status: 503, type: "service_unavailable", closeCode: 4503, fault: "client", retryable: true, description: "A generation interrupted by a lost node cannot be continued: replaying its tokens did not reproduce it." },

  // Local configuration and CLI (never sent over HTTP, but typed the same way)
  HEARTH_CONFIG_INVALID: { status: 500, type: "server_error", closeCode: 1011, fault: "client", retryable: false, description: "The configuration file or flags are invalid." },
  HEARTH_CLI_USAGE: { status: 400, type: "invalid_request_error", closeCode: 4400, fault: "client", retryable: false, description: "The command line arguments are invalid." },
  HEARTH_DAEMON_UNREACHABLE: { status: 503, type: "service_unavailable", closeCode: 1011, fault: "peer", retryable: true, description: "No Hearth daemon answers at the configured address." },
  HEARTH_DOWNLOAD_FAILED: { status: 502, type: "server_error", closeCode: 1011, fault: "peer", retryable: true, description: "Downloading a model failed." },

  // Model sharing between peers (daemon/sharing/)
  HEARTH_MODEL_NOT_SHARED: { status: 404, type: "not_found_error", closeCode: 4404, fault: "client", retryable: false, description: "This node does not offer a model file with that sha256 to peers." },
  HEARTH_MODEL_FETCH_REFUSED: { status: 403, type: "permission_error", closeCode: 4403, fault: "client", retryable: false, description: "The share policy does not allow fetching this model from a peer." },
  HEARTH_MODEL_TRANSFER_FAILED: { status: 502, type: "server_error", closeCode: 1011, fault: "peer", retryable: true, description: "A model transfer from a peer failed: the file did not verify or no peer could complete it." },
  HEARTH_INSUFFICIENT_DISK: { status: 507, type: "server_error", closeCode: 1011, fault: "resource", retryable: false, description: "Not enough free disk space in the models dir for the model and the configured reserve." },
  HEARTH_GGUF_INVALID: { status: 400, type: "invalid_request_error", closeCode: 4400, fault: "client", retryable: false, description: "The file is not a valid GGUF model." },
  HEARTH_NATIVE_MISSING: { status: 503, type: "service_unavailable", closeCode: 1011, fault: "resource", retryable: false, description: "rpc-server or the RPC shim is not built for the installed node-llama-cpp; layer splitting is unavailable on this node." },

  // Layer splitting over llama.cpp RPC (daemon/rpc/)
  HEARTH_RPC_UNAVAILABLE: { status: 503, type: "service_unavailable", closeCode: 4503, fault: "resource", retryable: false, description: "A node cannot serve layers: its rpc-server is not built, failed to start, or all its worker slots are taken." },

  // Peer links (docs/protocol.md lists the close codes). Standard WebSocket codes where one fits.
  HEARTH_PEER_FRAME_TOO_LARGE: { status: 413, type: "invalid_request_error", closeCode: 1009, fault: "peer", retryable: false, description: "A peer-link frame or stream chunk exceeds the size limit." },
  HEARTH_PEER_FRAME_INVALID: { status: 400, type: "invalid_request_error", closeCode: 1007, fault: "peer", retryable: false, description: "A peer-link frame is not plain MessagePack or does not match the message catalogue." },
  HEARTH_PEER_PROTOCOL_VIOLATION: { status: 400, type: "invalid_request_error", closeCode: 1002, fault: "peer", retryable: false, description: "A valid peer message arrived where the protocol does not allow it." },
  HEARTH_PEER_FLOW_CONTROL: { status: 400, type: "invalid_request_error", closeCode: 1008, fault: "peer", retryable: false, description: "A peer sent stream data beyond the credit it was granted." },
  HEARTH_PEER_AUTH_FAILED: { status: 401, type: "authentication_error", closeCode: 4401, fault: "peer", retryable: false, description: "The peer handshake was refused." },
  HEARTH_PEER_UNKNOWN_STREAM: { status: 404, type: "not_found_error", closeCode: 4404, fault: "peer", retryable: false, description: "A peer message names a stream that is not open." },
  HEARTH_PEER_TIMEOUT: { status: 504, type: "service_unavailable", closeCode: 4408, fault: "peer", retryable: true, description: "A peer did not answer in time (handshake or heartbeat)." },
  HEARTH_PEER_DUPLICATE_LINK: { status: 409, type: "invalid_request_error", closeCode: 4409, fault: "peer", retryable: false, description: "A link to this peer already exists; the duplicate is closed." },
  HEARTH_PEER_INCOMPATIBLE: { status: 426, type: "invalid_request_error", closeCode: 4426, fault: "peer", retryable: false, description: "The peer speaks an incompatible protocol version." },
  HEARTH_JOIN_TOKEN_INVALID: { status: 400, type: "invalid_request_error", closeCode: 4400, fault: "client", retryable: false, description: "The cluster join token is malformed or corrupted." },
  HEARTH_PEER_UNAVAILABLE: { status: 503, type: "service_unavailable", closeCode: 4503, fault: "peer", retryable: true, description: "No authenticated link to the peer is up, or it closed while a request or stream was in flight." },

  // Node identity and cluster membership in the data dir
  HEARTH_IDENTITY_INVALID: { status: 500, type: "server_error", closeCode: 1011, fault: "resource", retryable: false, description: "The node identity or cluster membership file in the data dir is unreadable or corrupt." },
  HEARTH_CLUSTER_CONFLICT: { status: 409, type: "invalid_request_error", closeCode: 4409, fault: "client", retryable: false, description: "This node already belongs to a different cluster; replacing the membership must be forced." },

  // Batch jobs (daemon/jobs/, protocol/batch/)
  HEARTH_BATCH_INVALID: { status: 400, type: "invalid_request_error", closeCode: 4400, fault: "client", retryable: false, description: "The batch input has invalid lines, no lines, or too many." },
  HEARTH_JOB_NOT_FOUND: { status: 404, type: "not_found_error", closeCode: 4404, fault: "client", retryable: false, description: "No batch job with this id." },
  HEARTH_JOB_NOT_FINISHED: { status: 409, type: "invalid_request_error", closeCode: 4409, fault: "client", retryable: false, description: "The batch job has not finished; its output is not complete yet." },

  // Stored responses of the Responses API (daemon/responses/)
  HEARTH_RESPONSE_NOT_FOUND: { status: 404, type: "not_found_error", closeCode: 4404, fault: "client", retryable: false, description: "No stored response with this id: never stored (store: false), deleted, expired or evicted." },
} as const satisfies Record<string, ErrorSpec>;

export type HearthErrorCode = keyof typeof ERROR_CATALOGUE;

export function isHearthErrorCode(value: unknown): value is HearthErrorCode {
  return typeof value === "string" && Object.hasOwn(ERROR_CATALOGUE, value);
}

export function faultOf(code: HearthErrorCode): FaultClass {
  return ERROR_CATALOGUE[code].fault;
}

export function isRetryable(code: HearthErrorCode): boolean {
  return ERROR_CATALOGUE[code].retryable;
}

/** The serialisable form of an error, as it crosses IPC, peer links and HTTP bodies. */
export interface ErrorPayload {
  code: HearthErrorCode;
  message: string;
  param?: string | null;
  /** Seconds the client should wait before retrying (429/503). */
  retryAfterSeconds?: number;
}

export interface ErrorOptions {
  param?: string | null;
  retryAfterSeconds?: number;
  cause?: unknown;
}

export class HearthError extends Error {
  override readonly name = "HearthError";
  readonly code: HearthErrorCode;
  readonly param: string | null;
  readonly retryAfterSeconds: number | undefined;

  /** Use the factories in `errors`; lint refuses `new HearthError` elsewhere. */
  constructor(code: HearthErrorCode, message?: string, options: ErrorOptions = {}) {
    super(message ?? ERROR_CATALOGUE[code].description, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.param = options.param ?? null;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }

  get status(): number {
    return ERROR_CATALOGUE[this.code].status;
  }

  get type(): OpenAiErrorType {
    return ERROR_CATALOGUE[this.code].type;
  }

  get closeCode(): number {
    return ERROR_CATALOGUE[this.code].closeCode;
  }

  get fault(): FaultClass {
    return ERROR_CATALOGUE[this.code].fault;
  }

  get retryable(): boolean {
    return ERROR_CATALOGUE[this.code].retryable;
  }

  toPayload(): ErrorPayload {
    const payload: ErrorPayload = { code: this.code, message: this.message, param: this.param };
    if (this.retryAfterSeconds !== undefined) payload.retryAfterSeconds = this.retryAfterSeconds;
    return payload;
  }

  /** OpenAI's error body: `{"error":{"message","type","param","code"}}`. */
  toOpenAiBody(): { error: { message: string; type: OpenAiErrorType; param: string | null; code: HearthErrorCode } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }

  static fromPayload(payload: ErrorPayload): HearthError {
    const code = isHearthErrorCode(payload.code) ? payload.code : "HEARTH_INTERNAL";
    const options: ErrorOptions = { param: payload.param ?? null };
    if (payload.retryAfterSeconds !== undefined) options.retryAfterSeconds = payload.retryAfterSeconds;
    return new HearthError(code, String(payload.message), options);
  }

  /** Wraps anything thrown into a HearthError, keeping HearthErrors as they are. */
  static from(error: unknown, fallback: HearthErrorCode = "HEARTH_INTERNAL"): HearthError {
    if (error instanceof HearthError) return error;
    const message = error instanceof Error ? error.message : String(error);
    return new HearthError(fallback, message, { cause: error });
  }
}

type Factory = (message?: string, options?: ErrorOptions) => HearthError;

function factory(code: HearthErrorCode): Factory {
  return (message, options) => new HearthError(code, message, options);
}

/** How much of a client's model name an error message echoes. */
const MAX_ECHOED_NAME = 200;

/**
 * The factories: one per code (a message and options, the catalogue's description when the
 * message is left out), plus the few with fixed wording, so a message said in many places is
 * written once.
 */
export const errors = {
  invalidJson: factory("HEARTH_INVALID_JSON"),
  invalidRequest: factory("HEARTH_INVALID_REQUEST"),
  unsupportedSchema: factory("HEARTH_UNSUPPORTED_SCHEMA"),
  contextOverflow: factory("HEARTH_CONTEXT_OVERFLOW"),
  unsupportedMediaType: factory("HEARTH_UNSUPPORTED_MEDIA_TYPE"),
  bodyTooLarge: factory("HEARTH_BODY_TOO_LARGE"),
  notFound: factory("HEARTH_NOT_FOUND"),
  methodNotAllowed: factory("HEARTH_METHOD_NOT_ALLOWED"),
  modelNotFound: factory("HEARTH_MODEL_NOT_FOUND"),
  modelNotCapable: factory("HEARTH_MODEL_NOT_CAPABLE"),
  unauthorized: factory("HEARTH_UNAUTHORIZED"),
  forbiddenHost: factory("HEARTH_FORBIDDEN_HOST"),
  queueFull: factory("HEARTH_QUEUE_FULL"),
  planDoesNotFit: factory("HEARTH_PLAN_DOES_NOT_FIT"),
  internal: factory("HEARTH_INTERNAL"),
  runnerCrashed: factory("HEARTH_RUNNER_CRASHED"),
  runnerNotReady: factory("HEARTH_RUNNER_NOT_READY"),
  modelLoadFailed: factory("HEARTH_MODEL_LOAD_FAILED"),
  placementRetired: factory("HEARTH_PLACEMENT_RETIRED"),
  recoveryExhausted: factory("HEARTH_RECOVERY_EXHAUSTED"),
  resumeUnsupported: factory("HEARTH_RESUME_UNSUPPORTED"),
  configInvalid: factory("HEARTH_CONFIG_INVALID"),
  cliUsage: factory("HEARTH_CLI_USAGE"),
  daemonUnreachable: factory("HEARTH_DAEMON_UNREACHABLE"),
  downloadFailed: factory("HEARTH_DOWNLOAD_FAILED"),
  modelNotShared: factory("HEARTH_MODEL_NOT_SHARED"),
  modelFetchRefused: factory("HEARTH_MODEL_FETCH_REFUSED"),
  modelTransferFailed: factory("HEARTH_MODEL_TRANSFER_FAILED"),
  insufficientDisk: factory("HEARTH_INSUFFICIENT_DISK"),
  ggufInvalid: factory("HEARTH_GGUF_INVALID"),
  nativeMissing: factory("HEARTH_NATIVE_MISSING"),
  rpcUnavailable: factory("HEARTH_RPC_UNAVAILABLE"),
  peerFrameTooLarge: factory("HEARTH_PEER_FRAME_TOO_LARGE"),
  peerFrameInvalid: factory("HEARTH_PEER_FRAME_INVALID"),
  peerProtocolViolation: factory("HEARTH_PEER_PROTOCOL_VIOLATION"),
  peerFlowControl: factory("HEARTH_PEER_FLOW_CONTROL"),
  peerAuthFailed: factory("HEARTH_PEER_AUTH_FAILED"),
  peerUnknownStream: factory("HEARTH_PEER_UNKNOWN_STREAM"),
  peerTimeout: factory("HEARTH_PEER_TIMEOUT"),
  peerDuplicateLink: factory("HEARTH_PEER_DUPLICATE_LINK"),
  peerIncompatible: factory("HEARTH_PEER_INCOMPATIBLE"),
  joinTokenInvalid: factory("HEARTH_JOIN_TOKEN_INVALID"),
  peerUnavailable: factory("HEARTH_PEER_UNAVAILABLE"),
  identityInvalid: factory("HEARTH_IDENTITY_INVALID"),
  clusterConflict: factory("HEARTH_CLUSTER_CONFLICT"),
  batchInvalid: factory("HEARTH_BATCH_INVALID"),
  jobNotFound: factory("HEARTH_JOB_NOT_FOUND"),
  jobNotFinished: factory("HEARTH_JOB_NOT_FINISHED"),
  responseNotFound: factory("HEARTH_RESPONSE_NOT_FOUND"),

  /** An error whose code is known only at run time (a peer's or the runner's, kept as it arrived). */
  withCode: (code: HearthErrorCode, message?: string, options?: ErrorOptions): HearthError => new HearthError(code, message, options),
  /** The caller gave up (client disconnect, Ctrl-C, a cancelled job). */
  cancelled: (message = "The request was cancelled by the client.", options?: ErrorOptions): HearthError => new HearthError("HEARTH_CANCELLED", message, options),
  /** This daemon refuses new work while it drains; `retryAfterSeconds` tells clients when to come back. */
  shuttingDown: (retryAfterSeconds?: number): HearthError =>
    new HearthError("HEARTH_SHUTTING_DOWN", "The daemon is shutting down.", retryAfterSeconds === undefined ? {} : { retryAfterSeconds }),
  /** A client's model name that names nothing `where` ("on this node", "on any node of the cluster"). */
  unknownModel: (name: unknown, where: string): HearthError =>
    new HearthError("HEARTH_MODEL_NOT_FOUND", `model ${JSON.stringify(String(name).slice(0, MAX_ECHOED_NAME))} not found ${where}`, { param: "model" }),
} as const satisfies Record<string, (...args: never[]) => HearthError>;

/** Every code has its factory (a unit test checks the names match the codes). */
export type ErrorFactories = typeof errors;
