/**
 * What a route handler receives: the request, the response, the path parameters, and the
 * daemon services the HTTP API was built with.
 */

import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "pino";
import type { ClusterView } from "../../protocol/api/cluster.js";
import type { ClusterDiagnostics } from "../../protocol/api/diagnostics.js";
import type { PlacementView } from "../../protocol/api/placement.js";
import type { PlanReport } from "../../protocol/api/plan.js";
import type { StoredResponse } from "../../protocol/responses/storedResponse.js";
import type { ClusterSummary } from "../../protocol/api/status.js";
import type { HearthConfig } from "../config/defaults.js";
import type { ApiFamily } from "./apiFamily.js";
import type { InferenceEngine } from "../engine/types.js";
import type { Metrics } from "../metrics/Metrics.js";
import type { JobCoordinator } from "../jobs/JobCoordinator.js";
import type { LocalModelsSource } from "../models/LocalModelAdmin.js";
import type { ModelSharingSource } from "../sharing/ModelSharing.js";

/** The cluster as the API shows it (daemon/cluster/ClusterViews.ts). */
export interface ClusterSource {
  view(): Promise<ClusterView>;
  diagnostics(): ClusterDiagnostics;
  summary(): ClusterSummary;
}

export interface HttpServices {
  config: HearthConfig;
  engine: InferenceEngine;
  metrics: Metrics;
  version: string;
  /** Epoch ms at which the API was created (for uptime). */
  startedAtMs: number;
  isReady(): boolean;
  /** The address actually bound (port 0 resolved). */
  address(): { host: string; port: number };
  /** Absent when the API runs without a daemon around it (tests). */
  cluster?: ClusterSource;
  /** Batch jobs this node coordinates (daemon/jobs/); absent without a daemon around the API. */
  jobs?: JobCoordinator;
  /** Model transfers between peers (daemon/sharing/); absent without a daemon around the API. */
  sharing?: ModelSharingSource;
  /** Live split placements (daemon/split/SplitEngine.ts); absent without a daemon around the API. */
  split?: SplitSource;
  /** Placement plans (the router's decision, daemon/routing/RoutingEngine.ts); absent without a daemon around the API. */
  plans?: PlanSource;
  /** Loading, unloading, aliasing and deleting this node's models (daemon/models/LocalModelAdmin.ts); absent without a daemon around the API. */
  localModels?: LocalModelsSource;
  /** Stored responses of the Responses API (daemon/responses/ResponseStore.ts); absent without a daemon around the API (nothing is stored). */
  responses?: ResponseRecords;
}

export interface ResponseRecords {
  put(record: StoredResponse): Promise<void>;
  get(id: string): Promise<StoredResponse | undefined>;
  delete(id: string): Promise<boolean>;
}

export interface SplitSource {
  placements(): PlacementView[];
}

export interface PlanSource {
  planReport(model: string, forced?: { nodes: string[]; layers: number[] }): Promise<PlanReport>;
}

export interface RequestContext {
  req: IncomingMessage;
  res: ServerResponse;
  /** Decoded path parameters, e.g. `id` of /v1/models/{id}. */
  params: Readonly<Record<string, string>>;
  log: Logger;
  services: HttpServices;
  /** The API family the request speaks; its errors come in that family's shape. */
  family: ApiFamily;
}

export type Handler = (context: RequestContext) => Promise<void>;
