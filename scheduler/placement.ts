/**
 * Placement: which node of the cluster runs one request for a model.
 *
 * A model name is resolved to the sha256s of the files nodes know by that name; every
 * reachable node holding one of those files (under whatever id it uses) is a candidate.
 * Candidates are ranked by a total order, so the decision is deterministic and can be
 * explained by the first criterion that separates the winner from the runner-up:
 *
 *   1. loaded in a runner before only present on disk (no load time);
 *   2. shorter expected wait, (queueDepth + 1) / speed. A node whose speed for the model is
 *      not measured yet is assumed as slow as the slowest measured candidate (speed 1 when
 *      none is measured, which reduces the rule to queue depth); at equal expected wait a
 *      measured speed ranks first, since the estimate behind it is real;
 *   3. this node before a peer (no network hop);
 *   4. lower heartbeat round trip (unknown last);
 *   5. node id, so equal candidates always resolve the same way.
 *
 * Pure: no I/O.
 */

import type { ClusterSnapshot, SnapshotModel, SnapshotNode } from "./clusterSnapshot.js";

export interface PlacementRequest {
  model: string;
  /** A full node id or a unique prefix of at least MIN_PIN_PREFIX_LENGTH characters. */
  pinnedNodeId?: string;
  /** Nodes that must not be chosen (a retry after one of them failed). */
  excludeNodeIds?: readonly string[];
}

export interface Candidate {
  nodeId: string;
  /** The id this node knows the model by; may differ from the requested name. */
  modelId: string;
  sha256: string | null;
  local: boolean;
  loaded: boolean;
  queueDepth: number;
  /** Measured tokens/s for this model on this node; null when not measured yet. */
  speed: number | null;
  rttMs: number | null;
}

export type PlacementFailureCode = "HEARTH_MODEL_NOT_FOUND" | "HEARTH_PEER_UNAVAILABLE";

export type Placement =
  | { ok: true; nodeId: string; modelId: string; sha256: string | null; reason: string; candidates: Candidate[] }
  | { ok: false; code: PlacementFailureCode; message: string; candidates: Candidate[] };

/** A shorter pin would too easily match the wrong node once a cluster grows. */
export const MIN_PIN_PREFIX_LENGTH = 6;

/** How a pin resolved: one node, several (ambiguous prefix), or none. */
export type PinResolution = { kind: "found"; node: SnapshotNode } | { kind: "ambiguous"; nodeIds: string[] } | { kind: "unknown" };

// Node ids are typed by people in grouped upper-case form; compare without case or separators.
function compactId(text: string): string {
  return text.toUpperCase().replace(/[\s-]/g, "");
}

/** Shortened id for reasons and log lines: the first group is enough to tell 2-3 nodes apart. */
function shortId(nodeId: string): string {
  const dash = nodeId.indexOf("-");
  return dash > 0 ? nodeId.slice(0, dash) : nodeId;
}

/**
 * Resolves a pin against every node of the snapshot, reachable or not (so an unreachable
 * pinned node is reported as such rather than as unknown). An exact id wins; otherwise a
 * prefix of at least MIN_PIN_PREFIX_LENGTH characters (case, dashes and spaces ignored)
 * must match exactly one node.
 */
export function resolvePin(snapshot: ClusterSnapshot, pin: string): PinResolution {
  const exact = snapshot.nodes.find((node) => node.nodeId === pin);
  if (exact) return { kind: "found", node: exact };
  const wanted = compactId(pin);
  if (wanted.length === 0) return { kind: "unknown" };
  const full = snapshot.nodes.find((node) => compactId(node.nodeId) === wanted);
  if (full) return { kind: "found", node: full };
  if (wanted.length < MIN_PIN_PREFIX_LENGTH) return { kind: "unknown" };
  const matches = snapshot.nodes.filter((node) => compactId(node.nodeId).startsWith(wanted));
  const [only] = matches;
  if (matches.length === 1 && only) return { kind: "found", node: only };
  if (matches.length > 1) return { kind: "ambiguous", nodeIds: matches.map((node) => node.nodeId).sort() };
  return { kind: "unknown" };
}

/** The node a pin names, or undefined when it names none or is an ambiguous prefix. */
export function resolvePinnedNode(snapshot: ClusterSnapshot, pin: string): SnapshotNode | undefined {
  const resolution = resolvePin(snapshot, pin);
  return resolution.kind === "found" ? resolution.node : undefined;
}

/** True when `model` names this entry on `node`: its id, a sha256, or (this node only) an alias. */
function names(node: SnapshotNode, entry: SnapshotModel, model: string): boolean {
  if (entry.id === model) return true;
  if (entry.sha256 !== null && entry.sha256 === model) return true;
  return node.local && entry.aliases.includes(model);
}

interface ModelIdentity {
  /** sha256s of the files the name refers to (usually one). */
  hashes: Set<string>;
  /** Nodes naming the model with an unhashed file: they hold it even though no hash says so. */
  unhashedHolders: Map<string, SnapshotModel>;
  /** Some node, reachable or not, knows the name. */
  known: boolean;
}

function identify(snapshot: ClusterSnapshot, model: string): ModelIdentity {
  const identity: ModelIdentity = { hashes: new Set(), unhashedHolders: new Map(), known: false };
  for (const node of snapshot.nodes) {
    for (const entry of node.models) {
      if (!names(node, entry, model)) continue;
      identity.known = true;
      if (entry.sha256 !== null) identity.hashes.add(entry.sha256);
      else if (!identity.unhashedHolders.has(node.nodeId)) identity.unhashedHolders.set(node.nodeId, entry);
    }
  }
  return identity;
}

/** The entry of `node` holding the model, preferring a loaded file, then the requested name. */
function holdingEntry(node: SnapshotNode, identity: ModelIdentity, model: string): SnapshotModel | undefined {
  const holding = node.models.filter((entry) => (entry.sha256 !== null && identity.hashes.has(entry.sha256)) || identity.unhashedHolders.get(node.nodeId) === entry);
  const score = (entry: SnapshotModel): number => (node.loadedModels.includes(entry.id) ? 2 : 0) + (names(node, entry, model) ? 1 : 0);
  return holding.sort((a, b) => score(b) - score(a) || a.id.localeCompare(b.id))[0];
}

function candidateOf(node: SnapshotNode, entry: SnapshotModel): Candidate {
  const speed = node.speedScores[entry.id];
  return {
    nodeId: node.nodeId,
    modelId: entry.id,
    sha256: entry.sha256,
    local: node.local,
    loaded: node.loadedModels.includes(entry.id),
    queueDepth: node.queueDepth,
    speed: speed !== undefined && Number.isFinite(speed) && speed > 0 ? speed : null,
    rttMs: node.rttMs,
  };
}

interface RankedCandidate {
  candidate: Candidate;
  expectedWait: number;
}

function rankKeys(candidates: Candidate[]): RankedCandidate[] {
  const measured = candidates.map((candidate) => candidate.speed).filter((speed): speed is number => speed !== null);
  const assumedSpeed = measured.length > 0 ? Math.min(...measured) : 1;
  return candidates.map((candidate) => ({ candidate, expectedWait: (candidate.queueDepth + 1) / (candidate.speed ?? assumedSpeed) }));
}

type Criterion = "loaded" | "wait" | "measured" | "local" | "rtt" | "nodeId";

/** The first criterion on which `a` and `b` differ, with its sign (negative: `a` ranks first). */
function firstDifference(a: RankedCandidate, b: RankedCandidate): { criterion: Criterion; order: number } {
  const checks: Array<[Criterion, number]> = [
    ["loaded", Number(b.candidate.loaded) - Number(a.candidate.loaded)],
    ["wait", a.expectedWait - b.expectedWait],
    ["measured", Number(a.candidate.speed === null) - Number(b.candidate.speed === null)],
    ["local", Number(b.candidate.local) - Number(a.candidate.local)],
    ["rtt", (a.candidate.rttMs ?? Infinity) - (b.candidate.rttMs ?? Infinity)],
    ["nodeId", a.candidate.nodeId < b.candidate.nodeId ? -1 : a.candidate.nodeId > b.candidate.nodeId ? 1 : 0],
  ];
  for (const [criterion, order] of checks) {
    // Infinity - Infinity is NaN: two unknown round trips are equal.
    if (order !== 0 && !Number.isNaN(order)) return { criterion, order };
  }
  return { criterion: "nodeId", order: 0 };
}

function rank(candidates: Candidate[]): RankedCandidate[] {
  return rankKeys(candidates).sort((a, b) => firstDifference(a, b).order);
}

function describeLoad(candidate: Candidate): string {
  const speed = candidate.speed === null ? "speed not measured" : `${formatNumber(candidate.speed)} tok/s`;
  return `queue ${candidate.queueDepth}, ${speed}`;
}

function formatNumber(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}

/** One sentence naming the criterion that made `best` win over `next`. */
function explain(best: RankedCandidate, next: RankedCandidate | undefined, model: string): string {
  const a = best.candidate;
  const where = a.loaded ? "loaded" : "on disk";
  if (!next) return `${shortId(a.nodeId)} is the only reachable node with ${model} (${where})`;
  const b = next.candidate;
  const an = shortId(a.nodeId);
  const bn = shortId(b.nodeId);
  switch (firstDifference(best, next).criterion) {
    case "loaded":
      return `loaded on ${an}; ${bn} only has it on disk`;
    case "wait":
      return `shortest expected wait on ${an} (${describeLoad(a)}) vs ${bn} (${describeLoad(b)})`;
    case "measured":
      return `same expected wait; ${an} has a measured speed, ${bn} does not`;
    case "local":
      return `tie with ${bn} (${where}, ${describeLoad(a)}); ${an} is this node`;
    case "rtt":
      return `tie with ${bn} (${where}, ${describeLoad(a)}); ${an} has the lower round trip (${formatNumber(a.rttMs ?? 0)} ms vs ${b.rttMs === null ? "unknown" : `${formatNumber(b.rttMs)} ms`})`;
    case "nodeId":
      return `full tie with ${bn} (${where}, ${describeLoad(a)}); ${an} wins by node id order`;
  }
}

/** Every reachable node holding the model (same sha256 under any id counts), best first. */
export function candidatesFor(snapshot: ClusterSnapshot, model: string): Candidate[] {
  return rank(collect(snapshot, identify(snapshot, model), model)).map((ranked) => ranked.candidate);
}

function collect(snapshot: ClusterSnapshot, identity: ModelIdentity, model: string): Candidate[] {
  const candidates: Candidate[] = [];
  for (const node of snapshot.nodes) {
    if (!node.reachable) continue;
    const entry = holdingEntry(node, identity, model);
    if (entry) candidates.push(candidateOf(node, entry));
  }
  return candidates;
}

/**
 * Chooses the node for one request. Failures carry the code the caller should answer with:
 * HEARTH_MODEL_NOT_FOUND when no node knows the model, HEARTH_PEER_UNAVAILABLE when only
 * unreachable or excluded nodes hold it, or the pin names no reachable node.
 */
export function placeRequest(snapshot: ClusterSnapshot, request: PlacementRequest): Placement {
  const { model } = request;
  const identity = identify(snapshot, model);
  const ranked = rank(collect(snapshot, identity, model));
  const candidates = ranked.map((entry) => entry.candidate);
  if (!identity.known) {
    return { ok: false, code: "HEARTH_MODEL_NOT_FOUND", message: `No node in the cluster has a model named ${model}.`, candidates };
  }
  const excluded = new Set(request.excludeNodeIds ?? []);
  if (request.pinnedNodeId !== undefined) return placePinned(snapshot, request.pinnedNodeId, excluded, ranked, model);

  const eligible = ranked.filter((entry) => !excluded.has(entry.candidate.nodeId));
  const [best, next] = eligible;
  if (!best) {
    const message =
      candidates.length === 0
        ? `The model ${model} is only on nodes that are not reachable right now.`
        : `No node other than the excluded ${[...excluded].map(shortId).join(", ")} has the model ${model}.`;
    return { ok: false, code: "HEARTH_PEER_UNAVAILABLE", message, candidates };
  }
  const chosen = best.candidate;
  return { ok: true, nodeId: chosen.nodeId, modelId: chosen.modelId, sha256: chosen.sha256, reason: explain(best, next, model), candidates };
}

function placePinned(snapshot: ClusterSnapshot, pin: string, excluded: Set<string>, ranked: RankedCandidate[], model: string): Placement {
  const candidates = ranked.map((entry) => entry.candidate);
  const resolution = resolvePin(snapshot, pin);
  if (resolution.kind === "ambiguous") {
    return {
      ok: false,
      code: "HEARTH_PEER_UNAVAILABLE",
      message: `The node prefix ${pin} is ambiguous: it matches ${resolution.nodeIds.join(", ")}.`,
      candidates,
    };
  }
  if (resolution.kind === "unknown") {
    return { ok: false, code: "HEARTH_PEER_UNAVAILABLE", message: `No node in the cluster matches ${pin}.`, candidates };
  }
  const node = resolution.node;
  if (!node.reachable) {
    return { ok: false, code: "HEARTH_PEER_UNAVAILABLE", message: `The pinned node ${node.nodeId} is not reachable right now.`, candidates };
  }
  if (excluded.has(node.nodeId)) {
    return { ok: false, code: "HEARTH_PEER_UNAVAILABLE", message: `The pinned node ${node.nodeId} is excluded from this attempt.`, candidates };
  }
  const own = candidates.find((candidate) => candidate.nodeId === node.nodeId);
  if (own) {
    const where = own.loaded ? "loaded" : "on disk, not loaded";
    return { ok: true, nodeId: own.nodeId, modelId: own.modelId, sha256: own.sha256, reason: `pinned to ${shortId(own.nodeId)} (${where})`, candidates };
  }
  // The pinned node lacks the model: it can still run it once model sharing fetches the file
  // from a holder, so name the hash of the best reachable holder.
  const source = candidates.find((candidate) => candidate.sha256 !== null) ?? candidates[0];
  if (!source) {
    return {
      ok: false,
      code: "HEARTH_PEER_UNAVAILABLE",
      message: `The pinned node ${node.nodeId} lacks ${model}, and the only nodes with it are not reachable right now.`,
      candidates,
    };
  }
  const from = source.sha256 === null ? "its file is not hashed yet, so it cannot be fetched" : `it must fetch it from ${shortId(source.nodeId)}`;
  return { ok: true, nodeId: node.nodeId, modelId: model, sha256: source.sha256, reason: `pinned to ${shortId(node.nodeId)}, which lacks ${model}; ${from}`, candidates };
}
