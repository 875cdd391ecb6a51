/**
 * Node identity as text: certificate fingerprints and the node ids derived from them.
 *
 * A node's identity is its TLS key pair. The fingerprint is the SHA-256 of the certificate's
 * DER bytes, and the node id is that fingerprint in base32 with check characters, grouped
 * for humans (Syncthing's layout):
 *
 *   52 base32 chars -> 4 chunks of 13, each followed by a Luhn mod 32 check char
 *   -> 56 chars -> 8 groups of 7 joined by "-", e.g. "MCR7ZAG-NRUEHXD-...-OCLR7Q5".
 *
 * The check characters use the standard Luhn mod N algorithm over the base32 alphabet (not
 * Syncthing's variant), so ids are not interchangeable with Syncthing's; they only need to
 * catch typos. Because the id is a function of the certificate, a peer cannot claim an id
 * without presenting the matching certificate in TLS; the handshake checks exactly that.
 *
 * Pure: hashing only, no I/O.
 */

import { createHash } from "node:crypto";
import { errors } from "../errors.js";
import { BASE32_ALPHABET, base32Decode, base32Encode } from "./base32.js";

export const FINGERPRINT_BYTES = 32;

/** Canonical node id: 8 groups of 7 upper-case base32 characters. */
export const NODE_ID_PATTERN = /^[A-Z2-7]{7}(?:-[A-Z2-7]{7}){7}$/;

export const FINGERPRINT_HEX_PATTERN = /^[0-9a-f]{64}$/;

const CHUNK_LENGTH = 13;
const CHUNKS = 4;
const GROUP_LENGTH = 7;

export function certificateFingerprint(certificateDer: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(certificateDer).digest());
}

export function fingerprintToHex(fingerprint: Uint8Array): string {
  return Buffer.from(fingerprint.buffer, fingerprint.byteOffset, fingerprint.byteLength).toString("hex");
}

/** Lower-case hex of exactly 32 bytes; undefined otherwise. */
export function fingerprintFromHex(hex: string): Uint8Array | undefined {
  if (!FINGERPRINT_HEX_PATTERN.test(hex)) return undefined;
  return new Uint8Array(Buffer.from(hex, "hex"));
}

function luhn32CheckChar(chunk: string): string {
  let factor = 2;
  let sum = 0;
  for (let i = chunk.length - 1; i >= 0; i--) {
    const value = BASE32_ALPHABET.indexOf(chunk.charAt(i));
    let addend = factor * value;
    factor = factor === 2 ? 1 : 2;
    addend = Math.floor(addend / 32) + (addend % 32);
    sum += addend;
  }
  return BASE32_ALPHABET.charAt((32 - (sum % 32)) % 32);
}

function group(text: string): string {
  const groups: string[] = [];
  for (let i = 0; i < text.length; i += GROUP_LENGTH) groups.push(text.slice(i, i + GROUP_LENGTH));
  return groups.join("-");
}

export function nodeIdFromFingerprint(fingerprint: Uint8Array): string {
  if (fingerprint.byteLength !== FINGERPRINT_BYTES) {
    throw errors.invalidRequest(`A certificate fingerprint is ${FINGERPRINT_BYTES} bytes, got ${fingerprint.byteLength}.`, {
      param: "fingerprint",
    });
  }
  const plain = base32Encode(fingerprint);
  let withChecks = "";
  for (let i = 0; i < CHUNKS; i++) {
    const chunk = plain.slice(i * CHUNK_LENGTH, (i + 1) * CHUNK_LENGTH);
    withChecks += chunk + luhn32CheckChar(chunk);
  }
  return group(withChecks);
}

/** The fingerprint a well-formed node id encodes, or undefined if the id is malformed or a check char is wrong. */
function fingerprintFromCompactNodeId(compact: string): Uint8Array | undefined {
  if (compact.length !== CHUNKS * (CHUNK_LENGTH + 1)) return undefined;
  let plain = "";
  for (let i = 0; i < CHUNKS; i++) {
    const start = i * (CHUNK_LENGTH + 1);
    const chunk = compact.slice(start, start + CHUNK_LENGTH);
    if (compact.charAt(start + CHUNK_LENGTH) !== luhn32CheckChar(chunk)) return undefined;
    plain += chunk;
  }
  const bytes = base32Decode(plain);
  return bytes?.byteLength === FINGERPRINT_BYTES ? bytes : undefined;
}

/** True only for a node id in canonical form with correct check characters. */
export function isValidNodeId(text: string): boolean {
  return NODE_ID_PATTERN.test(text) && fingerprintFromCompactNodeId(text.replaceAll("-", "")) !== undefined;
}

/**
 * Accepts what a person might type or paste (any case, dashes or spaces anywhere) and
 * returns the canonical id. Throws HEARTH_INVALID_REQUEST (param "nodeId") otherwise.
 */
export function parseNodeId(text: string): string {
  const compact = text.toUpperCase().replace(/[\s-]/g, "");
  if (compact.length !== CHUNKS * (CHUNK_LENGTH + 1) || !/^[A-Z2-7]+$/.test(compact)) {
    throw errors.invalidRequest("A node id is 56 base32 characters (A-Z, 2-7), usually in groups of 7.", { param: "nodeId" });
  }
  if (fingerprintFromCompactNodeId(compact) === undefined) {
    throw errors.invalidRequest("The node id has a typo: a check character does not match.", { param: "nodeId" });
  }
  return group(compact);
}

/** The first group: enough to tell two or three nodes apart in logs and tables. */
export function shortNodeId(nodeId: string): string {
  return nodeId.slice(0, GROUP_LENGTH);
}
