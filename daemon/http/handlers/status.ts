/**
 * GET /hearth/v1/status: what this daemon is and what it has loaded, for `hearth status`,
 * with a short cluster summary (`cluster`: node id, cluster id or null, peers seen and up) and
 * the model transfers from peers in progress (`transfers`) when the API runs inside a daemon.
 * The shape is Status of protocol/api/status.ts.
 */

import type { Status } from "../../../protocol/api/status.js";
import type { RequestContext } from "../context.js";
import { sendJson } from "../responses.js";

export function handleStatus({ res, services }: RequestContext): Promise<void> {
  const body: Status = {
    version: services.version,
    uptimeSeconds: Math.floor((Date.now() - services.startedAtMs) / 1000),
    listen: services.address(),
    models: services.engine.stats().loaded,
    ...(services.cluster === undefined ? {} : { cluster: services.cluster.summary() }),
    // Model transfers from peers in progress (daemon/sharing/), for `hearth status`.
    ...(services.sharing === undefined ? {} : { transfers: services.sharing.transfers() }),
    // Live split placements (daemon/split/): which node holds which layers.
    ...(services.split === undefined ? {} : { placements: services.split.placements() }),
  };
  sendJson(res, 200, body);
  return Promise.resolve();
}
