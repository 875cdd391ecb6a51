/**
 * A minimal X.509 v3 self-signed certificate writer (DER), so a node can make its TLS
 * identity with Node's own crypto and no third-party ASN.1 stack.
 *
 * Why this is enough: peers never trust a certificate for what it says. Trust comes from
 * the handshake (HMAC under the cluster secret) and from pinning the SHA-256 of the
 * certificate's bytes, so the certificate only has to carry the public key in a form
 * OpenSSL accepts for TLS. The writer emits one fixed shape:
 *
 *   version 3, 127-bit random serial, ECDSA-with-SHA256 (P-256) or Ed25519,
 *   issuer = subject = CN=<commonName>, validity from `notBefore` to 9999-12-31 (RFC 5280's
 *   "no well-defined expiration"), basicConstraints CA:FALSE, keyUsage digitalSignature,
 *   extKeyUsage serverAuth + clientAuth.
 *
 * The result is parsed back with X509Certificate and its signature verified before it is
 * returned, so a writer bug fails here, not in a TLS handshake.
 */

import crypto from "node:crypto";
import type { KeyObject } from "node:crypto";
import { errors } from "../../protocol/errors.js";

// ---- DER building blocks -------------------------------------------------------------

function derLength(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length]);
  const bytes: number[] = [];
  for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest % 256);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, ...parts: Uint8Array[]): Buffer {
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([tag]), derLength(body.length), body]);
}

const sequence = (...parts: Uint8Array[]): Buffer => tlv(0x30, ...parts);
const set = (...parts: Uint8Array[]): Buffer => tlv(0x31, ...parts);
const explicit = (tagNumber: number, ...parts: Uint8Array[]): Buffer => tlv(0xa0 | tagNumber, ...parts);
const octetString = (bytes: Uint8Array): Buffer => tlv(0x04, bytes);
const booleanTrue = (): Buffer => tlv(0x01, Buffer.from([0xff]));

function objectIdentifier(dotted: string): Buffer {
  const arcs = dotted.split(".").map(Number);
  const [first = 0, second = 0, ...rest] = arcs;
  const bytes = [40 * first + second];
  for (const arc of rest) {
    const encoded = [arc & 0x7f];
    for (let value = Math.floor(arc / 128); value > 0; value = Math.floor(value / 128)) encoded.unshift((value & 0x7f) | 0x80);
    bytes.push(...encoded);
  }
  return tlv(0x06, Buffer.from(bytes));
}

/** A non-negative INTEGER from big-endian bytes (a leading 0 keeps it positive). */
function unsignedInteger(bytes: Uint8Array): Buffer {
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  const trimmed = bytes.subarray(start);
  return tlv(0x02, (trimmed[0] ?? 0) & 0x80 ? Buffer.concat([Buffer.from([0]), trimmed]) : trimmed);
}

/** BIT STRING with no unused bits. */
const bitString = (bytes: Uint8Array): Buffer => tlv(0x03, Buffer.from([0]), bytes);

/** UTCTime up to 2049, GeneralizedTime from 2050 (RFC 5280 4.1.2.5). */
function time(date: Date): Buffer {
  const iso = date.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = iso.slice(0, 19).replace(/[-T:]/g, "");
  const year = date.getUTCFullYear();
  return year < 2050 ? tlv(0x17, Buffer.from(`${digits.slice(2)}Z`, "ascii")) : tlv(0x18, Buffer.from(`${digits}Z`, "ascii"));
}

// ---- the certificate ---------------------------------------------------------------------

const OID = {
  commonName: "2.5.4.3",
  ecdsaWithSha256: "1.2.840.10045.4.3.2",
  ed25519: "1.3.101.112",
  basicConstraints: "2.5.29.19",
  keyUsage: "2.5.29.15",
  extKeyUsage: "2.5.29.37",
  serverAuth: "1.3.6.1.5.5.7.3.1",
  clientAuth: "1.3.6.1.5.5.7.3.2",
} as const;

/** 9999-12-31T23:59:59Z: the certificate never expires; peers pin it instead. */
const NO_EXPIRY = new Date(Date.UTC(9999, 11, 31, 23, 59, 59));

export interface SelfSignedCertificateOptions {
  commonName: string;
  /** Defaults to now; the writer backdates nothing, peers do not check validity. */
  notBefore?: Date;
}

function signatureAlgorithm(privateKey: KeyObject): { algorithm: Buffer; hash: string | null } {
  if (privateKey.asymmetricKeyType === "ed25519") return { algorithm: sequence(objectIdentifier(OID.ed25519)), hash: null };
  if (privateKey.asymmetricKeyType === "ec" && privateKey.asymmetricKeyDetails?.namedCurve === "prime256v1") {
    return { algorithm: sequence(objectIdentifier(OID.ecdsaWithSha256)), hash: "sha256" };
  }
  throw errors.internal(`Cannot sign a certificate with a ${privateKey.asymmetricKeyType ?? "unknown"} key; use EC P-256 or Ed25519.`);
}

/** Returns the certificate's DER bytes. */
export function createSelfSignedCertificate(privateKey: KeyObject, publicKey: KeyObject, options: SelfSignedCertificateOptions): Buffer {
  const { algorithm, hash } = signatureAlgorithm(privateKey);
  const name = sequence(set(sequence(objectIdentifier(OID.commonName), tlv(0x0c, Buffer.from(options.commonName, "utf8")))));
  const serial = crypto.randomBytes(16);
  serial[0] = ((serial[0] ?? 0) & 0x7f) | 0x40; // positive, and always 16 bytes long

  const extensions = sequence(
    sequence(objectIdentifier(OID.basicConstraints), booleanTrue(), octetString(sequence())),
    sequence(objectIdentifier(OID.keyUsage), booleanTrue(), octetString(tlv(0x03, Buffer.from([0x07, 0x80])))),
    sequence(objectIdentifier(OID.extKeyUsage), octetString(sequence(objectIdentifier(OID.serverAuth), objectIdentifier(OID.clientAuth)))),
  );

  const toBeSigned = sequence(
    explicit(0, unsignedInteger(Buffer.from([2]))),
    unsignedInteger(serial),
    algorithm,
    name,
    sequence(time(options.notBefore ?? new Date()), time(NO_EXPIRY)),
    name,
    publicKey.export({ type: "spki", format: "der" }),
    explicit(3, extensions),
  );
  const signature = crypto.sign(hash, toBeSigned, privateKey);
  const der = sequence(toBeSigned, algorithm, bitString(signature));

  // Parse it back with OpenSSL: a writer bug must fail here, never in a peer's TLS stack.
  const parsed = new crypto.X509Certificate(der);
  if (!parsed.verify(publicKey) || !parsed.checkPrivateKey(privateKey)) {
    throw errors.internal("The generated certificate does not verify against its own key.");
  }
  return der;
}
