/**
 * One picture of the cluster for placement decisions: the scheduler's snapshot
 * (scheduler/clusterSnapshot.ts) and this node's model list, from the cluster views.
 *
 * current() shares one collection among the requests of the next `ttlMs`: collecting scans
 * the model index, checks file hashes and reads the interfaces, which per request was most of
 * a batch coordinator's CPU (profiled), while peers' states are themselves seconds old, so a
 * quarter second of staleness changes no decision. fresh() collects now (split recovery waits
 * for a lost peer to be declared down).
 */

import type { ClusterSnapshot } from "../../scheduler/clusterSnapshot.js";
import type { ClusterView } from "../../protocol/api/cluster.js";
import type { ModelCatalog, ModelDescriptor } from "../engine/types.js";
import { snapshotFromView } from "./snapshotFromView.js";

/** How long one collected state serves placements. */
export const DEFAULT_CLUSTER_STATE_TTL_MS = 250;

export interface ClusterState {
  snapshot: ClusterSnapshot;
  /** This node's models, as the registry lists them (with paths and aliases). */
  models: ModelDescriptor[];
}

export interface ClusterStateInit {
  views: { routingView(): Promise<ClusterView> };
  catalog: Pick<ModelCatalog, "list">;
  ttlMs?: number;
}

export class ClusterStateSource {
  readonly #init: ClusterStateInit;
  readonly #ttlMs: number;
  #cache: { at: number; state: Promise<ClusterState> } | undefined;

  constructor(init: ClusterStateInit) {
    this.#init = init;
    this.#ttlMs = init.ttlMs ?? DEFAULT_CLUSTER_STATE_TTL_MS;
  }

  current(): Promise<ClusterState> {
    const now = performance.now();
    const cached = this.#cache;
    if (cached !== undefined && now - cached.at < this.#ttlMs) return cached.state;
    return this.fresh();
  }

  fresh(): Promise<ClusterState> {
    const state = Promise.all([this.#init.views.routingView(), this.#init.catalog.list()]).then(([view, models]) => ({ snapshot: snapshotFromView(view, models), models }));
    const entry = { at: performance.now(), state };
    this.#cache = entry;
    // A failed collection is not remembered.
    state.catch(() => {
      if (this.#cache === entry) this.#cache = undefined;
    });
    return state;
  }
}
