// Cluster membership on disk: what `hearth cluster init` / `hearth cluster join TOKEN` rely on.
// The stored credentials round-trip through the join token, the file is private, a node never
// silently switches clusters, bad tokens and damaged files are typed errors that write nothing,
// and the secret never reaches logs or serialised output.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { pino } from "pino";
import type { Logger } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ClusterMembership, clusterMembershipPath } from "../../daemon/identity/ClusterMembership.js";
import { identityDirectory } from "../../daemon/identity/NodeIdentity.js";
import { decodeJoinToken } from "../../protocol/peer/joinToken.js";
import { rejectionOf } from "../support/thrown.js";

let first: string;
let second: string;

beforeEach(() => {
  first = fs.mkdtempSync(path.join(os.tmpdir(), "hearth-membership-"));
  second = fs.mkdtempSync(path.join(os.tmpdir(), "hearth-membership-"));
});

afterEach(() => {
  fs.rmSync(first, { recursive: true, force: true });
  fs.rmSync(second, { recursive: true, force: true });
});

function capturingLogger(): { logger: Logger; text: () => string } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(chunk.toString("utf8"));
      callback();
    },
  });
  return { logger: pino({ level: "trace" }, sink), text: () => lines.join("") };
}

describe("ClusterMembership", () => {
  it("is absent until init or join", async () => {
    expect(await ClusterMembership.load(first)).toBeUndefined();
  });

  it("init creates credentials in a 0600 file, and the join token carries exactly them", async () => {
    const { membership, changed } = await ClusterMembership.init(first);
    expect(changed).toBe(true);
    expect(membership.origin).toBe("init");
    const file = clusterMembershipPath(first);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.statSync(identityDirectory(first)).mode & 0o777).toBe(0o700);

    const token = membership.joinToken();
    const decoded = decodeJoinToken(token);
    expect(decoded.clusterId).toBe(membership.clusterId);
    expect(Buffer.from(decoded.secret).equals(Buffer.from(membership.secret))).toBe(true);

    const loaded = await ClusterMembership.load(first);
    expect(loaded?.clusterId).toBe(membership.clusterId);
    expect(loaded?.sameCredentials(membership)).toBe(true);
    expect(loaded?.joinToken()).toBe(token);
  });

  it("join stores the token's credentials on another node: both hold the same cluster", async () => {
    const { membership: created } = await ClusterMembership.init(first);
    const { membership: joined, changed } = await ClusterMembership.join(second, created.joinToken());
    expect(changed).toBe(true);
    expect(joined.origin).toBe("join");
    expect(joined.sameCredentials(created)).toBe(true);
    expect((await ClusterMembership.load(second))?.sameCredentials(created)).toBe(true);
    expect(fs.statSync(clusterMembershipPath(second)).mode & 0o777).toBe(0o600);
  });

  it("accepts a token wrapped and upper-cased by a chat window", async () => {
    const { membership } = await ClusterMembership.init(first);
    const token = membership.joinToken();
    const mangled = `  ${token.slice(0, 40).toUpperCase()}\n  ${token.slice(40)}\n`;
    const { membership: joined } = await ClusterMembership.join(second, mangled);
    expect(joined.sameCredentials(membership)).toBe(true);
  });

  it("joining the same cluster again is a no-op", async () => {
    const { membership } = await ClusterMembership.init(first);
    await ClusterMembership.join(second, membership.joinToken());
    const before = fs.readFileSync(clusterMembershipPath(second), "utf8");
    const again = await ClusterMembership.join(second, membership.joinToken());
    expect(again.changed).toBe(false);
    expect(fs.readFileSync(clusterMembershipPath(second), "utf8")).toBe(before);
  });

  it("refuses to join a different cluster unless forced, and leaves the old membership intact", async () => {
    const { membership: ours } = await ClusterMembership.init(first);
    const other = fs.mkdtempSync(path.join(os.tmpdir(), "hearth-membership-"));
    try {
      const { membership: theirs } = await ClusterMembership.init(other);
      const before = fs.readFileSync(clusterMembershipPath(first), "utf8");

      const error = await rejectionOf(ClusterMembership.join(first, theirs.joinToken()));
      expect(error.code).toBe("HEARTH_CLUSTER_CONFLICT");
      expect(error.message).toContain(ours.clusterId);
      expect(error.message).toContain("--force");
      expect(fs.readFileSync(clusterMembershipPath(first), "utf8")).toBe(before);

      const forced = await ClusterMembership.join(first, theirs.joinToken(), { force: true });
      expect(forced.changed).toBe(true);
      expect(forced.replacedClusterId).toBe(ours.clusterId);
      expect((await ClusterMembership.load(first))?.sameCredentials(theirs)).toBe(true);
    } finally {
      fs.rmSync(other, { recursive: true, force: true });
    }
  });

  it("treats a rotated secret of the same cluster id as a different membership", async () => {
    const { membership } = await ClusterMembership.init(first);
    const rotated = { clusterId: membership.clusterId, secret: new Uint8Array(32).fill(7) };
    const { encodeJoinToken } = await import("../../protocol/peer/joinToken.js");
    const error = await rejectionOf(ClusterMembership.join(first, encodeJoinToken(rotated)));
    expect(error.code).toBe("HEARTH_CLUSTER_CONFLICT");
  });

  it("refuses to init over an existing membership unless forced", async () => {
    const { membership: original } = await ClusterMembership.init(first);
    const error = await rejectionOf(ClusterMembership.init(first));
    expect(error.code).toBe("HEARTH_CLUSTER_CONFLICT");
    expect((await ClusterMembership.load(first))?.sameCredentials(original)).toBe(true);

    const forced = await ClusterMembership.init(first, { force: true });
    expect(forced.replacedClusterId).toBe(original.clusterId);
    expect(forced.membership.clusterId).not.toBe(original.clusterId);
  });

  it("a bad token is HEARTH_JOIN_TOKEN_INVALID and writes nothing", async () => {
    const { membership } = await ClusterMembership.init(first);
    const token = membership.joinToken();
    // One character changed (the third from the end): always to something else than it was.
    const broken = token.slice(0, -3) + (token.at(-3) === "a" ? "b" : "a") + token.slice(-2);
    expect(broken).not.toBe(token);
    for (const bad of ["", "hello", "hearth2_abc", token.slice(0, 50), broken]) {
      const error = await rejectionOf(ClusterMembership.join(second, bad));
      expect(error.code).toBe("HEARTH_JOIN_TOKEN_INVALID");
    }
    expect(fs.existsSync(clusterMembershipPath(second))).toBe(false);
  });

  it("a damaged membership file is HEARTH_IDENTITY_INVALID without echoing the secret; a forced join repairs it", async () => {
    const { membership } = await ClusterMembership.init(first);
    const file = clusterMembershipPath(first);
    const secretBase64 = Buffer.from(membership.secret).toString("base64");
    const damaged = [
      "not json",
      JSON.stringify({ format: 1, clusterId: membership.clusterId, secret: secretBase64.slice(0, 20), origin: "init", since: new Date().toISOString() }),
      JSON.stringify({ format: 9, clusterId: membership.clusterId, secret: secretBase64, origin: "init", since: new Date().toISOString() }),
      JSON.stringify({ format: 1, clusterId: "nothex", secret: secretBase64, origin: "init", since: new Date().toISOString() }),
    ];
    for (const content of damaged) {
      fs.writeFileSync(file, content);
      const error = await rejectionOf(ClusterMembership.load(first));
      expect(error.code).toBe("HEARTH_IDENTITY_INVALID");
      expect(error.message).not.toContain(secretBase64.slice(0, 20));
      // Without force, join does not touch a file it cannot read.
      expect((await rejectionOf(ClusterMembership.join(first, membership.joinToken()))).code).toBe("HEARTH_IDENTITY_INVALID");
      expect(fs.readFileSync(file, "utf8")).toBe(content);
    }
    const repaired = await ClusterMembership.join(first, membership.joinToken(), { force: true });
    expect(repaired.changed).toBe(true);
    expect((await ClusterMembership.load(first))?.sameCredentials(membership)).toBe(true);
  });

  it("never puts the secret or the token in logs or serialised output", async () => {
    const capture = capturingLogger();
    const { membership } = await ClusterMembership.init(first, { logger: capture.logger });
    await ClusterMembership.join(second, membership.joinToken(), { logger: capture.logger });
    const other = fs.mkdtempSync(path.join(os.tmpdir(), "hearth-membership-"));
    try {
      const { membership: theirs } = await ClusterMembership.init(other);
      await ClusterMembership.join(second, theirs.joinToken(), { logger: capture.logger, force: true });
      capture.logger.info({ membership }, "membership object logged directly");
      const text = capture.text() + JSON.stringify(membership);
      expect(text).toContain(membership.clusterId);
      for (const secret of [membership.secret, theirs.secret]) {
        expect(text).not.toContain(Buffer.from(secret).toString("base64"));
        expect(text).not.toContain(Buffer.from(secret).toString("hex"));
      }
      expect(text).not.toContain(membership.joinToken());
      expect(text).not.toContain(theirs.joinToken());
    } finally {
      fs.rmSync(other, { recursive: true, force: true });
    }
  });
});
