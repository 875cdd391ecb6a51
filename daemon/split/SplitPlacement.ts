/**
 * One live split placement run by this node's split engine: the plan it realises, the
 * ModelHost (owned by the LocalEngine) whose runner holds the host's layers and RPC devices
 * that are tunnels to the peers' rpc-server workers, and the peers it uses. What
 * `hearth status` and /hearth/v1/cluster show as a live placement is `view()`.
 */

import type { PlacementView } from "../../protocol/api/placement.js";
import type { LayerSplitPlan } from "../../scheduler/splitPlan.js";
import type { ModelHost } from "../engine/ModelHost.js";
import type { ModelDescriptor } from "../engine/types.js";

export class SplitPlacement {
  readonly descriptor: ModelDescriptor;
  readonly sha256: string | null;
  readonly plan: LayerSplitPlan;
  readonly host: ModelHost;
  readonly recoveries: number;
  readonly createdAt = Date.now();
  #retiring: Promise<void> | undefined;

  constructor(init: { descriptor: ModelDescriptor; sha256: string | null; plan: LayerSplitPlan; host: ModelHost; recoveries: number }) {
    this.descriptor = init.descriptor;
    this.sha256 = init.sha256;
    this.plan = init.plan;
    this.host = init.host;
    this.recoveries = init.recoveries;
  }

  /** Peers holding layers, in stage order. */
  get peers(): string[] {
    return this.plan.stages.slice(1).map((stage) => stage.nodeId);
  }

  get retired(): boolean {
    return this.#retiring !== undefined;
  }

  /** Marks the placement retired and runs `retirement` (stop the runner, release the peers) once. */
  retire(retirement: () => Promise<void>): Promise<void> {
    this.#retiring ??= retirement();
    return this.#retiring;
  }

  view(): PlacementView {
    const stats = this.host.stats();
    return {
      modelId: this.descriptor.id,
      sha256: this.sha256,
      state: this.retired ? "retired" : stats === undefined ? "idle" : stats.state === "ready" ? "ready" : "loading",
      forced: this.plan.forced,
      split: true,
      predictedTokensPerSecond: this.plan.predictedTokensPerSecond,
      reason: this.plan.reason,
      stages: this.plan.stages.map((stage) => ({ nodeId: stage.nodeId, firstLayer: stage.firstLayer, layerCount: stage.layerCount, holdsInput: stage.holdsInput, holdsOutput: stage.holdsOutput, memoryBytes: stage.memoryBytes })),
      recoveries: this.recoveries,
      createdAt: this.createdAt,
    };
  }
}
