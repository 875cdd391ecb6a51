// Model sharing's decisions (daemon/sharing/): which peers can send a file and in which order,
// how `hearth pull MODEL` resolves, the share policy and free-disk rule, the names a fetched
// file may take and the no-clobber install, the rate meter, and the test-only corruption knob.

import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { HearthError } from "../../protocol/errors.js";
import { validateConfigObject } from "../../daemon/config/schema.js";
import { holdersOf, resolvePullTarget, type PeerModels } from "../../daemon/sharing/holders.js";
import { candidateModelIds, installVerified, partialDir, partialPath } from "../../daemon/sharing/modelFiles.js";
import { diskSpaceRefusal, fetchRefusal } from "../../daemon/sharing/sharePolicy.js";
import { corruptTransferOffset, CorruptingTransform } from "../../daemon/sharing/testFaults.js";
import { RateMeter } from "../../daemon/sharing/transferProgress.js";

const A = "a".repeat(64);
const B = "b".repeat(64);

function peer(nodeId: string, models: { id: string; sha256: string | null; sizeBytes?: number }[], extra: Partial<PeerModels> = {}): PeerModels {
  return { nodeId, state: "up", rttMs: 1, models: models.map((model) => ({ sizeBytes: 100, ...model })), ...extra };
}

describe("holdersOf", () => {
  it("lists only reachable peers holding that exact sha256, under their own ids", () => {
    const peers = [
      peer("N1", [{ id: "tiny", sha256: A }]),
      peer("N2", [{ id: "renamed", sha256: A }], { rttMs: 0.5 }),
      peer("N3", [{ id: "tiny", sha256: B }]),
      peer("N4", [{ id: "tiny", sha256: A }], { state: "down" }),
      peer("N5", [{ id: "tiny", sha256: null }]),
      { nodeId: null, state: "connecting" as const, rttMs: null, models: null },
    ];
    expect(holdersOf(peers, A).map((holder) => [holder.nodeId, holder.modelId])).toEqual([
      ["N2", "renamed"],
      ["N1", "tiny"],
    ]);
  });

  it("puts the preferred holder first (a resume continues where it was) and leaves out excluded ones", () => {
    const peers = [peer("N1", [{ id: "m", sha256: A }], { rttMs: 9 }), peer("N2", [{ id: "m", sha256: A }], { rttMs: 1 }), peer("N3", [{ id: "m", sha256: A }], { rttMs: null })];
    expect(holdersOf(peers, A, { prefer: "N1" }).map((holder) => holder.nodeId)).toEqual(["N1", "N2", "N3"]);
    expect(holdersOf(peers, A, { exclude: new Set(["N2"]) }).map((holder) => holder.nodeId)).toEqual(["N1", "N3"]);
  });
});

describe("resolvePullTarget", () => {
  const peers = [peer("N1", [{ id: "tiny", sha256: A, sizeBytes: 7 }, { id: "pending", sha256: null }]), peer("N2", [{ id: "tiny", sha256: A }, { id: "dup", sha256: A }]), peer("N3", [{ id: "dup", sha256: B }])];

  it("resolves a model id to the one file peers hold under it", () => {
    expect(resolvePullTarget(peers, "tiny")).toEqual({ sha256: A, modelId: "tiny", sizeBytes: 7 });
  });

  it("resolves a sha256 to the first holder's id for it", () => {
    expect(resolvePullTarget(peers, B)).toMatchObject({ sha256: B, modelId: "dup" });
  });

  it("refuses a name two peers use for different files, naming both hashes", () => {
    const error = (() => {
      try {
        resolvePullTarget(peers, "dup");
      } catch (caught) {
        return caught as HearthError;
      }
      return undefined;
    })();
    expect(error?.code).toBe("HEARTH_INVALID_REQUEST");
    expect(error?.message).toContain(A);
    expect(error?.message).toContain(B);
  });

  it("says a model is not found, and when a peer has it but not hashed yet", () => {
    expect(() => resolvePullTarget(peers, "nope")).toThrow(expect.objectContaining({ code: "HEARTH_MODEL_NOT_FOUND" }));
    expect(() => resolvePullTarget(peers, "pending")).toThrow(/not hashed it yet/);
    expect(() => resolvePullTarget(peers, "c".repeat(64))).toThrow(expect.objectContaining({ code: "HEARTH_MODEL_NOT_FOUND" }));
  });
});

describe("share policy and disk space", () => {
  it("always fetches; ask only on an explicit pull, telling the user the command; never refuses both", () => {
    expect(fetchRefusal("always", "auto", "m")).toBeUndefined();
    expect(fetchRefusal("always", "pull", "m")).toBeUndefined();
    expect(fetchRefusal("ask", "pull", "m")).toBeUndefined();
    const ask = fetchRefusal("ask", "auto", "llama-3");
    expect(ask?.code).toBe("HEARTH_MODEL_FETCH_REFUSED");
    expect(ask?.message).toContain("hearth pull llama-3 --from-peer");
    expect(fetchRefusal("never", "pull", "m")?.code).toBe("HEARTH_MODEL_FETCH_REFUSED");
    expect(fetchRefusal("never", "auto", "m")?.code).toBe("HEARTH_MODEL_FETCH_REFUSED");
  });

  it("needs the missing bytes plus the reserve free, counting what a partial file already holds", () => {
    expect(diskSpaceRefusal({ freeBytes: 1_000, totalBytes: 600, presentBytes: 0, reserveBytes: 400 })).toBeUndefined();
    expect(diskSpaceRefusal({ freeBytes: 1_000, totalBytes: 600, presentBytes: 0, reserveBytes: 401 })?.code).toBe("HEARTH_INSUFFICIENT_DISK");
    expect(diskSpaceRefusal({ freeBytes: 1_000, totalBytes: 900, presentBytes: 500, reserveBytes: 600 })).toBeUndefined();
    expect(diskSpaceRefusal({ freeBytes: 0, totalBytes: 10, presentBytes: 10, reserveBytes: 0 })).toBeUndefined();
  });
});

describe("fetched files on disk", () => {
  const roots: string[] = [];
  afterEach(() => {
    for (const root of roots.splice(0)) fs.rmSync(root, { recursive: true, force: true });
  });

  function modelsDir(): string {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "hearth-sharing-unit-"));
    roots.push(root);
    fs.mkdirSync(partialDir(root), { recursive: true });
    return root;
  }

  function writePartial(dir: string, content: string): string {
    const sha256 = createHash("sha256").update(content).digest("hex");
    fs.writeFileSync(partialPath(dir, sha256), content);
    return sha256;
  }

  it("keeps partial files in a hidden dir, keyed only by a sha256", () => {
    const dir = modelsDir();
    expect(path.basename(partialDir(dir)).startsWith(".")).toBe(true);
    expect(path.dirname(partialPath(dir, A))).toBe(partialDir(dir));
    expect(() => partialPath(dir, "../../x")).toThrow(HearthError);
  });

  it("names a file after the holder's id, then after its hash, and never uses an unsafe id", () => {
    expect(candidateModelIds("tiny", A).slice(0, 3)).toEqual(["tiny", `tiny-${A.slice(0, 12)}`, `tiny-${A.slice(0, 12)}-2`]);
    expect(candidateModelIds("../evil", A)[0]).toBe("model");
    expect(candidateModelIds(".hidden", A)[0]).toBe("model");
  });

  it("installs under the holder's id, moving the partial out", async () => {
    const dir = modelsDir();
    const sha256 = writePartial(dir, "weights");
    const installed = await installVerified({ modelsDir: dir, sha256, modelId: "tiny", sameContent: () => Promise.resolve(false) });
    expect(installed).toEqual({ id: "tiny", path: path.join(dir, "tiny.gguf"), created: true });
    expect(fs.readFileSync(installed.path, "utf8")).toBe("weights");
    expect(fs.existsSync(partialPath(dir, sha256))).toBe(false);
  });

  it("never replaces a different file of the same name, and reuses one with the same content", async () => {
    const dir = modelsDir();
    fs.writeFileSync(path.join(dir, "tiny.gguf"), "other weights");
    const sha256 = writePartial(dir, "weights");
    const installed = await installVerified({ modelsDir: dir, sha256, modelId: "tiny", sameContent: () => Promise.resolve(false) });
    expect(installed.id).toBe(`tiny-${sha256.slice(0, 12)}`);
    expect(fs.readFileSync(path.join(dir, "tiny.gguf"), "utf8")).toBe("other weights");

    const again = writePartial(dir, "weights");
    const reused = await installVerified({ modelsDir: dir, sha256: again, modelId: "tiny", sameContent: (file) => Promise.resolve(fs.readFileSync(file, "utf8") === "weights") });
    expect(reused).toMatchObject({ id: `tiny-${sha256.slice(0, 12)}`, created: false });
    expect(fs.existsSync(partialPath(dir, again))).toBe(false);
  });
});

describe("RateMeter", () => {
  it("reports bytes per second over its window and decays to 0 when bytes stop", () => {
    const meter = new RateMeter(1_000);
    meter.add(0, 0);
    meter.add(500, 250);
    meter.add(500, 500);
    expect(meter.rate(500)).toBe(2_000);
    expect(meter.rate(5_000)).toBe(0);
  });
});

describe("HEARTH_TEST_CORRUPT_TRANSFER_AT", () => {
  it("is inert unless set, and refuses a malformed value", () => {
    expect(corruptTransferOffset({})).toBeUndefined();
    expect(corruptTransferOffset({ HEARTH_TEST_CORRUPT_TRANSFER_AT: "" })).toBeUndefined();
    expect(corruptTransferOffset({ HEARTH_TEST_CORRUPT_TRANSFER_AT: "1234" })).toBe(1234);
    expect(() => corruptTransferOffset({ HEARTH_TEST_CORRUPT_TRANSFER_AT: "-1" })).toThrow(expect.objectContaining({ code: "HEARTH_CONFIG_INVALID" }));
    expect(() => corruptTransferOffset({ HEARTH_TEST_CORRUPT_TRANSFER_AT: "12abc" })).toThrow(HearthError);
  });

  it("inverts exactly the byte at that file offset, wherever the chunks fall and wherever the transfer starts", async () => {
    const file = Buffer.from(Array.from({ length: 100 }, (_, i) => i));
    for (const start of [0, 10, 42, 43]) {
      const chunks = [file.subarray(start, 30), file.subarray(30, 42), file.subarray(42, 43), file.subarray(43)].filter((chunk) => chunk.byteLength > 0 && chunk.byteOffset - file.byteOffset >= start);
      const out: Buffer[] = [];
      for await (const chunk of Readable.from(chunks).pipe(new CorruptingTransform(start, 42))) out.push(chunk as Buffer);
      const sent = Buffer.concat(out);
      const expected = Buffer.from(file.subarray(start));
      if (start <= 42) expected[42 - start] = 42 ^ 0xff;
      expect([...sent]).toEqual([...expected]);
    }
  });
});

describe("[models] sharing keys", () => {
  it("accept the documented values and refuse others with the key named", () => {
    const ok = validateConfigObject({ models: { share_policy: "ask", serve_to_peers: false, disk_reserve_bytes: 0, fetch_resume_timeout: "30s", fetch_stall_timeout: "5s", max_concurrent_serves: 2, peer_fetch_timeout: "30m" } });
    expect(ok).toEqual({ ok: true, values: expect.objectContaining({ models: { sharePolicy: "ask", serveToPeers: false, diskReserveBytes: 0, fetchResumeTimeoutMs: 30_000, fetchStallTimeoutMs: 5_000, maxConcurrentServes: 2, peerFetchTimeoutMs: 1_800_000 } }) });
    const bad = validateConfigObject({ models: { share_policy: "sometimes", disk_reserve_bytes: -1, fetch_stall_timeout: 30 } });
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.issues.map((issue) => issue.path.join("."))).toEqual(expect.arrayContaining(["models.share_policy", "models.disk_reserve_bytes", "models.fetch_stall_timeout"]));
  });
});
