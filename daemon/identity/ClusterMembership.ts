/**
 * This node's cluster membership: the cluster id and shared secret (protocol/peer/joinToken.ts),
 * stored in `<dataDir>/identity/cluster.json` (mode 0600, directory 0700).
 *
 * What `hearth cluster init` and `hearth cluster join TOKEN` need:
 *   - `ClusterMembership.init` makes new credentials and returns the join token to print;
 *   - `ClusterMembership.join` validates a token and stores it;
 *   - both refuse to replace a membership of a different cluster (or a rotated secret of the
 *     same one) unless forced, because that silently cuts this node off from its peers.
 * Joining the cluster this node already belongs to is a no-op, so scripts can rerun it.
 *
 * The secret never appears in logs: `toJSON()` leaves it out, and errors name only the file.
 */

import { randomBytes as nodeRandomBytes, timingSafeEqual } from "node:crypto";
import path from "node:path";
import type { Logger } from "pino";
import { z } from "zod";
import { errors, HearthError } from "../../protocol/errors.js";
import { CLUSTER_ID_PATTERN, CLUSTER_SECRET_BYTES, decodeJoinToken, encodeJoinToken, generateClusterCredentials } from "../../protocol/peer/joinToken.js";
import type { ClusterCredentials } from "../../protocol/peer/joinToken.js";
import { identityDirectory } from "./NodeIdentity.js";
import { ensurePrivateDirectory, readPrivateFile, restrictFileMode, writePrivateFileAtomic } from "./secureFiles.js";

export const CLUSTER_MEMBERSHIP_FILE_NAME = "cluster.json";
const MAX_MEMBERSHIP_FILE_BYTES = 16 * 1024;
const FILE_FORMAT = 1;

export type MembershipOrigin = "init" | "join";

const membershipFileSchema = z.object({
  format: z.literal(FILE_FORMAT),
  clusterId: z.string().regex(CLUSTER_ID_PATTERN),
  secret: z
    .string()
    .regex(/^[A-Za-z0-9+/]+={0,2}$/)
    .refine((text) => Buffer.from(text, "base64").byteLength === CLUSTER_SECRET_BYTES, `must be ${CLUSTER_SECRET_BYTES} bytes of base64`),
  origin: z.enum(["init", "join"]),
  since: z.iso.datetime(),
});

export function clusterMembershipPath(dataDir: string): string {
  return path.join(identityDirectory(dataDir), CLUSTER_MEMBERSHIP_FILE_NAME);
}

export interface MembershipOptions {
  logger?: Logger;
  /** Replace a membership of another cluster (or another secret) instead of refusing. */
  force?: boolean;
  /** Injected randomness (tests). */
  randomBytes?: (size: number) => Uint8Array;
}

export interface MembershipChange {
  membership: ClusterMembership;
  /** False when the node already held exactly these credentials (join is idempotent). */
  changed: boolean;
  /** The cluster id this node left, when a forced change replaced another membership. */
  replacedClusterId?: string;
}

export class ClusterMembership implements ClusterCredentials {
  readonly clusterId: string;
  readonly secret: Uint8Array;
  /** Whether this node created the cluster or joined it. */
  readonly origin: MembershipOrigin;
  /** When this membership was stored (ISO 8601). */
  readonly since: string;

  private constructor(credentials: ClusterCredentials, origin: MembershipOrigin, since: string) {
    this.clusterId = credentials.clusterId;
    this.secret = new Uint8Array(credentials.secret);
    this.origin = origin;
    this.since = since;
  }

  /** The token another machine passes to `hearth cluster join`. It IS the secret: never log it. */
  joinToken(): string {
    return encodeJoinToken(this);
  }

  /** Same cluster and same secret. */
  sameCredentials(other: ClusterCredentials): boolean {
    return other.clusterId === this.clusterId && other.secret.byteLength === this.secret.byteLength && timingSafeEqual(other.secret, this.secret);
  }

  /** What may be logged or shown: never the secret. */
  toJSON(): { clusterId: string; origin: MembershipOrigin; since: string } {
    return { clusterId: this.clusterId, origin: this.origin, since: this.since };
  }

  /** The stored membership, or undefined when this node belongs to no cluster yet. */
  static async load(dataDir: string, options: Pick<MembershipOptions, "logger"> = {}): Promise<ClusterMembership | undefined> {
    const file = clusterMembershipPath(dataDir);
    let bytes: Buffer | undefined;
    try {
      bytes = await readPrivateFile(file, MAX_MEMBERSHIP_FILE_BYTES);
    } catch (error) {
      throw invalid(file, `it cannot be read (${error instanceof Error ? error.message : String(error)})`, error);
    }
    if (bytes === undefined) return undefined;
    let json: unknown;
    try {
      json = JSON.parse(bytes.toString("utf8"));
    } catch {
      throw invalid(file, "it is not valid JSON");
    }
    const parsed = membershipFileSchema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      // Never echo the value: it may be (part of) the secret.
      throw invalid(file, `field "${issue?.path.join(".") ?? "?"}" is invalid`);
    }
    try {
      await restrictFileMode(file, options.logger);
    } catch (error) {
      options.logger?.warn({ file, err: error }, "could not check or restrict the membership file's mode");
    }
    const { clusterId, secret, origin, since } = parsed.data;
    return new ClusterMembership({ clusterId, secret: new Uint8Array(Buffer.from(secret, "base64")) }, origin, since);
  }

  /** `hearth cluster init`: creates a new cluster with this node as its first member. */
  static async init(dataDir: string, options: MembershipOptions = {}): Promise<MembershipChange> {
    const credentials = generateClusterCredentials(options.randomBytes ?? nodeRandomBytes);
    return ClusterMembership.#store(dataDir, credentials, "init", options);
  }

  /** `hearth cluster join TOKEN`: throws JoinTokenError (HEARTH_JOIN_TOKEN_INVALID) for a bad token. */
  static async join(dataDir: string, token: string, options: MembershipOptions = {}): Promise<MembershipChange> {
    const credentials = decodeJoinToken(token);
    return ClusterMembership.#store(dataDir, credentials, "join", options);
  }

  static async #store(dataDir: string, credentials: ClusterCredentials, origin: MembershipOrigin, options: MembershipOptions): Promise<MembershipChange> {
    const file = clusterMembershipPath(dataDir);
    let existing: ClusterMembership | undefined;
    let corrupt = false;
    try {
      existing = await ClusterMembership.load(dataDir, options);
    } catch (error) {
      // A forced join is the documented way out of a corrupt membership file.
      if (!(error instanceof HearthError && error.code === "HEARTH_IDENTITY_INVALID" && options.force === true)) throw error;
      corrupt = true;
    }
    if (existing !== undefined && origin === "join" && existing.sameCredentials(credentials)) {
      return { membership: existing, changed: false };
    }
    if (existing !== undefined && options.force !== true) throw conflict(existing, origin);

    const membership = new ClusterMembership(credentials, origin, new Date().toISOString());
    const body = `${JSON.stringify(
      { format: FILE_FORMAT, clusterId: membership.clusterId, secret: Buffer.from(membership.secret).toString("base64"), origin, since: membership.since },
      null,
      2,
    )}\n`;
    await ensurePrivateDirectory(path.dirname(file), options.logger);
    const written = await writePrivateFileAtomic(file, body, existing === undefined && !corrupt ? "createOnly" : "replace");
    if (!written) {
      // Another process stored a membership meanwhile: judge against that one instead.
      const raced = await ClusterMembership.load(dataDir, options);
      if (raced !== undefined && origin === "join" && raced.sameCredentials(credentials)) return { membership: raced, changed: false };
      throw raced === undefined ? invalid(file, "it changed while being written") : conflict(raced, origin);
    }
    options.logger?.info(
      { clusterId: membership.clusterId, origin, replacedClusterId: existing?.clusterId },
      origin === "init" ? "created a new cluster" : "joined a cluster",
    );
    const change: MembershipChange = { membership, changed: true };
    if (existing !== undefined) change.replacedClusterId = existing.clusterId;
    return change;
  }
}

function conflict(existing: ClusterMembership, attempted: MembershipOrigin): HearthError {
  const what = attempted === "init" ? "Creating a new cluster" : "Joining this cluster";
  return errors.clusterConflict(`This node already belongs to cluster ${existing.clusterId} (${existing.origin === "init" ? "created here" : "joined"} ${existing.since}). ` +
      `${what} would cut it off from that cluster's peers; repeat with --force to do it anyway.`,
    { param: "cluster" },
  );
}

function invalid(file: string, problem: string, cause?: unknown): HearthError {
  return errors.identityInvalid(`The cluster membership ${file} is unusable: ${problem}. Rejoin with \`hearth cluster join --force TOKEN\`, or delete the file.`,
    { param: "cluster", cause },
  );
}
