/**
 * Model sharing between peers, composed for the daemon: the ModelServer answering peers'
 * `model.fetch` streams and the ModelFetcher that brings missing models here (also the
 * router's LocalModelProvider). docs/protocol.md ("Model transfer") and docs/security.md
 * ("What a peer can ask") describe the behaviour; this file only wires it to the cluster.
 *
 * Folder overview (daemon/sharing/):
 *   ModelServer.ts    serves advertised files by sha256, from an offset, with backpressure
 *   ModelFetcher.ts   one shared transfer per sha256: policy, disk check, resume, verify, install
 *   fetchAttempt.ts   one stream's worth of bytes into the partial file
 *   modelFiles.ts     the hidden partial dir and the no-clobber install into the models dir
 *   holders.ts        which peers can send a file; resolving `hearth pull MODEL`
 *   sharePolicy.ts    the always/ask/never policy and the free-disk rule
 *   transferProgress.ts  the status view of a transfer and its rate meter
 *   testFaults.ts     HEARTH_TEST_CORRUPT_TRANSFER_AT (tests only; inert unless set)
 */

import type { Logger } from "pino";
import type { PullResult, TransferView } from "../../protocol/api/pulls.js";
import { errors } from "../../protocol/errors.js";
import type { ModelHashes } from "../cluster/ModelHashes.js";
import type { PeerFabric } from "../peers/PeerFabric.js";
import type { PeerRoutes } from "../peers/PeerRouteTable.js";
import type { HearthConfig } from "../config/defaults.js";
import type { ModelCatalog } from "../engine/types.js";
import { MODEL_FETCH_PURPOSE, MODELS_FETCH_METHOD, modelsFetchResponseSchema, parseModelsFetchRequest, type ModelsFetchResponse } from "../../protocol/peer/modelTransferWire.js";
import { ModelFetcher } from "./ModelFetcher.js";
import { ModelServer } from "./ModelServer.js";
import { corruptTransferOffset } from "./testFaults.js";

/** What the HTTP API shows and does (daemon/http/handlers/modelPulls.ts, status). */
export interface ModelSharingSource {
  pull(model: string): Promise<PullResult>;
  /** Transfers in progress. */
  transfers(): TransferView[];
  /** In progress or recently finished. */
  transfer(sha256: string): TransferView | undefined;
  recent(): TransferView[];
}

export interface ModelSharingInit {
  config: HearthConfig;
  fabric: Pick<PeerFabric, "peers" | "request" | "openStream">;
  hashes: Pick<ModelHashes, "hashOf" | "remember">;
  catalog: ModelCatalog;
  logger: Logger;
  /** Read for the test-only fault knob. */
  env: NodeJS.ProcessEnv;
}

export class ModelSharing implements ModelSharingSource {
  readonly #fabric: ModelSharingInit["fabric"];
  readonly #peerFetchTimeoutMs: number;
  /** What peers reach here: `model.fetch` streams (files by sha256) and `models.fetch` requests (get a file first). */
  readonly peerRoutes: PeerRoutes;
  readonly server: ModelServer;
  /** The router's LocalModelProvider. */
  readonly fetcher: ModelFetcher;

  constructor(init: ModelSharingInit) {
    const { config, fabric, hashes, catalog, logger } = init;
    this.server = new ModelServer({
      config: config.models,
      catalog,
      hashOf: (model) => hashes.hashOf(model),
      readChunkBytes: config.peer.maxStreamChunkBytes,
      logger,
      corruptAt: corruptTransferOffset(init.env),
    });
    this.fetcher = new ModelFetcher({
      modelsDir: config.modelsDir,
      config: config.models,
      catalog,
      peers: () => fabric.peers(),
      hashOf: (model) => hashes.hashOf(model),
      rememberHash: (filePath, sha256) => hashes.remember(filePath, sha256),
      openStream: (nodeId, purpose, options) => fabric.openStream(nodeId, purpose, options),
      logger,
    });
    this.#fabric = fabric;
    this.#peerFetchTimeoutMs = config.models.peerFetchTimeoutMs;
    this.peerRoutes = {
      streams: { [MODEL_FETCH_PURPOSE]: this.server.handler },
      requests: {
        // A host about to split a model over this node asks it to get the file first. Only a sha256
        // comes from the peer; policy, disk check and the file's name are this node's own (fetcher).
        [MODELS_FETCH_METHOD]: async (payload, context) => {
          const request = parseModelsFetchRequest(payload);
          const modelId = await this.fetcher.ensureLocal({ sha256: request.sha256, modelName: request.modelName, signal: context.signal });
          return { modelId } satisfies ModelsFetchResponse;
        },
      },
    };
  }

  /**
   * Asks `peerNodeId` to fetch the model with this sha256 from whichever node holds it, and
   * waits until it has (up to `models.peer_fetch_timeout`). Resolves with the peer's model id;
   * rejects with the peer's code (HEARTH_MODEL_FETCH_REFUSED, HEARTH_INSUFFICIENT_DISK, ...).
   */
  async askPeerToFetch(peerNodeId: string, sha256: string, modelName: string): Promise<string> {
    const answer = await this.#fabric.request(peerNodeId, MODELS_FETCH_METHOD, { sha256, modelName }, { timeoutMs: this.#peerFetchTimeoutMs });
    const parsed = modelsFetchResponseSchema.safeParse(answer);
    if (!parsed.success) throw errors.peerProtocolViolation("the peer answered models.fetch with an invalid payload");
    return parsed.data.modelId;
  }

  pull(model: string): Promise<PullResult> {
    return this.fetcher.pull(model);
  }

  transfers(): TransferView[] {
    return this.fetcher.transfers();
  }

  transfer(sha256: string): TransferView | undefined {
    return this.fetcher.transfer(sha256);
  }

  recent(): TransferView[] {
    return this.fetcher.recent();
  }

  /** Shutdown: transfers stop and keep their partial files for the next start. */
  stop(): void {
    this.fetcher.stop();
  }
}
