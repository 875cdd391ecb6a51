/**
 * One live placement of a model run by this node's split engine: the plan it realises, the
 * ModelHost whose runner holds the host's layers (and, for a split, RPC devices that are
 * tunnels to the peers' rpc-server workers), and the peers it uses. Retiring it stops the
 * runner and releases the peers' workers. What `hearth status` and /hearth/v1/cluster show
 * as a live placement is `view()`.
 */

import type { LayerSplitPlan, WholeModelPlan } from "../../scheduler/splitPlan.js";
import type { HearthError } from "../../protocol/errors.js";
import type { ModelHost } from "../engine/ModelHost.js";
import type { ModelDescriptor } from "../engine/types.js";

export interface PlacementStageView {
  nodeId: string;
  /** First repeating layer (blk.N) on this node, and how many it holds. */
  firstLayer: number;
  layerCount: number;
  holdsInput: boolean;
  holdsOutput: boolean;
  memoryBytes: number;
}

export interface PlacementView {
  modelId: string;
  sha256: string | null;
  /** "loading" until its runner is up; "idle" between requests until keep-alive releases it. */
  state: "loading" | "ready" | "idle" | "retired";
  forced: boolean;
  split: boolean;
  predictedTokensPerSecond: number;
  reason: string;
  stages: PlacementStageView[];
  /** How many times it replaced a placement that lost a node. */
  recoveries: number;
  createdAt: number;
}

export type LocalPlan = LayerSplitPlan | (WholeModelPlan & { node: string });

export class SplitPlacement {
  readonly descriptor: ModelDescriptor;
  readonly sha256: string | null;
  readonly plan: LocalPlan;
  readonly host: ModelHost;
  readonly recoveries: number;
  readonly createdAt = Date.now();
  #retired = false;
  #retiring: Promise<void> | undefined;
  readonly #release: (peers: readonly string[]) => Promise<void>;

  constructor(init: { descriptor: ModelDescriptor; sha256: string | null; plan: LocalPlan; host: ModelHost; recoveries: number; release: (peers: readonly string[]) => Promise<void> }) {
    this.descriptor = init.descriptor;
    this.sha256 = init.sha256;
    this.plan = init.plan;
    this.host = init.host;
    this.recoveries = init.recoveries;
    this.#release = init.release;
  }

  /** Peers holding layers, in stage order. */
  get peers(): string[] {
    return this.plan.split ? this.plan.stages.slice(1).map((stage) => stage.nodeId) : [];
  }

  get retired(): boolean {
    return this.#retired;
  }

  /** Stops the runner (failing what still runs on it with `error`) and releases the peers. Idempotent. */
  retire(error: HearthError): Promise<void> {
    this.#retired = true;
    this.#retiring ??= (async () => {
      await this.host.shutdown(error).catch(() => undefined);
      await this.#release(this.peers);
    })();
    return this.#retiring;
  }

  view(): PlacementView {
    const stats = this.host.stats();
    const plan = this.plan;
    const stages: PlacementStageView[] = plan.split
      ? plan.stages.map((stage) => ({ nodeId: stage.nodeId, firstLayer: stage.firstLayer, layerCount: stage.layerCount, holdsInput: stage.holdsInput, holdsOutput: stage.holdsOutput, memoryBytes: stage.memoryBytes }))
      : [{ nodeId: plan.node, firstLayer: 0, layerCount: this.descriptor.layerCount ?? 0, holdsInput: true, holdsOutput: true, memoryBytes: plan.expectedMemoryBytes }];
    return {
      modelId: this.descriptor.id,
      sha256: this.sha256,
      state: this.#retired ? "retired" : stats === undefined ? "idle" : stats.state === "ready" ? "ready" : "loading",
      forced: plan.forced,
      split: plan.split,
      predictedTokensPerSecond: plan.predictedTokensPerSecond,
      reason: plan.reason,
      stages,
      recoveries: this.recoveries,
      createdAt: this.createdAt,
    };
  }
}
