/**
 * Which link survives when two authenticated links to the same peer are up at once
 * (docs/protocol.md, "Duplicate links"). Both nodes decide without talking to each other:
 *
 *   - different initiators (both dialled at once): keep the link whose initiator has the
 *     smaller node id; both sides compute the same answer and close the other with 4409;
 *   - same initiator (it dialled twice, e.g. a static address and an mDNS hint, or it
 *     restarted before this side noticed the old link die): the RESPONDER keeps the newer link
 *     and closes the older; the initiator keeps both until the responder's 4409 arrives. Only
 *     one side decides, so the two can never each close a different link and end with none.
 *
 * Pure.
 */

import type { HandshakeRole } from "../../protocol/peer/handshake.js";

export type DuplicateVerdict = "keepExisting" | "keepIncoming" | "keepBoth";

export interface LinkRoleView {
  /** This node's role on the link. */
  role: HandshakeRole;
}

function initiatorOf(link: LinkRoleView, localNodeId: string, peerNodeId: string): string {
  return link.role === "initiator" ? localNodeId : peerNodeId;
}

/** `existing` came up first; `incoming` just finished its handshake with the same peer. */
export function resolveDuplicateLink(localNodeId: string, peerNodeId: string, existing: LinkRoleView, incoming: LinkRoleView): DuplicateVerdict {
  const existingInitiator = initiatorOf(existing, localNodeId, peerNodeId);
  const incomingInitiator = initiatorOf(incoming, localNodeId, peerNodeId);
  if (existingInitiator !== incomingInitiator) {
    return incomingInitiator < existingInitiator ? "keepIncoming" : "keepExisting";
  }
  // Same initiator. If it is the peer, this node is the responder of both: newest wins.
  return existingInitiator === peerNodeId ? "keepIncoming" : "keepBoth";
}
