/**
 * GET /hearth/v1/cluster/diagnostics: what `hearth doctor` needs beyond the cluster view:
 * the peer listener, mDNS counters, dial targets with their last failure, inbound handshakes
 * refused, and the state of the GPU probe and of model hashing.
 *
 * Pure: no I/O.
 */

import { z } from "zod";

export const dialTargetDiagnosticsSchema = z.object({
  address: z.string(),
  nodeId: z.string().nullable(),
  linked: z.boolean(),
  failures: z.number(),
  lastFailure: z.object({ code: z.string(), reason: z.string(), agoMs: z.number() }).nullable(),
});

/** mDNS discovery's counters (daemon/discovery/MdnsDiscovery.ts `status()`). */
export const mdnsStatusViewSchema = z.object({
  state: z.enum(["stopped", "starting", "running", "stopping"]),
  /** Why the mDNS socket could not be opened, if it could not; discovery is then silent. */
  socketError: z.string().optional(),
  queriesSent: z.number(),
  /** Responses that carried our service type, own ones included. */
  answersRead: z.number(),
  /** Own answers heard back: the socket sends and receives. */
  ownAnswersHeard: z.number(),
  /** Answers ignored as malformed, and the last reason. */
  answersIgnored: z.number(),
  lastIgnoredReason: z.string().optional(),
  peers: z.number(),
});

/** An inbound handshake that failed before the peer proved who it is: only its address is known. */
export const inboundFailureViewSchema = z.object({
  address: z.string(),
  code: z.string(),
  reason: z.string(),
  count: z.number(),
  /** Time since the latest failure from this address with this code. */
  agoMs: z.number(),
});

export const clusterDiagnosticsSchema = z.object({
  nodeId: z.string(),
  clusterId: z.string().nullable(),
  listener: z.object({ host: z.string(), port: z.number() }).nullable(),
  mdns: z.object({ enabled: z.boolean(), status: mdnsStatusViewSchema.nullable() }),
  staticPeers: z.array(z.string()),
  dialTargets: z.array(dialTargetDiagnosticsSchema),
  inboundFailures: z.array(inboundFailureViewSchema),
  /** Remote addresses the listener's failed-attempt limiter tracks, and handshakes running. */
  listenerLimiter: z.object({ trackedAddresses: z.number(), pendingHandshakes: z.number() }).nullable(),
  hardware: z.object({ gpuProbe: z.enum(["idle", "probing", "done", "failed"]), failure: z.string().nullable() }),
  hashing: z.object({ pending: z.number() }),
});

export type DialTargetDiagnostics = z.infer<typeof dialTargetDiagnosticsSchema>;
export type MdnsStatusView = z.infer<typeof mdnsStatusViewSchema>;
export type InboundFailureView = z.infer<typeof inboundFailureViewSchema>;
export type ClusterDiagnostics = z.infer<typeof clusterDiagnosticsSchema>;
