/**
 * The node's persistent identity: an EC P-256 key pair and a self-signed certificate, kept in
 * one PEM file (`<dataDir>/identity/node.pem`, mode 0600, directory 0700). Its node id is
 * derived from the certificate's SHA-256 fingerprint (protocol/peer/identity.ts), so the id
 * stays the same for as long as this file does.
 *
 * Key and certificate share one file so that creating them is a single atomic step: there is
 * never a key without its certificate. A file that exists but cannot be read or parsed is an
 * error, never a reason to make a new identity: peers have pinned this node's fingerprint,
 * and a silently regenerated identity would look like a different machine.
 *
 * P-256 rather than Ed25519: both work for TLS 1.3 in Node 20 (OpenSSL 3), but P-256 is
 * accepted by every TLS stack a future peer or tool might use.
 */

import crypto from "node:crypto";
import path from "node:path";
import type { Logger } from "pino";
import type { HearthError } from "../../protocol/errors.js";
import { errors } from "../../protocol/errors.js";
import { certificateFingerprint, fingerprintToHex, nodeIdFromFingerprint } from "../../protocol/peer/identity.js";
import { createSelfSignedCertificate } from "./selfSignedCertificate.js";
import { ensurePrivateDirectory, readPrivateFile, restrictFileMode, writePrivateFileAtomic } from "./secureFiles.js";

/** Subdirectory of the data dir that holds the node's secrets. */
export const IDENTITY_DIR_NAME = "identity";
export const NODE_IDENTITY_FILE_NAME = "node.pem";
/** A P-256 key and certificate are under 1 KiB; anything near this is not our file. */
const MAX_IDENTITY_FILE_BYTES = 64 * 1024;
const CERTIFICATE_COMMON_NAME = "hearth";

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([A-Za-z0-9+/=\r\n]+?)-----END \1-----/g;

export function identityDirectory(dataDir: string): string {
  return path.join(dataDir, IDENTITY_DIR_NAME);
}

export function nodeIdentityPath(dataDir: string): string {
  return path.join(identityDirectory(dataDir), NODE_IDENTITY_FILE_NAME);
}

export interface NodeIdentityOptions {
  logger?: Logger;
}

export class NodeIdentity {
  /** Canonical node id, e.g. `MCR7ZAG-NRUEHXD-...`. */
  readonly nodeId: string;
  /** SHA-256 of the certificate (DER): what peers pin. */
  readonly fingerprint: Uint8Array;
  readonly fingerprintHex: string;
  readonly certificatePem: string;
  readonly certificateDer: Uint8Array;
  /** Where this identity lives. */
  readonly file: string;
  readonly #privateKeyPem: string;

  private constructor(file: string, privateKeyPem: string, certificatePem: string, certificateDer: Uint8Array) {
    this.file = file;
    this.#privateKeyPem = privateKeyPem;
    this.certificatePem = certificatePem;
    this.certificateDer = certificateDer;
    this.fingerprint = certificateFingerprint(certificateDer);
    this.fingerprintHex = fingerprintToHex(this.fingerprint);
    this.nodeId = nodeIdFromFingerprint(this.fingerprint);
  }

  /** `key` and `cert` for node:tls and ws (server and client side alike). */
  tlsCredentials(): { key: string; cert: string } {
    return { key: this.#privateKeyPem, cert: this.certificatePem };
  }

  /** What may be logged or shown: never the private key. */
  toJSON(): { nodeId: string; fingerprint: string; file: string } {
    return { nodeId: this.nodeId, fingerprint: this.fingerprintHex, file: this.file };
  }

  /** Loads the identity in `dataDir`, creating it on first use. */
  static async loadOrCreate(dataDir: string, options: NodeIdentityOptions = {}): Promise<NodeIdentity> {
    const existing = await NodeIdentity.load(dataDir, options);
    if (existing !== undefined) return existing;

    const file = nodeIdentityPath(dataDir);
    await ensurePrivateDirectory(path.dirname(file), options.logger);
    const { privateKey, publicKey } = crypto.generateKeyPairSync("ec", { namedCurve: "P-256" });
    const certificateDer = createSelfSignedCertificate(privateKey, publicKey, { commonName: CERTIFICATE_COMMON_NAME });
    const privateKeyPem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    const certificatePem = new crypto.X509Certificate(certificateDer).toString();
    const written = await writePrivateFileAtomic(file, privateKeyPem + certificatePem, "createOnly");
    if (!written) {
      // Another process created it between our load and our write: use theirs, not ours.
      const winner = await NodeIdentity.load(dataDir, options);
      if (winner !== undefined) return winner;
      throw invalid(file, "it appeared while this process was creating it and then vanished");
    }
    const identity = new NodeIdentity(file, privateKeyPem, certificatePem, new Uint8Array(certificateDer));
    options.logger?.info({ nodeId: identity.nodeId, file }, "created a new node identity");
    return identity;
  }

  /** Loads the identity in `dataDir`; undefined when there is none yet. */
  static async load(dataDir: string, options: NodeIdentityOptions = {}): Promise<NodeIdentity | undefined> {
    const file = nodeIdentityPath(dataDir);
    let bytes: Buffer | undefined;
    try {
      bytes = await readPrivateFile(file, MAX_IDENTITY_FILE_BYTES);
    } catch (error) {
      throw invalid(file, `it cannot be read (${describe(error)})`, error);
    }
    if (bytes === undefined) return undefined;
    const identity = NodeIdentity.#parse(file, bytes.toString("utf8"));
    try {
      await restrictFileMode(file, options.logger);
    } catch (error) {
      options.logger?.warn({ file, err: error }, "could not check or restrict the identity file's mode");
    }
    return identity;
  }

  static #parse(file: string, text: string): NodeIdentity {
    const blocks = new Map<string, string[]>();
    for (const match of text.matchAll(PEM_BLOCK)) {
      const label = match[1] ?? "";
      blocks.set(label, [...(blocks.get(label) ?? []), match[0]]);
    }
    const keys = blocks.get("PRIVATE KEY") ?? [];
    const certificates = blocks.get("CERTIFICATE") ?? [];
    if (keys.length !== 1 || certificates.length !== 1) {
      throw invalid(file, `expected one PRIVATE KEY and one CERTIFICATE block, found ${keys.length} and ${certificates.length}`);
    }
    const keyPem = `${keys[0]}\n`;
    const certificatePem = `${certificates[0]}\n`;

    let privateKey: crypto.KeyObject;
    let certificate: crypto.X509Certificate;
    try {
      privateKey = crypto.createPrivateKey(keyPem);
    } catch (error) {
      throw invalid(file, `its private key does not parse (${describe(error)})`, error);
    }
    try {
      certificate = new crypto.X509Certificate(certificatePem);
    } catch (error) {
      throw invalid(file, `its certificate does not parse (${describe(error)})`, error);
    }
    if (!certificate.checkPrivateKey(privateKey)) throw invalid(file, "its certificate does not belong to its private key");
    return new NodeIdentity(file, keyPem, certificatePem, new Uint8Array(certificate.raw));
  }
}

function describe(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const message = error instanceof Error ? error.message : String(error);
  return code !== undefined && !message.includes(code) ? `${code}: ${message}` : message;
}

function invalid(file: string, problem: string, cause?: unknown): HearthError {
  return errors.identityInvalid(`The node identity ${file} is unusable: ${problem}. Hearth will not replace it on its own, because peers know this node by it. ` +
      "Restore it from a backup, or delete it to give this node a new identity (peers will then see a new node).",
    { param: "identity", cause },
  );
}
