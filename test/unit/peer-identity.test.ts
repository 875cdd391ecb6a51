// Node ids derived from certificate fingerprints, base32, and cluster join tokens.

import { createHash } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { HearthError } from "../../protocol/errors.js";
import { BASE32_ALPHABET, base32Decode, base32Encode } from "../../protocol/peer/base32.js";
import {
  certificateFingerprint,
  fingerprintFromHex,
  fingerprintToHex,
  isValidNodeId,
  NODE_ID_PATTERN,
  nodeIdFromFingerprint,
  parseNodeId,
  shortNodeId,
} from "../../protocol/peer/identity.js";
import { decodeJoinToken, encodeJoinToken, generateClusterCredentials, JoinTokenError } from "../../protocol/peer/joinToken.js";
import type { JoinTokenProblem } from "../../protocol/peer/joinToken.js";
import { thrownBy } from "../support/thrown.js";

const fingerprintArb = fc.uint8Array({ minLength: 32, maxLength: 32 });

describe("base32", () => {
  it.each([
    ["", ""],
    ["f", "MY"],
    ["fo", "MZXQ"],
    ["foo", "MZXW6"],
    ["foob", "MZXW6YQ"],
    ["fooba", "MZXW6YTB"],
    ["foobar", "MZXW6YTBOI"],
  ])("encodes %j as RFC 4648 says (%s)", (plain, encoded) => {
    expect(base32Encode(Buffer.from(plain))).toBe(encoded);
    expect(Buffer.from(base32Decode(encoded)!).toString()).toBe(plain);
  });

  it("round-trips any bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (bytes) => {
        expect(base32Decode(base32Encode(bytes))).toEqual(bytes);
      }),
    );
  });

  it("refuses foreign characters, impossible lengths and non-zero padding bits", () => {
    expect(base32Decode("MZXW6YT1")).toBeUndefined();
    expect(base32Decode("mzxw6ytb")).toBeUndefined();
    expect(base32Decode("M")).toBeUndefined();
    expect(base32Decode("MY")).toEqual(Uint8Array.from([0x66]));
    expect(base32Decode("MZ")).toBeUndefined(); // "Z" sets bits past the single byte
  });
});

describe("node ids", () => {
  it("are 8 groups of 7 base32 characters, derived deterministically from the fingerprint", () => {
    fc.assert(
      fc.property(fingerprintArb, (fingerprint) => {
        const id = nodeIdFromFingerprint(fingerprint);
        expect(id).toMatch(NODE_ID_PATTERN);
        expect(id).toHaveLength(63);
        expect(isValidNodeId(id)).toBe(true);
        expect(nodeIdFromFingerprint(Uint8Array.from(fingerprint))).toBe(id);
        // The id carries the whole fingerprint: the first 52 data characters are its base32.
        const data = id.replaceAll("-", "").match(/.{14}/g)!.map((chunk) => chunk.slice(0, 13)).join("");
        expect(data).toBe(base32Encode(fingerprint));
      }),
      { numRuns: 300 },
    );
  });

  it("match the example in docs/protocol.md (pins the encoding and the check characters)", () => {
    const fingerprint = createHash("sha256").update("example certificate").digest();
    expect(nodeIdFromFingerprint(fingerprint)).toBe("MCR7ZAG-NRUEHXD-SAWR5SX-AJU5YU7-AIMOZTO-QSKA6VI-HDONBAT-OCLR7Q5");
    expect(nodeIdFromFingerprint(new Uint8Array(32))).toBe("AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA");
  });

  it("differ for different fingerprints", () => {
    fc.assert(
      fc.property(fingerprintArb, fingerprintArb, (a, b) => {
        fc.pre(!Buffer.from(a).equals(Buffer.from(b)));
        expect(nodeIdFromFingerprint(a)).not.toBe(nodeIdFromFingerprint(b));
      }),
      { numRuns: 200 },
    );
  });

  it("detect every single-character typo", () => {
    const id = nodeIdFromFingerprint(createHash("sha256").update("a certificate").digest());
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    for (let i = 0; i < id.length; i++) {
      if (id[i] === "-") continue;
      for (const replacement of alphabet) {
        if (replacement === id[i]) continue;
        const typo = id.slice(0, i) + replacement + id.slice(i + 1);
        expect(isValidNodeId(typo), `typo at ${i}: ${typo}`).toBe(false);
      }
    }
  });

  it("parse what people paste: any case, no dashes, extra spaces", () => {
    const id = nodeIdFromFingerprint(new Uint8Array(32).fill(200));
    expect(parseNodeId(id.toLowerCase())).toBe(id);
    expect(parseNodeId(id.replaceAll("-", ""))).toBe(id);
    expect(parseNodeId(` ${id.replaceAll("-", " ")} `)).toBe(id);
    expect(shortNodeId(id)).toBe(id.slice(0, 7));
  });

  it("refuse malformed ids and typos with HEARTH_INVALID_REQUEST", () => {
    const id = nodeIdFromFingerprint(new Uint8Array(32).fill(1));
    const typo = (id[0] === "A" ? "B" : "A") + id.slice(1);
    for (const bad of ["", "abc", id.slice(0, -1), `${id}A`, id.replace(/[A-Z]/, "1"), typo]) {
      expect(thrownBy(() => parseNodeId(bad))).toMatchObject({ code: "HEARTH_INVALID_REQUEST", param: "nodeId" });
    }
    expect(() => parseNodeId(typo)).toThrow(/check character/);
  });

  it("refuse a fingerprint that is not 32 bytes", () => {
    expect(() => nodeIdFromFingerprint(new Uint8Array(31))).toThrow(HearthError);
  });

  it("come from SHA-256 of the certificate, with hex helpers that round-trip", () => {
    const der = Buffer.from("not really DER, but bytes all the same");
    const fingerprint = certificateFingerprint(der);
    expect(fingerprintToHex(fingerprint)).toBe(createHash("sha256").update(der).digest("hex"));
    expect(fingerprintFromHex(fingerprintToHex(fingerprint))).toEqual(fingerprint);
    expect(fingerprintFromHex(fingerprintToHex(fingerprint).toUpperCase())).toBeUndefined();
    expect(fingerprintFromHex("ab")).toBeUndefined();
  });
});

describe("join tokens", () => {
  const credentials = generateClusterCredentials();

  function problemOf(text: string): JoinTokenProblem {
    const error = thrownBy(() => decodeJoinToken(text), JoinTokenError);
    expect(error.code).toBe("HEARTH_JOIN_TOKEN_INVALID");
    return error.problem;
  }

  it("round-trip any credentials", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.uint8Array({ minLength: 32, maxLength: 32 }), (id, secret) => {
        const creds = { clusterId: Buffer.from(id).toString("hex"), secret };
        const token = encodeJoinToken(creds);
        expect(token).toMatch(/^hearth1_[a-z2-7]{84}$/);
        expect(decodeJoinToken(token)).toEqual(creds);
      }),
      { numRuns: 300 },
    );
  });

  it("generate fresh credentials each time", () => {
    const other = generateClusterCredentials();
    expect(credentials.clusterId).toMatch(/^[0-9a-f]{32}$/);
    expect(credentials.secret.byteLength).toBe(32);
    expect(other.clusterId).not.toBe(credentials.clusterId);
    expect(Buffer.from(other.secret).equals(Buffer.from(credentials.secret))).toBe(false);
  });

  it("survive upper case, wrapping and surrounding whitespace", () => {
    const token = encodeJoinToken(credentials);
    const wrapped = `  ${token.slice(0, 30)}\n${token.slice(30, 60)}\r\n\t${token.slice(60)}  `;
    expect(decodeJoinToken(wrapped)).toEqual(credentials);
    expect(decodeJoinToken(token.toUpperCase())).toEqual(credentials);
  });

  /** Low bits of the token's last character that carry no data (base32 of 52 bytes: 84 characters, 420 bits for 416). */
  function paddingBits(token: string): number {
    const bodyChars = token.length - "hearth1_".length;
    return (bodyChars * 5) % 8;
  }

  it("detect every single-character corruption: a data bit changed is a checksum failure, a padding bit set is an encoding error", () => {
    const token = encodeJoinToken(credentials);
    const body = "hearth1_".length;
    const padding = paddingBits(token);
    expect(padding).toBe(4);
    const alphabet = BASE32_ALPHABET.toLowerCase();
    for (let i = body; i < token.length; i++) {
      for (const replacement of alphabet) {
        if (replacement === token[i]) continue;
        const corrupted = token.slice(0, i) + replacement + token.slice(i + 1);
        // Only the last character holds padding bits; every other change alters data.
        const setsPadding = i === token.length - 1 && (alphabet.indexOf(replacement) & ((1 << padding) - 1)) !== 0;
        expect(problemOf(corrupted), `${replacement} at ${i}`).toBe(setsPadding ? "encoding" : "checksum");
      }
    }
  });

  it("name what is wrong with a broken token", () => {
    const token = encodeJoinToken(credentials);
    expect(problemOf("")).toBe("format");
    expect(problemOf(token.replace("hearth1_", "heart1_"))).toBe("format");
    expect(problemOf(token.replace("hearth1_", "hearth2_"))).toBe("version");
    expect(problemOf(token.slice(0, -8))).toBe("length");
    expect(problemOf(`${token}aaaaaaaa`)).toBe("length");
    expect(problemOf(token.slice(0, -1) + "0")).toBe("encoding");
    // The last character: its top bit is data, its low 4 bits are padding (always zero in a real token).
    const alphabet = BASE32_ALPHABET.toLowerCase();
    const last = alphabet.indexOf(token[token.length - 1]!);
    expect(last & 0b1111).toBe(0);
    expect(problemOf(token.slice(0, -1) + alphabet[last ^ 0b10000])).toBe("checksum");
    expect(problemOf(token.slice(0, -1) + alphabet[last | 0b0001])).toBe("encoding");
  });

  it("never throw anything but a JoinTokenError on arbitrary text", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string().map((s) => `hearth1_${s}`)), (text) => {
        try {
          decodeJoinToken(text);
        } catch (error) {
          expect(error).toBeInstanceOf(JoinTokenError);
        }
      }),
      { numRuns: 1000 },
    );
  });

  it("refuse to encode malformed credentials", () => {
    expect(() => encodeJoinToken({ clusterId: "XYZ", secret: credentials.secret })).toThrow(HearthError);
    expect(() => encodeJoinToken({ clusterId: credentials.clusterId, secret: new Uint8Array(16) })).toThrow(HearthError);
  });
});
