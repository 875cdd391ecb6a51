/**
 * Cluster credentials and the join token that carries them from `hearth cluster init` to
 * `hearth cluster join`.
 *
 * Token layout (version 1):
 *
 *   "hearth1_" + lower-case base32( clusterId (16 bytes) | secret (32 bytes) | check (4 bytes) )
 *   check = first 4 bytes of SHA-256("hearth join token v1\0" | clusterId | secret)
 *
 * The token is 92 characters with no characters a terminal's double-click splits on. The
 * version lives in the prefix so a future format is recognised and refused by name rather
 * than reported as garbage. Decoding is forgiving about case and whitespace (tokens get
 * wrapped in chat windows) and strict about everything else.
 *
 * The token IS the cluster secret: whoever holds it can join. It is never logged.
 *
 * Pure: hashing only; randomness is passed in.
 */

import { createHash, randomBytes as nodeRandomBytes } from "node:crypto";
import { errors, HearthError } from "../errors.js";
import { base32Decode, base32Encode } from "./base32.js";

export const CLUSTER_ID_BYTES = 16;
export const CLUSTER_SECRET_BYTES = 32;
export const CLUSTER_ID_PATTERN = /^[0-9a-f]{32}$/;

const TOKEN_VERSION = 1;
const TOKEN_PREFIX = `hearth${TOKEN_VERSION}_`;
const CHECK_BYTES = 4;
const CHECK_CONTEXT = "hearth join token v1\0";
const PAYLOAD_BYTES = CLUSTER_ID_BYTES + CLUSTER_SECRET_BYTES;
const BODY_CHARS = Math.ceil(((PAYLOAD_BYTES + CHECK_BYTES) * 8) / 5);

export interface ClusterCredentials {
  /** 32 lower-case hex characters; public, names the cluster in config and logs. */
  clusterId: string;
  /** 32 random bytes; the shared secret every member proves it holds. */
  secret: Uint8Array;
}

export type JoinTokenProblem = "format" | "version" | "encoding" | "length" | "checksum";

/** A join token that cannot be used, with `problem` saying why (CLI messages branch on it). */
export class JoinTokenError extends HearthError {
  readonly problem: JoinTokenProblem;

  constructor(problem: JoinTokenProblem, message: string) {
    super("HEARTH_JOIN_TOKEN_INVALID", message, { param: "token" });
    this.problem = problem;
  }
}

export function generateClusterCredentials(randomBytes: (size: number) => Uint8Array = nodeRandomBytes): ClusterCredentials {
  const clusterId = Buffer.from(randomBytes(CLUSTER_ID_BYTES)).toString("hex");
  return { clusterId, secret: new Uint8Array(randomBytes(CLUSTER_SECRET_BYTES)) };
}

function checksum(payload: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(CHECK_CONTEXT).update(payload).digest()).subarray(0, CHECK_BYTES);
}

export function encodeJoinToken(credentials: ClusterCredentials): string {
  if (!CLUSTER_ID_PATTERN.test(credentials.clusterId)) {
    throw errors.invalidRequest("A cluster id is 32 lower-case hex characters.", { param: "clusterId" });
  }
  if (credentials.secret.byteLength !== CLUSTER_SECRET_BYTES) {
    throw errors.invalidRequest(`A cluster secret is ${CLUSTER_SECRET_BYTES} bytes.`, { param: "secret" });
  }
  const payload = new Uint8Array(PAYLOAD_BYTES + CHECK_BYTES);
  payload.set(Buffer.from(credentials.clusterId, "hex"), 0);
  payload.set(credentials.secret, CLUSTER_ID_BYTES);
  payload.set(checksum(payload.subarray(0, PAYLOAD_BYTES)), PAYLOAD_BYTES);
  return TOKEN_PREFIX + base32Encode(payload).toLowerCase();
}

/** Throws JoinTokenError (code HEARTH_JOIN_TOKEN_INVALID) for anything but an intact token. */
export function decodeJoinToken(text: string): ClusterCredentials {
  const compact = text.replace(/\s+/g, "");
  const prefix = /^hearth(\d{1,6})_/i.exec(compact);
  if (!prefix) {
    throw new JoinTokenError("format", 'A join token starts with "hearth1_"; `hearth cluster init` prints one.');
  }
  const version = Number(prefix[1]);
  if (version !== TOKEN_VERSION) {
    throw new JoinTokenError("version", `This is a version ${version} join token; this Hearth understands version ${TOKEN_VERSION}. Upgrade Hearth on this machine.`);
  }
  const body = compact.slice(prefix[0].length).toUpperCase();
  if (body.length !== BODY_CHARS) {
    throw new JoinTokenError("length", "The join token is truncated or has extra characters; copy it again.");
  }
  const bytes = base32Decode(body);
  if (bytes === undefined) {
    throw new JoinTokenError("encoding", "The join token contains characters that cannot appear in one; copy it again.");
  }
  const payload = bytes.subarray(0, PAYLOAD_BYTES);
  const expected = checksum(payload);
  const actual = bytes.subarray(PAYLOAD_BYTES);
  if (!expected.every((byte, index) => byte === actual[index])) {
    throw new JoinTokenError("checksum", "The join token is corrupted (checksum mismatch); copy it again.");
  }
  return {
    clusterId: Buffer.from(payload.subarray(0, CLUSTER_ID_BYTES)).toString("hex"),
    secret: new Uint8Array(payload.subarray(CLUSTER_ID_BYTES)),
  };
}
