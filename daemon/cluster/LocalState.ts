/**
 * This node's own state, gathered from the parts that know it: resources (ResourceProbe),
 * models present with their hashes (ModelRegistry + ModelHashes), models loaded and the queue
 * (the engine's stats), and speed scores (SpeedScores).
 *
 * collect() returns it twice: as the NodeView `GET /hearth/v1/cluster` shows under `local`, and
 * as the `peerState` snapshot sent to peers. Both come from one gathering, so what peers see and
 * what the API shows cannot disagree. Models whose id the wire does not accept (ids are names,
 * never paths: protocol/peer/messages.ts) are shown locally but not advertised.
 */

import type { Logger } from "pino";
import type { NodeView } from "../../protocol/api/cluster.js";
import { reportedStateOf } from "../../protocol/api/reportedState.js";
import { MODEL_ID_PATTERN, PEER_WIRE_LIMITS } from "../../protocol/peer/messages.js";
import type { ProtocolVersion } from "../../protocol/peer/version.js";
import { formatProtocolVersion } from "../../protocol/peer/version.js";
import type { EngineStats, ModelCatalog, ModelDescriptor } from "../engine/types.js";
import type { MachineResources } from "../hardware/ResourceProbe.js";
import type { LocalPeerState } from "../peers/PeerLinkManager.js";

export interface LocalStateSources {
  nodeId: string;
  fingerprintHex: string;
  softwareVersion: string;
  protocolVersion: ProtocolVersion;
  /** `host:port` of the peer listener (empty when standalone). */
  addresses: () => string[];
  catalog: ModelCatalog;
  engineStats: () => EngineStats;
  resources: () => MachineResources;
  hashOf: (model: ModelDescriptor) => string | null;
  /** Notes the current model files so hashing can catch up; resolves once noted. */
  refreshHashes: (models: readonly ModelDescriptor[]) => Promise<void>;
  speedScores: (models: readonly ModelDescriptor[]) => Promise<Record<string, number>>;
  /** What this node offers a model (daemon/split/memoryBudget.ts); published when given. */
  memoryBudget?: (resources: MachineResources) => number;
  logger: Logger;
}

export interface CollectedState {
  view: NodeView;
  wire: LocalPeerState;
  /** The models as listed by the registry, for whoever needs them next. */
  models: ModelDescriptor[];
}

function advertisable(id: string): boolean {
  return id.length <= PEER_WIRE_LIMITS.maxModelIdLength && MODEL_ID_PATTERN.test(id);
}

export class LocalState {
  readonly #sources: LocalStateSources;

  constructor(sources: LocalStateSources) {
    this.#sources = sources;
  }

  async collect(): Promise<CollectedState> {
    const sources = this.#sources;
    let models: ModelDescriptor[] = [];
    try {
      models = await sources.catalog.list();
    } catch (error) {
      sources.logger.warn({ err: error }, "could not list models for the cluster state");
    }
    await sources.refreshHashes(models).catch((error: unknown) => sources.logger.warn({ err: error }, "could not check model hashes"));
    const scores = await sources.speedScores(models).catch((error: unknown): Record<string, number> => {
      sources.logger.warn({ err: error }, "could not read speed scores");
      return {};
    });
    const resources = sources.resources();
    const loaded = sources.engineStats().loaded;
    const queueDepth = Math.min(
      loaded.reduce((sum, model) => sum + model.running + model.queued, 0),
      PEER_WIRE_LIMITS.maxQueueDepth,
    );
    const loadedIds = loaded.filter((model) => model.state === "ready").map((model) => model.modelId);

    const wire: LocalPeerState = {
      cpuCores: Math.min(resources.cpuCores, PEER_WIRE_LIMITS.maxCpuCores),
      ramTotalBytes: resources.ramTotalBytes,
      ramFreeBytes: resources.ramFreeBytes,
      gpu: {
        backend: resources.gpu.backend,
        devices: resources.gpu.devices.map((name) => ({ name })),
        vramTotalBytes: resources.gpu.vramTotalBytes,
        vramFreeBytes: resources.gpu.vramFreeBytes,
      },
      modelsPresent: models
        .filter((model) => advertisable(model.id))
        .slice(0, PEER_WIRE_LIMITS.maxModelsPresent)
        .map((model) => ({ id: model.id, sizeBytes: model.sizeBytes, sha256: sources.hashOf(model) })),
      modelsLoaded: loadedIds
        .filter(advertisable)
        .slice(0, PEER_WIRE_LIMITS.maxModelsLoaded)
        .map((id) => ({ id })),
      queueDepth,
      speedScores: Object.entries(scores)
        .filter(([id]) => advertisable(id))
        .slice(0, PEER_WIRE_LIMITS.maxSpeedScores)
        .map(([modelId, tokensPerSecond]) => ({ modelId, tokensPerSecond })),
    };
    if (sources.memoryBudget !== undefined) wire.memoryBudgetBytes = Math.max(0, Math.floor(sources.memoryBudget(resources)));

    // The local view shows every model, advertisable or not; the rest is the wire snapshot's.
    const reported = reportedStateOf(wire);
    const view: NodeView = {
      nodeId: sources.nodeId,
      fingerprint: sources.fingerprintHex,
      addresses: sources.addresses(),
      protocolVersion: formatProtocolVersion(sources.protocolVersion),
      softwareVersion: sources.softwareVersion,
      resources: reported.resources,
      models: models.map((model) => ({ id: model.id, sizeBytes: model.sizeBytes, sha256: sources.hashOf(model) })),
      loadedModels: loadedIds,
      queueDepth,
      speedScores: scores,
    };
    return { view, wire, models };
  }
}
