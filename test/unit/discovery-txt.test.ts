/**
 * The `_hearth._tcp` TXT record (daemon/discovery/mdnsTxt.ts): what this node advertises, and
 * how an untrusted record from the LAN is read.
 */

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { encodeHearthTxt, MAX_TXT_STRINGS, parseHearthTxt } from "../../daemon/discovery/mdnsTxt.js";
import { fingerprintToHex, isValidNodeId, nodeIdFromFingerprint } from "../../protocol/peer/identity.js";

const fingerprintA = new Uint8Array(32).map((_, i) => i * 7 + 1);
const fingerprintB = new Uint8Array(32).map((_, i) => 255 - i);
const nodeIdA = nodeIdFromFingerprint(fingerprintA);
const nodeIdB = nodeIdFromFingerprint(fingerprintB);
const hexA = fingerprintToHex(fingerprintA);

/** TXT strings as they arrive off the wire: one `key=value` byte string each. */
function strings(pairs: Record<string, string> | [string, string][]): Buffer[] {
  const entries = Array.isArray(pairs) ? pairs : Object.entries(pairs);
  return entries.map(([key, value]) => Buffer.from(`${key}=${value}`, "latin1"));
}

const validA = { id: nodeIdA, proto: "1.0", fp: hexA };

describe("encodeHearthTxt", () => {
  it("advertises only node id, protocol version and fingerprint: nothing about the cluster", () => {
    const txt = encodeHearthTxt({ nodeId: nodeIdA, fingerprint: fingerprintA, protocolVersion: { major: 1, minor: 0 } });
    expect(txt).toEqual({ id: nodeIdA, proto: "1.0", fp: hexA });
  });

  it("round-trips through parseHearthTxt", () => {
    const txt = encodeHearthTxt({ nodeId: nodeIdB, fingerprint: fingerprintB, protocolVersion: { major: 3, minor: 12 } });
    expect(parseHearthTxt(strings(txt))).toEqual({
      ok: true,
      hint: { nodeId: nodeIdB, fingerprint: fingerprintToHex(fingerprintB), protocolVersion: { major: 3, minor: 12 } },
    });
  });
});

describe("parseHearthTxt", () => {
  it("reads a well-formed record", () => {
    expect(parseHearthTxt(strings(validA))).toEqual({ ok: true, hint: { nodeId: nodeIdA, fingerprint: hexA, protocolVersion: { major: 1, minor: 0 } } });
  });

  it("matches keys case-insensitively and keeps the first of a repeated key (RFC 6763 6.4)", () => {
    const result = parseHearthTxt(strings([["ID", nodeIdA], ["Proto", "1.0"], ["FP", hexA], ["id", nodeIdB]]));
    expect(result).toMatchObject({ ok: true, hint: { nodeId: nodeIdA } });
  });

  it("ignores unknown keys, boolean attributes and strings starting with '='", () => {
    const extra = [Buffer.from("future=thing"), Buffer.from("flag"), Buffer.from("=orphan")];
    expect(parseHearthTxt([...extra, ...strings(validA)])).toMatchObject({ ok: true, hint: { nodeId: nodeIdA } });
  });

  it("accepts any major version (refusing incompatible ones is the handshake's job)", () => {
    expect(parseHearthTxt(strings({ ...validA, proto: "65535.7" }))).toMatchObject({ ok: true, hint: { protocolVersion: { major: 65_535, minor: 7 } } });
  });

  it.each([
    ["not an array", Buffer.from("id=x"), "no TXT strings"],
    ["undefined", undefined, "no TXT strings"],
    ["too many strings", Array.from({ length: MAX_TXT_STRINGS + 1 }, (_, i) => Buffer.from(`k${i}=v`)), "more than"],
    ["a string that is not bytes", ["id=x"], "not bytes"],
    ["an oversized string", [Buffer.alloc(300, 0x61)], "300 bytes"],
    ["a missing fingerprint", strings({ id: nodeIdA, proto: "1.0" }), "lacks fp"],
    ["every key missing", strings({ name: "x" }), "lacks id, proto, fp"],
    ["a node id with a typo", strings({ ...validA, id: `${nodeIdA.slice(0, -1)}${nodeIdA.endsWith("A") ? "B" : "A"}` }), "not a node id"],
    ["a lower-case node id", strings({ ...validA, id: nodeIdA.toLowerCase() }), "not a node id"],
    ["an id that is not derived from the fingerprint", strings({ ...validA, id: nodeIdB }), "does not match its fingerprint"],
    ["an upper-case fingerprint", strings({ ...validA, fp: hexA.toUpperCase() }), "64 lower-case hex"],
    ["a short fingerprint", strings({ ...validA, fp: hexA.slice(2) }), "64 lower-case hex"],
    ["a version without minor", strings({ ...validA, proto: "1" }), "<major>.<minor>"],
    ["a three-part version", strings({ ...validA, proto: "1.0.0" }), "<major>.<minor>"],
    ["a version with leading zeros", strings({ ...validA, proto: "01.0" }), "<major>.<minor>"],
    ["a version part above 65535", strings({ ...validA, proto: "65536.0" }), "<major>.<minor>"],
    ["a non-ASCII value", [Buffer.from(`id=${nodeIdA}\u00e9`, "utf8"), ...strings({ proto: "1.0", fp: hexA })], "printable ASCII"],
    ["a control character", strings({ ...validA, proto: "1.0\n" }), "printable ASCII"],
  ])("refuses %s, with a reason", (_name, input, reason) => {
    const result = parseHearthTxt(input);
    expect(result.ok).toBe(false);
    expect(result.ok ? "" : result.reason).toContain(reason);
  });

  it("quotes at most a short, printable piece of a bad value in its reason", () => {
    const result = parseHearthTxt(strings({ ...validA, id: `\u0007${"Z".repeat(200)}` }));
    expect(result.ok).toBe(false);
    const reason = result.ok ? "" : result.reason;
    expect(reason.length).toBeLessThan(100);
    expect([...reason].every((char) => char >= " " && char <= "~")).toBe(true);
  });

  it("never throws on arbitrary input, and accepts only ids that match their fingerprint", () => {
    const txtString = fc.oneof(
      fc.uint8Array({ maxLength: 300 }),
      fc.constantFrom(...strings(validA)),
      fc.string({ maxLength: 80 }).map((text) => Buffer.from(text)),
      fc.tuple(fc.constantFrom("id", "proto", "fp", "ID"), fc.string({ maxLength: 80 })).map(([key, value]) => Buffer.from(`${key}=${value}`)),
    );
    fc.assert(
      fc.property(fc.oneof(fc.array(txtString, { maxLength: 20 }), fc.anything()), (input) => {
        const result = parseHearthTxt(input);
        if (result.ok) {
          expect(isValidNodeId(result.hint.nodeId)).toBe(true);
          expect(result.hint.nodeId).toBe(nodeIdFromFingerprint(Buffer.from(result.hint.fingerprint, "hex")));
        }
      }),
      { numRuns: 3_000 },
    );
  });
});
