// The node identity on disk: created once with private modes, stable across reloads (the node
// id peers know), never silently replaced when damaged, and usable as a real mutual-TLS
// identity whose fingerprint is what the other side observes.

import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import tls from "node:tls";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createSelfSignedCertificate } from "../../daemon/identity/selfSignedCertificate.js";
import { identityDirectory, NodeIdentity, nodeIdentityPath } from "../../daemon/identity/NodeIdentity.js";
import { HearthError } from "../../protocol/errors.js";
import { fingerprintToHex, isValidNodeId, nodeIdFromFingerprint } from "../../protocol/peer/identity.js";
import { rejectionOf } from "../support/thrown.js";

let dataDir: string;

beforeEach(() => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "hearth-identity-"));
});

afterEach(() => {
  fs.rmSync(dataDir, { recursive: true, force: true });
});

const modeOf = (file: string): number => fs.statSync(file).mode & 0o777;

async function expectIdentityError(promise: Promise<unknown>): Promise<HearthError> {
  const error = await rejectionOf(promise);
  expect(error.code).toBe("HEARTH_IDENTITY_INVALID");
  return error;
}

describe("NodeIdentity", () => {
  it("creates a P-256 key and self-signed certificate in a 0700 directory, file mode 0600", async () => {
    const identity = await NodeIdentity.loadOrCreate(dataDir);
    const file = nodeIdentityPath(dataDir);
    expect(identity.file).toBe(file);
    expect(modeOf(identityDirectory(dataDir))).toBe(0o700);
    expect(modeOf(file)).toBe(0o600);
    // No temporary files are left behind by the atomic write.
    expect(fs.readdirSync(identityDirectory(dataDir))).toEqual(["node.pem"]);

    const certificate = new crypto.X509Certificate(identity.certificatePem);
    const key = crypto.createPrivateKey(identity.tlsCredentials().key);
    expect(key.asymmetricKeyType).toBe("ec");
    expect(key.asymmetricKeyDetails?.namedCurve).toBe("prime256v1");
    expect(certificate.checkPrivateKey(key)).toBe(true);
    expect(certificate.verify(crypto.createPublicKey(key))).toBe(true);
    expect(certificate.subject).toBe("CN=hearth");
    expect(certificate.validTo).toBe("Dec 31 23:59:59 9999 GMT");
    expect(certificate.ca).toBe(false);
    expect(certificate.keyUsage).toEqual(expect.arrayContaining(["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"]));
  });

  it("derives the node id from the SHA-256 of the certificate's DER bytes", async () => {
    const identity = await NodeIdentity.loadOrCreate(dataDir);
    const der = new crypto.X509Certificate(identity.certificatePem).raw;
    const fingerprint = crypto.createHash("sha256").update(der).digest();
    expect(identity.fingerprintHex).toBe(fingerprint.toString("hex"));
    expect(identity.nodeId).toBe(nodeIdFromFingerprint(new Uint8Array(fingerprint)));
    expect(isValidNodeId(identity.nodeId)).toBe(true);
  });

  it("reloads the same identity, so the node id is stable across restarts", async () => {
    const created = await NodeIdentity.loadOrCreate(dataDir);
    const reloaded = await NodeIdentity.load(dataDir);
    const again = await NodeIdentity.loadOrCreate(dataDir);
    expect(reloaded?.nodeId).toBe(created.nodeId);
    expect(again.nodeId).toBe(created.nodeId);
    expect(Buffer.from(again.certificateDer).equals(Buffer.from(created.certificateDer))).toBe(true);
  });

  it("gives two data dirs two different identities", async () => {
    const other = fs.mkdtempSync(path.join(os.tmpdir(), "hearth-identity-"));
    try {
      const first = await NodeIdentity.loadOrCreate(dataDir);
      const second = await NodeIdentity.loadOrCreate(other);
      expect(second.nodeId).not.toBe(first.nodeId);
    } finally {
      fs.rmSync(other, { recursive: true, force: true });
    }
  });

  it("load() returns undefined when no identity exists yet, and creates nothing", async () => {
    expect(await NodeIdentity.load(dataDir)).toBeUndefined();
    expect(fs.existsSync(identityDirectory(dataDir))).toBe(false);
  });

  it("concurrent loadOrCreate calls end up with one shared identity", async () => {
    const identities = await Promise.all(Array.from({ length: 6 }, () => NodeIdentity.loadOrCreate(dataDir)));
    const onDisk = await NodeIdentity.load(dataDir);
    expect(new Set(identities.map((identity) => identity.nodeId))).toEqual(new Set([onDisk!.nodeId]));
    expect(fs.readdirSync(identityDirectory(dataDir))).toEqual(["node.pem"]);
  });

  it("restricts a secret file or directory that others could read", async () => {
    await NodeIdentity.loadOrCreate(dataDir);
    const file = nodeIdentityPath(dataDir);
    fs.chmodSync(file, 0o644);
    fs.chmodSync(identityDirectory(dataDir), 0o755);
    await NodeIdentity.loadOrCreate(dataDir);
    expect(modeOf(file)).toBe(0o600);
    await NodeIdentity.load(dataDir);
    expect(modeOf(file)).toBe(0o600);
  });

  it("never logs or serialises the private key", async () => {
    const identity = await NodeIdentity.loadOrCreate(dataDir);
    const json = JSON.stringify(identity);
    expect(json).not.toContain("PRIVATE KEY");
    expect(JSON.parse(json)).toEqual({ nodeId: identity.nodeId, fingerprint: identity.fingerprintHex, file: identity.file });
  });

  describe("a damaged identity is an error, never silently replaced", () => {
    const damage: Array<[string, (pem: string, file: string) => void]> = [
      ["garbage bytes", (_pem, file) => fs.writeFileSync(file, crypto.randomBytes(300))],
      ["an empty file", (_pem, file) => fs.writeFileSync(file, "")],
      ["a truncated PEM", (pem, file) => fs.writeFileSync(file, pem.slice(0, Math.floor(pem.length * 0.6)))],
      ["a corrupted key body", (pem, file) => fs.writeFileSync(file, pem.replace(/(-----BEGIN PRIVATE KEY-----\n)(.{10})/, "$1AAAAAAAAAA"))],
      ["a corrupted certificate body", (pem, file) => fs.writeFileSync(file, pem.replace(/(-----BEGIN CERTIFICATE-----\n)(.{12})/, "$1////////////"))],
      ["the certificate missing", (pem, file) => fs.writeFileSync(file, pem.slice(0, pem.indexOf("-----BEGIN CERTIFICATE-----")))],
      ["two keys", (pem, file) => fs.writeFileSync(file, pem + pem.slice(0, pem.indexOf("-----BEGIN CERTIFICATE-----")))],
      ["a directory in its place", (_pem, file) => {
        fs.rmSync(file);
        fs.mkdirSync(file);
      }],
      ["a huge file", (_pem, file) => fs.writeFileSync(file, Buffer.alloc(1024 * 1024, 0x41))],
    ];

    for (const [name, corrupt] of damage) {
      it(`${name} -> HEARTH_IDENTITY_INVALID, and the file is left as it was`, async () => {
        await NodeIdentity.loadOrCreate(dataDir);
        const file = nodeIdentityPath(dataDir);
        corrupt(fs.readFileSync(file, "utf8"), file);
        const before = fs.statSync(file).isFile() ? fs.readFileSync(file) : undefined;

        const error = await expectIdentityError(NodeIdentity.loadOrCreate(dataDir));
        expect(error.message).toContain(file);
        expect(error.message).toMatch(/will not replace it/);
        await expectIdentityError(NodeIdentity.load(dataDir));
        if (before !== undefined) expect(fs.readFileSync(file).equals(before)).toBe(true);
      });
    }

    it("a certificate that belongs to another key -> HEARTH_IDENTITY_INVALID", async () => {
      const other = fs.mkdtempSync(path.join(os.tmpdir(), "hearth-identity-"));
      try {
        const mine = await NodeIdentity.loadOrCreate(dataDir);
        const theirs = await NodeIdentity.loadOrCreate(other);
        fs.writeFileSync(mine.file, mine.tlsCredentials().key + theirs.certificatePem);
        const error = await expectIdentityError(NodeIdentity.loadOrCreate(dataDir));
        expect(error.message).toContain("does not belong to its private key");
      } finally {
        fs.rmSync(other, { recursive: true, force: true });
      }
    });
  });

  it("works as a mutual TLS 1.3 identity, and each side observes the other's fingerprint", async () => {
    const other = fs.mkdtempSync(path.join(os.tmpdir(), "hearth-identity-"));
    try {
      const server = await NodeIdentity.loadOrCreate(dataDir);
      const client = await NodeIdentity.loadOrCreate(other);
      const observed = await new Promise<{ byServer: string; byClient: string; protocol: string | null }>((resolve, reject) => {
        const listener = tls.createServer({ ...server.tlsCredentials(), requestCert: true, rejectUnauthorized: false, minVersion: "TLSv1.3" }, (socket) => {
          const byServer = fingerprintToHex(crypto.createHash("sha256").update(socket.getPeerX509Certificate()!.raw).digest());
          socket.end(byServer);
        });
        listener.listen(0, "127.0.0.1", () => {
          const { port } = listener.address() as { port: number };
          const socket = tls.connect({ host: "127.0.0.1", port, ...client.tlsCredentials(), rejectUnauthorized: false, minVersion: "TLSv1.3" }, () => {
            const byClient = fingerprintToHex(crypto.createHash("sha256").update(socket.getPeerX509Certificate()!.raw).digest());
            let byServer = "";
            socket.setEncoding("utf8");
            socket.on("data", (chunk: string) => (byServer += chunk));
            socket.on("end", () => {
              listener.close();
              resolve({ byServer, byClient, protocol: socket.getProtocol() });
            });
          });
          socket.on("error", reject);
        });
      });
      expect(observed.protocol).toBe("TLSv1.3");
      expect(observed.byServer).toBe(client.fingerprintHex);
      expect(observed.byClient).toBe(server.fingerprintHex);
    } finally {
      fs.rmSync(other, { recursive: true, force: true });
    }
  });
});

describe("createSelfSignedCertificate", () => {
  it("also signs with Ed25519, which Node 20's TLS accepts too", () => {
    const { privateKey, publicKey } = crypto.generateKeyPairSync("ed25519");
    const der = createSelfSignedCertificate(privateKey, publicKey, { commonName: "hearth" });
    const certificate = new crypto.X509Certificate(der);
    expect(certificate.verify(publicKey)).toBe(true);
    expect(() => tls.createSecureContext({ key: privateKey.export({ type: "pkcs8", format: "pem" }), cert: certificate.toString() })).not.toThrow();
  });

  it("writes UTCTime before 2050 and each certificate gets a fresh positive serial", () => {
    const { privateKey, publicKey } = crypto.generateKeyPairSync("ec", { namedCurve: "P-256" });
    const notBefore = new Date(Date.UTC(2030, 0, 2, 3, 4, 5));
    const first = new crypto.X509Certificate(createSelfSignedCertificate(privateKey, publicKey, { commonName: "hearth", notBefore }));
    const second = new crypto.X509Certificate(createSelfSignedCertificate(privateKey, publicKey, { commonName: "hearth", notBefore }));
    expect(first.validFrom).toBe("Jan  2 03:04:05 2030 GMT");
    expect(first.serialNumber).not.toBe(second.serialNumber);
    expect(first.serialNumber).toMatch(/^[4-7][0-9A-F]{31}$/);
  });

  it("refuses key types it cannot sign with", () => {
    const { privateKey, publicKey } = crypto.generateKeyPairSync("ec", { namedCurve: "P-384" });
    expect(() => createSelfSignedCertificate(privateKey, publicKey, { commonName: "hearth" })).toThrow(HearthError);
  });
});
