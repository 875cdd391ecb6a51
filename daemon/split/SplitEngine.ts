/**
 * Layer splitting, daemon side (docs/splitting.md "When Hearth splits" and "How failure
 * recovery works"): runs the requests the decision (scheduler/decision.ts) sends to a split.
 *
 * A split runs in a runner on this node whose RPC devices are tunnels (daemon/rpc/RpcTunnels)
 * to the peers' rpc-server workers. Its ModelHost belongs to the LocalEngine like every other
 * (openPlacementHost), so it is counted, drained and stopped with the rest; this engine keeps
 * the placement around it: the plan, the peers, one live placement per model until keep-alive
 * releases it. Each peer is first asked to pre-fill its tensor cache from its own copy of the
 * file (fetching it through model sharing if it lacks one), so the load sends hashes, not weights.
 *
 * Recovery: when the runner dies (a peer holding layers died or its link dropped, and
 * llama.cpp aborted the runner), every job on it is continued: the placement is retired, the
 * lost peers are found (their link goes down), the decision is asked again over the nodes that
 * remain, with this node as the host, and a new runner, split or whole here, runs the job
 * again with the tokens already sampled forced first (ContinuationLedger,
 * daemon/runner/samplingReplay.ts).
 * Concurrent jobs share one re-plan. When nothing fits any more the job fails with an error
 * naming the lost node.
 */

import type { Logger } from "pino";
import type { PlacementView } from "../../protocol/api/placement.js";
import { errors, HearthError } from "../../protocol/errors.js";
import type { EmbeddingJob, EmbeddingResult, GenerationJob, GenerationResult } from "../../protocol/inference.js";
import { shortNodeId } from "../../protocol/peer/identity.js";
import { decide } from "../../scheduler/decision.js";
import { isRecoverableByReplacement } from "../../scheduler/retryPolicy.js";
import type { LayerSplitPlan } from "../../scheduler/splitPlan.js";
import { splitPeers } from "../../scheduler/planNodes.js";
import type { HearthConfig } from "../config/defaults.js";
import type { LocalEngine } from "../engine/LocalEngine.js";
import type { ModelHost } from "../engine/ModelHost.js";
import type { GenerateOptions, ModelDescriptor } from "../engine/types.js";
import { locateNativeParts, shimEnvironment, type NativeParts } from "../native/nativeParts.js";
import type { ClusterStateSource } from "../routing/ClusterState.js";
import type { RpcTunnels } from "../rpc/RpcTunnels.js";
import { ContinuationLedger } from "./continuation.js";
import type { ModelLayouts } from "./modelLayouts.js";
import { SplitPlacement } from "./SplitPlacement.js";

export interface SplitEngineInit {
  config: HearthConfig;
  /** This node: the host of every split it runs. */
  localNodeId: string;
  engine: LocalEngine;
  tunnels: Pick<RpcTunnels, "open" | "prepare" | "release">;
  /** Fresh snapshots for re-plans after a lost node. */
  state: Pick<ClusterStateSource, "fresh">;
  layouts: Pick<ModelLayouts, "layoutOf">;
  logger: Logger;
  nativeParts?: () => NativeParts;
  /**
   * Model sharing: makes a peer that lacks the file fetch it (resolves with its model id), so
   * the weights cross once instead of over RPC at every load. Absent: the load pushes them.
   */
  sharing?: { askPeerToFetch(peerNodeId: string, sha256: string, modelName: string): Promise<string> };
}

/** What a split job runs: the model file here, and the plan the decision chose. */
export interface SplitTarget {
  descriptor: ModelDescriptor;
  sha256: string | null;
  plan: LayerSplitPlan;
}

/** Where one attempt of a split job runs: a split placement, or (after a recovery) whole on this node. */
type Where = { kind: "split"; placement: SplitPlacement } | { kind: "whole"; recoveries: number };

/** Whether two plans put the same layers on the same nodes. */
function sameStages(a: LayerSplitPlan, b: LayerSplitPlan): boolean {
  const shape = (plan: LayerSplitPlan): string => plan.stages.map((stage) => `${stage.nodeId}:${stage.layerCount}`).join(",");
  return shape(a) === shape(b);
}

export class SplitEngine {
  readonly #init: SplitEngineInit;
  readonly #logger: Logger;
  readonly #placements = new Map<string, SplitPlacement>();
  readonly #creating = new Map<string, Promise<SplitPlacement>>();
  readonly #recoveries = new WeakMap<SplitPlacement, Promise<Where>>();
  #stopped = false;

  constructor(init: SplitEngineInit) {
    this.#init = init;
    this.#logger = init.logger.child({ component: "split" });
  }

  /** Live placements, for status and the cluster view. */
  placements(): PlacementView[] {
    return [...this.#placements.values()].map((placement) => placement.view());
  }

  /** The plan of the model's live split placement, if one is up (the decision reuses it). */
  livePlan(modelId: string): LayerSplitPlan | undefined {
    const live = this.#placements.get(modelId);
    return live !== undefined && !live.retired ? live.plan : undefined;
  }

  async generate(target: SplitTarget, job: GenerationJob, options: Pick<GenerateOptions, "signal" | "onDelta" | "onNode">): Promise<GenerationResult> {
    const ledger = new ContinuationLedger();
    const host = this.#hostNodeId();
    options.onNode?.(host);
    const result = await this.#withRecovery(target, options.signal, (where) => {
      const resume = ledger.resumeState();
      return this.#init.engine.generate(job, {
        signal: options.signal,
        descriptor: target.descriptor,
        ...(where.kind === "split" ? { host: where.placement.host } : {}),
        onTokens: (tokens) => ledger.recordTokens(tokens),
        onDelta: (delta) => {
          ledger.recordDelta(delta);
          options.onDelta?.(delta);
        },
        ...(resume === undefined ? {} : { resume }),
      });
    });
    return { ...result, nodeId: host };
  }

  async embed(target: SplitTarget, job: EmbeddingJob, options: { signal: AbortSignal; onNode?: (nodeId: string) => void }): Promise<EmbeddingResult> {
    const host = this.#hostNodeId();
    options.onNode?.(host);
    const result = await this.#withRecovery(target, options.signal, (where) =>
      this.#init.engine.embed(job, { signal: options.signal, descriptor: target.descriptor, ...(where.kind === "split" ? { host: where.placement.host } : {}) }),
    );
    return { ...result, nodeId: host };
  }

  /**
   * Shutdown, after the engine drained and stopped every runner (split ones included): refuses
   * new work and releases every placement's peers, whose links are still up.
   */
  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all([...this.#creating.values()].map((creating) => creating.catch(() => undefined)));
    await Promise.all([...this.#placements.values()].map((placement) => this.#retire(placement, errors.shuttingDown())));
  }

  // ---- internals -------------------------------------------------------------------------

  #hostNodeId(): string {
    return this.#init.localNodeId;
  }

  async #withRecovery<T>(target: SplitTarget, signal: AbortSignal, run: (where: Where) => Promise<T>): Promise<T> {
    let where: Where = { kind: "split", placement: await this.#placementFor(target) };
    for (;;) {
      try {
        return await run(where);
      } catch (error) {
        const failure = HearthError.from(error);
        if (!isRecoverableByReplacement(failure.code) || signal.aborted || this.#stopped) throw failure;
        const recoveries: number = where.kind === "split" ? where.placement.recoveries : where.recoveries;
        if (recoveries >= this.#init.config.rpc.recoveryAttempts) {
          throw errors.recoveryExhausted(`${failure.message} The request was already moved to a new placement ${recoveries} times; giving up.`);
        }
        where = where.kind === "split" ? await this.#recover(where.placement) : await this.#replan(target, [], recoveries);
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
    const { tunnels, sharing } = this.#init;
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
    if (sharing === undefined) {
      pushed("the peer lacks the model file and model sharing is not available");
      return;
    }
    const started = performance.now();
    this.#logger.info({ peer: shortNodeId(peer), model: modelName, sha256: sha256.slice(0, 12) }, "the peer lacks the model file: asking it to fetch it through model sharing before the split");
    try {
      const peerModelId = await sharing.askPeerToFetch(peer, sha256, modelName);
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
    const peers = plan.stages.slice(1).map((stage) => stage.nodeId);
    await this.#freePeers(peers, descriptor.id);
    const parts = (this.#init.nativeParts ?? (() => locateNativeParts()))();
    const endpoints = await Promise.all(
      peers.map(async (peer, index) => {
        if (sha256 !== null) {
          await this.#prepareWeights(peer, sha256, descriptor.id);
        } else {
          this.#logger.warn({ model: descriptor.id, peer: shortNodeId(peer) }, "fallback: the model is not hashed yet, so the peer cannot pre-fill; weights are pushed over RPC");
        }
        const endpoint = await this.#init.tunnels.open(peer);
        return { ...endpoint, memoryMiB: plan.llama.reportedMiB[index]! };
      }),
    );
    let placement: SplitPlacement | undefined = undefined;
    const host: ModelHost = this.#init.engine.openPlacementHost({
      descriptor,
      placement: { env: shimEnvironment(parts, endpoints), load: { gpuLayers: plan.llama.gpuLayers, rpcDevicesOnly: true } },
      // A crashed split runner must not be replaced by the host with the same (now dead) devices.
      onCrash: () => {
        if (placement !== undefined) void this.#retire(placement, errors.placementRetired("The split placement lost its runner."));
      },
      // Keep-alive unloaded it, or its load failed: the peers' workers are released with it.
      onIdle: () => {
        if (placement !== undefined) void this.#retire(placement, errors.placementRetired("The placement was released."));
      },
    });
    placement = new SplitPlacement({ descriptor, sha256, plan, host, recoveries });
    this.#placements.set(descriptor.id, placement);
    this.#logger.info(
      {
        model: descriptor.id,
        forced: plan.forced,
        stages: plan.stages.map((stage) => `${shortNodeId(stage.nodeId)}:${stage.firstLayer}+${stage.layerCount}`),
        gpuLayers: plan.llama.gpuLayers,
        predictedTokensPerSecond: plan.predictedTokensPerSecond,
        reason: plan.reason,
      },
      "split placement created",
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

  /** Stops the placement's runner (failing what still runs on it with `error`) and releases its peers. Idempotent. */
  #retire(placement: SplitPlacement, error: HearthError): Promise<void> {
    if (this.#placements.get(placement.descriptor.id) === placement) this.#placements.delete(placement.descriptor.id);
    return placement.retire(async () => {
      await this.#init.engine.retireHost(placement.host, error).catch(() => undefined);
      await this.#releasePeers(placement.peers);
    });
  }

  async #releasePeers(peers: readonly string[]): Promise<void> {
    const { tunnels } = this.#init;
    await Promise.all(peers.map((peer) => tunnels.release(peer).catch((error: unknown) => this.#logger.debug({ err: error, peer: shortNodeId(peer) }, "releasing a peer failed"))));
  }

  /** One re-plan per failed placement, shared by every job that was running on it. */
  #recover(failed: SplitPlacement): Promise<Where> {
    let recovery = this.#recoveries.get(failed);
    if (recovery === undefined) {
      recovery = (async () => {
        await this.#retire(failed, errors.placementRetired("The split placement lost a node."));
        const lost = await this.#lostPeers(failed.peers);
        return this.#replan({ descriptor: failed.descriptor, sha256: failed.sha256, plan: failed.plan }, lost, failed.recoveries);
      })();
      this.#recoveries.set(failed, recovery);
    }
    return recovery;
  }

  /** The decision again, over the nodes left, with this node as the host (it holds the generation's state). */
  async #replan(target: SplitTarget, lost: readonly string[], recoveries: number): Promise<Where> {
    const { descriptor, sha256 } = target;
    const { snapshot } = await this.#init.state.fresh();
    const decision = decide({
      snapshot,
      request: { model: descriptor.id, excludeNodeIds: lost, runHere: true },
      local: { id: descriptor.id, sha256, layout: await this.#init.layouts.layoutOf(descriptor) },
    });
    const names = lost.length > 0 ? lost.map(shortNodeId).join(", ") : "none (its runner failed while every peer stayed up)";
    const lostText = lost.length > 0 ? `Node ${lost.map(shortNodeId).join(" and ")}, which held layers of ${descriptor.id}, was lost` : `The runner of ${descriptor.id}'s split failed`;
    switch (decision.kind) {
      case "refused":
        throw errors.peerUnavailable(`${lostText} mid-generation, and the remaining nodes cannot hold the model: ${decision.message}`);
      case "remote":
        throw errors.peerUnavailable(`${lostText} mid-generation; the model now fits only whole on node ${shortNodeId(decision.nodeId)}, which cannot continue this generation. Retry the request.`);
      case "local":
        this.#logger.warn({ model: descriptor.id, lost: names, split: false, reason: decision.reasons.join("; ") }, "a split placement lost a node; continuing on a new placement (whole on this node)");
        return { kind: "whole", recoveries: recoveries + 1 };
      case "split":
        this.#logger.warn({ model: descriptor.id, lost: names, split: true, reason: decision.reasons.join("; ") }, "a split placement lost a node; continuing on a new placement");
        return { kind: "split", placement: await this.#create({ descriptor, sha256, plan: decision.plan }, recoveries + 1) };
    }
  }

  /** The placement's peers that are no longer up, waiting up to lost_node_wait for the link to be declared down. */
  async #lostPeers(peers: readonly string[]): Promise<string[]> {
    if (peers.length === 0) return [];
    const deadline = Date.now() + this.#init.config.rpc.lostNodeWaitMs;
    for (;;) {
      const { snapshot } = await this.#init.state.fresh();
      const up = new Set(splitPeers(snapshot).map((peer) => peer.nodeId));
      const lost = peers.filter((peer) => !up.has(peer));
      if (lost.length > 0 || Date.now() >= deadline) return lost;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}
