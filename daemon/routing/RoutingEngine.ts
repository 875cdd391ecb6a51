/**
 * The cluster router: the InferenceEngine the HTTP API (and batch jobs) talk to. It runs each
 * job whole on one node of the cluster, this one or a peer, and serves peers' jobs here.
 *
 * Per job: build a ClusterSnapshot (this node's state and every peer's last report), let the
 * scheduler place it (scheduler/placement.ts: loaded, then present, then expected wait, then
 * locality), log the decision and its reason, then run it on the LocalEngine or on the chosen
 * peer over an "infer" stream (remoteJob.ts), relaying deltas as they come. If the chosen
 * node fails before the first delta with a node failure, the job is placed once more without
 * it (retryPolicy.ts); a pinned job, or one with `retry: false`, is never moved.
 *
 * Models: listModels()/resolveModel() are cluster-wide (clusterModels.ts), so a model only a
 * peer holds resolves here and shows in /v1/models with the nodes holding it. A job placed on
 * a node that lacks its model (only possible when pinned) goes through the LocalModelProvider
 * (model sharing) there; without one it is HEARTH_MODEL_NOT_FOUND.
 *
 * Standalone nodes use it too: their snapshot has only this node, so every job runs locally.
 */

import type { Logger } from "pino";
import { errors, HearthError } from "../../protocol/errors.js";
import type { EmbeddingJob, EmbeddingResult, GenerationJob, GenerationResult, InferenceJob } from "../../protocol/inference.js";
import { shortNodeId } from "../../protocol/peer/identity.js";
import { embeddingVectorsOf, generationResultOf, INFER_STREAM_PURPOSE, INFER_WIRE_LIMITS, jobFrame } from "../../protocol/peer/inferenceWire.js";
import { MODEL_ID_PATTERN, PEER_WIRE_LIMITS } from "../../protocol/peer/messages.js";
import type { ClusterSnapshot } from "../../scheduler/clusterSnapshot.js";
import { placeRequest, type Placement } from "../../scheduler/placement.js";
import type { ClusterView } from "../cluster/views.js";
import type { EmbedOptions, EngineStats, GenerateOptions, InferenceEngine, LocalInferenceEngine, ModelDescriptor, ModelInfo, RouteOptions } from "../engine/types.js";
import type { StreamHandler } from "../peers/linkStreams.js";
import { clusterModelList, findClusterModel } from "./clusterModels.js";
import { createInferStreamHandler } from "./inferStreamHandler.js";
import type { LocalModelProvider } from "./LocalModelProvider.js";
import { runRemoteJob, type RemoteResult, type StreamOpener } from "./remoteJob.js";
import { shouldRetryElsewhere } from "../../scheduler/retryPolicy.js";
import { snapshotFromView } from "./snapshotFromView.js";
import type { SplitEngine } from "../split/SplitEngine.js";
import { settlesWithin } from "../lifecycle/settlesWithin.js";

export type { RouteOptions } from "../engine/types.js";
export type { LocalModelProvider } from "./LocalModelProvider.js";

/** What the router needs of the ClusterService (daemon/cluster/ClusterService.ts). */
export interface RoutingCluster {
  /** This node's state and every peer's last report (ClusterService.routingView). */
  routingView(): Promise<ClusterView>;
  /** Undefined until start() for a member, always for a standalone node. */
  readonly peerLinks: StreamOpener | undefined;
  modelHashOf(model: Pick<ModelDescriptor, "path">): string | null;
  handlePeerStream(purpose: string, handler: StreamHandler): void;
}

export interface RoutingEngineInit {
  local: LocalInferenceEngine;
  cluster: RoutingCluster;
  logger: Logger;
  modelProvider?: LocalModelProvider;
}

/** Where one attempt runs. */
interface Target {
  nodeId: string;
  local: boolean;
  /** The executing node's own id for the model (or the requested name when it lacks it). */
  modelId: string;
  sha256: string | null;
  /** The executing node lacks the file and must fetch it first. */
  mustFetch: boolean;
}

const MAX_LOGGED_NAME = 200;
/** How long one collected cluster state serves placements (see #clusterState). */
const SNAPSHOT_TTL_MS = 250;

function cancelled(): HearthError {
  return errors.cancelled("The request was cancelled.");
}

export class RoutingEngine implements InferenceEngine {
  readonly #local: LocalInferenceEngine;
  readonly #cluster: RoutingCluster;
  readonly #logger: Logger;
  #modelProvider: LocalModelProvider | undefined;
  #split: SplitEngine | undefined;
  /** Jobs this node's clients are running on peers; shutdown lets them finish before the links close. */
  readonly #remoteInFlight = new Set<Promise<unknown>>();
  #stateCache: { at: number; state: Promise<{ view: ClusterView; models: ModelDescriptor[] }> } | undefined;

  constructor(init: RoutingEngineInit) {
    this.#local = init.local;
    this.#cluster = init.cluster;
    this.#logger = init.logger.child({ component: "routing" });
    this.#modelProvider = init.modelProvider;
    init.cluster.handlePeerStream(
      INFER_STREAM_PURPOSE,
      createInferStreamHandler({
        engine: init.local,
        hashOf: (model) => init.cluster.modelHashOf(model),
        modelProvider: () => this.#modelProvider,
        logger: init.logger,
      }),
    );
  }

  /**
   * Shutdown: waits up to `timeoutMs` for the jobs running on peers for this node's clients
   * (their links must stay up meanwhile). Resolves true when none is left.
   */
  async drainRemote(timeoutMs: number): Promise<boolean> {
    if (this.#remoteInFlight.size === 0) return true;
    return settlesWithin(Promise.allSettled([...this.#remoteInFlight]), timeoutMs);
  }

  /** Layer splitting (daemon/split/) plugs in here: it decides per job whether to run it split on this node. */
  setSplitEngine(split: SplitEngine | undefined): void {
    this.#split = split;
  }

  /** Model sharing (daemon/sharing/) plugs in here, for jobs placed on this node and for peers' jobs. */
  setModelProvider(provider: LocalModelProvider | undefined): void {
    this.#modelProvider = provider;
  }

  async snapshot(): Promise<ClusterSnapshot> {
    const { view, models } = await this.#clusterState();
    return snapshotFromView(view, models);
  }

  async listModels(): Promise<ModelInfo[]> {
    const { view, models } = await this.#clusterState();
    return clusterModelList(snapshotFromView(view, models), models);
  }

  /**
   * This node's view of the cluster and its model list, shared by the requests of the next
   * SNAPSHOT_TTL_MS. Collecting it scans the models dir, checks file hashes and reads the
   * interfaces; per request that was most of a batch coordinator's CPU (profiled), while peers'
   * states are themselves seconds old, so a quarter second of staleness changes no decision.
   */
  #clusterState(): Promise<{ view: ClusterView; models: ModelDescriptor[] }> {
    const now = performance.now();
    const cached = this.#stateCache;
    if (cached !== undefined && now - cached.at < SNAPSHOT_TTL_MS) return cached.state;
    const state = Promise.all([this.#cluster.routingView(), this.#local.listModels()]).then(([view, models]) => ({ view, models }));
    const entry = { at: now, state };
    this.#stateCache = entry;
    // A failed collection is not remembered.
    state.catch(() => {
      if (this.#stateCache === entry) this.#stateCache = undefined;
    });
    return state;
  }

  async resolveModel(idOrAlias: string): Promise<ModelInfo> {
    const found = findClusterModel(await this.listModels(), idOrAlias);
    if (found !== undefined) return found;
    const shown = String(idOrAlias).slice(0, MAX_LOGGED_NAME);
    throw errors.modelNotFound(`model ${JSON.stringify(shown)} not found on any node of the cluster`, { param: "model" });
  }

  stats(): EngineStats {
    return this.#local.stats();
  }

  async generate(job: GenerationJob, options: GenerateOptions): Promise<GenerationResult> {
    const decision = await this.#split?.decide(job.model, options.route ?? {});
    if (decision?.kind === "split") return this.#split!.generate(decision.target, job, options);
    if (decision !== undefined) options = { ...options, route: decision.route };
    return this.#route(job, options, async (target, onDelta) => {
      if (target.local) {
        const modelId = await this.#localModelId(target, job.model, options.signal);
        const result = await this.#local.generate({ ...job, model: modelId }, { signal: options.signal, onDelta: (delta) => onDelta(delta.text) });
        return { ...result, nodeId: target.nodeId };
      }
      // Without a listener (not streamed, a batch item) the executing node sends no deltas at all.
      const result = await this.#remote(target, job, options.signal, options.onDelta === undefined ? undefined : onDelta);
      if (result.kind !== "generation") throw errors.peerUnavailable(`Node ${shortNodeId(target.nodeId)} answered a generation with an embedding.`);
      return { ...generationResultOf(result), nodeId: target.nodeId };
    });
  }

  async embed(job: EmbeddingJob, options: EmbedOptions): Promise<EmbeddingResult> {
    const decision = await this.#split?.decide(job.model, options.route ?? {});
    if (decision?.kind === "split") return this.#split!.embed(decision.target, job, options);
    if (decision !== undefined) options = { ...options, route: decision.route };
    return this.#route(job, options, async (target) => {
      if (target.local) {
        const modelId = await this.#localModelId(target, job.model, options.signal);
        const result = await this.#local.embed({ ...job, model: modelId }, { signal: options.signal });
        return { ...result, nodeId: target.nodeId };
      }
      const result = await this.#remote(target, job, options.signal, undefined);
      if (result.kind !== "embedding") throw errors.peerUnavailable(`Node ${shortNodeId(target.nodeId)} answered an embedding with a generation.`);
      return { vectors: embeddingVectorsOf(result), promptTokens: result.promptTokens, nodeId: target.nodeId };
    });
  }

  // ---- internals -------------------------------------------------------------------------

  /**
   * Places the job, runs one attempt, and places it once more elsewhere if the node failed
   * before the first delta (retryPolicy.ts).
   */
  async #route<T>(
    job: InferenceJob,
    options: { signal: AbortSignal; onDelta?: GenerateOptions["onDelta"]; route?: RouteOptions; onNode?: (nodeId: string) => void },
    attempt: (target: Target, onDelta: (text: string) => void) => Promise<T>,
  ): Promise<T> {
    const { signal } = options;
    const route = options.route ?? {};
    const pinned = route.pinnedNodeId !== undefined;
    const excluded = [...(route.excludeNodeIds ?? [])];
    let previousFailure: HearthError | undefined;
    for (let attempts = 1; ; attempts++) {
      if (signal.aborted) throw cancelled();
      const snapshot = await this.snapshot();
      const placement = placeRequest(snapshot, {
        model: job.model,
        ...(route.pinnedNodeId === undefined ? {} : { pinnedNodeId: route.pinnedNodeId }),
        ...(excluded.length === 0 ? {} : { excludeNodeIds: excluded }),
      });
      if (!placement.ok) {
        this.#logger.debug({ model: shown(job.model), code: placement.code, reason: placement.message, candidates: placement.candidates.length }, "no node for the job");
        // A retry that finds no other node reports what made the first attempt fail.
        if (previousFailure !== undefined) throw previousFailure;
        throw errors.withCode(placement.code, placement.message, { param: placement.code === "HEARTH_MODEL_NOT_FOUND" ? "model" : null });
      }
      const target = this.#targetOf(placement, snapshot);
      this.#logDecision(job, placement, target, attempts);
      options.onNode?.(target.nodeId);
      let deltasSent = false;
      const onDelta = (text: string): void => {
        deltasSent = true;
        options.onDelta?.({ text });
      };
      try {
        return await attempt(target, onDelta);
      } catch (error) {
        const failure = HearthError.from(error);
        const retry = shouldRetryElsewhere({ code: failure.code, attempts, deltasSent, pinned, retry: route.retry !== false, aborted: signal.aborted });
        if (!retry) throw failure;
        this.#logger.warn(
          { model: shown(job.model), node: shortNodeId(target.nodeId), code: failure.code, reason: failure.message },
          "the chosen node failed before the first token; placing the job once more without it",
        );
        excluded.push(target.nodeId);
        previousFailure = failure;
      }
    }
  }

  #targetOf(placement: Extract<Placement, { ok: true }>, snapshot: ClusterSnapshot): Target {
    const local = placement.nodeId === snapshot.localNodeId;
    const holds = placement.candidates.some((candidate) => candidate.nodeId === placement.nodeId);
    return { nodeId: placement.nodeId, local, modelId: placement.modelId, sha256: placement.sha256, mustFetch: !holds };
  }

  #logDecision(job: InferenceJob, placement: Extract<Placement, { ok: true }>, target: Target, attempt: number): void {
    const fields = {
      model: shown(job.model),
      kind: job.kind,
      node: shortNodeId(target.nodeId),
      nodeModel: target.modelId,
      reason: placement.reason,
      candidates: placement.candidates.map((candidate) => shortNodeId(candidate.nodeId)),
      attempt,
    };
    if (target.local) this.#logger.debug(fields, "job placed on this node");
    else this.#logger.info(fields, "job placed on a peer");
  }

  /** The local model id for a job placed here; fetches the file first when this node lacks it. */
  async #localModelId(target: Target, requested: string, signal: AbortSignal): Promise<string> {
    if (!target.mustFetch) return target.modelId;
    const provider = this.#modelProvider;
    if (provider === undefined || target.sha256 === null) {
      throw errors.modelNotFound(`This node has no model ${JSON.stringify(shown(requested))}, and model sharing is not available to fetch it.`, { param: "model" });
    }
    return provider.ensureLocal({ sha256: target.sha256, modelName: wireModelName(requested), signal });
  }

  #remote(target: Target, job: InferenceJob, signal: AbortSignal, onDelta: ((text: string) => void) | undefined): Promise<RemoteResult> {
    const links = this.#cluster.peerLinks;
    if (links === undefined) return Promise.reject(errors.peerUnavailable("This node has no peer links."));
    // A node that lacks the file is addressed by its hash alone: the requested name may be an alias here.
    const modelId = isWireModelId(target.modelId) ? target.modelId : target.sha256;
    if (modelId === null) {
      return Promise.reject(errors.modelNotFound(`Node ${shortNodeId(target.nodeId)} lacks ${JSON.stringify(shown(job.model))}, and its file is not hashed yet, so it cannot be fetched.`, { param: "model" }));
    }
    const frame = jobFrame({ ...job, model: modelId }, { sha256: target.sha256, modelName: wireModelName(job.model), deltas: onDelta !== undefined });
    const running = runRemoteJob(links, target.nodeId, frame, onDelta === undefined ? { signal } : { signal, onDelta });
    this.#remoteInFlight.add(running);
    const forget = (): void => void this.#remoteInFlight.delete(running);
    running.then(forget, forget);
    return running;
  }
}

function shown(name: string): string {
  return name.slice(0, MAX_LOGGED_NAME);
}

function isWireModelId(id: string): boolean {
  return id.length <= PEER_WIRE_LIMITS.maxModelIdLength && MODEL_ID_PATTERN.test(id);
}

/** The client's name for the model as the wire accepts it: one line, bounded. */
function wireModelName(name: string): string {
  const cleaned = name.replace(/\p{Cc}/gu, " ").slice(0, INFER_WIRE_LIMITS.maxModelNameLength);
  return cleaned === "" ? "model" : cleaned;
}
