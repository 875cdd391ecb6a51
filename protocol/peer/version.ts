/**
 * Peer-link protocol versions and how two nodes agree on one.
 *
 * The major version changes when a message changes incompatibly; nodes of different majors
 * refuse each other and show each other as `incompatible`. A minor version only adds
 * (optional fields, new message types, new capabilities), so two nodes of one major talk at
 * the lower minor and neither sends what the other cannot know.
 *
 * Pure: no I/O.
 */

export interface ProtocolVersion {
  readonly major: number;
  readonly minor: number;
}

/** The version this build speaks. Bump `minor` for additions, `major` for breaking changes. */
export const PROTOCOL_VERSION: ProtocolVersion = Object.freeze({ major: 1, minor: 0 });

export type NegotiationResult =
  | { readonly compatible: true; readonly version: ProtocolVersion }
  | { readonly compatible: false; readonly reason: string };

export function formatProtocolVersion(version: ProtocolVersion): string {
  return `${version.major}.${version.minor}`;
}

export function negotiate(local: ProtocolVersion, remote: ProtocolVersion): NegotiationResult {
  if (local.major === remote.major) {
    return { compatible: true, version: { major: local.major, minor: Math.min(local.minor, remote.minor) } };
  }
  // Say which side to upgrade: that is the only thing a user can act on.
  const olderSide = local.major < remote.major ? "this node" : "the peer";
  return {
    compatible: false,
    reason:
      `peer speaks protocol ${formatProtocolVersion(remote)}, this node speaks ${formatProtocolVersion(local)}; ` +
      `major versions must match (upgrade ${olderSide})`,
  };
}
