/**
 * Serves this node's model files to peers over `model.fetch` streams (docs/protocol.md, "Model
 * transfer").
 *
 * A peer names a file only by its sha256. The server looks that hash up among the models this
 * node lists and advertises (the registry's models, with the hashes ModelHashes computed and
 * LocalState publishes), so a peer can obtain exactly the files it learnt of through the model
 * list, and nothing from the network ever becomes a path. An unknown hash is refused with
 * HEARTH_MODEL_NOT_SHARED, a malformed request with HEARTH_INVALID_REQUEST, more than
 * models.max_concurrent_serves transfers at once with HEARTH_QUEUE_FULL.
 *
 * The file is streamed from the requested offset with the stream's own backpressure: a read
 * waits until the peer has granted credit for the previous chunk.
 */

import fs from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { pipeline } from "node:stream/promises";
import type { Logger } from "pino";
import { errors, HearthError } from "../../protocol/errors.js";
import { shortNodeId } from "../../protocol/peer/identity.js";
import { MODEL_ID_PATTERN, PEER_WIRE_LIMITS } from "../../protocol/peer/messages.js";
import { encodeTransferHeader, parseModelFetchMeta } from "../../protocol/peer/modelTransferWire.js";
import type { ModelsConfig } from "../config/defaults.js";
import type { ModelCatalog, ModelDescriptor } from "../engine/types.js";
import type { StreamContext, StreamHandler } from "../peers/linkStreams.js";
import type { PeerStream } from "../peers/PeerStream.js";
import { CorruptingTransform } from "./testFaults.js";

export interface ModelServerDeps {
  config: Pick<ModelsConfig, "serveToPeers" | "maxConcurrentServes">;
  catalog: Pick<ModelCatalog, "list">;
  /** What this node advertises for a local file (ClusterService.modelHashOf). */
  hashOf: (model: Pick<ModelDescriptor, "path">) => string | null;
  /** File bytes read per chunk: the link's chunk size, so each read is one frame. */
  readChunkBytes: number;
  logger: Logger;
  /** Test only (testFaults.ts): the file offset whose byte is sent inverted. */
  corruptAt?: number | undefined;
}

interface ServeJob {
  stream: PeerStream;
  file: FileHandle;
  model: ModelDescriptor;
  sha256: string;
  offset: number;
  size: number;
  peer: string;
}

export class ModelServer {
  readonly #deps: ModelServerDeps;
  readonly #logger: Logger;
  #serving = 0;
  #bytesServed = 0;

  constructor(deps: ModelServerDeps) {
    this.#deps = deps;
    this.#logger = deps.logger.child({ component: "sharing" });
    if (deps.corruptAt !== undefined) this.#logger.warn({ offset: deps.corruptAt }, "TEST KNOB: every model this node serves is sent with one byte inverted");
  }

  /** The `model.fetch` stream handler (ModelSharing puts it in its peer routes). */
  readonly handler: StreamHandler = (stream, meta, context) => this.#accept(stream, meta, context);

  /** Transfers being served now, and bytes sent so far this run. */
  stats(): { serving: number; bytesServed: number } {
    return { serving: this.#serving, bytesServed: this.#bytesServed };
  }

  async #accept(stream: PeerStream, meta: unknown, context: StreamContext): Promise<void> {
    if (!this.#deps.config.serveToPeers) throw errors.modelNotShared("this node does not serve models to peers (models.serve_to_peers = false)");
    const request = parseModelFetchMeta(meta);
    if (this.#serving >= this.#deps.config.maxConcurrentServes) {
      throw errors.queueFull(`this node is already serving ${this.#serving} model transfers`, { retryAfterSeconds: 1 });
    }
    const model = await this.#advertised(request.sha256);
    if (model === undefined) throw errors.modelNotShared(`this node offers no model with sha256 ${request.sha256}`, { param: "sha256" });
    const file = await fs.promises.open(model.path, "r");
    let size: number;
    try {
      size = (await file.stat()).size;
      if (request.offset > size) throw errors.invalidRequest(`offset ${request.offset} is beyond the file's ${size} bytes`, { param: "offset" });
    } catch (error) {
      await file.close().catch(() => undefined);
      throw error;
    }
    this.#serving++;
    const job: ServeJob = { stream, file, model, sha256: request.sha256, offset: request.offset, size, peer: context.peerNodeId };
    // Accepting happens when this handler returns; the bytes follow right after.
    setImmediate(() => void this.#send(job));
  }

  async #send(job: ServeJob): Promise<void> {
    const { stream, file } = job;
    const started = performance.now();
    let sent = 0;
    try {
      stream.write(encodeTransferHeader({ sha256: job.sha256, size: job.size, offset: job.offset }));
      const source = file.createReadStream({ start: job.offset, highWaterMark: this.#deps.readChunkBytes, autoClose: false });
      const corruptAt = this.#deps.corruptAt;
      try {
        if (corruptAt === undefined) await pipeline(source, stream);
        else await pipeline(source, new CorruptingTransform(job.offset, corruptAt), stream);
      } finally {
        sent = source.bytesRead;
        this.#bytesServed += sent;
      }
      this.#logger.info(
        { peer: shortNodeId(job.peer), model: job.model.id, sha256: job.sha256, offset: job.offset, bytes: sent, ms: Math.round(performance.now() - started) },
        "served a model transfer",
      );
    } catch (error) {
      const failure = HearthError.from(error, "HEARTH_PEER_UNAVAILABLE");
      this.#logger.info({ peer: shortNodeId(job.peer), model: job.model.id, offset: job.offset, bytes: sent, code: failure.code, err: failure.message }, "model transfer to a peer ended early");
      if (!stream.destroyed) stream.destroy(failure);
    } finally {
      this.#serving--;
      await file.close().catch(() => undefined);
    }
  }

  /** The local model with this hash that is also on the advertised list (ids the wire accepts). */
  async #advertised(sha256: string): Promise<ModelDescriptor | undefined> {
    const models = await this.#deps.catalog.list();
    return models.find(
      (model) => model.id.length <= PEER_WIRE_LIMITS.maxModelIdLength && MODEL_ID_PATTERN.test(model.id) && this.#deps.hashOf(model) === sha256,
    );
  }
}
