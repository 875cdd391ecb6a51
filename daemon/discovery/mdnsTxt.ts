/**
 * The `_hearth._tcp` TXT record: what this node advertises and how a peer's record is read.
 *
 * It carries exactly three keys, and nothing about the cluster (no cluster id, no secret), so a
 * LAN observer learns only that a Hearth node runs there:
 *
 *   id=<node id>   proto=<major>.<minor>   fp=<certificate SHA-256, 64 lower-case hex>
 *
 * A received record is an untrusted hint. It is read from the raw TXT strings (not a decoded
 * object, whose keys a sender would choose), with caps on their number and size, keys matched
 * case-insensitively and the first occurrence winning (RFC 6763 §6.4), unknown keys ignored (a
 * newer minor version may add some), and the node id checked against the fingerprint it is
 * derived from. Anything else yields a short reason for a debug log, never an exception.
 *
 * Pure: no I/O.
 */

import { FINGERPRINT_HEX_PATTERN, fingerprintFromHex, fingerprintToHex, isValidNodeId, nodeIdFromFingerprint } from "../../protocol/peer/identity.js";
import type { ProtocolVersion } from "../../protocol/peer/version.js";
import { formatProtocolVersion } from "../../protocol/peer/version.js";

export const TXT_KEY_NODE_ID = "id";
export const TXT_KEY_PROTOCOL = "proto";
export const TXT_KEY_FINGERPRINT = "fp";

/** More strings than this is not a Hearth record; ours has three. */
export const MAX_TXT_STRINGS = 16;
/** DNS caps one TXT string at 255 bytes; a decoder could still hand over more. */
export const MAX_TXT_STRING_BYTES = 255;
/** Each protocol version part fits the peer-link protocol's 0..65535. */
const PROTOCOL_PATTERN = /^(0|[1-9][0-9]{0,4})\.(0|[1-9][0-9]{0,4})$/;
const MAX_PROTOCOL_PART = 65_535;
/** Printable ASCII: every value we read is ASCII, and a log must not carry control bytes. */
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;
/** How much of a bad value a debug log may quote. */
const QUOTE_LIMIT = 24;

export interface TxtIdentity {
  nodeId: string;
  fingerprint: Uint8Array;
  protocolVersion: ProtocolVersion;
}

export interface PeerTxtHint {
  nodeId: string;
  /** Lower-case hex, as advertised and as the link manager pins it. */
  fingerprint: string;
  protocolVersion: ProtocolVersion;
}

export type TxtParseResult = { readonly ok: true; readonly hint: PeerTxtHint } | { readonly ok: false; readonly reason: string };

/** The key/value pairs this node publishes (bonjour-service encodes them as `key=value` strings). */
export function encodeHearthTxt(identity: TxtIdentity): Record<string, string> {
  return {
    [TXT_KEY_NODE_ID]: identity.nodeId,
    [TXT_KEY_PROTOCOL]: formatProtocolVersion(identity.protocolVersion),
    [TXT_KEY_FINGERPRINT]: fingerprintToHex(identity.fingerprint),
  };
}

function quote(text: string): string {
  const printable = text.replace(/[^\x20-\x7e]/g, "?");
  return JSON.stringify(printable.length > QUOTE_LIMIT ? `${printable.slice(0, QUOTE_LIMIT)}...` : printable);
}

/** Reads the raw TXT strings of a service answer. `strings` is whatever the decoder produced. */
export function parseHearthTxt(strings: unknown): TxtParseResult {
  if (!Array.isArray(strings)) return { ok: false, reason: "no TXT strings" };
  if (strings.length > MAX_TXT_STRINGS) return { ok: false, reason: `${strings.length} TXT strings, more than ${MAX_TXT_STRINGS}` };

  const values = new Map<string, string>();
  for (const entry of strings as unknown[]) {
    if (!(entry instanceof Uint8Array)) return { ok: false, reason: "a TXT string is not bytes" };
    if (entry.byteLength > MAX_TXT_STRING_BYTES) return { ok: false, reason: `a TXT string of ${entry.byteLength} bytes` };
    const text = Buffer.from(entry.buffer, entry.byteOffset, entry.byteLength).toString("latin1");
    const equals = text.indexOf("=");
    // RFC 6763 §6.4: a string without "=" is a boolean attribute, one starting with "=" is ignored.
    if (equals === 0) continue;
    const key = (equals < 0 ? text : text.slice(0, equals)).toLowerCase();
    if (values.has(key)) continue;
    values.set(key, equals < 0 ? "" : text.slice(equals + 1));
  }

  const nodeId = values.get(TXT_KEY_NODE_ID);
  const protocol = values.get(TXT_KEY_PROTOCOL);
  const fingerprint = values.get(TXT_KEY_FINGERPRINT);
  if (nodeId === undefined || protocol === undefined || fingerprint === undefined) {
    const missing = [TXT_KEY_NODE_ID, TXT_KEY_PROTOCOL, TXT_KEY_FINGERPRINT].filter((key) => !values.has(key));
    return { ok: false, reason: `TXT lacks ${missing.join(", ")}` };
  }
  for (const [key, value] of [
    [TXT_KEY_NODE_ID, nodeId],
    [TXT_KEY_PROTOCOL, protocol],
    [TXT_KEY_FINGERPRINT, fingerprint],
  ] as const) {
    if (!PRINTABLE_ASCII.test(value)) return { ok: false, reason: `TXT ${key} is not printable ASCII: ${quote(value)}` };
  }

  if (!isValidNodeId(nodeId)) return { ok: false, reason: `TXT id is not a node id: ${quote(nodeId)}` };
  const protocolMatch = PROTOCOL_PATTERN.exec(protocol);
  const major = Number(protocolMatch?.[1]);
  const minor = Number(protocolMatch?.[2]);
  if (protocolMatch === null || major > MAX_PROTOCOL_PART || minor > MAX_PROTOCOL_PART) {
    return { ok: false, reason: `TXT proto is not <major>.<minor>: ${quote(protocol)}` };
  }
  if (!FINGERPRINT_HEX_PATTERN.test(fingerprint)) return { ok: false, reason: `TXT fp is not 64 lower-case hex: ${quote(fingerprint)}` };
  // The node id is a function of the fingerprint; a record where they disagree is forged or broken.
  if (nodeIdFromFingerprint(fingerprintFromHex(fingerprint)!) !== nodeId) {
    return { ok: false, reason: `TXT id ${quote(nodeId)} does not match its fingerprint` };
  }
  return { ok: true, hint: { nodeId, fingerprint, protocolVersion: { major, minor } } };
}
