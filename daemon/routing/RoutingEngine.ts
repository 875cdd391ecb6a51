/**
 * The cluster router: the InferenceEngine the HTTP API (every API family) and batch jobs talk
 * to, and the one path of a request from its model name to tokens.
 *
 *   resolve   the model, once, from one cluster state (ClusterState.ts: the snapshot and this
 *             node's model index, shared for a quarter second)
 *   decide    scheduler/decision.ts: local, remote(node) or split(plan), with its reasons
 *   run       local   -> the LocalEngine (fetching the file first when pinned here without it)
 *             remote  -> the peer, over an "infer" stream (remoteJob.ts), deltas relayed
 *             split   -> the SplitEngine (daemon/split/), which owns recovery from a lost node
 *   retry     a whole-model attempt whose node failed before the first delta (its fault class
 *             says so: scheduler/retryPolicy.ts) is decided once more without that node; a
 *             pinned job, or one with `retry: false`, is never moved
 *
 * It also serves peers' jobs here (the "infer" stream route, inferStreamHandler.ts), lists
 * models cluster-wide (clusterModels.ts) and answers `hearth plan` (planReport) and batch jobs'
 * question of which nodes to spread over (batchNodes) with the same decision.
 */

import type { Logger } from "pino";
import { errors, HearthError } from "../../protocol/errors.js";
import type { PlacementSummary, PlanReport } from "../../protocol/api/plan.js";
import type { EmbeddingJob, EmbeddingResult, GenerationDelta, GenerationJob, GenerationResult, InferenceJob } from "../../protocol/inference.js";
import { shortNodeId } from "../../protocol/peer/identity.js";
import { embeddingVectorsOf, generationResultOf, INFER_STREAM_PURPOSE, INFER_WIRE_LIMITS, jobFrame } from "../../protocol/peer/inferenceWire.js";
import { MODEL_ID_PATTERN, PEER_WIRE_LIMITS } from "../../protocol/peer/messages.js";
import { batchNodes, decide, type Decision, type DecisionRequest, type LocalModelFacts, type WholeDecision } from "../../scheduler/decision.js";
import { planNodes, resolvePlacementNodes } from "../../scheduler/planNodes.js";
import { shouldRetryElsewhere } from "../../scheduler/retryPolicy.js";
import { planSplit } from "../../scheduler/splitPlan.js";
import type { ModelHashes } from "../cluster/ModelHashes.js";
import type { LocalEngine } from "../engine/LocalEngine.js";
import type { EmbedOptions, EngineStats, GenerateOptions, InferenceEngine, ModelDescriptor, ModelInfo, RouteOptions } from "../engine/types.js";
import { settlesWithin } from "../lifecycle/settlesWithin.js";
import type { PeerLinks } from "../peers/PeerFabric.js";
import type { PeerRoutes } from "../peers/PeerRouteTable.js";
import type { ModelLayouts } from "../split/modelLayouts.js";
import type { SplitEngine } from "../split/SplitEngine.js";
import type { ClusterState, ClusterStateSource } from "./ClusterState.js";
import { clusterModelList, findClusterModel } from "./clusterModels.js";
import { createInferStreamHandler } from "./inferStreamHandler.js";
import type { LocalModelProvider } from "./LocalModelProvider.js";
import { runRemoteJob, type RemoteResult } from "./remoteJob.js";

export type { RouteOptions } from "../engine/types.js";
export type { LocalModelProvider } from "./LocalModelProvider.js";

export interface RoutingEngineInit {
  local: LocalEngine;
  split: Pick<SplitEngine, "generate" | "embed" | "livePlan" | "placements">;
  state: Pick<ClusterStateSource, "current">;
  layouts: Pick<ModelLayouts, "layoutOf">;
  hashes: Pick<ModelHashes, "hashOf">;
  links: PeerLinks;
  /** Model sharing: fetches a file this node must run but lacks (a pinned job, a peer's job). */
  modelProvider?: LocalModelProvider;
  logger: Logger;
}

/** A request's model, resolved once: the cluster-wide entry, this node's file if it has one, and the state it was read from. */
export interface ResolvedModel {
  info: ModelInfo;
  local: ModelDescriptor | undefined;
  state: ClusterState;
}

const MAX_LOGGED_NAME = 200;

export class RoutingEngine implements InferenceEngine {
  /** What peers reach here: their jobs, run on this node's engine. */
  readonly peerRoutes: PeerRoutes;
  readonly #init: RoutingEngineInit;
  readonly #logger: Logger;
  /** Jobs this node's clients are running on peers; shutdown lets them finish before the links close. */
  readonly #remoteInFlight = new Set<Promise<unknown>>();

  constructor(init: RoutingEngineInit) {
    this.#init = init;
    this.#logger = init.logger.child({ component: "routing" });
    this.peerRoutes = {
      streams: {
        [INFER_STREAM_PURPOSE]: createInferStreamHandler({
          engine: init.local,
          hashOf: (model) => init.hashes.hashOf(model),
          ...(init.modelProvider === undefined ? {} : { modelProvider: init.modelProvider }),
          logger: init.logger,
        }),
      },
    };
  }

  /**
   * Shutdown: waits up to `timeoutMs` for the jobs running on peers for this node's clients
   * (their links must stay up meanwhile). Resolves true when none is left.
   */
  async drainRemote(timeoutMs: number): Promise<boolean> {
    if (this.#remoteInFlight.size === 0) return true;
    return settlesWithin(Promise.allSettled([...this.#remoteInFlight]), timeoutMs);
  }

  async listModels(): Promise<ModelInfo[]> {
    const state = await this.#init.state.current();
    return clusterModelList(state.snapshot, state.models);
  }

  async resolveModel(idOrAlias: string): Promise<ModelInfo> {
    return (await this.resolve(idOrAlias)).info;
  }

  /** The model a client named, resolved once for the whole request; throws HEARTH_MODEL_NOT_FOUND. */
  async resolve(name: string, known?: ModelInfo): Promise<ResolvedModel> {
    const state = await this.#init.state.current();
    const info = known ?? findClusterModel(clusterModelList(state.snapshot, state.models), name);
    if (info === undefined) throw errors.unknownModel(name, "on any node of the cluster");
    const here = info.cluster?.nodes.find((holder) => holder.nodeId === state.snapshot.localNodeId);
    const local = here === undefined ? undefined : state.models.find((model) => model.id === here.modelId);
    return { info, local, state };
  }

  stats(): EngineStats {
    return this.#init.local.stats();
  }

  async generate(job: GenerationJob, options: GenerateOptions): Promise<GenerationResult> {
    const resolved = await this.resolve(job.model, options.model);
    return this.#route(job, resolved, options, {
      split: (target) => this.#init.split.generate(target, job, options),
      local: async (decision, descriptor, onDelta) => {
        const result = await this.#init.local.generate(
          { ...job, model: descriptor.id },
          { signal: options.signal, descriptor, ...(options.onDelta === undefined ? {} : { onDelta }), ...keepAliveOf(options) },
        );
        return { ...result, nodeId: decision.nodeId };
      },
      remote: async (decision, onDelta) => {
        // Without a listener (not streamed, a batch item) the executing node sends no deltas at all.
        const result = await this.#remote(decision, job, options.signal, options.onDelta === undefined ? undefined : onDelta);
        if (result.kind !== "generation") throw errors.peerUnavailable(`Node ${shortNodeId(decision.nodeId)} answered a generation with an embedding.`);
        return { ...generationResultOf(result), nodeId: decision.nodeId };
      },
      annotate: (result, placement) => ({ ...result, placement }),
    });
  }

  async embed(job: EmbeddingJob, options: EmbedOptions): Promise<EmbeddingResult> {
    const resolved = await this.resolve(job.model, options.model);
    return this.#route(job, resolved, options, {
      split: (target) => this.#init.split.embed(target, job, options),
      local: async (decision, descriptor) => ({ ...(await this.#init.local.embed({ ...job, model: descriptor.id }, { signal: options.signal, descriptor, ...keepAliveOf(options) })), nodeId: decision.nodeId }),
      remote: async (decision) => {
        const result = await this.#remote(decision, job, options.signal, undefined);
        if (result.kind !== "embedding") throw errors.peerUnavailable(`Node ${shortNodeId(decision.nodeId)} answered an embedding with a generation.`);
        return { vectors: embeddingVectorsOf(result), promptTokens: result.promptTokens, nodeId: decision.nodeId };
      },
      annotate: (result) => result,
    });
  }

  /** GET /hearth/v1/plan and `hearth plan`: how this node would place the model now, without loading anything. */
  async planReport(modelName: string, forced?: RouteOptions["placement"]): Promise<PlanReport> {
    const resolved = await this.resolve(modelName);
    const { local, state } = resolved;
    if (local === undefined) throw errors.unknownModel(modelName, "on this node (a plan is made by the node that holds the model file)");
    const facts = await this.#facts(local);
    if (facts.layout === undefined) throw errors.modelLoadFailed(facts.layoutProblem ?? `Cannot plan model "${local.id}".`);
    const nodes = planNodes(state.snapshot, facts);
    const plan = planSplit({
      layout: facts.layout,
      nodes,
      modelName: local.id,
      ...(forced === undefined ? {} : { forced: { nodes: resolvePlacementNodes(forced.nodes, nodes), layers: forced.layers }, forcedParam: "placement" }),
    });
    const decision = this.#decide(resolved, facts, { model: modelName, ...(forced === undefined ? {} : { forcedPlacement: forced }) });
    return {
      model: local.id,
      sha256: facts.sha256,
      hostNodeId: state.snapshot.localNodeId,
      nodes: nodes.map((node) => ({ nodeId: node.nodeId, isHost: node.isHost, memoryBudgetBytes: node.memoryBudgetBytes, rttMs: node.rttMs, tokensPerSecond: node.speed.tokensPerSecond })),
      plan,
      decision: summarize(decision),
      live: this.#init.split.placements().find((placement) => placement.modelId === local.id) ?? null,
    };
  }

  /** The nodes a batch job's items spread over (scheduler/decision.ts batchNodes); empty when none can run it. */
  async batchNodes(modelName: string): Promise<Array<{ nodeId: string; speed: number | null; pinned: boolean }>> {
    const resolved = await this.resolve(modelName);
    const facts = resolved.local === undefined ? undefined : await this.#facts(resolved.local);
    return batchNodes(this.#decide(resolved, facts, { model: modelName }), resolved.state.snapshot.localNodeId);
  }

  // ---- internals -------------------------------------------------------------------------

  async #facts(local: ModelDescriptor): Promise<LocalModelFacts> {
    const sha256 = this.#init.hashes.hashOf(local);
    try {
      return { id: local.id, sha256, layout: await this.#init.layouts.layoutOf(local) };
    } catch (error) {
      // Without a layout the model can still run whole; only a split needs one.
      return { id: local.id, sha256, layoutProblem: (error as Error).message };
    }
  }

  #decide(resolved: ResolvedModel, facts: LocalModelFacts | undefined, request: DecisionRequest, state: ClusterState = resolved.state): Decision {
    const livePlan = facts === undefined ? undefined : this.#init.split.livePlan(facts.id);
    return decide({ snapshot: state.snapshot, request, ...(facts === undefined ? {} : { local: facts }), ...(livePlan === undefined ? {} : { livePlan }) });
  }

  /**
   * Decides, runs one attempt, and decides once more without the node if it failed before the
   * first delta (scheduler/retryPolicy.ts).
   */
  async #route<T extends { nodeId?: string }>(
    job: InferenceJob,
    resolved: ResolvedModel,
    options: { signal: AbortSignal; onDelta?: GenerateOptions["onDelta"]; route?: RouteOptions; onNode?: (nodeId: string) => void },
    run: {
      split: (target: { descriptor: ModelDescriptor; sha256: string | null; plan: Extract<Decision, { kind: "split" }>["plan"] }) => Promise<T>;
      local: (decision: WholeDecision, descriptor: ModelDescriptor, onDelta: (delta: GenerationDelta) => void) => Promise<T>;
      remote: (decision: WholeDecision, onDelta: (delta: GenerationDelta) => void) => Promise<T>;
      annotate: (result: T, placement: PlacementSummary) => T;
    },
  ): Promise<T> {
    const { signal } = options;
    const route = options.route ?? {};
    const excluded = [...(route.excludeNodeIds ?? [])];
    const facts = resolved.local === undefined ? undefined : await this.#facts(resolved.local);
    let state = resolved.state;
    let previousFailure: HearthError | undefined;
    for (let attempts = 1; ; attempts++) {
      if (signal.aborted) throw errors.cancelled();
      const decision = this.#decide(
        resolved,
        facts,
        {
          model: job.model,
          ...(route.pinnedNodeId === undefined ? {} : { pinnedNodeId: route.pinnedNodeId }),
          ...(excluded.length === 0 ? {} : { excludeNodeIds: excluded }),
          ...(route.placement === undefined ? {} : { forcedPlacement: route.placement }),
        },
        state,
      );
      this.#logDecision(job, decision, attempts);
      if (decision.kind === "refused") {
        // A retry that finds no other node reports what made the first attempt fail.
        if (previousFailure !== undefined) throw previousFailure;
        throw errors.withCode(decision.code, decision.message, { param: decision.param });
      }
      const placement = summarize(decision);
      if (decision.kind === "split") {
        const descriptor = resolved.local!;
        return run.annotate(await run.split({ descriptor, sha256: facts?.sha256 ?? null, plan: decision.plan }), placement);
      }
      options.onNode?.(decision.nodeId);
      let deltasSent = false;
      const onDelta = (delta: GenerationDelta): void => {
        deltasSent = true;
        options.onDelta?.(delta);
      };
      try {
        const result =
          decision.kind === "local"
            ? await run.local(decision, await this.#localDescriptor(decision, resolved, state, signal), onDelta)
            : await run.remote(decision, onDelta);
        return run.annotate(result, placement);
      } catch (error) {
        const failure = HearthError.from(error);
        const pinned = route.pinnedNodeId !== undefined || !decision.retry;
        if (!shouldRetryElsewhere({ code: failure.code, attempts, deltasSent, pinned, retry: route.retry !== false, aborted: signal.aborted })) throw failure;
        this.#logger.warn(
          { model: shown(job.model), node: shortNodeId(decision.nodeId), code: failure.code, reason: failure.message },
          "the chosen node failed before the first token; placing the job once more without it",
        );
        excluded.push(decision.nodeId);
        previousFailure = failure;
        state = await this.#init.state.current();
      }
    }
  }

  #logDecision(job: InferenceJob, decision: Decision, attempt: number): void {
    const fields = {
      model: shown(job.model),
      kind: job.kind,
      decision: decision.kind,
      ...(decision.kind === "local" || decision.kind === "remote" ? { node: shortNodeId(decision.nodeId), nodeModel: decision.modelId, candidates: decision.candidates.map((candidate) => shortNodeId(candidate.nodeId)) } : {}),
      reasons: decision.reasons,
      attempt,
    };
    if (decision.kind === "remote" || decision.kind === "split") this.#logger.info(fields, decision.kind === "remote" ? "job placed on a peer" : "job runs split");
    else this.#logger.debug(fields, decision.kind === "local" ? "job placed on this node" : "no node for the job");
  }

  /** This node's file for a job placed here; fetched from a peer first when this node lacks it (a pin). */
  async #localDescriptor(decision: WholeDecision, resolved: ResolvedModel, state: ClusterState, signal: AbortSignal): Promise<ModelDescriptor> {
    if (!decision.mustFetch) {
      const held = state.models.find((model) => model.id === decision.modelId) ?? resolved.local;
      if (held !== undefined) return held;
    }
    const provider = this.#init.modelProvider;
    if (provider === undefined || decision.sha256 === null) {
      throw errors.modelNotFound(`This node has no model ${JSON.stringify(shown(resolved.info.id))}, and model sharing is not available to fetch it.`, { param: "model" });
    }
    const modelId = await provider.ensureLocal({ sha256: decision.sha256, modelName: wireModelName(resolved.info.id), signal });
    return this.#init.local.resolveModel(modelId);
  }

  #remote(decision: WholeDecision, job: InferenceJob, signal: AbortSignal, onDelta: ((delta: GenerationDelta) => void) | undefined): Promise<RemoteResult> {
    // A node that lacks the file is addressed by its hash alone: the requested name may be an alias here.
    const modelId = isWireModelId(decision.modelId) ? decision.modelId : decision.sha256;
    if (modelId === null) {
      return Promise.reject(errors.modelNotFound(`Node ${shortNodeId(decision.nodeId)} lacks ${JSON.stringify(shown(job.model))}, and its file is not hashed yet, so it cannot be fetched.`, { param: "model" }));
    }
    const frame = jobFrame({ ...job, model: modelId }, { sha256: decision.sha256, modelName: wireModelName(job.model), deltas: onDelta !== undefined });
    const running = runRemoteJob(this.#init.links, decision.nodeId, frame, onDelta === undefined ? { signal } : { signal, onDelta });
    this.#remoteInFlight.add(running);
    const forget = (): void => void this.#remoteInFlight.delete(running);
    running.then(forget, forget);
    return running;
  }
}

/** What a response's `hearth` extension and `hearth plan` say of a decision. */
function summarize(decision: Decision): PlacementSummary {
  switch (decision.kind) {
    case "local":
    case "remote":
      return { kind: decision.kind, nodeId: decision.nodeId, reasons: decision.reasons };
    case "split":
      return { kind: "split", nodeId: decision.plan.stages[0]!.nodeId, reasons: decision.reasons };
    case "refused":
      return { kind: "refused", nodeId: null, reasons: decision.reasons };
  }
}

/** The per-request keep-alive, which only a job run whole on this node honours. */
function keepAliveOf(options: { keepAliveMs?: number }): { keepAliveMs?: number } {
  return options.keepAliveMs === undefined ? {} : { keepAliveMs: options.keepAliveMs };
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
