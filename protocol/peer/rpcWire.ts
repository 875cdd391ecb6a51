/**
 * The wire format of layer splitting over llama.cpp RPC (docs/protocol.md, "RPC tunnels").
 *
 * A host whose runner offloads layers to a peer reaches the peer's rpc-server only through
 * the authenticated peer link:
 *   - stream purpose `rpc.tunnel`: one stream per TCP connection the host's runner makes to
 *     its local tunnel listener. The bytes are llama.cpp RPC, opaque to Hearth. The meta
 *     names nothing but the wire version: the peer picks the worker it runs for the opener's
 *     authenticated node id, so a peer can never be steered to another host's worker, a port
 *     or a path.
 *   - request `rpc.prepare` {sha256}: "I am about to load this file with layers on you".
 *     A peer holding the same GGUF (by sha256, among its own advertised models) pre-fills its
 *     rpc-server's tensor cache from its own copy, so the load sends hashes, not weights.
 *   - request `rpc.release` {}: the host's placement on this peer ended; its worker stops.
 *
 * Pure: no I/O.
 */

import { z } from "zod";
import { errors } from "../errors.js";
import { SHA256_HEX_PATTERN } from "./modelTransferWire.js";

/** Purposes and methods are dotted lower-camel names (messages.ts), hence not `rpc-tunnel`. */
export const RPC_TUNNEL_PURPOSE = "rpc.tunnel";
export const RPC_PREPARE_METHOD = "rpc.prepare";
export const RPC_RELEASE_METHOD = "rpc.release";
export const RPC_TUNNEL_WIRE_VERSION = 1;

const byteCount = () => z.int().min(0).max(Number.MAX_SAFE_INTEGER);

/** The opener's stream meta. Strict: a peer that sends more is speaking something else. */
export const rpcTunnelMetaSchema = z.strictObject({ v: z.literal(RPC_TUNNEL_WIRE_VERSION) });
export type RpcTunnelMeta = z.infer<typeof rpcTunnelMetaSchema>;

export const rpcPrepareRequestSchema = z.strictObject({
  sha256: z.string().regex(SHA256_HEX_PATTERN, "must be 64 lower-case hex characters"),
});
export type RpcPrepareRequest = z.infer<typeof rpcPrepareRequestSchema>;

/**
 * `prefilled`: every tensor the host's RPC client sends by hash is in the peer's cache now.
 * `partial`: the cache bound left some out; those are pushed over RPC at load.
 * `missing`: the peer has no file with that sha256; the whole offload is pushed over RPC.
 * `disabled`: the peer does not pre-fill (`rpc.prefill = false`).
 */
export const RPC_PREPARE_STATUSES = ["prefilled", "partial", "missing", "disabled"] as const;
export type RpcPrepareStatus = (typeof RPC_PREPARE_STATUSES)[number];

export const rpcPrepareResponseSchema = z.strictObject({
  status: z.enum(RPC_PREPARE_STATUSES),
  /** Tensors of the file large enough to go by hash, and how many of them are cached now. */
  tensors: byteCount(),
  cachedTensors: byteCount(),
  /** Their bytes, and the bytes written to the cache by this call (0 when it was warm). */
  cachedBytes: byteCount(),
  writtenBytes: byteCount(),
  ms: byteCount(),
  /** Memory the peer can give a worker now (its free RAM), for the host's @MiB share. */
  freeMemoryBytes: byteCount(),
});
export type RpcPrepareResponse = z.infer<typeof rpcPrepareResponseSchema>;

export const rpcReleaseRequestSchema = z.strictObject({});
export const rpcReleaseResponseSchema = z.strictObject({ stopped: z.boolean() });
export type RpcReleaseResponse = z.infer<typeof rpcReleaseResponseSchema>;

/** Validates a peer's payload; the refusal names the field and never echoes the input. */
export function parseRpcPayload<T>(schema: z.ZodType<T>, payload: unknown, what: string): T {
  const parsed = schema.safeParse(payload);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const keys = issue?.code === "unrecognized_keys" ? issue.keys : [];
  const field = keys[0] ?? (typeof issue?.path[0] === "string" ? issue.path[0] : "payload");
  const reason = issue?.code === "unrecognized_keys" ? "is not a known field" : (issue?.message ?? "is invalid");
  throw errors.invalidRequest(`invalid ${what}: ${field} ${reason}`, { param: field });
}
