/**
 * The HTTP side of cluster routing: a request's pin (`x-hearth-node` header or the body's
 * `hearth.node`, protocol/openai/hearthExtension.ts) becomes the router's RouteOptions, and the
 * node that runs the request is named in the response's `x-hearth-node` header. The header is
 * set each time the router places an attempt, so an error answered by the node that failed
 * names it too; once a stream has started its headers are gone, which only matters for a retry
 * after a keepalive (docs/api.md).
 */

import type { ServerResponse } from "node:http";
import { errors } from "../../protocol/errors.js";
import { NODE_PIN_HEADER, requestPin, type HearthExtension } from "../../protocol/openai/hearthExtension.js";
import type { RouteOptions } from "../engine/types.js";
import type { RequestContext } from "./context.js";

/** The response header naming the node that ran the request. */
export const NODE_HEADER = NODE_PIN_HEADER;

export interface RequestRouting {
  route: RouteOptions;
  onNode: (nodeId: string) => void;
}

/** Validates the pin (400 HEARTH_INVALID_REQUEST) and prepares the node header. */
export function requestRouting(context: RequestContext, hearth: HearthExtension | undefined): RequestRouting {
  const pin = requestPin(context.req.headers[NODE_PIN_HEADER], hearth);
  if (pin !== undefined && hearth?.placement !== undefined) {
    throw errors.invalidRequest("A request is either pinned to one node or given a forced placement, not both.", { param: "hearth.placement" });
  }
  const route: RouteOptions = pin === undefined ? {} : { pinnedNodeId: pin };
  if (hearth?.placement !== undefined) route.placement = hearth.placement;
  return {
    route,
    onNode: (nodeId) => setNodeHeader(context.res, nodeId),
  };
}

export function setNodeHeader(res: ServerResponse, nodeId: string | undefined): void {
  if (nodeId !== undefined && !res.headersSent) res.setHeader(NODE_HEADER, nodeId);
}
