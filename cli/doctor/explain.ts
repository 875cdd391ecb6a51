/**
 * What a peer-link failure code means to someone trying to make two machines see each other,
 * and what to do about it. Used by `hearth doctor` for peers, dial targets and inbound attempts.
 *
 * Pure: no I/O.
 */

export type FailureKind = "wrong-cluster" | "incompatible" | "unreachable" | "timeout" | "shutting-down" | "protocol" | "rate-limited" | "other";

export interface FailureExplanation {
  kind: FailureKind;
  hint: string;
}

/** `message` is the failure's text: a listener's HTTP refusal shows only there. */
export function explainFailure(code: string, message = ""): FailureExplanation {
  if (/\b429\b/.test(message)) {
    return {
      kind: "rate-limited",
      hint: "the peer's listener refuses this address for a while after too many failed handshakes from it (another node behind the same address holding a wrong secret?); it retries with backoff",
    };
  }
  switch (code) {
    case "HEARTH_PEER_AUTH_FAILED":
      return {
        kind: "wrong-cluster",
        hint: "the handshake was refused: the other node holds another cluster's secret (compare `hearth cluster show` on both; rejoin with the current token), or it is not the node it claims to be",
      };
    case "HEARTH_PEER_INCOMPATIBLE":
      return { kind: "incompatible", hint: "the nodes speak different protocol major versions: upgrade the older one" };
    case "HEARTH_PEER_UNAVAILABLE":
      return { kind: "unreachable", hint: "nothing answered at that address: is hearth serve running there, is it a member of a cluster, and does a firewall let its peer port through?" };
    case "HEARTH_PEER_TIMEOUT":
      return { kind: "timeout", hint: "the peer did not answer in time: a firewall dropping packets, a wrong address (Docker/VPN), or an overloaded machine" };
    case "HEARTH_SHUTTING_DOWN":
      return { kind: "shutting-down", hint: "the peer was shutting down" };
    case "HEARTH_QUEUE_FULL":
      return { kind: "rate-limited", hint: "the peer refused the attempt: too many handshakes at once or too many failures from this address; it retries with backoff" };
    case "HEARTH_PEER_FRAME_INVALID":
    case "HEARTH_PEER_FRAME_TOO_LARGE":
    case "HEARTH_PEER_PROTOCOL_VIOLATION":
      return { kind: "protocol", hint: "the other side sent something that is not the Hearth peer protocol (another program on that port?)" };
    default:
      return { kind: "other", hint: "see the daemon's log for details" };
  }
}
