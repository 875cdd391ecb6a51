/**
 * The one catalogue of Hearth errors.
 *
 * Every failure a user, a client or a peer can observe is a `HearthError` with a stable
 * `code` from this table. The code is what callers branch on; it is also the OpenAI
 * `error.code`, and it travels unchanged over IPC and peer links so a remote failure keeps
 * its identity. Messages are for humans and may change.
 *
 * Pure: no I/O. The HTTP layer maps `status`/`type` onto responses, peer links map
 * `closeCode` onto WebSocket close frames.
 */

export type OpenAiErrorType =
  | "invalid_request_error"
  | "authentication_error"
  | "permission_error"
  | "not_found_error"
  | "rate_limit_error"
  | "server_error"
  | "service_unavailable";

interface ErrorSpec {
  readonly status: number;
  readonly type: OpenAiErrorType;
  /** WebSocket close code used when this error ends a peer link (4000-4999 is ours). */
  readonly closeCode: number;
  readonly description: string;
}

export const ERROR_CATALOGUE = {
  // Request validation (HTTP 400 family)
  HEARTH_INVALID_JSON: { status: 400, type: "invalid_request_error", closeCode: 4400, description: "The request body is not valid JSON." },
  HEARTH_INVALID_REQUEST: { status: 400, type: "invalid_request_error", closeCode: 4400, description: "A field of the request is missing, has the wrong type, or has an invalid value." },
  HEARTH_UNSUPPORTED_SCHEMA: { status: 400, type: "invalid_request_error", closeCode: 4400, description: "The JSON schema in response_format or tools uses features Hearth cannot enforce." },
  HEARTH_CONTEXT_OVERFLOW: { status: 400, type: "invalid_request_error", closeCode: 4400, description: "The prompt does not fit in the model's context window." },
  HEARTH_UNSUPPORTED_MEDIA_TYPE: { status: 415, type: "invalid_request_error", closeCode: 4400, description: "The request body must be application/json." },
  HEARTH_BODY_TOO_LARGE: { status: 413, type: "invalid_request_error", closeCode: 4413, description: "The request body exceeds the configured limit." },
  HEARTH_NOT_FOUND: { status: 404, type: "not_found_error", closeCode: 4404, description: "No such endpoint." },
  HEARTH_METHOD_NOT_ALLOWED: { status: 405, type: "invalid_request_error", closeCode: 4400, description: "The endpoint does not accept this HTTP method." },
  HEARTH_MODEL_NOT_FOUND: { status: 404, type: "not_found_error", closeCode: 4404, description: "The requested model is not known to this node." },
  HEARTH_MODEL_NOT_CAPABLE: { status: 400, type: "invalid_request_error", closeCode: 4400, description: "The model cannot serve this kind of request." },

  // Access control
  HEARTH_UNAUTHORIZED: { status: 401, type: "authentication_error", closeCode: 4401, description: "A valid API key is required." },
  HEARTH_FORBIDDEN_HOST: { status: 403, type: "permission_error", closeCode: 4403, description: "The Host header does not name this node." },

  // Load shedding and availability
  HEARTH_QUEUE_FULL: { status: 429, type: "rate_limit_error", closeCode: 4429, description: "The model's request queue is full." },
  HEARTH_RUNNER_FAILED: { status: 503, type: "service_unavailable", closeCode: 4503, description: "The model runner process failed while serving the request." },
  HEARTH_MODEL_LOAD_FAILED: { status: 503, type: "service_unavailable", closeCode: 4503, description: "The model could not be loaded." },
  // 507 Insufficient Storage: the request is valid, the cluster lacks the memory to hold the model
  // (a server-side capacity state that changes when nodes join or free memory), unlike a 4xx.
  HEARTH_PLAN_DOES_NOT_FIT: { status: 507, type: "server_error", closeCode: 4507, description: "The model does not fit in the memory budgets of the available nodes, whole or split." },
  HEARTH_SHUTTING_DOWN: { status: 503, type: "service_unavailable", closeCode: 1001, description: "The daemon is shutting down." },
  HEARTH_CANCELLED: { status: 499, type: "invalid_request_error", closeCode: 4499, description: "The request was cancelled by the client." },
  HEARTH_INTERNAL: { status: 500, type: "server_error", closeCode: 1011, description: "An unexpected internal error." },

  // Local configuration and CLI (never sent over HTTP, but typed the same way)
  HEARTH_CONFIG_INVALID: { status: 500, type: "server_error", closeCode: 1011, description: "The configuration file or flags are invalid." },
  HEARTH_CLI_USAGE: { status: 400, type: "invalid_request_error", closeCode: 4400, description: "The command line arguments are invalid." },
  HEARTH_DAEMON_UNREACHABLE: { status: 503, type: "service_unavailable", closeCode: 1011, description: "No Hearth daemon answers at the configured address." },
  HEARTH_DOWNLOAD_FAILED: { status: 502, type: "server_error", closeCode: 1011, description: "Downloading a model failed." },

  // Model sharing between peers (daemon/sharing/)
  HEARTH_MODEL_NOT_SHARED: { status: 404, type: "not_found_error", closeCode: 4404, description: "This node does not offer a model file with that sha256 to peers." },
  HEARTH_MODEL_FETCH_REFUSED: { status: 403, type: "permission_error", closeCode: 4403, description: "The share policy does not allow fetching this model from a peer." },
  HEARTH_MODEL_TRANSFER_FAILED: { status: 502, type: "server_error", closeCode: 1011, description: "A model transfer from a peer failed: the file did not verify or no peer could complete it." },
  HEARTH_INSUFFICIENT_DISK: { status: 507, type: "server_error", closeCode: 1011, description: "Not enough free disk space in the models dir for the model and the configured reserve." },
  HEARTH_GGUF_INVALID: { status: 400, type: "invalid_request_error", closeCode: 4400, description: "The file is not a valid GGUF model." },
  HEARTH_NATIVE_MISSING: { status: 503, type: "service_unavailable", closeCode: 1011, description: "rpc-server or the RPC shim is not built for the installed node-llama-cpp; layer splitting is unavailable on this node." },

  // Layer splitting over llama.cpp RPC (daemon/rpc/)
  HEARTH_RPC_UNAVAILABLE: { status: 503, type: "service_unavailable", closeCode: 4503, description: "A node cannot serve layers: its rpc-server is not built, failed to start, or all its worker slots are taken." },

  // Peer links (docs/protocol.md lists the close codes). Standard WebSocket codes where one fits.
  HEARTH_PEER_FRAME_TOO_LARGE: { status: 413, type: "invalid_request_error", closeCode: 1009, description: "A peer-link frame or stream chunk exceeds the size limit." },
  HEARTH_PEER_FRAME_INVALID: { status: 400, type: "invalid_request_error", closeCode: 1007, description: "A peer-link frame is not plain MessagePack or does not match the message catalogue." },
  HEARTH_PEER_PROTOCOL_VIOLATION: { status: 400, type: "invalid_request_error", closeCode: 1002, description: "A valid peer message arrived where the protocol does not allow it." },
  HEARTH_PEER_FLOW_CONTROL: { status: 400, type: "invalid_request_error", closeCode: 1008, description: "A peer sent stream data beyond the credit it was granted." },
  HEARTH_PEER_AUTH_FAILED: { status: 401, type: "authentication_error", closeCode: 4401, description: "The peer handshake was refused." },
  HEARTH_PEER_UNKNOWN_STREAM: { status: 404, type: "not_found_error", closeCode: 4404, description: "A peer message names a stream that is not open." },
  HEARTH_PEER_TIMEOUT: { status: 504, type: "service_unavailable", closeCode: 4408, description: "A peer did not answer in time (handshake or heartbeat)." },
  HEARTH_PEER_DUPLICATE_LINK: { status: 409, type: "invalid_request_error", closeCode: 4409, description: "A link to this peer already exists; the duplicate is closed." },
  HEARTH_PEER_INCOMPATIBLE: { status: 426, type: "invalid_request_error", closeCode: 4426, description: "The peer speaks an incompatible protocol version." },
  HEARTH_JOIN_TOKEN_INVALID: { status: 400, type: "invalid_request_error", closeCode: 4400, description: "The cluster join token is malformed or corrupted." },
  HEARTH_PEER_UNAVAILABLE: { status: 503, type: "service_unavailable", closeCode: 4503, description: "No authenticated link to the peer is up, or it closed while a request or stream was in flight." },

  // Node identity and cluster membership in the data dir
  HEARTH_IDENTITY_INVALID: { status: 500, type: "server_error", closeCode: 1011, description: "The node identity or cluster membership file in the data dir is unreadable or corrupt." },
  HEARTH_CLUSTER_CONFLICT: { status: 409, type: "invalid_request_error", closeCode: 4409, description: "This node already belongs to a different cluster; replacing the membership must be forced." },

  // Batch jobs (daemon/jobs/, protocol/batch/)
  HEARTH_BATCH_INVALID: { status: 400, type: "invalid_request_error", closeCode: 4400, description: "The batch input has invalid lines, no lines, or too many." },
  HEARTH_JOB_NOT_FOUND: { status: 404, type: "not_found_error", closeCode: 4404, description: "No batch job with this id." },
  HEARTH_JOB_NOT_FINISHED: { status: 409, type: "invalid_request_error", closeCode: 4409, description: "The batch job has not finished; its output is not complete yet." },
} as const satisfies Record<string, ErrorSpec>;

export type HearthErrorCode = keyof typeof ERROR_CATALOGUE;

export function isHearthErrorCode(value: unknown): value is HearthErrorCode {
  return typeof value === "string" && Object.hasOwn(ERROR_CATALOGUE, value);
}

/** The serialisable form of an error, as it crosses IPC, peer links and HTTP bodies. */
export interface ErrorPayload {
  code: HearthErrorCode;
  message: string;
  param?: string | null;
  /** Seconds the client should wait before retrying (429/503). */
  retryAfterSeconds?: number;
}

export class HearthError extends Error {
  override readonly name = "HearthError";
  readonly code: HearthErrorCode;
  readonly param: string | null;
  readonly retryAfterSeconds: number | undefined;

  constructor(code: HearthErrorCode, message?: string, options: { param?: string | null; retryAfterSeconds?: number; cause?: unknown } = {}) {
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
    const options: { param?: string | null; retryAfterSeconds?: number } = { param: payload.param ?? null };
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
