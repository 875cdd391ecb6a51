/**
 * Split planning: whether one model runs whole on one node or split by layers over several,
 * which nodes take part, how many layers each holds, the memory each needs and the predicted
 * generation speed. docs/splitting.md "How the plan is made" describes exactly this file.
 *
 * The shape of a split is fixed by llama.cpp (llamaLayerSplit.ts): the host, which runs the
 * runner and always keeps the input layer, holds the first layers (possibly none); remote
 * nodes hold consecutive runs after it in their listed order; the last one also holds the
 * output layer. Memory comes from modelLayout.ts, time per token from splitThroughput.ts.
 *
 * The search:
 * 1. Whole-model candidates: every node whose budget holds the whole model, timed without
 *    network (a peer that runs it whole streams its tokens back asynchronously).
 * 2. Split candidates: for every ordered choice of 1 .. maxStages - 1 remote nodes after the
 *    host, the division of layers with the least time per token that fits every stage's
 *    budget, found exactly by dynamic programming over (stage, layers placed so far). Ties go
 *    to the division that puts more layers on earlier stages.
 * 3. The best whole-model candidate wins unless the best split predicts at least
 *    `minSplitGain` times its tokens/s. Without either, the plan is refused with numbers.
 * A node missing from the chosen split is reported in `leftOut` with the reason: it cannot
 * hold a layer in any plan, or the best plan that includes it is slower.
 *
 * Inputs are canonicalised (host first, then peers by node id), so the plan does not depend
 * on the order nodes are listed in. Pure: no I/O.
 */

import type { HearthError } from "../protocol/errors.js";
import { errors } from "../protocol/errors.js";
import { llamaSplitSettings, type LlamaSplitSettings } from "./llamaLayerSplit.js";
import { decodeWeightBytes, sumOf, wholeModelBytes, type ModelLayout } from "./modelLayout.js";
import {
  DEFAULT_THROUGHPUT_OPTIONS,
  hopSecondsPerToken,
  secondsPerWeightByte,
  tokensPerSecondOf,
  type NodeSpeed,
  type ThroughputOptions,
} from "./splitThroughput.js";

export interface PlanNode {
  nodeId: string;
  /** The node that would run the runner: the one planning, holding the model file. Exactly one. */
  isHost: boolean;
  /** Bytes this node may use for the model (weights, KV cache, buffers). */
  memoryBudgetBytes: number;
  speed: NodeSpeed;
  /** Round trip to the host; ignored for the host itself. */
  rttMs: number;
  /** Link bandwidth to the host; defaults to `defaultLinkBytesPerSecond`. */
  linkBytesPerSecond?: number;
}

/** A placement a request forces (for tests and debugging): nodes in stage order, layers per node. */
export interface ForcedPlacement {
  nodes: readonly string[];
  layers: readonly number[];
}

export interface SplitPlanOptions extends ThroughputOptions {
  /** A split must predict at least this many times the best whole-model tokens/s to be chosen. */
  minSplitGain: number;
  /** Most nodes in one split, host included. */
  maxStages: number;
}

export const DEFAULT_SPLIT_PLAN_OPTIONS: Readonly<SplitPlanOptions> = {
  ...DEFAULT_THROUGHPUT_OPTIONS,
  // The throughput model is an estimate and published splits of models that fit ran 2-5x
  // slower than predicted by bandwidth alone; only a clear predicted win justifies a split.
  minSplitGain: 1.1,
  // The issue targets 2-3 machines; one more keeps the search (ordered choices of peers) small.
  maxStages: 4,
};

export interface PlanInput {
  layout: ModelLayout;
  nodes: readonly PlanNode[];
  forced?: ForcedPlacement;
  options?: Partial<SplitPlanOptions>;
  /** Named in error messages. */
  modelName?: string;
  /** The request field a forced placement came from, for the error's `param`. */
  forcedParam?: string;
}

export interface PlanStage {
  nodeId: string;
  /** First repeating layer (blk.N) this stage holds. */
  firstLayer: number;
  layerCount: number;
  /** Weights, KV cache and buffers this stage needs on its node. */
  memoryBytes: number;
  holdsInput: boolean;
  holdsOutput: boolean;
  /** Predicted time this stage adds to each token: its compute and, for a peer, its network hop. */
  computeMsPerToken: number;
  networkMsPerToken: number;
}

export interface WholeModelPlan {
  ok: true;
  split: false;
  node: string;
  forced: boolean;
  reason: string;
  expectedMemoryBytes: number;
  predictedTokensPerSecond: number;
}

export interface LeftOutNode {
  nodeId: string;
  why: string;
}

export interface LayerSplitPlan {
  ok: true;
  split: true;
  forced: boolean;
  /** Host first; the last stage holds the output layer. */
  stages: PlanStage[];
  /** What the runner passes llama.cpp so it places exactly these stages. */
  llama: LlamaSplitSettings;
  predictedTokensPerSecond: number;
  reason: string;
  leftOut: LeftOutNode[];
}

export interface NodeCapacity {
  nodeId: string;
  budgetBytes: number;
  /** What the forced placement asked of this node; null when not forced or not used. */
  neededBytes: number | null;
  /** Layers of average size the node could hold beyond its fixed share (buffers, input on the host). */
  maxLayers: number;
}

export interface PlanRefusal {
  ok: false;
  code: "HEARTH_PLAN_DOES_NOT_FIT";
  /** The least memory any placement needs (the whole model on one node); for a forced placement, its total. */
  requiredBytes: number;
  /** The nodes' budgets together. */
  availableBytes: number;
  perNode: NodeCapacity[];
  message: string;
}

export type SplitPlanResult = WholeModelPlan | LayerSplitPlan | PlanRefusal;

/** The refusal as the error a caller throws or sends. */
export function planRefusalError(refusal: PlanRefusal): HearthError {
  return errors.withCode(refusal.code, refusal.message);
}

const MIB = 1024 * 1024;
/** Relative margin under which two predicted times count as equal (float noise, not a preference). */
const TIE_TOLERANCE = 1e-9;

/** 1_610_612_736 -> "1.50 GiB": messages must be read by people. */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${Math.round(value)} B` : `${value.toFixed(2)} ${units[unit]}`;
}

function formatRate(tokensPerSecond: number): string {
  return `${tokensPerSecond.toFixed(2)} tok/s`;
}

function capitalised(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function roundRate(tokensPerSecond: number): number {
  return Math.round(tokensPerSecond * 100) / 100;
}

function isBetter(candidate: number, incumbent: number): boolean {
  if (incumbent === Number.POSITIVE_INFINITY) return candidate < incumbent;
  return candidate < incumbent - Math.abs(incumbent) * TIE_TOLERANCE;
}

interface Planner {
  layout: ModelLayout;
  options: SplitPlanOptions;
  /** Canonical order: host first, then peers by node id. */
  nodes: PlanNode[];
  host: PlanNode;
  /** prefix[i] = weight bytes of layers 0 .. i-1. */
  prefix: number[];
  decodeBytes: number;
  secondsPerByte: Map<string, number>;
}

function validateInput(layout: ModelLayout, nodes: readonly PlanNode[], options: SplitPlanOptions): void {
  const finiteNonNegative = (value: number): boolean => Number.isFinite(value) && value >= 0;
  if (layout.layerWeightBytes.length === 0) throw new RangeError("the model layout has no layers");
  if (!layout.layerWeightBytes.every(finiteNonNegative)) throw new RangeError("layer bytes must be finite and non-negative");
  for (const key of ["kvBytesPerLayer", "inputBytes", "outputBytes", "computeBytesPerNode", "embeddingLength", "vocabularySize"] as const) {
    if (!finiteNonNegative(layout[key])) throw new RangeError(`layout.${key} must be finite and non-negative, got ${layout[key]}`);
  }
  if (nodes.filter((node) => node.isHost).length !== 1) throw new RangeError("exactly one node must be the host");
  const ids = new Set<string>();
  for (const node of nodes) {
    if (node.nodeId === "" || ids.has(node.nodeId)) throw new RangeError(`node ids must be non-empty and unique, got "${node.nodeId}"`);
    ids.add(node.nodeId);
    if (!finiteNonNegative(node.memoryBudgetBytes)) throw new RangeError(`node ${node.nodeId}: memoryBudgetBytes must be finite and non-negative`);
    if (!(Number.isFinite(node.speed.tokensPerSecond) && node.speed.tokensPerSecond > 0)) throw new RangeError(`node ${node.nodeId}: speed must be a positive tokens/s`);
    if (node.speed.measuredDecodeBytes !== undefined && !(node.speed.measuredDecodeBytes > 0)) throw new RangeError(`node ${node.nodeId}: measuredDecodeBytes must be positive`);
    if (!finiteNonNegative(node.rttMs)) throw new RangeError(`node ${node.nodeId}: rttMs must be finite and non-negative`);
    if (node.linkBytesPerSecond !== undefined && !(node.linkBytesPerSecond > 0)) throw new RangeError(`node ${node.nodeId}: linkBytesPerSecond must be positive`);
  }
  if (!(options.minSplitGain > 0)) throw new RangeError("minSplitGain must be positive");
  if (!Number.isInteger(options.maxStages) || options.maxStages < 1) throw new RangeError("maxStages must be an integer >= 1");
  if (!(options.defaultLinkBytesPerSecond > 0) || !finiteNonNegative(options.rpcOverheadBytes) || !finiteNonNegative(options.hopOverheadMs)) {
    throw new RangeError("throughput options must be positive (bandwidth) and non-negative");
  }
}

function makePlanner(input: PlanInput): Planner {
  const options: SplitPlanOptions = { ...DEFAULT_SPLIT_PLAN_OPTIONS, ...input.options };
  validateInput(input.layout, input.nodes, options);
  const host = input.nodes.find((node) => node.isHost)!;
  const peers = input.nodes.filter((node) => !node.isHost).sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0));
  const prefix = [0];
  for (const bytes of input.layout.layerWeightBytes) prefix.push(prefix[prefix.length - 1]! + bytes);
  const decodeBytes = decodeWeightBytes(input.layout);
  const nodes = [host, ...peers];
  const secondsPerByte = new Map(nodes.map((node) => [node.nodeId, secondsPerWeightByte(node.speed, decodeBytes)]));
  return { layout: input.layout, options, nodes, host, prefix, decodeBytes, secondsPerByte };
}

function layerCount(planner: Planner): number {
  return planner.layout.layerWeightBytes.length;
}

/** Memory a stage needs: its layers' weights and KV cache, its compute buffer, and the input/output layers it holds. */
function stageMemory(planner: Planner, first: number, count: number, holdsInput: boolean, holdsOutput: boolean): number {
  const { layout, prefix } = planner;
  return (
    prefix[first + count]! - prefix[first]! +
    count * layout.kvBytesPerLayer +
    layout.computeBytesPerNode +
    (holdsInput ? layout.inputBytes : 0) +
    (holdsOutput ? layout.outputBytes : 0)
  );
}

function computeSeconds(planner: Planner, node: PlanNode, first: number, count: number, holdsOutput: boolean): number {
  const bytes = planner.prefix[first + count]! - planner.prefix[first]! + (holdsOutput ? planner.layout.outputBytes : 0);
  return bytes * planner.secondsPerByte.get(node.nodeId)!;
}

function networkSeconds(planner: Planner, node: PlanNode, holdsOutput: boolean): number {
  if (node.isHost) return 0;
  return hopSecondsPerToken(
    {
      rttMs: node.rttMs,
      linkBytesPerSecond: node.linkBytesPerSecond ?? planner.options.defaultLinkBytesPerSecond,
      embeddingLength: planner.layout.embeddingLength,
      vocabularySize: planner.layout.vocabularySize,
      holdsOutput,
    },
    planner.options,
  );
}

interface Evaluated {
  stages: PlanStage[];
  seconds: number;
}

/** Stages for nodes in order with the given layer counts (consecutive from layer 0). */
function evaluateStages(planner: Planner, stageNodes: readonly PlanNode[], counts: readonly number[]): Evaluated {
  let first = 0;
  let seconds = 0;
  const stages = stageNodes.map((node, index): PlanStage => {
    const count = counts[index]!;
    const holdsInput = index === 0;
    const holdsOutput = index === stageNodes.length - 1;
    const compute = computeSeconds(planner, node, first, count, holdsOutput);
    const network = networkSeconds(planner, node, holdsOutput);
    seconds += compute + network;
    const stage: PlanStage = {
      nodeId: node.nodeId,
      firstLayer: first,
      layerCount: count,
      memoryBytes: stageMemory(planner, first, count, holdsInput, holdsOutput),
      holdsInput,
      holdsOutput,
      computeMsPerToken: compute * 1000,
      networkMsPerToken: network * 1000,
    };
    first += count;
    return stage;
  });
  return { stages, seconds };
}

/**
 * The fastest division of the layers over `stageNodes` (host first) that fits every budget,
 * or null. best[s][j]: least time with layers 0..j-1 on stages 0..s. Stage 0 (the host) may
 * hold no layers, every later stage at least one.
 */
function bestDivision(planner: Planner, stageNodes: readonly PlanNode[]): number[] | null {
  const n = layerCount(planner);
  const k = stageNodes.length;
  const best: number[][] = [];
  const from: number[][] = [];
  for (let s = 0; s < k; s++) {
    const node = stageNodes[s]!;
    const holdsInput = s === 0;
    const holdsOutput = s === k - 1;
    const minCount = s === 0 ? 0 : 1;
    const row = new Array<number>(n + 1).fill(Number.POSITIVE_INFINITY);
    const choice = new Array<number>(n + 1).fill(-1);
    const fixedSeconds = networkSeconds(planner, node, holdsOutput);
    for (let j = holdsOutput ? n : 0; j <= n; j++) {
      // Fewest layers on this stage first, so among equal times earlier stages keep more.
      for (let i = j - minCount; i >= 0; i--) {
        const before = s === 0 ? (i === 0 ? 0 : Number.POSITIVE_INFINITY) : best[s - 1]![i]!;
        if (before === Number.POSITIVE_INFINITY) continue;
        // Memory only grows as the stage takes more layers, so nothing further down fits either.
        if (stageMemory(planner, i, j - i, holdsInput, holdsOutput) > node.memoryBudgetBytes) break;
        const seconds = before + computeSeconds(planner, node, i, j - i, holdsOutput) + fixedSeconds;
        if (isBetter(seconds, row[j]!)) {
          row[j] = seconds;
          choice[j] = i;
        }
      }
    }
    best.push(row);
    from.push(choice);
  }
  if (best[k - 1]![n] === Number.POSITIVE_INFINITY) return null;
  const counts = new Array<number>(k).fill(0);
  let end = n;
  for (let s = k - 1; s >= 0; s--) {
    const start = from[s]![end]!;
    counts[s] = end - start;
    end = start;
  }
  return counts;
}

/** Every ordered choice of 1 .. max distinct peers, shorter choices first, then by node id. */
function peerSequences(peers: readonly PlanNode[], max: number): PlanNode[][] {
  const sequences: PlanNode[][] = [];
  const extend = (prefix: PlanNode[], length: number): void => {
    if (prefix.length === length) {
      sequences.push(prefix);
      return;
    }
    for (const peer of peers) if (!prefix.includes(peer)) extend([...prefix, peer], length);
  };
  for (let length = 1; length <= Math.min(max, peers.length); length++) extend([], length);
  return sequences;
}

interface SplitCandidate extends Evaluated {
  nodes: PlanNode[];
}

function splitCandidates(planner: Planner): SplitCandidate[] {
  const candidates: SplitCandidate[] = [];
  for (const sequence of peerSequences(planner.nodes.slice(1), planner.options.maxStages - 1)) {
    const stageNodes = [planner.host, ...sequence];
    const counts = bestDivision(planner, stageNodes);
    if (counts) candidates.push({ nodes: stageNodes, ...evaluateStages(planner, stageNodes, counts) });
  }
  return candidates;
}

function fastest<T extends { seconds: number }>(candidates: readonly T[]): T | undefined {
  let winner: T | undefined;
  for (const candidate of candidates) if (!winner || isBetter(candidate.seconds, winner.seconds)) winner = candidate;
  return winner;
}

function capacities(planner: Planner, needed: ReadonlyMap<string, number> = new Map()): NodeCapacity[] {
  const { layout } = planner;
  const n = layerCount(planner);
  const perLayer = (planner.prefix[n]! / n) + layout.kvBytesPerLayer;
  return planner.nodes.map((node) => {
    const fixed = layout.computeBytesPerNode + (node.isHost ? layout.inputBytes : 0);
    const room = node.memoryBudgetBytes - fixed;
    const maxLayers = room <= 0 ? 0 : perLayer === 0 ? n : Math.min(n, Math.floor(room / perLayer));
    return { nodeId: node.nodeId, budgetBytes: node.memoryBudgetBytes, neededBytes: needed.get(node.nodeId) ?? null, maxLayers };
  });
}

function nodeList(planner: Planner): string {
  return planner.nodes.map((node) => `${node.nodeId}${node.isHost ? " (host)" : ""} ${formatBytes(node.memoryBudgetBytes)}`).join(", ");
}

function refuse(planner: Planner, modelName: string): PlanRefusal {
  const { layout } = planner;
  const n = layerCount(planner);
  const requiredBytes = wholeModelBytes(layout);
  const availableBytes = sumOf(planner.nodes.map((node) => node.memoryBudgetBytes));
  const parts = `weights ${formatBytes(planner.prefix[n]! + layout.inputBytes + layout.outputBytes)}, KV cache ${formatBytes(n * layout.kvBytesPerLayer)}, buffers ${formatBytes(layout.computeBytesPerNode)}`;
  const lead = `${capitalised(modelName)} does not fit in the cluster: it needs at least ${formatBytes(requiredBytes)} (${parts})`;
  const message =
    availableBytes < requiredBytes
      ? `${lead} but the nodes offer ${formatBytes(availableBytes)} in total: ${nodeList(planner)}.`
      : `${lead}; the nodes offer ${formatBytes(availableBytes)} in total (${nodeList(planner)}), but no division of its ${n} layers fits: ` +
        `each node in a split also needs its own compute buffer (${formatBytes(layout.computeBytesPerNode)}), the host keeps the input layer (${formatBytes(layout.inputBytes)}) ` +
        `and the last node the output layer (${formatBytes(layout.outputBytes)}).`;
  return { ok: false, code: "HEARTH_PLAN_DOES_NOT_FIT", requiredBytes, availableBytes, perNode: capacities(planner), message };
}

function splitPlanOf(planner: Planner, chosen: SplitCandidate, forced: boolean, reason: string, leftOut: LeftOutNode[]): LayerSplitPlan {
  const [hostStage, ...remoteStages] = chosen.stages;
  const remoteBudgetMiB = Math.floor(sumOf(chosen.nodes.slice(1).map((node) => node.memoryBudgetBytes)) / MIB);
  const plannedMiB = Math.ceil(sumOf(remoteStages.map((stage) => stage.memoryBytes)) / MIB);
  return {
    ok: true,
    split: true,
    forced,
    stages: chosen.stages,
    llama: llamaSplitSettings(hostStage!.layerCount, remoteStages.map((stage) => stage.layerCount), Math.max(remoteBudgetMiB, plannedMiB)),
    predictedTokensPerSecond: roundRate(tokensPerSecondOf(chosen.seconds)),
    reason,
    leftOut,
  };
}

function leftOutOf(planner: Planner, chosen: SplitCandidate, all: readonly SplitCandidate[]): LeftOutNode[] {
  const chosenRate = formatRate(tokensPerSecondOf(chosen.seconds));
  return planner.nodes
    .filter((node) => !chosen.nodes.includes(node))
    .map((node) => {
      const withIt = fastest(all.filter((candidate) => candidate.nodes.includes(node)));
      const why = withIt
        ? `slower with it: the best split including it predicts ${formatRate(tokensPerSecondOf(withIt.seconds))}, against ${chosenRate} without`
        : `its budget of ${formatBytes(node.memoryBudgetBytes)} cannot hold a stage of any split that fits the others`;
      return { nodeId: node.nodeId, why };
    });
}

function planAutomatically(planner: Planner, modelName: string): SplitPlanResult {
  const whole = wholeModelBytes(planner.layout);
  const singles = planner.nodes
    .filter((node) => node.memoryBudgetBytes >= whole)
    .map((node) => ({ node, seconds: planner.decodeBytes * planner.secondsPerByte.get(node.nodeId)! }));
  const bestSingle = fastest(singles);
  const splits = splitCandidates(planner);
  const bestSplit = fastest(splits);

  if (bestSingle && (!bestSplit || tokensPerSecondOf(bestSplit.seconds) < planner.options.minSplitGain * tokensPerSecondOf(bestSingle.seconds))) {
    const rate = tokensPerSecondOf(bestSingle.seconds);
    const where = bestSingle.node.isHost ? "this node" : `node ${bestSingle.node.nodeId}`;
    let reason = `${capitalised(modelName)} fits whole on ${where} (${formatBytes(whole)} of its ${formatBytes(bestSingle.node.memoryBudgetBytes)} budget)`;
    if (!bestSingle.node.isHost) {
      const hostFits = singles.some((single) => single.node.isHost);
      reason += hostFits ? `, which is the fastest whole-model node (${formatRate(rate)})` : `; it does not fit on this node`;
    }
    reason += bestSplit
      ? `; the best split predicts ${formatRate(tokensPerSecondOf(bestSplit.seconds))}, not the ${planner.options.minSplitGain}x gain over ${formatRate(rate)} that justifies splitting`
      : "; no split fits";
    return { ok: true, split: false, node: bestSingle.node.nodeId, forced: false, reason, expectedMemoryBytes: whole, predictedTokensPerSecond: roundRate(rate) };
  }
  if (bestSplit) {
    const rate = formatRate(tokensPerSecondOf(bestSplit.seconds));
    const reason = bestSingle
      ? `a split over ${bestSplit.nodes.length} nodes predicts ${rate}, at least ${planner.options.minSplitGain}x the ${formatRate(tokensPerSecondOf(bestSingle.seconds))} of the fastest whole-model node ${bestSingle.node.nodeId}`
      : `no single node can hold ${modelName} (${formatBytes(whole)}); split over ${bestSplit.nodes.length} nodes, predicted ${rate}`;
    return splitPlanOf(planner, bestSplit, false, reason, leftOutOf(planner, bestSplit, splits));
  }
  return refuse(planner, modelName);
}

function invalidForced(message: string, param: string): HearthError {
  return errors.invalidRequest(`invalid forced placement: ${message}`, { param });
}

/**
 * A forced placement: `nodes` in stage order with `layers` each, summing to the model's
 * layers. The host, if listed, must come first; if it is not listed it runs the runner with
 * no layers. One node listed alone runs the whole model (no split); to force every layer onto
 * a peer, list the host with 0 layers first. Budgets still apply.
 */
function planForced(planner: Planner, forced: ForcedPlacement, modelName: string, param: string): SplitPlanResult {
  const n = layerCount(planner);
  if (forced.nodes.length === 0 || forced.nodes.length !== forced.layers.length) throw invalidForced("nodes and layers must be non-empty lists of the same length", param);
  if (new Set(forced.nodes).size !== forced.nodes.length) throw invalidForced("a node is listed twice", param);
  const byId = new Map(planner.nodes.map((node) => [node.nodeId, node]));
  const listed = forced.nodes.map((nodeId) => {
    const node = byId.get(nodeId);
    if (!node) throw invalidForced(`node ${JSON.stringify(nodeId)} is not an available node of the cluster`, param);
    return node;
  });
  if (!forced.layers.every((count) => Number.isInteger(count) && count >= 0)) throw invalidForced("layer counts must be whole numbers >= 0", param);
  const total = sumOf(forced.layers);
  if (total !== n) throw invalidForced(`layer counts add up to ${total}, but the model has ${n} layers`, param);
  const hostIndex = listed.indexOf(planner.host);
  if (hostIndex > 0) throw invalidForced(`the host ${planner.host.nodeId} runs the first layers, so it must be listed first`, param);

  if (listed.length === 1) {
    const node = listed[0]!;
    const needed = wholeModelBytes(planner.layout);
    if (needed > node.memoryBudgetBytes) return refuseForced(planner, modelName, new Map([[node.nodeId, needed]]));
    const seconds = planner.decodeBytes * planner.secondsPerByte.get(node.nodeId)!;
    return { ok: true, split: false, node: node.nodeId, forced: true, reason: "forced by the request", expectedMemoryBytes: needed, predictedTokensPerSecond: roundRate(tokensPerSecondOf(seconds)) };
  }
  const stageNodes = hostIndex === 0 ? listed : [planner.host, ...listed];
  const counts = hostIndex === 0 ? [...forced.layers] : [0, ...forced.layers];
  if (counts.slice(1).some((count) => count < 1)) throw invalidForced("every node after the host must hold at least one layer", param);
  const evaluated = evaluateStages(planner, stageNodes, counts);
  const over = evaluated.stages.filter((stage) => stage.memoryBytes > byId.get(stage.nodeId)!.memoryBudgetBytes);
  if (over.length > 0) return refuseForced(planner, modelName, new Map(evaluated.stages.map((stage) => [stage.nodeId, stage.memoryBytes])));
  const leftOut = planner.nodes.filter((node) => !stageNodes.includes(node)).map((node) => ({ nodeId: node.nodeId, why: "not named by the forced placement" }));
  return splitPlanOf(planner, { nodes: stageNodes, ...evaluated }, true, "forced by the request", leftOut);
}

function refuseForced(planner: Planner, modelName: string, needed: ReadonlyMap<string, number>): PlanRefusal {
  const perNode = capacities(planner, needed);
  const overs = perNode
    .filter((node) => node.neededBytes !== null && node.neededBytes > node.budgetBytes)
    .map((node) => `${node.nodeId} needs ${formatBytes(node.neededBytes!)} but its budget is ${formatBytes(node.budgetBytes)}`);
  return {
    ok: false,
    code: "HEARTH_PLAN_DOES_NOT_FIT",
    requiredBytes: sumOf([...needed.values()]),
    availableBytes: sumOf(planner.nodes.filter((node) => needed.has(node.nodeId)).map((node) => node.memoryBudgetBytes)),
    perNode,
    message: `The forced placement of ${modelName} does not fit: ${overs.join("; ")}.`,
  };
}

/**
 * Plans one model over the given nodes (the reachable ones, host included). Throws RangeError
 * for inconsistent inputs (a caller bug) and HearthError HEARTH_INVALID_REQUEST for a forced
 * placement that cannot be applied; a model that does not fit is a returned refusal.
 */
export function planSplit(input: PlanInput): SplitPlanResult {
  const planner = makePlanner(input);
  const modelName = input.modelName ?? "the model";
  if (input.forced) return planForced(planner, input.forced, modelName, input.forcedParam ?? "hearth.placement");
  return planAutomatically(planner, modelName);
}
