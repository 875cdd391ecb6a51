/**
 * This node's state, told to its peers: gathered by LocalState (resources, models present
 * with their hashes, models loaded and the queue, speed scores, the memory budget) and sent
 * over the peer fabric whenever it may have changed and every `statePublishIntervalMs`.
 *
 * What may change it arrives as events: a model loaded or unloaded (LocalEngine), a new hash
 * (ModelHashes), a new speed score (SpeedScores), the GPU answer (ResourceProbe). Bursts are
 * published together. After each publish an idle loaded model may be measured (SpeedScores).
 *
 * A standalone node has nobody to tell: it publishes nothing and starts no background work
 * (its GPU is probed only once something asks for its view: ClusterViews.view()).
 */

import type { Logger } from "pino";
import type { ProtocolVersion } from "../../protocol/peer/version.js";
import { memoryBudgetBytes } from "../../scheduler/memoryBudget.js";
import type { HearthConfig } from "../config/defaults.js";
import type { LocalEngine } from "../engine/LocalEngine.js";
import type { ModelCatalog } from "../engine/types.js";
import type { ResourceProbe } from "../hardware/ResourceProbe.js";
import type { NodeIdentity } from "../identity/NodeIdentity.js";
import type { PeerFabric } from "../peers/PeerFabric.js";
import { LocalState, type CollectedState } from "./LocalState.js";
import type { ModelHashes } from "./ModelHashes.js";
import type { SpeedScores } from "./SpeedScores.js";

/** Changes that come in bursts (a model load, several hashes) are published together. */
const PUBLISH_DEBOUNCE_MS = 200;

export interface LocalStatePublisherInit {
  config: HearthConfig;
  identity: NodeIdentity;
  softwareVersion: string;
  protocolVersion: ProtocolVersion;
  catalog: ModelCatalog;
  engine: LocalEngine;
  resources: ResourceProbe;
  hashes: ModelHashes;
  /** Absent on a standalone node. */
  speeds: SpeedScores | undefined;
  fabric: PeerFabric;
  logger: Logger;
}

export class LocalStatePublisher {
  readonly #init: LocalStatePublisherInit;
  readonly #logger: Logger;
  readonly #state: LocalState;
  #publishTimer: NodeJS.Timeout | undefined;
  #debounceTimer: NodeJS.Timeout | undefined;
  #publishing = false;
  #publishAgain = false;
  #started = false;
  #stopped = false;
  readonly #onChange = (): void => this.requestPublish();

  constructor(init: LocalStatePublisherInit) {
    this.#init = init;
    this.#logger = init.logger.child({ component: "cluster" });
    const { config, identity, resources, hashes, speeds, fabric, engine } = init;
    this.#state = new LocalState({
      nodeId: identity.nodeId,
      fingerprintHex: identity.fingerprintHex,
      softwareVersion: init.softwareVersion,
      protocolVersion: init.protocolVersion,
      addresses: () => fabric.listenerAddresses(),
      catalog: init.catalog,
      engineStats: () => engine.stats(),
      resources: () => resources.snapshot(),
      hashOf: (model) => hashes.hashOf(model),
      refreshHashes: (models) => hashes.refresh(models),
      speedScores: (models) => speeds?.scoresFor(models) ?? Promise.resolve({}),
      memoryBudget: (snapshot) => memoryBudgetBytes(config.rpc, { ramFreeBytes: snapshot.ramFreeBytes, gpuBackend: snapshot.gpu.backend, vramFreeBytes: snapshot.gpu.vramFreeBytes }),
      logger: init.logger,
    });
  }

  /** This node's state now, as the API shows it and as peers get it. */
  collect(): Promise<CollectedState> {
    return this.#state.collect();
  }

  /** For a member: probes the GPU, follows what changes the state, publishes now and periodically. */
  start(): void {
    const { fabric, engine, hashes, speeds, resources, config } = this.#init;
    if (!fabric.isMember || this.#started) return;
    this.#started = true;
    // Peers need the GPU facts soon.
    resources.start();
    engine.on("modelLoaded", this.#onChange);
    engine.on("modelUnloaded", this.#onChange);
    hashes.on("hashed", this.#onChange);
    speeds?.on("measured", this.#onChange);
    resources.on("gpuInfo", this.#onChange);
    this.#publishTimer = setInterval(this.#onChange, config.peer.statePublishIntervalMs);
    this.#publishTimer.unref();
    this.requestPublish();
  }

  /** Publishes soon, coalescing bursts. */
  requestPublish(): void {
    if (this.#stopped || !this.#started || this.#debounceTimer !== undefined) return;
    this.#debounceTimer = setTimeout(() => {
      this.#debounceTimer = undefined;
      void this.#publish();
    }, PUBLISH_DEBOUNCE_MS);
    this.#debounceTimer.unref();
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#publishTimer);
    clearTimeout(this.#debounceTimer);
    const { engine, hashes, speeds, resources } = this.#init;
    engine.off("modelLoaded", this.#onChange);
    engine.off("modelUnloaded", this.#onChange);
    hashes.off("hashed", this.#onChange);
    speeds?.off("measured", this.#onChange);
    resources.off("gpuInfo", this.#onChange);
  }

  async #publish(): Promise<void> {
    if (this.#stopped) return;
    if (this.#publishing) {
      this.#publishAgain = true;
      return;
    }
    this.#publishing = true;
    try {
      const { wire } = await this.#state.collect();
      if (this.#stopped) return;
      this.#init.fabric.publishState(wire);
      this.#init.speeds?.measureIdle(this.#init.engine.stats().loaded);
    } catch (error) {
      this.#logger.warn({ err: error }, "could not publish this node's state");
    } finally {
      this.#publishing = false;
      if (this.#publishAgain) {
        this.#publishAgain = false;
        this.requestPublish();
      }
    }
  }
}
