// Fetching a model file from peers (daemon/sharing/ModelFetcher.ts), wired as the daemon wires
// it (daemon/sharing/ModelSharing.ts): a real model registry and model hashes over a temp
// models dir, real files. The peers are at the socket boundary: the peer table is a list of
// PeerView values built here, and `openStream` returns in-memory streams that play the holder
// of protocol/peer/modelTransferWire.ts (a transfer header, then the file's bytes from the
// offset asked for), honestly, corrupted, or cut off midway.

import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Duplex } from "node:stream";
import { pino } from "pino";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ModelHashes } from "../../daemon/cluster/ModelHashes.js";
import type { PeerView } from "../../protocol/api/cluster.js";
import { DEFAULT_MODEL_SHARING, type ModelsConfig } from "../../daemon/config/defaults.js";
import { ModelRegistry } from "../../daemon/models/ModelRegistry.js";
import { ModelFetcher } from "../../daemon/sharing/ModelFetcher.js";
import { partialPath } from "../../daemon/sharing/modelFiles.js";
import { errors } from "../../protocol/errors.js";
import { encodeTransferHeader, MODEL_FETCH_PURPOSE, type ModelFetchMeta } from "../../protocol/peer/modelTransferWire.js";
import { ensureTinyModel } from "../support/models.js";
import { waitFor } from "../support/wait.js";
import { rejectionOf } from "../support/thrown.js";
import { nodeIdFrom } from "../support/nodeIds.js";
import { upPeerView } from "../support/peerView.js";

const logger = pino({ level: "silent" });
const B = nodeIdFrom("BBBBBBB");
const C = nodeIdFrom("CCCCCCC");
const CHUNK = 64 * 1024;

let content: Buffer;
let sha256: string;

beforeAll(async () => {
  content = await fs.promises.readFile(await ensureTinyModel());
  sha256 = createHash("sha256").update(content).digest("hex");
});

// ---- the holders, at the socket boundary ------------------------------------------------------

interface Opened {
  nodeId: string;
  purpose: string;
  meta: ModelFetchMeta;
}

/** The holder's side of one model.fetch stream. */
class HolderStream extends Duplex {
  override _read(): void {}
  override _write(_chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    callback();
  }
  override _final(callback: () => void): void {
    callback();
  }

  header(offset: number): void {
    this.push(encodeTransferHeader({ sha256, size: content.byteLength, offset }));
  }

  bytes(from: number, to: number, file: Buffer = content): void {
    for (let at = from; at < to; at += CHUNK) this.push(file.subarray(at, Math.min(to, at + CHUNK)));
  }

  done(): void {
    this.push(null);
  }
}

type Holder = (stream: HolderStream, meta: ModelFetchMeta) => void | Promise<void>;

/** Sends the whole file from the offset asked for. */
const honest = (stream: HolderStream, meta: ModelFetchMeta): void => {
  stream.header(meta.offset);
  stream.bytes(meta.offset, content.byteLength);
  stream.done();
};

/** Sends the file with one byte changed. */
const corrupting = (stream: HolderStream, meta: ModelFetchMeta): void => {
  const bad = Buffer.from(content);
  bad[Math.floor(bad.byteLength / 2)]! ^= 0xff;
  stream.header(meta.offset);
  stream.bytes(meta.offset, bad.byteLength, bad);
  stream.done();
};

let modelsDir: string;
let dataDir: string;
let root: string;
let opened: Opened[];
let holders: Map<string, Holder>;
let peers: PeerView[];

/** A peer holding the file as `modelId`; B is nearer than the others. */
function peer(nodeId: string, modelId: string): PeerView {
  return upPeerView(nodeId, [{ id: modelId, sizeBytes: content.byteLength, sha256 }], { rttMs: nodeId === B ? 1 : 2 });
}

function newFetcher(config: Partial<ModelsConfig> = {}): { fetcher: ModelFetcher; registry: ModelRegistry; hashes: ModelHashes } {
  const registry = new ModelRegistry({ modelsDir, logger });
  const hashes = new ModelHashes({ dataDir, logger });
  const fetcher = new ModelFetcher({
    modelsDir,
    config: { ...DEFAULT_MODEL_SHARING, diskReserveBytes: 0, fetchStallTimeoutMs: 5_000, fetchResumeTimeoutMs: 5_000, ...config },
    catalog: registry,
    peers: () => peers,
    hashOf: (model) => hashes.hashOf(model),
    rememberHash: (filePath, sha) => hashes.remember(filePath, sha),
    openStream: (nodeId, purpose, options) => {
      opened.push({ nodeId, purpose, meta: options.meta });
      const holder = holders.get(nodeId);
      if (holder === undefined) return Promise.reject(errors.peerUnavailable(`no link to ${nodeId}`));
      const stream = new HolderStream();
      setImmediate(() => void holder(stream, options.meta));
      return Promise.resolve(stream);
    },
    logger,
  });
  fetchers.push({ fetcher, hashes });
  return { fetcher, registry, hashes };
}

const fetchers: Array<{ fetcher: ModelFetcher; hashes: ModelHashes }> = [];

beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "hearth-fetcher-"));
  modelsDir = path.join(root, "models");
  dataDir = path.join(root, "data");
  fs.mkdirSync(modelsDir, { recursive: true });
  opened = [];
  holders = new Map();
  peers = [];
});

afterEach(() => {
  for (const { fetcher, hashes } of fetchers.splice(0)) {
    fetcher.stop();
    hashes.stop();
  }
  fs.rmSync(root, { recursive: true, force: true });
});

const ensure = (fetcher: ModelFetcher, signal: AbortSignal = new AbortController().signal): Promise<string> => fetcher.ensureLocal({ sha256, modelName: "tiny", signal });

const modelFiles = (): string[] => fs.readdirSync(modelsDir).filter((name) => name.endsWith(".gguf")).sort();

/** Resolves when the partial file holds `bytes` bytes. */
const partialHolds = (bytes: number): Promise<number> =>
  waitFor(() => fs.existsSync(partialPath(modelsDir, sha256)) && fs.statSync(partialPath(modelsDir, sha256)).size === bytes, 5_000, `${bytes} bytes in the partial file`);

describe("ModelFetcher", () => {
  it("fetches a file by sha256 into a partial file, installs it under the holder's id only once it verified, and finds it locally afterwards", async () => {
    peers = [peer(B, "tiny-b")];
    const half = Math.floor(content.byteLength / 2 / CHUNK) * CHUNK;
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    holders.set(B, async (stream, meta) => {
      stream.header(meta.offset);
      stream.bytes(0, half);
      await released;
      stream.bytes(half, content.byteLength);
      stream.done();
    });
    const { fetcher, registry, hashes } = newFetcher();
    const fetching = ensure(fetcher);

    // Half the bytes are in: they are in the partial file, and nothing is in the models dir yet.
    await partialHolds(half);
    // The file write lands before the transfer counts it; wait for the count, not just the file.
    await waitFor(() => fetcher.transfer(sha256)?.bytesDone === half, 5_000, `${half} bytes counted by the transfer`);
    expect(modelFiles()).toEqual([]);
    expect(fetcher.transfer(sha256)).toMatchObject({ state: "transferring", fromNodeId: B, bytesDone: half, totalBytes: content.byteLength, modelId: "tiny-b" });
    release();

    expect(await fetching).toBe("tiny-b");
    expect(modelFiles()).toEqual(["tiny-b.gguf"]);
    expect(fs.readFileSync(path.join(modelsDir, "tiny-b.gguf")).equals(content)).toBe(true);
    expect(fs.existsSync(partialPath(modelsDir, sha256))).toBe(false);
    expect(opened).toEqual([{ nodeId: B, purpose: MODEL_FETCH_PURPOSE, meta: { sha256, offset: 0 } }]);
    expect(fetcher.transfer(sha256)).toMatchObject({ state: "done", bytesDone: content.byteLength, resumes: 0, error: null });

    // The verified hash is remembered: the file is local now, and nothing is fetched again.
    const [installed] = await registry.list();
    expect(installed?.id).toBe("tiny-b");
    expect(hashes.hashOf(installed!)).toBe(sha256);
    expect(await ensure(fetcher)).toBe("tiny-b");
    expect(opened).toHaveLength(1);
  });

  it("refuses a transfer that does not match its sha256: the bad file is deleted, never installed, and its holder is not asked again", async () => {
    peers = [peer(B, "tiny-b")];
    holders.set(B, corrupting);
    const { fetcher } = newFetcher();
    const error = await rejectionOf(ensure(fetcher));
    expect(error.code).toBe("HEARTH_MODEL_TRANSFER_FAILED");
    expect(error.message).toBe(`no peer could send the model tiny-b (sha256 ${sha256}) intact`);
    expect(modelFiles()).toEqual([]);
    expect(fs.existsSync(partialPath(modelsDir, sha256))).toBe(false);
    expect(opened.map((entry) => entry.nodeId)).toEqual([B]);
    expect(fetcher.transfer(sha256)).toMatchObject({ state: "failed", error: { code: "HEARTH_MODEL_TRANSFER_FAILED" } });
  });

  it("after a holder sent a corrupt file, takes the file from another holder from the start (named as the transfer began: after the first holder)", async () => {
    peers = [peer(B, "tiny-b"), peer(C, "tiny-c")];
    holders.set(B, corrupting);
    holders.set(C, honest);
    const { fetcher } = newFetcher();
    expect(await ensure(fetcher)).toBe("tiny-b");
    expect(opened.map((entry) => [entry.nodeId, entry.meta.offset])).toEqual([
      [B, 0],
      [C, 0],
    ]);
    expect(fs.readFileSync(path.join(modelsDir, "tiny-b.gguf")).equals(content)).toBe(true);
    expect(fetcher.transfer(sha256)).toMatchObject({ state: "done", fromNodeId: C });
  });

  it("a transfer cut midway resumes from its partial file: the next attempt asks for the rest only, and the whole file verifies", async () => {
    peers = [peer(B, "tiny-b")];
    const cut = 3 * CHUNK;
    let attempts = 0;
    holders.set(B, async (stream, meta) => {
      attempts++;
      if (attempts === 1) {
        stream.header(meta.offset);
        stream.bytes(0, cut);
        // The bytes reached the partial file; then the link drops.
        await partialHolds(cut);
        stream.destroy(errors.peerUnavailable("the link to the holder closed"));
        return;
      }
      honest(stream, meta);
    });
    const { fetcher } = newFetcher();
    expect(await ensure(fetcher)).toBe("tiny-b");
    expect(opened.map((entry) => entry.meta)).toEqual([
      { sha256, offset: 0 },
      { sha256, offset: cut },
    ]);
    expect(fs.readFileSync(path.join(modelsDir, "tiny-b.gguf")).equals(content)).toBe(true);
    expect(fetcher.transfer(sha256)).toMatchObject({ state: "done", resumes: 1, bytesDone: content.byteLength });
  });

  it("a partial file left by an earlier run is continued, not fetched again from the start", async () => {
    peers = [peer(B, "tiny-b")];
    holders.set(B, honest);
    const kept = 5 * CHUNK;
    fs.mkdirSync(path.dirname(partialPath(modelsDir, sha256)), { recursive: true });
    fs.writeFileSync(partialPath(modelsDir, sha256), content.subarray(0, kept));
    const { fetcher } = newFetcher();
    expect(await ensure(fetcher)).toBe("tiny-b");
    expect(opened.map((entry) => entry.meta.offset)).toEqual([kept]);
    expect(fs.readFileSync(path.join(modelsDir, "tiny-b.gguf")).equals(content)).toBe(true);
  });

  it("concurrent requests for one sha256 share one transfer, and a pull meanwhile joins it", async () => {
    peers = [peer(B, "tiny-b")];
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    holders.set(B, async (stream, meta) => {
      await released;
      honest(stream, meta);
    });
    const { fetcher } = newFetcher();
    const first = ensure(fetcher);
    const second = ensure(fetcher);
    await waitFor(() => opened.length === 1, 5_000, "the transfer to open its stream");
    const pulled = await fetcher.pull(sha256);
    expect(pulled).toMatchObject({ present: false, joined: true, transfer: { sha256, origin: "auto" } });
    expect(fetcher.transfers()).toHaveLength(1);
    release();
    expect(await Promise.all([first, second])).toEqual(["tiny-b", "tiny-b"]);
    expect(opened).toHaveLength(1);
    expect(modelFiles()).toEqual(["tiny-b.gguf"]);
  });

  it("a caller that gives up stops waiting (HEARTH_CANCELLED) while the transfer it started goes on for the others", async () => {
    peers = [peer(B, "tiny-b")];
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    holders.set(B, async (stream, meta) => {
      await released;
      honest(stream, meta);
    });
    const { fetcher } = newFetcher();
    const controller = new AbortController();
    const impatient = ensure(fetcher, controller.signal);
    const patient = ensure(fetcher);
    controller.abort();
    expect((await rejectionOf(impatient)).code).toBe("HEARTH_CANCELLED");
    release();
    expect(await patient).toBe("tiny-b");
  });

  it("share policy never refuses with HEARTH_MODEL_FETCH_REFUSED before opening anything or writing a byte", async () => {
    peers = [peer(B, "tiny-b")];
    holders.set(B, honest);
    const { fetcher } = newFetcher({ sharePolicy: "never" });
    const error = await rejectionOf(ensure(fetcher));
    expect(error).toMatchObject({ code: "HEARTH_MODEL_FETCH_REFUSED", param: "model" });
    expect(error.message).toBe('this node does not fetch models from peers (models.share_policy = "never"); copy "tiny" into its models dir, or change the policy');
    expect((await rejectionOf(fetcher.pull(sha256))).code).toBe("HEARTH_MODEL_FETCH_REFUSED");
    expect(opened).toEqual([]);
    expect(fs.readdirSync(modelsDir)).toEqual([]);
  });

  it("share policy ask refuses the router's automatic fetch but lets an explicit pull through", async () => {
    peers = [peer(B, "tiny-b")];
    holders.set(B, honest);
    const { fetcher } = newFetcher({ sharePolicy: "ask" });
    expect((await rejectionOf(ensure(fetcher))).code).toBe("HEARTH_MODEL_FETCH_REFUSED");
    expect(opened).toEqual([]);
    expect(await fetcher.pull(sha256)).toMatchObject({ present: false, joined: false, transfer: { origin: "pull", modelId: "tiny-b" } });
    await waitFor(() => fetcher.transfer(sha256)?.state === "done", 10_000, "the pull to finish");
    expect(modelFiles()).toEqual(["tiny-b.gguf"]);
  });
});
