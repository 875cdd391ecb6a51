/**
 * Node ids a reader can tell apart: the canonical shape (8 groups of 7) that peers and the
 * scheduler expect, starting with a name. Not derived from a fingerprint, so nothing checks
 * them as one; tests that run the handshake make real identities instead.
 */

/** A node id in the canonical shape, starting with `head`: nodeIdFrom("AAAAAAA") is "AAAAAAA-QQQQQQQ-...". */
export function nodeIdFrom(head: string): string {
  return head.toUpperCase().padEnd(56, "Q").match(/.{7}/g)!.join("-");
}
