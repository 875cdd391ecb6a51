/**
 * Fetches model files this node lacks from the peers that hold them (docs/protocol.md, "Model
 * transfer"). One transfer per sha256 at a time: every caller asking for the same file (the
 * router's LocalModelProvider hook, `hearth pull --from-peer`) shares it.
 *
 * A transfer:
 *   1. checks the share policy and the free disk (models.share_policy, models.disk_reserve_bytes);
 *   2. appends to `<models_dir>/.hearth-partial/<sha256>.part` (modelFiles.ts), continuing from
 *      whatever is there already, over a `model.fetch` stream to the best reachable holder;
 *   3. after a link drop, a stall or a refusal, continues from the partial's size with the same
 *      holder or another one, waiting up to models.fetch_resume_timeout for one to be reachable;
 *   4. checks the sha256 over the whole file (hashed as it arrives, the existing prefix re-read
 *      once on resume) and only then links it into the models dir under the holder's model id.
 *      A file that does not verify is deleted, never installed; its holder is not asked again
 *      by this transfer.
 * Progress (bytes, rate, peer, resumes) is visible through transfers() for the status API.
 */

import { createHash, type Hash } from "node:crypto";
import fs from "node:fs";
import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import type { PeerView } from "../../protocol/api/cluster.js";
import type { FetchOrigin, PullResult, TransferState, TransferView } from "../../protocol/api/pulls.js";
import { errors, HearthError, type HearthErrorCode } from "../../protocol/errors.js";
import { shortNodeId } from "../../protocol/peer/identity.js";
import { MODEL_FETCH_PURPOSE, isSha256Hex, type ModelFetchMeta } from "../../protocol/peer/modelTransferWire.js";
import type { ModelsConfig } from "../config/defaults.js";
import type { ModelCatalog, ModelDescriptor } from "../engine/types.js";
import { FileHashCache } from "../models/fileHash.js";
import { runFetchAttempt } from "./fetchAttempt.js";
import { holdersOf, resolvePullTarget, type Holder } from "./holders.js";
import type { LocalModelProvider } from "../routing/LocalModelProvider.js";
import { installVerified, partialDir, partialPath, partialSize, removePartial } from "./modelFiles.js";
import { diskSpaceRefusal, fetchRefusal } from "./sharePolicy.js";
import { RateMeter } from "./transferProgress.js";

/** How often a transfer waiting for a holder looks at the peer table again. */
const HOLDER_POLL_MS = 500;
/** Attempts in a row that add no byte before a transfer gives up (each is followed by a short pause). */
const MAX_FRUITLESS_ATTEMPTS = 5;
/** Finished transfers kept for `GET /hearth/v1/models/pulls/{sha256}` and the CLI that follows one. */
const MAX_FINISHED = 16;
/** Failures after which a transfer continues (same or another holder) rather than giving up. */
const RETRYABLE: ReadonlySet<HearthErrorCode> = new Set<HearthErrorCode>([
  "HEARTH_PEER_UNAVAILABLE",
  "HEARTH_PEER_TIMEOUT",
  "HEARTH_SHUTTING_DOWN",
  "HEARTH_QUEUE_FULL",
  "HEARTH_CANCELLED",
  "HEARTH_INTERNAL",
]);

export interface ModelFetcherDeps {
  modelsDir: string;
  config: Pick<ModelsConfig, "sharePolicy" | "diskReserveBytes" | "fetchResumeTimeoutMs" | "fetchStallTimeoutMs">;
  catalog: Pick<ModelCatalog, "list">;
  /** The peer table (ClusterService.peerViews). */
  peers: () => PeerView[];
  /** What this node advertises for a local file (ClusterService.modelHashOf). */
  hashOf: (model: Pick<ModelDescriptor, "path">) => string | null;
  /** Records a fetched file's verified hash (ClusterService.rememberModelHash). */
  rememberHash: (filePath: string, sha256: string) => Promise<void>;
  openStream: (nodeId: string, purpose: string, options: { meta: ModelFetchMeta; signal: AbortSignal }) => Promise<Duplex>;
  logger: Logger;
  /** Free bytes on the models dir's file system; injectable for tests. */
  freeBytes?: (dir: string) => Promise<number>;
}

class Transfer {
  readonly sha256: string;
  readonly model: string;
  readonly origin: FetchOrigin;
  readonly startedAt = new Date();
  readonly meter = new RateMeter();
  readonly excluded = new Set<string>();
  readonly controller = new AbortController();
  modelId: string;
  state: TransferState = "connecting";
  fromNodeId: string | null = null;
  bytesDone = 0;
  totalBytes: number;
  resumes = 0;
  finishedAt: Date | null = null;
  error: HearthError | null = null;
  promise!: Promise<string>;

  constructor(sha256: string, model: string, modelId: string, totalBytes: number, origin: FetchOrigin) {
    this.sha256 = sha256;
    this.model = model;
    this.modelId = modelId;
    this.totalBytes = totalBytes;
    this.origin = origin;
  }

  view(): TransferView {
    const running = this.state === "transferring";
    return {
      sha256: this.sha256,
      model: this.model,
      modelId: this.modelId,
      origin: this.origin,
      state: this.state,
      fromNodeId: this.fromNodeId,
      bytesDone: this.bytesDone,
      totalBytes: this.totalBytes,
      bytesPerSecond: running ? this.meter.rate() : 0,
      resumes: this.resumes,
      startedAt: this.startedAt.toISOString(),
      finishedAt: this.finishedAt?.toISOString() ?? null,
      error: this.error?.toPayload() ?? null,
    };
  }
}

export class ModelFetcher implements LocalModelProvider {
  readonly #deps: ModelFetcherDeps;
  readonly #logger: Logger;
  readonly #active = new Map<string, Transfer>();
  readonly #finished: Transfer[] = [];
  readonly #hashes = new FileHashCache();
  #stopped = false;

  constructor(deps: ModelFetcherDeps) {
    this.#deps = deps;
    this.#logger = deps.logger.child({ component: "sharing" });
  }

  /** LocalModelProvider: the router needs this file here. A cancelled caller stops waiting; the transfer goes on. */
  async ensureLocal(request: { sha256: string; modelName: string; signal: AbortSignal }): Promise<string> {
    if (!isSha256Hex(request.sha256)) throw errors.invalidRequest("a model is fetched by its sha256", { param: "model" });
    const local = await this.#localIdOf(request.sha256);
    if (local !== undefined) return local;
    const transfer = this.#active.get(request.sha256) ?? this.#start(request.sha256, request.modelName, "auto", undefined);
    return abortable(transfer.promise, request.signal);
  }

  /** `hearth pull MODEL --from-peer`: starts (or joins) the transfer and returns at once. */
  async pull(model: string): Promise<PullResult> {
    if (typeof model !== "string" || model === "") throw errors.invalidRequest("model must be a model id or a sha256", { param: "model" });
    const byHash = isSha256Hex(model) ? model : undefined;
    const localByName = byHash === undefined ? await this.#localModel(model) : undefined;
    if (localByName !== undefined) return { present: true, modelId: localByName.id, sha256: this.#deps.hashOf(localByName) };
    const target = resolvePullTarget(this.#deps.peers(), model);
    const local = await this.#localIdOf(target.sha256);
    if (local !== undefined) return { present: true, modelId: local, sha256: target.sha256 };
    const existing = this.#active.get(target.sha256);
    if (existing !== undefined) return { present: false, joined: true, transfer: existing.view() };
    const transfer = this.#start(target.sha256, model, "pull", target);
    // The caller follows progress through transfer(); the outcome is recorded there.
    transfer.promise.catch(() => undefined);
    return { present: false, joined: false, transfer: transfer.view() };
  }

  /** Transfers in progress. */
  transfers(): TransferView[] {
    return [...this.#active.values()].map((transfer) => transfer.view());
  }

  /** In progress or recently finished (newest first), for following one transfer. */
  transfer(sha256: string): TransferView | undefined {
    return (this.#active.get(sha256) ?? this.#finished.find((transfer) => transfer.sha256 === sha256))?.view();
  }

  recent(): TransferView[] {
    return [...this.transfers(), ...this.#finished.map((transfer) => transfer.view())];
  }

  /** Shutdown: transfers stop; their partial files stay, to be resumed after the restart. */
  stop(): void {
    this.#stopped = true;
    for (const transfer of this.#active.values()) transfer.controller.abort(errors.shuttingDown());
  }

  // ---- one transfer ----------------------------------------------------------------------

  #start(sha256: string, model: string, origin: FetchOrigin, target: { modelId: string; sizeBytes: number } | undefined): Transfer {
    if (this.#stopped) throw errors.shuttingDown();
    const refusal = fetchRefusal(this.#deps.config.sharePolicy, origin, model);
    if (refusal !== undefined) throw refusal;
    const [holder] = holdersOf(this.#deps.peers(), sha256);
    const modelId = target?.modelId ?? holder?.modelId ?? model;
    const totalBytes = target?.sizeBytes ?? holder?.sizeBytes ?? 0;
    if (holder === undefined) {
      throw errors.modelNotFound(`no reachable peer offers the model ${JSON.stringify(model.slice(0, 200))} (sha256 ${sha256})`, { param: "model" });
    }
    const transfer = new Transfer(sha256, model, modelId, totalBytes, origin);
    this.#active.set(sha256, transfer);
    transfer.promise = this.#run(transfer).then(
      (id) => {
        this.#finish(transfer, "done", null);
        return id;
      },
      (error: unknown) => {
        const failure = HearthError.from(error, "HEARTH_MODEL_TRANSFER_FAILED");
        this.#finish(transfer, "failed", failure);
        this.#logger.warn({ sha256, model, code: failure.code, err: failure.message }, "model transfer failed");
        throw failure;
      },
    );
    return transfer;
  }

  #finish(transfer: Transfer, state: "done" | "failed", error: HearthError | null): void {
    transfer.state = state;
    transfer.error = error;
    transfer.finishedAt = new Date();
    if (this.#active.get(transfer.sha256) === transfer) this.#active.delete(transfer.sha256);
    this.#finished.unshift(transfer);
    this.#finished.length = Math.min(this.#finished.length, MAX_FINISHED);
  }

  async #run(transfer: Transfer): Promise<string> {
    const { modelsDir, config } = this.#deps;
    const { sha256 } = transfer;
    await fs.promises.mkdir(partialDir(modelsDir), { recursive: true, mode: 0o755 });
    let present = await partialSize(modelsDir, sha256);
    const startedWithPartial = present > 0;
    await this.#checkDisk(transfer.totalBytes, present);
    let hash: Hash | undefined;
    let hashed = 0;
    let freshRetryUsed = false;
    let waitingSince: number | undefined;
    let fruitless = 0;
    this.#logger.info({ sha256, model: transfer.model, bytes: transfer.totalBytes, partial: present }, "model transfer started");

    for (;;) {
      this.#throwIfStopped(transfer);
      const holder = holdersOf(this.#deps.peers(), sha256, { exclude: transfer.excluded, ...(transfer.fromNodeId === null ? {} : { prefer: transfer.fromNodeId }) })[0];
      if (holder === undefined) {
        if (!this.#anyHolderLeft(transfer)) throw errors.modelTransferFailed(`no peer could send the model ${transfer.modelId} (sha256 ${sha256}) intact`);
        waitingSince ??= performance.now();
        if (performance.now() - waitingSince > config.fetchResumeTimeoutMs) {
          throw errors.modelTransferFailed(`no peer holding the model ${transfer.modelId} was reachable for ${config.fetchResumeTimeoutMs} ms; the ${present} bytes fetched are kept for the next attempt`);
        }
        transfer.state = "waiting";
        await sleep(HOLDER_POLL_MS, transfer.controller.signal);
        continue;
      }
      waitingSince = undefined;

      present = await partialSize(modelsDir, sha256);
      if (hash === undefined || hashed !== present) {
        // A new transfer, or a write that did not complete: the prefix on disk is the truth.
        hash = await hashPrefix(partialPath(modelsDir, sha256), present);
        hashed = present;
      }
      if (present > 0) {
        if (transfer.fromNodeId !== null || startedWithPartial) transfer.resumes++;
        this.#logger.info({ sha256, peer: shortNodeId(holder.nodeId), offset: present, total: holder.sizeBytes, resumes: transfer.resumes }, "resuming model transfer from the partial file");
      }
      transfer.fromNodeId = holder.nodeId;
      transfer.totalBytes = holder.sizeBytes;
      transfer.bytesDone = present;
      transfer.state = "connecting";

      let size: number;
      const before = transfer.bytesDone;
      try {
        size = await this.#attempt(transfer, holder, present, hash, (bytes) => {
          hashed += bytes;
        });
      } catch (error) {
        const failure = HearthError.from(error, "HEARTH_PEER_UNAVAILABLE");
        this.#throwIfStopped(transfer);
        transfer.state = "waiting";
        if (!RETRYABLE.has(failure.code)) {
          // The holder refused the file or broke the protocol: it is not asked again.
          transfer.excluded.add(holder.nodeId);
        }
        this.#logger.warn({ sha256, peer: shortNodeId(holder.nodeId), code: failure.code, err: failure.message, bytes: transfer.bytesDone }, "model transfer interrupted");
        fruitless = transfer.bytesDone > before ? 0 : fruitless + 1;
        if (fruitless >= MAX_FRUITLESS_ATTEMPTS) {
          throw errors.modelTransferFailed(`${fruitless} attempts in a row brought no data (last: ${failure.code}: ${failure.message})`);
        }
        waitingSince = performance.now();
        await sleep(HOLDER_POLL_MS, transfer.controller.signal);
        continue;
      }

      transfer.state = "verifying";
      const digest = hash.digest("hex");
      hash = undefined;
      if (digest !== sha256) {
        await removePartial(modelsDir, sha256);
        const staleOnDisk = startedWithPartial && !freshRetryUsed;
        freshRetryUsed = true;
        // A partial left by an earlier run may be what was wrong; otherwise this holder sent a bad file.
        if (!staleOnDisk) transfer.excluded.add(holder.nodeId);
        this.#logger.warn({ sha256, got: digest, peer: shortNodeId(holder.nodeId), bytes: size }, "fetched model does not match its sha256; discarded");
        continue;
      }
      const installed = await installVerified({
        modelsDir,
        sha256,
        modelId: transfer.modelId,
        sameContent: async (filePath) => (await this.#hashes.sha256(filePath)) === sha256,
      });
      transfer.modelId = installed.id;
      await this.#deps.rememberHash(installed.path, sha256).catch((error: unknown) => this.#logger.warn({ err: error }, "could not record the fetched model's hash"));
      this.#logger.info({ sha256, modelId: installed.id, bytes: size, peer: shortNodeId(holder.nodeId), resumes: transfer.resumes, ms: Math.round(Date.now() - transfer.startedAt.getTime()) }, "model fetched from a peer and verified");
      return installed.id;
    }
  }

  async #attempt(transfer: Transfer, holder: Holder, offset: number, hash: Hash, onHashed: (bytes: number) => void): Promise<number> {
    const signal = transfer.controller.signal;
    const stream = await this.#deps.openStream(holder.nodeId, MODEL_FETCH_PURPOSE, { meta: { sha256: transfer.sha256, offset }, signal });
    // Nothing goes the other way: half-close at once so the stream ends when the holder's side does.
    stream.end();
    const onAbort = (): void => {
      stream.destroy(signal.reason instanceof HearthError ? signal.reason : errors.cancelled("the transfer was stopped"));
    };
    signal.addEventListener("abort", onAbort, { once: true });
    const file = await fs.promises.open(partialPath(this.#deps.modelsDir, transfer.sha256), "a", 0o644);
    try {
      return await runFetchAttempt({
        stream,
        sha256: transfer.sha256,
        offset,
        expectedSize: holder.sizeBytes,
        file,
        hash,
        stallTimeoutMs: this.#deps.config.fetchStallTimeoutMs,
        onHeader: (header) => {
          transfer.totalBytes = header.size;
          transfer.state = "transferring";
        },
        onBytes: (bytes) => {
          onHashed(bytes);
          transfer.bytesDone += bytes;
          transfer.meter.add(bytes);
        },
      });
    } finally {
      signal.removeEventListener("abort", onAbort);
      await file.close().catch(() => undefined);
    }
  }

  #anyHolderLeft(transfer: Transfer): boolean {
    // Unreachable holders still count: they may come back. Only excluded ones are gone for good.
    return this.#deps.peers().some((peer) => peer.nodeId !== null && !transfer.excluded.has(peer.nodeId) && (peer.models ?? []).some((model) => model.sha256 === transfer.sha256));
  }

  async #checkDisk(totalBytes: number, presentBytes: number): Promise<void> {
    const freeBytes = await (this.#deps.freeBytes ?? statfsFreeBytes)(this.#deps.modelsDir);
    const refusal = diskSpaceRefusal({ freeBytes, totalBytes, presentBytes, reserveBytes: this.#deps.config.diskReserveBytes });
    if (refusal !== undefined) throw refusal;
  }

  #throwIfStopped(transfer: Transfer): void {
    const reason: unknown = transfer.controller.signal.reason;
    if (transfer.controller.signal.aborted) throw reason instanceof HearthError ? reason : errors.cancelled("the transfer was stopped");
  }

  async #localModel(name: string): Promise<ModelDescriptor | undefined> {
    const models = await this.#deps.catalog.list();
    return models.find((model) => model.id === name || model.aliases.includes(name));
  }

  async #localIdOf(sha256: string): Promise<string | undefined> {
    const models = await this.#deps.catalog.list();
    return models.find((model) => this.#deps.hashOf(model) === sha256)?.id;
  }
}

async function statfsFreeBytes(dir: string): Promise<number> {
  const stats = await fs.promises.statfs(dir);
  return stats.bavail * stats.bsize;
}

/** SHA-256 state after the first `length` bytes of the file, ready to take the rest. */
async function hashPrefix(filePath: string, length: number): Promise<Hash> {
  const hash = createHash("sha256");
  if (length === 0) return hash;
  for await (const chunk of fs.createReadStream(filePath, { start: 0, end: length - 1, highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(errors.cancelled("stopped waiting for the model transfer"));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(errors.cancelled("stopped waiting for the model transfer"));
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}
