/**
 * What both ends of a peer link agree on outside the message catalogue: the WebSocket path
 * and subprotocol, the frame limits taken from PeerConfig, how close codes map back onto
 * error codes, and how remote addresses are written in logs and the rate limiter.
 */

import type { PeerConfig } from "../config/defaults.js";
import { ERROR_CATALOGUE, errors, HearthError } from "../../protocol/errors.js";
import type { ErrorPayload, HearthErrorCode } from "../../protocol/errors.js";
import type { PeerFrameLimits } from "../../protocol/peer/codec.js";
import { PROTOCOL_VERSION } from "../../protocol/peer/version.js";

/** The only path the peer listener upgrades. */
export const PEER_LINK_PATH = "/hearth/peer";
/** Names the major version, so a future major can be refused before any frame is read. */
export const PEER_SUBPROTOCOL = `hearth-peer.v${PROTOCOL_VERSION.major}`;

export function frameLimitsOf(config: Pick<PeerConfig, "maxFrameBytes" | "maxStreamChunkBytes" | "maxNestingDepth">): PeerFrameLimits {
  return { maxFrameBytes: config.maxFrameBytes, maxStreamChunkBytes: config.maxStreamChunkBytes, maxNestingDepth: config.maxNestingDepth };
}

/** Close codes that end a link, by what they mean (docs/protocol.md, "Close codes"). */
const CLOSE_CODE_ERRORS: ReadonlyMap<number, HearthErrorCode> = new Map<number, HearthErrorCode>([
  [1001, "HEARTH_SHUTTING_DOWN"],
  [1002, "HEARTH_PEER_PROTOCOL_VIOLATION"],
  [1007, "HEARTH_PEER_FRAME_INVALID"],
  [1008, "HEARTH_PEER_FLOW_CONTROL"],
  [1009, "HEARTH_PEER_FRAME_TOO_LARGE"],
  [1011, "HEARTH_INTERNAL"],
  [4401, "HEARTH_PEER_AUTH_FAILED"],
  [4404, "HEARTH_PEER_UNKNOWN_STREAM"],
  [4408, "HEARTH_PEER_TIMEOUT"],
  [4409, "HEARTH_PEER_DUPLICATE_LINK"],
  [4426, "HEARTH_PEER_INCOMPATIBLE"],
]);

/** The error a close code stands for; 1000 (normal) and 1005/1006 (no code, dropped) mean the peer is simply gone. */
export function errorCodeForClose(closeCode: number): HearthErrorCode {
  return CLOSE_CODE_ERRORS.get(closeCode) ?? "HEARTH_PEER_UNAVAILABLE";
}

export function closeCodeFor(code: HearthErrorCode): number {
  return ERROR_CATALOGUE[code].closeCode;
}

/** Strips IPv4-mapped IPv6 (`::ffff:10.0.0.2`) so one host is one key. */
export function normaliseAddress(address: string | undefined): string {
  if (address === undefined || address === "") return "unknown";
  return address.startsWith("::ffff:") && address.includes(".") ? address.slice(7) : address;
}

/** `host:port`, with brackets around IPv6. */
export function formatHostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

const MAX_WIRE_MESSAGE = 4096;

/**
 * An error as it may cross the link: catalogued code, message cut to the wire limit and free
 * of control characters the schema refuses (a stray \r in a local message must not turn an
 * error reply into an invalid frame).
 */
export function wireErrorPayload(error: unknown, fallback: HearthErrorCode = "HEARTH_INTERNAL"): ErrorPayload {
  const hearthError = error instanceof HearthError ? error : errors.withCode(fallback, error instanceof Error ? error.message : String(error));
  const payload: ErrorPayload = {
    code: hearthError.code,
    // eslint-disable-next-line no-control-regex
    message: hearthError.message.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, " ").slice(0, MAX_WIRE_MESSAGE),
  };
  if (hearthError.param !== null) payload.param = hearthError.param.replace(/\p{Cc}/gu, " ").slice(0, 256);
  if (hearthError.retryAfterSeconds !== undefined) payload.retryAfterSeconds = Math.min(Math.max(0, hearthError.retryAfterSeconds), 86_400);
  return payload;
}
