/**
 * Hearth's own request extension, accepted by /v1/chat/completions, /v1/completions and
 * /v1/embeddings: `"hearth": {"node": "<node id or prefix>"}` in the body, or the header
 * `x-hearth-node`, pins the request to one node of the cluster (for debugging). Both say the
 * same thing; when both are given they must agree.
 *
 * A pin is a full node id (`MCR7ZAG-NRUEHXD-…`, any case, dashes optional) or a prefix of at
 * least MIN_PIN_CHARACTERS base32 characters. Whether it names a node is the router's
 * question (503 HEARTH_PEER_UNAVAILABLE when it names none); malformed text is a 400 here.
 *
 * Pure: no I/O.
 */

import { z } from "zod";
import { errors, type HearthError } from "../errors.js";
import type { PlacementSummary } from "../api/plan.js";

export const NODE_PIN_HEADER = "x-hearth-node";

/** Shorter prefixes would too easily match the wrong node (scheduler/placement.ts agrees). */
export const MIN_PIN_CHARACTERS = 6;
/** A node id is 56 base32 characters in 8 groups. */
const MAX_PIN_CHARACTERS = 56;
const PIN_PATTERN = /^[A-Za-z2-7]+(?:-[A-Za-z2-7]+)*$/;

/** Most nodes a forced placement may list (the planner's own limit is lower; see scheduler/splitPlan.ts). */
export const MAX_PLACEMENT_NODES = 8;
/** Layer counts above this are certainly wrong (no GGUF has that many blocks). */
const MAX_PLACEMENT_LAYERS = 100_000;

/**
 * The body field. `node` is checked by parseNodePin so header and body share one rule;
 * `placement` (a forced layer split, docs/splitting.md "Forced placements") by parsePlacement.
 */
export const hearthExtensionField = z.object({ node: z.string().nullish(), placement: z.unknown().optional() }).nullish();

/** A layer split the request forces: nodes (ids or unique prefixes) in stage order, and layers per node. */
export interface PlacementRequest {
  nodes: string[];
  layers: number[];
}

/** The body extension as the parsers pass it on (only when the body had one). */
export interface HearthExtension {
  node?: string;
  placement?: PlacementRequest;
}

/** The parsed `hearth` field, or undefined when it was absent, null or empty. Throws HEARTH_INVALID_REQUEST for a bad placement. */
export function hearthExtensionOf(value: z.output<typeof hearthExtensionField>): HearthExtension | undefined {
  if (value === undefined || value === null) return undefined;
  const extension: HearthExtension = {};
  if (value.node !== undefined && value.node !== null) extension.node = value.node;
  const placement = parsePlacement(value.placement, "hearth.placement");
  if (placement !== undefined) extension.placement = placement;
  return extension.node === undefined && extension.placement === undefined ? undefined : extension;
}

/**
 * Validates `{nodes, layers}`: non-empty lists of equal length (at most MAX_PLACEMENT_NODES),
 * every node a well-formed node id or prefix (canonical upper case), every count a whole
 * number >= 0. Whether the nodes exist and the counts fit the model is the planner's question.
 */
export function parsePlacement(value: unknown, param: string): PlacementRequest | undefined {
  if (value === undefined || value === null) return undefined;
  const invalid = (why: string, at = param): HearthError => errors.invalidRequest(`Invalid value for '${at}': ${why}.`, { param: at });
  if (typeof value !== "object" || Array.isArray(value)) throw invalid('expected an object {"nodes": [...], "layers": [...]}');
  const { nodes, layers, ...rest } = value as Record<string, unknown>;
  const extra = Object.keys(rest);
  if (extra.length > 0) throw invalid(`unknown field '${extra[0]!.slice(0, 40)}'`);
  if (!Array.isArray(nodes) || nodes.length === 0 || nodes.length > MAX_PLACEMENT_NODES) throw invalid(`expected 1 to ${MAX_PLACEMENT_NODES} node ids`, `${param}.nodes`);
  if (!Array.isArray(layers) || layers.length !== nodes.length) throw invalid("expected one layer count per node", `${param}.layers`);
  const parsedNodes = nodes.map((node, index) => {
    if (typeof node !== "string") throw invalid("expected a node id", `${param}.nodes[${index}]`);
    return parseNodePin(node, `${param}.nodes[${index}]`)!;
  });
  const parsedLayers = layers.map((count, index) => {
    if (typeof count !== "number" || !Number.isInteger(count) || count < 0 || count > MAX_PLACEMENT_LAYERS) throw invalid("expected a whole number of layers >= 0", `${param}.layers[${index}]`);
    return count;
  });
  return { nodes: parsedNodes, layers: parsedLayers };
}

/**
 * What a response adds under `hearth`: the node that ran the request, where the decision
 * placed it (`local`, `remote` or `split`) and its reasons (scheduler/decision.ts). OpenAI
 * clients ignore the field.
 */
export interface HearthResponseExtension {
  node: string | null;
  placement: PlacementSummary["kind"];
  reasons: string[];
}

/** The `hearth` field of a response body, or nothing when the engine made no decision (no router). */
export function hearthResponseField(result: { nodeId?: string; placement?: PlacementSummary }): { hearth?: HearthResponseExtension } {
  const { placement } = result;
  if (placement === undefined) return {};
  return { hearth: { node: result.nodeId ?? placement.nodeId, placement: placement.kind, reasons: [...placement.reasons] } };
}

/** Validates a pin and returns it in the canonical case (upper), or undefined when absent. */
export function parseNodePin(value: string | null | undefined, param: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  const pin = value.trim();
  const characters = pin.replace(/-/g, "").length;
  if (!PIN_PATTERN.test(pin) || characters < MIN_PIN_CHARACTERS || characters > MAX_PIN_CHARACTERS) {
    throw errors.invalidRequest(`Invalid value for '${param}': expected a node id or a prefix of at least ${MIN_PIN_CHARACTERS} of its characters (A-Z, 2-7, dashes between groups).`,
      { param },
    );
  }
  return pin.toUpperCase();
}

/**
 * The pin of one request from its header (raw, possibly repeated) and its body extension.
 * Throws HEARTH_INVALID_REQUEST for a malformed pin or two pins that disagree.
 */
export function requestPin(header: string | string[] | undefined, body: { node?: string | null | undefined } | null | undefined): string | undefined {
  if (Array.isArray(header) && header.length > 1) {
    throw errors.invalidRequest(`Invalid header '${NODE_PIN_HEADER}': send it once.`, { param: NODE_PIN_HEADER });
  }
  const fromHeader = parseNodePin(Array.isArray(header) ? header[0] : header, NODE_PIN_HEADER);
  const fromBody = parseNodePin(body?.node, "hearth.node");
  if (fromHeader !== undefined && fromBody !== undefined && fromHeader.replace(/-/g, "") !== fromBody.replace(/-/g, "")) {
    throw errors.invalidRequest(`The '${NODE_PIN_HEADER}' header and 'hearth.node' name different nodes; send one.`, { param: "hearth.node" });
  }
  return fromHeader ?? fromBody;
}
