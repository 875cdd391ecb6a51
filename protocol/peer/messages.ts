/**
 * The peer-link message catalogue, defined once as zod schemas; the TypeScript types are
 * inferred from them, so what the compiler checks and what the wire accepts cannot drift.
 *
 * Every message is a MessagePack map with a `type` discriminator. Every string, array and
 * byte field has a maximum length, every number is finite and bounded, and every id matches
 * a strict pattern, so a frame that passes validation is safe to log, store and act on.
 * Objects strip unknown fields rather than rejecting them: a newer minor version may add
 * optional fields, and an older peer simply does not see them. docs/protocol.md describes
 * each message and its limits; keep them in step.
 *
 * Pure: no I/O.
 */

import { z } from "zod";
import { isHearthErrorCode } from "../errors.js";
import type { ErrorPayload } from "../errors.js";
import { FINGERPRINT_HEX_PATTERN, isValidNodeId } from "./identity.js";

/**
 * Hard bounds of the wire format. They are part of the protocol (changing one is a version
 * change), unlike the frame limits in codec.ts, which are local configuration.
 */
export const PEER_WIRE_LIMITS = {
  maxSoftwareVersionLength: 64,
  maxCapabilities: 64,
  maxCapabilityLength: 64,
  nonceBytes: 32,
  proofBytes: 32,
  maxErrorMessageLength: 4096,
  maxErrorParamLength: 256,
  maxRetryAfterSeconds: 86_400,
  maxMethodLength: 64,
  maxPurposeLength: 64,
  maxReasonLength: 1024,
  maxTimeoutMs: 86_400_000,
  maxGpuDevices: 64,
  maxGpuNameLength: 256,
  maxModelsPresent: 1024,
  maxModelsLoaded: 256,
  maxSpeedScores: 1024,
  maxModelIdLength: 200,
  maxCpuCores: 65_536,
  maxQueueDepth: 1_000_000,
  maxTokensPerSecond: 10_000_000,
  /** Largest credit grant in one message (1 GiB). */
  maxCreditBytes: 1024 * 1024 * 1024,
  /** Hard cap of one data chunk; the configured limit (codec.ts) is usually lower. */
  maxChunkBytes: 1024 * 1024,
  /** Largest timestamp: the end of JavaScript's Date range, in ms. */
  maxTimestampMs: 8.64e15,
} as const;

// ---- field builders --------------------------------------------------------------------

/** Non-negative safe integer (counters, sizes in bytes, sequence numbers). */
const uint = () => z.int().min(0);

/** Ids of requests and streams: positive safe integers, never reused on one link. */
const linkId = () => z.int().min(1);

/** Single-line text without control characters (names, versions, reasons). */
const label = (max: number) =>
  z
    .string()
    .max(max)
    .regex(/^[^\p{Cc}]*$/u, "must not contain control characters");

/** Human text that may span lines (error messages); no other control characters. */
const text = (max: number) =>
  z
    .string()
    .max(max)
    .regex(/^(?:[^\p{Cc}]|[\t\n])*$/u, "must not contain control characters other than tab and newline");

const bytes = (minBytes: number, maxBytes: number) =>
  z.custom<Uint8Array>((value) => value instanceof Uint8Array && value.byteLength >= minBytes && value.byteLength <= maxBytes, {
    error: minBytes === maxBytes ? `expected ${minBytes} bytes` : `expected ${minBytes} to ${maxBytes} bytes`,
  });

/** Dotted lower-camel names: `cluster.state`, `infer.chat`, `tunnel.rpc`. */
const DOTTED_NAME_PATTERN = /^[a-z][a-zA-Z0-9]*(?:\.[a-z][a-zA-Z0-9]*)*$/;
/** Capability tokens: `streams`, `rpc-tunnel`, `state.gpu-v2`. */
const CAPABILITY_PATTERN = /^[a-z][a-z0-9-]*(?:\.[a-z0-9][a-z0-9-]*)*$/;
/** Model ids as the API knows them (GGUF file names without `.gguf`); never a path. */
export const MODEL_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._+:@-]*$/;
const SOFTWARE_VERSION_PATTERN = /^[0-9A-Za-z][0-9A-Za-z.+-]*$/;
const SHA256_HEX_PATTERN = /^[0-9a-f]{64}$/;
const GPU_BACKEND_PATTERN = /^[a-z][a-z0-9-]{0,31}$/;
const ERROR_CODE_PATTERN = /^HEARTH_[A-Z0-9_]{1,64}$/;

export const nodeIdSchema = z.string().refine(isValidNodeId, "must be a node id (8 groups of 7 base32 characters with valid check characters)");
export const fingerprintHexSchema = z.string().regex(FINGERPRINT_HEX_PATTERN, "must be 64 lower-case hex characters");
export const modelIdSchema = z.string().min(1).max(PEER_WIRE_LIMITS.maxModelIdLength).regex(MODEL_ID_PATTERN);
export const protocolVersionSchema = z.object({ major: z.int().min(0).max(65_535), minor: z.int().min(0).max(65_535) });

/**
 * ErrorPayload as it crosses a link. Known codes round-trip unchanged. A code this node
 * does not know (a newer peer's) becomes HEARTH_INTERNAL with the original code kept in the
 * message, so version skew degrades one error, not the whole link.
 */
export const errorPayloadSchema = z
  .object({
    code: z.string().regex(ERROR_CODE_PATTERN),
    message: text(PEER_WIRE_LIMITS.maxErrorMessageLength),
    param: label(PEER_WIRE_LIMITS.maxErrorParamLength).nullable().optional(),
    retryAfterSeconds: z.number().min(0).max(PEER_WIRE_LIMITS.maxRetryAfterSeconds).optional(),
  })
  .transform((raw): ErrorPayload => {
    const code = raw.code;
    const payload: ErrorPayload = isHearthErrorCode(code)
      ? { code, message: raw.message }
      : { code: "HEARTH_INTERNAL", message: `(${code}) ${raw.message}`.slice(0, PEER_WIRE_LIMITS.maxErrorMessageLength) };
    if (raw.param !== undefined) payload.param = raw.param;
    if (raw.retryAfterSeconds !== undefined) payload.retryAfterSeconds = raw.retryAfterSeconds;
    return payload;
  });

// ---- handshake (docs/protocol.md, "Handshake") -------------------------------------------

/**
 * Public facts only: a hello goes to whoever opens a TLS connection, member or not. Node id
 * and fingerprint are in mDNS TXT anyway, and the version is needed to refuse an incompatible
 * major with a clear reason. Software version and capabilities wait for a proof (below).
 */
export const helloSchema = z.object({
  type: z.literal("hello"),
  nodeId: nodeIdSchema,
  protocol: protocolVersionSchema,
  certFingerprint: fingerprintHexSchema,
  nonce: bytes(PEER_WIRE_LIMITS.nonceBytes, PEER_WIRE_LIMITS.nonceBytes),
});

/** What a node says about its build, only to a peer that has proven membership. */
export const softwareInfoSchema = z.object({
  software: label(PEER_WIRE_LIMITS.maxSoftwareVersionLength).min(1).regex(SOFTWARE_VERSION_PATTERN),
  capabilities: z
    .array(z.string().min(1).max(PEER_WIRE_LIMITS.maxCapabilityLength).regex(CAPABILITY_PATTERN))
    .max(PEER_WIRE_LIMITS.maxCapabilities),
});

/**
 * The initiator proves first, to a responder that has proven nothing, so its proof carries no
 * `info`; the responder proves only after verifying it, so its proof carries its `info`
 * (and covers it). The handshake refuses an `info` where it does not belong and a missing one.
 */
export const authProofSchema = z.object({
  type: z.literal("authProof"),
  proof: bytes(PEER_WIRE_LIMITS.proofBytes, PEER_WIRE_LIMITS.proofBytes),
  info: softwareInfoSchema.optional(),
});

/**
 * The initiator's last handshake message, sent only after it has verified the responder's
 * proof: its own software info, with a proof covering both sides' info.
 */
export const authConfirmSchema = z.object({
  type: z.literal("authConfirm"),
  proof: bytes(PEER_WIRE_LIMITS.proofBytes, PEER_WIRE_LIMITS.proofBytes),
  info: softwareInfoSchema,
});

export const handshakeRejectSchema = z.object({
  type: z.literal("handshakeReject"),
  error: errorPayloadSchema,
});

// ---- liveness ------------------------------------------------------------------------------

/** `sentAt` is the sender's own clock (ms); it is echoed, never compared across machines. */
const timestampMs = () => z.number().min(0).max(PEER_WIRE_LIMITS.maxTimestampMs);

export const heartbeatSchema = z.object({
  type: z.literal("heartbeat"),
  seq: uint(),
  sentAt: timestampMs(),
});

export const heartbeatAckSchema = z.object({
  type: z.literal("heartbeatAck"),
  seq: uint(),
  /** The heartbeat's `sentAt`, echoed: RTT = now - sentAt on the heartbeat's sender. */
  sentAt: timestampMs(),
});

// ---- peer state ----------------------------------------------------------------------------

export const gpuDeviceSchema = z.object({
  name: label(PEER_WIRE_LIMITS.maxGpuNameLength),
});

export const gpuStateSchema = z.object({
  /** node-llama-cpp's backend ("cuda", "vulkan", "metal"), or null without a GPU. */
  backend: z.string().regex(GPU_BACKEND_PATTERN).nullable(),
  devices: z.array(gpuDeviceSchema).max(PEER_WIRE_LIMITS.maxGpuDevices),
  vramTotalBytes: uint(),
  vramFreeBytes: uint(),
});

export const modelPresentSchema = z.object({
  id: modelIdSchema,
  sizeBytes: uint(),
  /** Null until the node has hashed the file (hashing is done once, in the background). */
  sha256: z.string().regex(SHA256_HEX_PATTERN).nullable(),
});

export const modelLoadedSchema = z.object({
  id: modelIdSchema,
});

export const speedScoreSchema = z.object({
  modelId: modelIdSchema,
  tokensPerSecond: z.number().min(0).max(PEER_WIRE_LIMITS.maxTokensPerSecond),
});

/** A full snapshot; `seq` grows with each one so a receiver can ignore a stale snapshot. */
export const peerStateSchema = z.object({
  type: z.literal("peerState"),
  seq: uint(),
  cpuCores: z.int().min(1).max(PEER_WIRE_LIMITS.maxCpuCores),
  ramTotalBytes: uint(),
  ramFreeBytes: uint(),
  gpu: gpuStateSchema,
  modelsPresent: z.array(modelPresentSchema).max(PEER_WIRE_LIMITS.maxModelsPresent),
  modelsLoaded: z.array(modelLoadedSchema).max(PEER_WIRE_LIMITS.maxModelsLoaded),
  queueDepth: z.int().min(0).max(PEER_WIRE_LIMITS.maxQueueDepth),
  speedScores: z.array(speedScoreSchema).max(PEER_WIRE_LIMITS.maxSpeedScores),
  /** Bytes the node offers a model or its share of a split (daemon/split/memoryBudget.ts); absent from older nodes. */
  memoryBudgetBytes: uint().optional(),
});

// ---- requests ------------------------------------------------------------------------------

/**
 * `payload` is any plain MessagePack value (the codec has already refused extensions and
 * deep nesting); the handler of `method` validates it with its own schema.
 */
export const requestSchema = z.object({
  type: z.literal("request"),
  id: linkId(),
  method: z.string().min(1).max(PEER_WIRE_LIMITS.maxMethodLength).regex(DOTTED_NAME_PATTERN),
  payload: z.unknown(),
  /** How long the requester will wait; the handler may give up after it. */
  timeoutMs: z.int().min(1).max(PEER_WIRE_LIMITS.maxTimeoutMs).optional(),
});

export const responseSchema = z.object({
  type: z.literal("response"),
  id: linkId(),
  payload: z.unknown(),
});

export const responseErrorSchema = z.object({
  type: z.literal("responseError"),
  id: linkId(),
  error: errorPayloadSchema,
});

export const requestCancelSchema = z.object({
  type: z.literal("requestCancel"),
  id: linkId(),
  reason: label(PEER_WIRE_LIMITS.maxReasonLength).optional(),
});

// ---- multiplexed byte streams -------------------------------------------------------------

export const streamOpenSchema = z.object({
  type: z.literal("streamOpen"),
  /** Odd when opened by the link's initiator, even when opened by its responder. */
  streamId: linkId(),
  purpose: z.string().min(1).max(PEER_WIRE_LIMITS.maxPurposeLength).regex(DOTTED_NAME_PATTERN),
  /** Bytes the opener is ready to receive before it grants more. */
  credit: z.int().min(0).max(PEER_WIRE_LIMITS.maxCreditBytes),
  /** Purpose-specific parameters, validated by the purpose's handler. */
  meta: z.unknown().optional(),
});

export const streamDataSchema = z.object({
  type: z.literal("streamData"),
  streamId: linkId(),
  /** 0 for a direction's first chunk, then +1 per chunk. */
  seq: uint(),
  bytes: bytes(1, PEER_WIRE_LIMITS.maxChunkBytes),
});

export const streamCreditSchema = z.object({
  type: z.literal("streamCredit"),
  streamId: linkId(),
  /** Additional bytes the sender of this message is ready to receive. */
  credit: z.int().min(1).max(PEER_WIRE_LIMITS.maxCreditBytes),
});

/** Graceful half-close: the sender will send no more data on this stream. */
export const streamCloseSchema = z.object({
  type: z.literal("streamClose"),
  streamId: linkId(),
  reason: label(PEER_WIRE_LIMITS.maxReasonLength).optional(),
});

/** Abort both directions at once; buffered data is discarded. */
export const streamResetSchema = z.object({
  type: z.literal("streamReset"),
  streamId: linkId(),
  error: errorPayloadSchema,
});

// ---- the catalogue ---------------------------------------------------------------------------

export const peerMessageSchema = z.discriminatedUnion("type", [
  helloSchema,
  authProofSchema,
  authConfirmSchema,
  handshakeRejectSchema,
  heartbeatSchema,
  heartbeatAckSchema,
  peerStateSchema,
  requestSchema,
  responseSchema,
  responseErrorSchema,
  requestCancelSchema,
  streamOpenSchema,
  streamDataSchema,
  streamCreditSchema,
  streamCloseSchema,
  streamResetSchema,
]);

export type PeerMessage = z.output<typeof peerMessageSchema>;
export type PeerMessageType = PeerMessage["type"];
export type PeerMessageOf<T extends PeerMessageType> = Extract<PeerMessage, { type: T }>;

export type HelloMessage = PeerMessageOf<"hello">;
export type AuthProofMessage = PeerMessageOf<"authProof">;
export type AuthConfirmMessage = PeerMessageOf<"authConfirm">;
export type SoftwareInfo = z.output<typeof softwareInfoSchema>;
export type HandshakeRejectMessage = PeerMessageOf<"handshakeReject">;
export type HeartbeatMessage = PeerMessageOf<"heartbeat">;
export type HeartbeatAckMessage = PeerMessageOf<"heartbeatAck">;
export type PeerStateMessage = PeerMessageOf<"peerState">;
export type RequestMessage = PeerMessageOf<"request">;
export type ResponseMessage = PeerMessageOf<"response">;
export type ResponseErrorMessage = PeerMessageOf<"responseError">;
export type RequestCancelMessage = PeerMessageOf<"requestCancel">;
export type StreamOpenMessage = PeerMessageOf<"streamOpen">;
export type StreamDataMessage = PeerMessageOf<"streamData">;
export type StreamCreditMessage = PeerMessageOf<"streamCredit">;
export type StreamCloseMessage = PeerMessageOf<"streamClose">;
export type StreamResetMessage = PeerMessageOf<"streamReset">;

export const PEER_MESSAGE_TYPES: readonly PeerMessageType[] = [
  "hello",
  "authProof",
  "authConfirm",
  "handshakeReject",
  "heartbeat",
  "heartbeatAck",
  "peerState",
  "request",
  "response",
  "responseError",
  "requestCancel",
  "streamOpen",
  "streamData",
  "streamCredit",
  "streamClose",
  "streamReset",
];

/** The only messages allowed before the handshake completes (and only then). */
export const HANDSHAKE_MESSAGE_TYPES: ReadonlySet<PeerMessageType> = new Set<PeerMessageType>(["hello", "authProof", "authConfirm", "handshakeReject"]);
