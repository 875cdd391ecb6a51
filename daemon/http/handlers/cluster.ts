/**
 * GET /hearth/v1/cluster: this node and every peer it has seen this run, as the
 * ClusterResponse of protocol/api/cluster.ts (`hearth peers` prints its `peers`).
 * GET /hearth/v1/cluster/diagnostics: what `hearth doctor` adds to it: the listener, mDNS
 * status, dial targets with their last failure, inbound handshake failures, probe state.
 *
 * Both sit behind the API key like /v1: peer addresses and resources are nobody else's business.
 */

import type { ClusterResponse } from "../../../protocol/api/cluster.js";
import type { ClusterDiagnostics } from "../../../protocol/api/diagnostics.js";
import { errors } from "../../../protocol/errors.js";
import type { ClusterSource, RequestContext } from "../context.js";
import { sendJson } from "../responses.js";

function clusterOf(context: RequestContext): ClusterSource {
  const cluster = context.services.cluster;
  if (cluster === undefined) throw errors.notFound("This API runs without a cluster service.");
  return cluster;
}

export async function handleCluster(context: RequestContext): Promise<void> {
  const view = await clusterOf(context).view();
  // Live split placements hosted by this node: which node holds which layers.
  const split = context.services.split;
  const body: ClusterResponse = split === undefined ? view : { ...view, placements: split.placements() };
  sendJson(context.res, 200, body);
}

export function handleClusterDiagnostics(context: RequestContext): Promise<void> {
  const body: ClusterDiagnostics = clusterOf(context).diagnostics();
  sendJson(context.res, 200, body);
  return Promise.resolve();
}
