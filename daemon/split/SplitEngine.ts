/**
 * Layer splitting, daemon side (docs/splitting.md "When Hearth splits" and "How failure
 * recovery works"). The router asks `decide()` for each job; it answers "run it split here"
 * or "route it whole" (with the nodes whose budget cannot hold it left out).
 *
 *   forced placement  -> planned as given (budgets still apply); a single node runs it whole
 *   live placement    -> reused: one placement per model, until keep-alive releases it
 *   no peer up, model not here, or pinned -> routed whole, exactly as without splitting
 *   otherwise         -> scheduler/splitPlan.ts decides: whole (fits somewhere, no faster
 *                        split), split (fits nowhere whole, or a split is clearly faster), or
 *                        refused with required vs available memory (507)
 *
 * A split runs in a runner on this node whose RPC devices are tunnels (daemon/rpc/RpcTunnels)
 * to the peers' rpc-server workers; each peer is first asked to pre-fill its tensor cache
 * from its own copy of the file, so the load sends hashes, not weights.
 *
 * Recovery: when the runner dies (a peer holding layers died or its link dropped, and
 * llama.cpp aborted the runner), every job on it is continued: the placement is retired,
 * the lost peers are found (their link goes down), the model is re-planned on the nodes that
 * remain and a new runner evaluates prompt + the tokens already produced
 * (ContinuationLedger, runner/resumeJob.ts). Concurrent jobs share one re-plan. When nothing
 * fits any more the job fails with an error naming the lost node.
 */

import type { Logger } from "pino";
import { errors, HearthError } from "../../protocol/errors.js";
import type { EmbeddingJob, EmbeddingResult, GenerationJob, GenerationResult } from "../../protocol/inference.js";
import { shortNodeId } from "../../protocol/peer/identity.js";
import { planRefusalError, planSplit, type PlanNode, type SplitPlanResult } from "../../scheduler/splitPlan.js";
import type { ClusterView } from "../cluster/views.js";
import type { HearthConfig } from "../config/defaults.js";
import { ModelHost, type EngineHooks } from "../engine/ModelHost.js";
import type { GenerateOptions, ModelCatalog, ModelDescriptor, RouteOptions } from "../engine/types.js";
import { locateNativeParts, shimEnvironment, type NativeParts } from "../native/nativeParts.js";
import type { RpcTunnels } from "../rpc/RpcTunnels.js";
import { ContinuationLedger } from "./continuation.js";
import { ModelLayouts } from "./modelLayouts.js";
import { planNodesFromView, resolvePlacementNodes, upPeers } from "./planInputs.js";
import { SplitPlacement, type LocalPlan, type PlacementView } from "./SplitPlacement.js";
import { settlesWithin } from "../lifecycle/settlesWithin.js";
import { isRecoverableByReplacement } from "../../scheduler/retryPolicy.js";

export interface SplitEngineInit {
  config: HearthConfig;
  cluster: { routingView(): Promise<ClusterView>; modelHashOf(model: Pick<ModelDescriptor, "path">): string | null };
  catalog: ModelCatalog;
  tunnels: () => RpcTunnels | undefined;
  logger: Logger;
  hooks?: EngineHooks;
  runnerEntryPath?: string;
  nativeParts?: () => NativeParts;
  /**
   * Model sharing: makes a peer that lacks the file fetch it (resolves with its model id), so
   * the weights cross once instead of over RPC at every load. Absent: the load pushes them.
   */
  askPeerToFetch?: (peerNodeId: string, sha256: string, modelName: string) => Promise<string>;
}

export type SplitDecision = { kind: "split"; target: SplitTarget } | { kind: "route"; route: RouteOptions };

/** What a split job runs on: a live placement, or a plan to realise first. */
export interface SplitTarget {
  descriptor: ModelDescriptor;
  sha256: string | null;
  plan: LocalPlan;
}

/** GET /hearth/v1/plan and `hearth plan`. */
export interface PlanReport {
  model: string;
  sha256: string | null;
  hostNodeId: string;
  nodes: Array<Pick<PlanNode, "nodeId" | "isHost" | "memoryBudgetBytes" | "rttMs"> & { tokensPerSecond: number }>;
  plan: SplitPlanResult;
  live: PlacementView | null;
}

const PLACEMENT_PARAM = "hearth.placement";

/** Whether two plans put the same layers on the same nodes. */
function sameStages(a: LocalPlan, b: LocalPlan): boolean {
  const shape = (plan: LocalPlan): string => (plan.split ? plan.stages.map((stage) => `${stage.nodeId}:${stage.layerCount}`).join(",") : `${plan.node}:whole`);
  return shape(a) === shape(b);
}

/** The node running the runner (the one holding the input layer). */
function hostOf(plan: LocalPlan): string {
  return plan.split ? plan.stages[0]!.nodeId : plan.node;
}

export class SplitEngine {
  readonly #init: SplitEngineInit;
  readonly #logger: Logger;
  readonly #layouts: ModelLayouts;
  readonly #placements = new Map<string, SplitPlacement>();
  readonly #creating = new Map<string, Promise<SplitPlacement>>();
  readonly #recoveries = new WeakMap<SplitPlacement, Promise<SplitPlacement>>();
  #stopped = false;

  constructor(init: SplitEngineInit) {
    this.#init = init;
    this.#logger = init.logger.child({ component: "split" });
    this.#layouts = new ModelLayouts(init.config.limits, init.config.runner);
  }

  /** Live placements, for status and the cluster view. */
  placements(): PlacementView[] {
    return [...this.#placements.values()].map((placement) => placement.view());
  }

  /** The plan for `modelName` as this node would make it now, without loading anything. */
  async planReport(modelName: string, forced?: RouteOptions["placement"]): Promise<PlanReport> {
    const descriptor = await this.#init.catalog.resolve(modelName);
    const sha256 = this.#init.cluster.modelHashOf(descriptor);
    const view = await this.#init.cluster.routingView();
    const nodes = planNodesFromView(view, { id: descriptor.id, sha256 });
    const plan = await this.#plan(descriptor, nodes, forced);
    return {
      model: descriptor.id,
      sha256,
      hostNodeId: view.local.nodeId,
      nodes: nodes.map((node) => ({ nodeId: node.nodeId, isHost: node.isHost, memoryBudgetBytes: node.memoryBudgetBytes, rttMs: node.rttMs, tokensPerSecond: node.speed.tokensPerSecond })),
      plan,
      live: this.#placements.get(descriptor.id)?.view() ?? null,
    };
  }

  /** Whether the job runs split here, or how the router should route it whole. */
  async decide(modelName: string, route: RouteOptions): Promise<SplitDecision> {
    const { placement: forced, ...rest } = route;
    if (forced === undefined) {
      if (route.pinnedNodeId !== undefined) return { kind: "route", route };
      const live = await this.#liveFor(modelName);
      if (live !== undefined) return { kind: "split", target: { descriptor: live.descriptor, sha256: live.sha256, plan: live.plan } };
    }
    const view = await this.#init.cluster.routingView();
    if (forced === undefined && upPeers(view).length === 0) return { kind: "route", route };
    let descriptor: ModelDescriptor;
    try {
      descriptor = await this.#init.catalog.resolve(modelName);
    } catch (error) {
      if (forced === undefined) return { kind: "route", route };
      throw errors.invalidRequest(`A forced placement runs on the node holding the model file, and this node has no model ${JSON.stringify(modelName.slice(0, 200))}; send the request to a node that has it.`, { param: PLACEMENT_PARAM, cause: error });
    }
    const sha256 = this.#init.cluster.modelHashOf(descriptor);
    const nodes = planNodesFromView(view, { id: descriptor.id, sha256 });
    const plan = await this.#plan(descriptor, nodes, forced);
    if (!plan.ok) throw planRefusalError(plan);
    this.#logger.debug({ model: descriptor.id, split: plan.split, forced: plan.forced, reason: plan.reason }, "planned");
    if (plan.split) return { kind: "split", target: { descriptor, sha256, plan } };
    if (plan.forced) return { kind: "route", route: { ...rest, pinnedNodeId: plan.node, retry: false } };
    // It fits whole somewhere: route it as usual, but never onto a node whose budget cannot hold it.
    const tooSmall = nodes.filter((node) => node.memoryBudgetBytes < plan.expectedMemoryBytes).map((node) => node.nodeId);
    return { kind: "route", route: tooSmall.length === 0 ? rest : { ...rest, excludeNodeIds: [...(rest.excludeNodeIds ?? []), ...tooSmall] } };
  }

  async generate(target: SplitTarget, job: GenerationJob, options: GenerateOptions): Promise<GenerationResult> {
    const ledger = new ContinuationLedger();
    options.onNode?.(hostOf(target.plan));
    const result = await this.#withRecovery(target, options.signal, (placement) => {
      return placement.host.submit(({ runner, signal, isLive }) => {
        const resume = ledger.resumeState();
        return runner.generate(job, {
          signal,
          onTokens: (tokens) => {
            if (isLive()) ledger.recordTokens(tokens);
          },
          onDelta: (delta) => {
            if (!isLive()) return;
            ledger.recordText(delta.text);
            options.onDelta?.(delta);
          },
          ...(resume === undefined ? {} : { resume }),
        });
      }, options.signal);
    });
    return { ...result, nodeId: hostOf(target.plan) };
  }

  async embed(target: SplitTarget, job: EmbeddingJob, options: { signal: AbortSignal; onNode?: (nodeId: string) => void }): Promise<EmbeddingResult> {
    options.onNode?.(hostOf(target.plan));
    const result = await this.#withRecovery(target, options.signal, (placement) => placement.host.submit(({ runner, signal }) => runner.embed(job, { signal }), options.signal));
    return { ...result, nodeId: hostOf(target.plan) };
  }

  /**
   * Shutdown: refuses new work, lets running generations finish for up to `drainTimeoutMs`
   * (the peers' links are still up), then stops every placement and releases its peers.
   */
  async stop(options: { drainTimeoutMs?: number } = {}): Promise<void> {
    this.#stopped = true;
    const error = errors.shuttingDown();
    await Promise.all([...this.#creating.values()].map((creating) => creating.catch(() => undefined)));
    const drainTimeoutMs = options.drainTimeoutMs ?? 0;
    if (drainTimeoutMs > 0) await settlesWithin(Promise.all([...this.#placements.values()].map((placement) => placement.host.whenIdle())), drainTimeoutMs);
    await Promise.all([...this.#placements.values()].map((placement) => placement.retire(error)));
    this.#placements.clear();
  }

  // ---- internals -------------------------------------------------------------------------

  async #plan(descriptor: ModelDescriptor, nodes: PlanNode[], forced: RouteOptions["placement"]): Promise<SplitPlanResult> {
    const layout = await this.#layouts.layoutOf(descriptor.path, descriptor.id);
    const input = { layout, nodes, modelName: descriptor.id };
    if (forced === undefined) return planSplit(input);
    return planSplit({ ...input, forced: { nodes: resolvePlacementNodes(forced.nodes, nodes), layers: forced.layers }, forcedParam: PLACEMENT_PARAM });
  }

  async #liveFor(modelName: string): Promise<SplitPlacement | undefined> {
    if (this.#placements.size === 0) return undefined;
    let descriptor: ModelDescriptor;
    try {
      descriptor = await this.#init.catalog.resolve(modelName);
    } catch {
      return undefined;
    }
    const live = this.#placements.get(descriptor.id);
    return live !== undefined && !live.retired ? live : undefined;
  }

  async #withRecovery<T>(target: SplitTarget, signal: AbortSignal, run: (placement: SplitPlacement) => Promise<T>): Promise<T> {
    let placement = await this.#placementFor(target);
    for (let recoveries = 0; ; recoveries++) {
      try {
        return await run(placement);
      } catch (error) {
        const failure = HearthError.from(error);
        if (!isRecoverableByReplacement(failure.code) || signal.aborted || this.#stopped) throw failure;
        if (recoveries >= this.#init.config.rpc.recoveryAttempts) {
          throw errors.recoveryExhausted(`${failure.message} The request was already moved to a new placement ${recoveries} times; giving up.`);
        }
        placement = await this.#recover(placement);
      }
    }
  }

  /** The live placement for the target's model, or a new one realising its plan (one at a time per model). */
  async #placementFor(target: SplitTarget): Promise<SplitPlacement> {
    const key = target.descriptor.id;
    for (;;) {
      const creating = this.#creating.get(key);
      if (creating !== undefined) {
        await creating.catch(() => undefined);
        continue;
      }
      const live = this.#placements.get(key);
      if (live === undefined || live.retired) break;
      if (sameStages(live.plan, target.plan)) return live;
      // A forced placement with another layout replaces the live one once it is idle.
      if (live.host.stats()?.running) {
        throw errors.queueFull(`Model "${key}" is serving requests on another placement; retry later.`, { retryAfterSeconds: this.#init.config.limits.retryAfterSeconds });
      }
      await this.#retire(live, errors.placementRetired("The placement was replaced by a forced one."));
    }
    return this.#create(target, 0);
  }

  #create(target: SplitTarget, recoveries: number): Promise<SplitPlacement> {
    const key = target.descriptor.id;
    const creating = this.#realise(target, recoveries).finally(() => {
      if (this.#creating.get(key) === creating) this.#creating.delete(key);
    });
    this.#creating.set(key, creating);
    return creating;
  }

  /**
   * Gets the peer's rpc-server tensor cache filled from a local copy of the file: the peer's
   * own, or one it fetches now through model sharing. Only when neither works do the weights
   * cross over RPC at load, which is logged as the fallback it is.
   */
  async #prepareWeights(peer: string, sha256: string, modelName: string): Promise<void> {
    const tunnels = this.#init.tunnels();
    if (tunnels === undefined) return;
    const prepare = (): Promise<string | undefined> =>
      tunnels.prepare(peer, sha256).then(
        (answer) => answer.status,
        (error: unknown) => {
          this.#logger.warn({ err: error, peer: shortNodeId(peer) }, "fallback: rpc.prepare failed; the load pushes this peer's weights over RPC");
          return undefined;
        },
      );
    const pushed = (why: string): void => this.#logger.warn({ peer: shortNodeId(peer), model: modelName, sha256: sha256.slice(0, 12) }, `fallback: ${why}; the load pushes this peer's weights over RPC`);
    if ((await prepare()) !== "missing") return;
    if (this.#init.askPeerToFetch === undefined) {
      pushed("the peer lacks the model file and model sharing is not available");
      return;
    }
    const started = performance.now();
    this.#logger.info({ peer: shortNodeId(peer), model: modelName, sha256: sha256.slice(0, 12) }, "the peer lacks the model file: asking it to fetch it through model sharing before the split");
    try {
      const peerModelId = await this.#init.askPeerToFetch(peer, sha256, modelName);
      this.#logger.info({ peer: shortNodeId(peer), peerModelId, ms: Math.round(performance.now() - started) }, "the peer fetched the model file; pre-filling again");
    } catch (error) {
      this.#logger.warn({ err: error, peer: shortNodeId(peer) }, "fallback: the peer could not fetch the model file; the load pushes its weights over RPC");
      return;
    }
    if ((await prepare()) === "missing") pushed("the peer still cannot pre-fill after fetching the file");
  }

  async #realise(target: SplitTarget, recoveries: number): Promise<SplitPlacement> {
    if (this.#stopped) throw errors.shuttingDown();
    const { descriptor, sha256, plan } = target;
    const peers = plan.split ? plan.stages.slice(1).map((stage) => stage.nodeId) : [];
    await this.#freePeers(peers, descriptor.id);
    let placementSettings: { env: Record<string, string>; load: { gpuLayers: number; rpcDevicesOnly: true } } | undefined;
    if (plan.split) {
      const tunnels = this.#init.tunnels();
      if (tunnels === undefined) throw errors.peerUnavailable("This node has no peer links, so it cannot split a model.");
      const parts = (this.#init.nativeParts ?? (() => locateNativeParts()))();
      const endpoints = await Promise.all(
        peers.map(async (peer, index) => {
          if (sha256 !== null) {
            await this.#prepareWeights(peer, sha256, descriptor.id);
          } else {
            this.#logger.warn({ model: descriptor.id, peer: shortNodeId(peer) }, "fallback: the model is not hashed yet, so the peer cannot pre-fill; weights are pushed over RPC");
          }
          const endpoint = await tunnels.open(peer);
          return { ...endpoint, memoryMiB: plan.llama.reportedMiB[index]! };
        }),
      );
      placementSettings = { env: shimEnvironment(parts, endpoints), load: { gpuLayers: plan.llama.gpuLayers, rpcDevicesOnly: true } };
    }
    let placement: SplitPlacement | undefined = undefined;
    const host = new ModelHost({
      descriptor,
      limits: this.#init.config.limits,
      runner: this.#init.config.runner,
      logger: this.#init.logger,
      ...(this.#init.runnerEntryPath === undefined ? {} : { runnerEntryPath: this.#init.runnerEntryPath }),
      hooks: {
        ...this.#init.hooks,
        onModelUnloaded: (modelId, reason) => {
          // A crashed split runner must not be replaced by the host with the same (now dead) devices.
          if (reason === "crash" && placement !== undefined) void this.#retire(placement, errors.placementRetired("The split placement lost its runner."));
          this.#init.hooks?.onModelUnloaded?.(modelId, reason);
        },
      },
      onIdle: () => {
        // Keep-alive unloaded it, or its load failed: the peers' workers are released with it.
        if (placement !== undefined) void this.#retire(placement, errors.placementRetired("The placement was released."));
      },
      ...(placementSettings === undefined ? {} : { placement: placementSettings }),
    });
    placement = new SplitPlacement({ descriptor, sha256, plan, host, recoveries, release: (released) => this.#releasePeers(released) });
    this.#placements.set(descriptor.id, placement);
    this.#logger.info(
      {
        model: descriptor.id,
        forced: plan.forced,
        stages: plan.split ? plan.stages.map((stage) => `${shortNodeId(stage.nodeId)}:${stage.firstLayer}+${stage.layerCount}`) : [`${shortNodeId(plan.node)}:whole`],
        gpuLayers: plan.split ? plan.llama.gpuLayers : undefined,
        predictedTokensPerSecond: plan.predictedTokensPerSecond,
        reason: plan.reason,
      },
      plan.split ? "split placement created" : "placement created on this node",
    );
    return placement;
  }

  /** rpc-server serves one host connection at a time: another model's idle placement on these peers gives way. */
  async #freePeers(peers: readonly string[], modelId: string): Promise<void> {
    for (const other of [...this.#placements.values()]) {
      if (other.descriptor.id === modelId || other.retired || !other.peers.some((peer) => peers.includes(peer))) continue;
      if (other.host.stats()?.running) {
        throw errors.queueFull(`The peers needed are busy serving a split of model "${other.descriptor.id}"; retry later.`, { retryAfterSeconds: this.#init.config.limits.retryAfterSeconds });
      }
      await this.#retire(other, errors.placementRetired("The placement made way for another model."));
    }
  }

  async #retire(placement: SplitPlacement, error: HearthError): Promise<void> {
    if (this.#placements.get(placement.descriptor.id) === placement) this.#placements.delete(placement.descriptor.id);
    await placement.retire(error);
  }

  async #releasePeers(peers: readonly string[]): Promise<void> {
    const tunnels = this.#init.tunnels();
    if (tunnels === undefined) return;
    await Promise.all(peers.map((peer) => tunnels.release(peer).catch((error: unknown) => this.#logger.debug({ err: error, peer: shortNodeId(peer) }, "releasing a peer failed"))));
  }

  /** One re-plan per failed placement, shared by every job that was running on it. */
  #recover(failed: SplitPlacement): Promise<SplitPlacement> {
    let recovery = this.#recoveries.get(failed);
    if (recovery === undefined) {
      recovery = this.#replan(failed);
      this.#recoveries.set(failed, recovery);
    }
    return recovery;
  }

  async #replan(failed: SplitPlacement): Promise<SplitPlacement> {
    await this.#retire(failed, errors.placementRetired("The split placement lost a node."));
    const lost = await this.#lostPeers(failed.peers);
    const names = lost.length > 0 ? lost.map(shortNodeId).join(", ") : "none (its runner failed while every peer stayed up)";
    const view = await this.#init.cluster.routingView();
    const nodes = planNodesFromView(view, { id: failed.descriptor.id, sha256: failed.sha256 }, { excludeNodeIds: lost });
    const plan = await this.#plan(failed.descriptor, nodes, undefined);
    const lostText = lost.length > 0 ? `Node ${lost.map(shortNodeId).join(" and ")}, which held layers of ${failed.descriptor.id}, was lost` : `The runner of ${failed.descriptor.id}'s split failed`;
    if (!plan.ok) {
      throw errors.peerUnavailable(`${lostText} mid-generation, and the remaining nodes cannot hold the model: ${plan.message}`);
    }
    if (!plan.split && plan.node !== view.local.nodeId) {
      throw errors.peerUnavailable(`${lostText} mid-generation; the model now fits only whole on node ${shortNodeId(plan.node)}, which cannot continue this generation. Retry the request.`);
    }
    this.#logger.warn({ model: failed.descriptor.id, lost: names, split: plan.split, reason: plan.reason }, "a split placement lost a node; continuing on a new placement");
    const local: LocalPlan = plan.split ? plan : { ...plan, node: plan.node };
    return this.#create({ descriptor: failed.descriptor, sha256: failed.sha256, plan: local }, failed.recoveries + 1);
  }

  /** The placement's peers that are no longer up, waiting up to lost_node_wait for the link to be declared down. */
  async #lostPeers(peers: readonly string[]): Promise<string[]> {
    if (peers.length === 0) return [];
    const deadline = Date.now() + this.#init.config.rpc.lostNodeWaitMs;
    for (;;) {
      const view = await this.#init.cluster.routingView();
      const up = new Set(upPeers(view).map((peer) => peer.nodeId));
      const lost = peers.filter((peer) => !up.has(peer));
      if (lost.length > 0 || Date.now() >= deadline) return lost;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}
