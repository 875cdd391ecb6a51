/**
 * The error a peer link reports when a frame or message breaks the protocol. It is a
 * HearthError (same catalogue, same codes) restricted to the codes that end or refuse a
 * link, so the I/O layer can close the WebSocket with `closeCode` without a lookup.
 *
 * Pure: no I/O.
 */

import { HearthError } from "../errors.js";

export type PeerLinkErrorCode =
  | "HEARTH_PEER_FRAME_TOO_LARGE"
  | "HEARTH_PEER_FRAME_INVALID"
  | "HEARTH_PEER_PROTOCOL_VIOLATION"
  | "HEARTH_PEER_FLOW_CONTROL"
  | "HEARTH_PEER_AUTH_FAILED"
  | "HEARTH_PEER_UNKNOWN_STREAM"
  | "HEARTH_PEER_TIMEOUT"
  | "HEARTH_PEER_DUPLICATE_LINK"
  | "HEARTH_PEER_INCOMPATIBLE";

export class PeerProtocolError extends HearthError {
  declare readonly code: PeerLinkErrorCode;

  constructor(code: PeerLinkErrorCode, message: string) {
    super(code, message);
  }
}
