// Split planning: the memory model from GGUF facts, llama.cpp's layer-to-device rule and the
// @MiB settings that realise a plan, and the planner's choices (whole vs split, which nodes,
// how many layers), refusals with numbers, forced placements, and properties over random
// clusters checked against a brute-force oracle.

import fc from "fast-check";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { describeGguf, readGgufHeader } from "../../daemon/gguf/reader.js";
import { writeSyntheticModel } from "../../daemon/gguf/synth.js";
import { HearthError } from "../../protocol/errors.js";
import { llamaCppLayerAssignment, llamaSplitSettings } from "../../scheduler/llamaLayerSplit.js";
import { decodeWeightBytes, estimateComputeBytes, kvCacheBytesPerLayer, modelLayoutFromGguf, wholeModelBytes, type ModelLayout } from "../../scheduler/modelLayout.js";
import { planRefusalError, planSplit, type LayerSplitPlan, type PlanInput, type PlanNode, type PlanRefusal, type SplitPlanResult, type WholeModelPlan } from "../../scheduler/splitPlan.js";
import { DEFAULT_THROUGHPUT_OPTIONS, hopBytesPerToken } from "../../scheduler/splitThroughput.js";
import { thrownBy } from "../support/thrown.js";
import { modelLayout } from "../support/modelLayout.js";

const MIB = 1024 * 1024;

function node(nodeId: string, budgetMiB: number, tokensPerSecond = 10, rttMs = 1, isHost = false): PlanNode {
  return { nodeId, isHost, memoryBudgetBytes: budgetMiB * MIB, speed: { tokensPerSecond }, rttMs };
}
const host = (budgetMiB: number, tokensPerSecond = 10): PlanNode => node("host", budgetMiB, tokensPerSecond, 0, true);

function expectWhole(result: SplitPlanResult): WholeModelPlan {
  if (!result.ok || result.split) throw new Error(`expected a whole-model plan, got ${JSON.stringify(result)}`);
  return result;
}
function expectSplit(result: SplitPlanResult): LayerSplitPlan {
  if (!result.ok || !result.split) throw new Error(`expected a split plan, got ${JSON.stringify(result)}`);
  return result;
}
function expectRefusal(result: SplitPlanResult): PlanRefusal {
  if (result.ok) throw new Error(`expected a refusal, got ${JSON.stringify(result)}`);
  return result;
}
const shape = (plan: LayerSplitPlan): [string, number][] => plan.stages.map((stage) => [stage.nodeId, stage.layerCount]);

/** Where llama.cpp puts a plan's layers with its settings, as [host layers, ...device layers]. */
function realised(plan: LayerSplitPlan, layerCount: number): { counts: number[]; outputDevice: number | null } {
  const assignment = llamaCppLayerAssignment(layerCount, plan.llama.gpuLayers, plan.llama.reportedMiB.map((mib) => mib * MIB));
  return { counts: [assignment.hostLayers, ...assignment.deviceLayers], outputDevice: assignment.outputDevice };
}

describe("memory model", () => {
  it("KV cache per layer is cells * 2 * head_dim * n_head_kv * 2 bytes (TinyLlama at 2048 cells: 4 MiB, 88 MiB over 22 layers)", () => {
    const perLayer = kvCacheBytesPerLayer({ contextCells: 2048, embeddingLength: 2048, headCount: 32, headCountKv: 8 });
    expect(perLayer).toBe(4 * MIB);
    expect(22 * perLayer).toBe(88 * MIB);
    expect(kvCacheBytesPerLayer({ contextCells: 100, embeddingLength: 64, headCount: 4 })).toBe(100 * 2 * 64 * 2);
    expect(kvCacheBytesPerLayer({ contextCells: 100, embeddingLength: 64, headCount: 4, kvBytesPerElement: 1 })).toBe(100 * 2 * 64);
  });

  describe("from a synthetic GGUF file", () => {
    let dir: string;
    beforeAll(async () => {
      dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), "hearth-splitplan-test-"));
    });
    afterAll(async () => {
      await fs.promises.rm(dir, { recursive: true, force: true });
    });

    it("takes per-layer bytes, input and output tensors, KV and vocabulary from the header", async () => {
      const file = path.join(dir, "m.gguf");
      await writeSyntheticModel(file, { layers: 3, embd: 64, ff: 128, heads: 4, kvHeads: 2, contextLength: 512, quant: "f32", seed: 1 });
      const description = describeGguf(await readGgufHeader(file));
      expect(description.vocabularySize).toBe(354);
      const result = modelLayoutFromGguf(description, { contextSize: 256 });
      expect(result.layerWeightBytes).toEqual(description.layerBytes);
      expect(result.layerWeightBytes).toHaveLength(3);
      expect(result.kvBytesPerLayer).toBe(256 * 2 * (64 / 4) * 2 * 2);
      const tied = description.nonLayerBytes.output === undefined;
      const embedding = description.nonLayerBytes.token_embd!;
      expect(embedding).toBe(354 * 64 * 4);
      expect(result.inputBytes).toBe(embedding);
      expect(result.outputBytes).toBe((tied ? embedding : description.nonLayerBytes.output!) + description.nonLayerBytes.output_norm!);
      expect(result.computeBytesPerNode).toBe(4 * 256 * (4 * 128 + 2 * 64 + 354) + 2 * 256 * 256);
      expect(result.embeddingLength).toBe(64);
      // Every tensor byte is counted once, except a tied output matrix, which llama.cpp loads twice.
      const counted = result.layerWeightBytes.reduce((a, b) => a + b, 0) + result.inputBytes + result.outputBytes;
      expect(counted).toBe(description.tensorBytes + (tied ? embedding : 0));
    });
  });

  it("refuses a description without the facts it needs", () => {
    const facts = { layerBytes: [1], nonLayerBytes: {}, embeddingLength: 64, feedForwardLength: 128, headCount: undefined, headCountKv: undefined, vocabularySize: 10 };
    expect(() => modelLayoutFromGguf(facts, { contextSize: 16 })).toThrow(/head count/);
    expect(() => modelLayoutFromGguf({ ...facts, headCount: 4, layerBytes: [] }, { contextSize: 16 })).toThrow(/no repeating layers/);
  });

  it("a stage's memory is its layers' weights and KV plus buffers, the input on the host and the output on the last stage", () => {
    const plan = expectSplit(planSplit({ layout: modelLayout(), nodes: [host(600), node("a", 600)] }));
    const [first, last] = plan.stages;
    expect(first!.memoryBytes).toBe(first!.layerCount * 110 * MIB + 50 * MIB + 20 * MIB);
    expect(last!.memoryBytes).toBe(last!.layerCount * 110 * MIB + 20 * MIB + 50 * MIB);
    expect([first!.holdsInput, first!.holdsOutput, last!.holdsInput, last!.holdsOutput]).toEqual([true, false, false, true]);
  });
});

describe("llama.cpp's layer split rule", () => {
  it("reproduces the measured shim split: @1000,@3000 over 9 layers gives 3 and 6", () => {
    const assignment = llamaCppLayerAssignment(9, 10, [1000 * MIB, 3000 * MIB]);
    expect(assignment).toEqual({ hostLayers: 0, deviceLayers: [3, 6], outputDevice: 1 });
  });

  it("gpuLayers G offloads the last G - 1 repeating layers plus the output layer; 0 keeps everything on the host", () => {
    expect(llamaCppLayerAssignment(8, 0, [MIB])).toEqual({ hostLayers: 8, deviceLayers: [0], outputDevice: null });
    expect(llamaCppLayerAssignment(8, 1, [MIB])).toEqual({ hostLayers: 8, deviceLayers: [0], outputDevice: 0 });
    expect(llamaCppLayerAssignment(8, 4, [MIB])).toEqual({ hostLayers: 5, deviceLayers: [3], outputDevice: 0 });
    // node-llama-cpp clamps gpuLayers to blocks + 1.
    expect(llamaCppLayerAssignment(8, 50, [MIB])).toEqual({ hostLayers: 0, deviceLayers: [8], outputDevice: 0 });
  });

  it("shares proportional to layer counts are off by one, because the output layer counts as a layer", () => {
    // The naive @3,@3 for 3 + 3 layers: split point 0.5 over 7 positions puts 4 on the first device.
    expect(llamaCppLayerAssignment(6, 7, [3 * MIB, 3 * MIB]).deviceLayers).toEqual([4, 2]);
    const settings = llamaSplitSettings(0, [3, 3]);
    expect(llamaCppLayerAssignment(6, settings.gpuLayers, settings.reportedMiB.map((mib) => mib * MIB)).deviceLayers).toEqual([3, 3]);
  });

  it("the settings place exactly the planned layers: gpuLayers = offloaded + 1, boundaries half a layer from each neighbour", () => {
    expect(llamaSplitSettings(4, [4])).toEqual({ gpuLayers: 5, reportedMiB: [10] });
    expect(llamaSplitSettings(3, [3, 2])).toEqual({ gpuLayers: 6, reportedMiB: [5, 7] });
    expect(llamaSplitSettings(0, [1, 1, 1])).toEqual({ gpuLayers: 4, reportedMiB: [1, 2, 5] });
  });

  it("scales the reported sizes to at least the requested total without moving a layer", () => {
    const settings = llamaSplitSettings(2, [3, 5], 6000);
    expect(settings.reportedMiB.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(6000);
    expect(llamaCppLayerAssignment(10, settings.gpuLayers, settings.reportedMiB.map((mib) => mib * MIB))).toEqual({ hostLayers: 2, deviceLayers: [3, 5], outputDevice: 1 });
  });

  it("property: any host share and 1-3 device shares are realised exactly, output on the last device", () => {
    fc.assert(
      fc.property(fc.nat(60), fc.array(fc.integer({ min: 1, max: 80 }), { minLength: 1, maxLength: 3 }), fc.nat(200_000), (hostLayers, deviceLayers, minTotalMiB) => {
        const settings = llamaSplitSettings(hostLayers, deviceLayers, minTotalMiB);
        const total = hostLayers + deviceLayers.reduce((a, b) => a + b, 0);
        const assignment = llamaCppLayerAssignment(total, settings.gpuLayers, settings.reportedMiB.map((mib) => mib * MIB));
        expect(assignment).toEqual({ hostLayers, deviceLayers, outputDevice: deviceLayers.length - 1 });
        expect(settings.reportedMiB.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(minTotalMiB);
      }),
      { numRuns: 400 },
    );
  });

  it("refuses devices without layers and negative host shares", () => {
    expect(() => llamaSplitSettings(2, [])).toThrow(RangeError);
    expect(() => llamaSplitSettings(2, [0, 3])).toThrow(RangeError);
    expect(() => llamaSplitSettings(-1, [3])).toThrow(RangeError);
  });
});

describe("whole-model plans", () => {
  it("does not split a model that fits on the host", () => {
    const plan = expectWhole(planSplit({ layout: modelLayout(), nodes: [host(2048), node("a", 2048)], modelName: "tiny" }));
    expect(plan.node).toBe("host");
    expect(plan.expectedMemoryBytes).toBe(1000 * MIB);
    expect(plan.predictedTokensPerSecond).toBe(10);
    expect(plan.reason).toMatch(/^Tiny fits whole on this node \(1000\.00 MiB of its 2\.00 GiB budget\)/);
  });

  it("runs the model whole on a peer when the host cannot hold it but the peer can", () => {
    const plan = expectWhole(planSplit({ layout: modelLayout(), nodes: [host(600), node("a", 2048), node("b", 2048, 5)] }));
    expect(plan.node).toBe("a");
    expect(plan.reason).toMatch(/does not fit on this node/);
  });

  it("keeps a fitting model whole even when a split is a little faster, and splits when it is much faster", () => {
    // A peer twice as fast holding 7 of 8 layers: about 1.7x faster than the host alone.
    const fastPeer = (budget: number): PlanNode => node("a", budget, 20, 0);
    const much = planSplit({ layout: modelLayout(), nodes: [host(2048), fastPeer(990)] });
    expect(shape(expectSplit(much))).toEqual([["host", 0], ["a", 8]]);
    expect(expectSplit(much).reason).toMatch(/at least 1\.1x/);
    // A peer only 5% faster: the split cannot reach the 1.1x gain.
    const little = planSplit({ layout: modelLayout(), nodes: [host(2048), node("a", 990, 10.5, 0)] });
    expect(expectWhole(little).node).toBe("host");
    expect(expectWhole(little).reason).toMatch(/not the 1\.1x gain/);
    // With the margin removed the slightly faster split wins.
    expect(expectSplit(planSplit({ layout: modelLayout(), nodes: [host(2048), node("a", 990, 10.5, 0)], options: { minSplitGain: 1 } })).split).toBe(true);
  });
});

describe("split plans", () => {
  it("splits over two nodes when neither holds the model, within both budgets", () => {
    const plan = expectSplit(planSplit({ layout: modelLayout(), nodes: [host(600), node("a", 600)] }));
    expect(shape(plan)).toEqual([["host", 4], ["a", 4]]);
    expect(plan.stages.map((stage) => stage.firstLayer)).toEqual([0, 4]);
    expect(plan.stages.map((stage) => stage.memoryBytes / MIB)).toEqual([510, 510]);
    expect(plan.leftOut).toEqual([]);
    expect(plan.reason).toMatch(/no single node can hold the model \(1000\.00 MiB\); split over 2 nodes/);
    expect(realised(plan, 8)).toEqual({ counts: [4, 4], outputDevice: 0 });
  });

  it("predicts tokens/s as compute on each node plus one round trip and the hop's bytes per peer", () => {
    const plan = expectSplit(planSplit({ layout: modelLayout(), nodes: [host(600), { ...node("a", 600, 10, 4), linkBytesPerSecond: 10 * MIB }] }));
    const decode = decodeWeightBytes(modelLayout());
    const compute = ((400 * MIB) / (10 * decode)) + ((450 * MIB) / (10 * decode));
    const bytes = hopBytesPerToken({ embeddingLength: 2048, vocabularySize: 32000, holdsOutput: true }, DEFAULT_THROUGHPUT_OPTIONS);
    expect(bytes).toBe(2048 * 4 + 7 * 1024 + 32000 * 4);
    const network = (4 + DEFAULT_THROUGHPUT_OPTIONS.hopOverheadMs) / 1000 + bytes / (10 * MIB);
    expect(plan.predictedTokensPerSecond).toBe(Math.round((100 / (compute + network))) / 100);
    expect(plan.stages[1]!.networkMsPerToken).toBeCloseTo(network * 1000, 9);
    expect(plan.stages[0]!.networkMsPerToken).toBe(0);
  });

  it("gives a faster peer every layer it can hold; the host may keep none", () => {
    const plan = expectSplit(planSplit({ layout: modelLayout(), nodes: [host(600), node("a", 990, 20)] }));
    expect(shape(plan)).toEqual([["host", 0], ["a", 8]]);
    expect(plan.stages[0]!.memoryBytes).toBe(70 * MIB);
    expect(realised(plan, 8)).toEqual({ counts: [0, 8], outputDevice: 0 });
  });

  it("splits over three nodes (host plus two peers) when two are not enough", () => {
    const plan = expectSplit(planSplit({ layout: modelLayout(), nodes: [host(400), node("a", 400), node("b", 400)] }));
    expect(shape(plan)).toEqual([["host", 3], ["a", 3], ["b", 2]]);
    expect(plan.stages.map((stage) => stage.memoryBytes / MIB)).toEqual([400, 350, 290]);
    expect(realised(plan, 8)).toEqual({ counts: [3, 3, 2], outputDevice: 1 });
  });

  it("leaves out a slow node whose layers would drag the split down", () => {
    const plan = expectSplit(planSplit({ layout: modelLayout(), nodes: [host(600), node("a", 600), node("slow", 600, 0.5)] }));
    expect(shape(plan)).toEqual([["host", 4], ["a", 4]]);
    expect(plan.leftOut).toHaveLength(1);
    expect(plan.leftOut[0]!.nodeId).toBe("slow");
    expect(plan.leftOut[0]!.why).toMatch(/^slower with it: the best split including it predicts [\d.]+ tok\/s, against [\d.]+ tok\/s without$/);
  });

  it("leaves out a high-RTT node when a nearby one can take its place", () => {
    const plan = expectSplit(planSplit({ layout: modelLayout(), nodes: [host(600), node("far", 600, 10, 150), node("near", 600, 10, 1)] }));
    expect(shape(plan)).toEqual([["host", 4], ["near", 4]]);
    expect(plan.leftOut.map((entry) => entry.nodeId)).toEqual(["far"]);
  });

  it("uses a third node only when it makes the split faster", () => {
    // Host and a are enough; b is four times faster, so giving it layers pays for its hop.
    const plan = expectSplit(planSplit({ layout: modelLayout(), nodes: [host(600), node("a", 600), node("b", 400, 40)] }));
    expect(plan.stages.map((stage) => stage.nodeId)).toContain("b");
    const slowB = expectSplit(planSplit({ layout: modelLayout(), nodes: [host(600), node("a", 600), node("b", 400, 10, 30)] }));
    expect(slowB.stages.map((stage) => stage.nodeId)).toEqual(["host", "a"]);
    expect(slowB.leftOut.map((entry) => entry.nodeId)).toEqual(["b"]);
  });

  it("reports a node too small to hold any stage", () => {
    const plan = expectSplit(planSplit({ layout: modelLayout(), nodes: [host(600), node("a", 600), node("tiny", 50)] }));
    expect(plan.leftOut).toEqual([{ nodeId: "tiny", why: "its budget of 50.00 MiB cannot hold a stage of any split that fits the others" }]);
  });

  it("does not depend on the order nodes are listed in", () => {
    const nodes = [host(400), node("a", 400), node("b", 400, 12), node("c", 300, 8, 3)];
    const first = planSplit({ layout: modelLayout(), nodes });
    expect(planSplit({ layout: modelLayout(), nodes: [...nodes].reverse() })).toEqual(first);
  });

  it("respects maxStages", () => {
    const nodes = [host(400), node("a", 400), node("b", 400)];
    expectRefusal(planSplit({ layout: modelLayout(), nodes, options: { maxStages: 2 } }));
  });
});

describe("refusals", () => {
  it("refuses with required and available memory when the cluster is too small", () => {
    const refusal = expectRefusal(planSplit({ layout: modelLayout(), nodes: [host(300), node("a", 300), node("b", 300)], modelName: "big" }));
    expect(refusal.code).toBe("HEARTH_PLAN_DOES_NOT_FIT");
    expect(refusal.requiredBytes).toBe(1000 * MIB);
    expect(refusal.availableBytes).toBe(900 * MIB);
    expect(refusal.message).toBe(
      "Big does not fit in the cluster: it needs at least 1000.00 MiB (weights 900.00 MiB, KV cache 80.00 MiB, buffers 20.00 MiB) " +
        "but the nodes offer 900.00 MiB in total: host (host) 300.00 MiB, a 300.00 MiB, b 300.00 MiB.",
    );
    expect(refusal.perNode).toEqual([
      { nodeId: "host", budgetBytes: 300 * MIB, neededBytes: null, maxLayers: 2 },
      { nodeId: "a", budgetBytes: 300 * MIB, neededBytes: null, maxLayers: 2 },
      { nodeId: "b", budgetBytes: 300 * MIB, neededBytes: null, maxLayers: 2 },
    ]);
    const error = planRefusalError(refusal);
    expect(error).toBeInstanceOf(HearthError);
    expect([error.status, error.code]).toEqual([507, "HEARTH_PLAN_DOES_NOT_FIT"]);
  });

  it("explains a refusal when the total would suffice but no division of the layers fits", () => {
    // 1050 MiB offered against 1000 needed, but per-node buffers and whole layers leave room for 7 of 8.
    const refusal = expectRefusal(planSplit({ layout: modelLayout(), nodes: [host(350), node("a", 350), node("b", 350)] }));
    expect(refusal.availableBytes).toBeGreaterThan(refusal.requiredBytes);
    expect(refusal.message).toMatch(/no division of its 8 layers fits: each node in a split also needs its own compute buffer \(20\.00 MiB\)/);
  });

  it("refuses when the host cannot even keep the input layer", () => {
    expectRefusal(planSplit({ layout: modelLayout(), nodes: [host(60), node("a", 990), node("b", 990)] }));
    expectSplit(planSplit({ layout: modelLayout(), nodes: [host(70), node("a", 990), node("b", 990)] }));
  });
});

describe("forced placements", () => {
  const roomy = [host(4096), node("a", 4096), node("b", 4096)];

  it("splits as forced even when the model fits on one node", () => {
    const plan = expectSplit(planSplit({ layout: modelLayout(), nodes: roomy, forced: { nodes: ["host", "b"], layers: [5, 3] } }));
    expect(plan.forced).toBe(true);
    expect(shape(plan)).toEqual([["host", 5], ["b", 3]]);
    expect(plan.leftOut).toEqual([{ nodeId: "a", why: "not named by the forced placement" }]);
    expect(realised(plan, 8)).toEqual({ counts: [5, 3], outputDevice: 0 });
  });

  it("gives the host no layers when it is not listed, and runs a single listed node whole", () => {
    const plan = expectSplit(planSplit({ layout: modelLayout(), nodes: roomy, forced: { nodes: ["b", "a"], layers: [2, 6] } }));
    expect(shape(plan)).toEqual([["host", 0], ["b", 2], ["a", 6]]);
    expect(realised(plan, 8)).toEqual({ counts: [0, 2, 6], outputDevice: 1 });
    const whole = expectWhole(planSplit({ layout: modelLayout(), nodes: roomy, forced: { nodes: ["a"], layers: [8] } }));
    expect([whole.node, whole.forced]).toEqual(["a", true]);
    expect(shape(expectSplit(planSplit({ layout: modelLayout(), nodes: roomy, forced: { nodes: ["host", "a"], layers: [0, 8] } })))).toEqual([["host", 0], ["a", 8]]);
  });

  it("refuses a forced placement that exceeds a budget, naming the node and both sizes", () => {
    const refusal = expectRefusal(planSplit({ layout: modelLayout(), nodes: [host(4096), node("a", 300)], forced: { nodes: ["host", "a"], layers: [2, 6] } }));
    expect(refusal.message).toBe("The forced placement of the model does not fit: a needs 730.00 MiB but its budget is 300.00 MiB.");
    expect(refusal.perNode.find((entry) => entry.nodeId === "a")!.neededBytes).toBe(730 * MIB);
  });

  it("rejects malformed forced placements with HEARTH_INVALID_REQUEST and the field as param", () => {
    const attempt = (forced: PlanInput["forced"]): HearthError => thrownBy(() => planSplit({ layout: modelLayout(), nodes: roomy, forced: forced!, forcedParam: "hearth.placement" }));
    for (const [forced, pattern] of [
      [{ nodes: ["host", "a"], layers: [4, 3] }, /add up to 7, but the model has 8/],
      [{ nodes: ["host", "zz"], layers: [4, 4] }, /"zz" is not an available node/],
      [{ nodes: ["a", "host"], layers: [4, 4] }, /must be listed first/],
      [{ nodes: ["host", "a", "b"], layers: [4, 4, 0] }, /at least one layer/],
      [{ nodes: ["host", "a"], layers: [4.5, 3.5] }, /whole numbers/],
      [{ nodes: ["a", "a"], layers: [4, 4] }, /listed twice/],
      [{ nodes: [], layers: [] }, /same length/],
    ] as const) {
      const error = attempt({ nodes: [...forced.nodes], layers: [...forced.layers] });
      expect(error.code).toBe("HEARTH_INVALID_REQUEST");
      expect(error.param).toBe("hearth.placement");
      expect(error.message).toMatch(pattern);
    }
  });
});

describe("input validation", () => {
  it("throws RangeError for inconsistent inputs (a caller bug, not a request error)", () => {
    expect(() => planSplit({ layout: modelLayout(), nodes: [node("a", 10)] })).toThrow(/exactly one node must be the host/);
    expect(() => planSplit({ layout: modelLayout(), nodes: [host(10), host(10)] })).toThrow(RangeError);
    expect(() => planSplit({ layout: modelLayout(), nodes: [host(10), node("a", 10, 0)] })).toThrow(/positive tokens\/s/);
    expect(() => planSplit({ layout: modelLayout({ layerWeightBytes: [] }), nodes: [host(10)] })).toThrow(/no layers/);
    expect(() => planSplit({ layout: modelLayout(), nodes: [host(Number.NaN)] })).toThrow(/memoryBudgetBytes/);
  });
});

// ---- properties against a brute-force oracle ----

interface Scenario {
  layout: ModelLayout;
  nodes: PlanNode[];
}

const scenarioArbitrary: fc.Arbitrary<Scenario> = fc
  .record({
    layerMiB: fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 7 }),
    kvMiB: fc.integer({ min: 0, max: 8 }),
    inputMiB: fc.integer({ min: 0, max: 32 }),
    outputMiB: fc.integer({ min: 0, max: 32 }),
    computeMiB: fc.integer({ min: 0, max: 16 }),
    nodes: fc.array(
      fc.record({ budgetMiB: fc.integer({ min: 0, max: 400 }), tokensPerSecond: fc.integer({ min: 1, max: 50 }), rttMs: fc.integer({ min: 0, max: 40 }) }),
      { minLength: 1, maxLength: 4 },
    ),
  })
  .map(({ layerMiB, kvMiB, inputMiB, outputMiB, computeMiB, nodes }) => ({
    layout: modelLayout({
      layerWeightBytes: layerMiB.map((mib) => mib * MIB),
      kvBytesPerLayer: kvMiB * MIB,
      inputBytes: inputMiB * MIB,
      outputBytes: outputMiB * MIB,
      computeBytesPerNode: computeMiB * MIB,
      embeddingLength: 512,
      vocabularySize: 1000,
    }),
    nodes: nodes.map((spec, index) => ({
      nodeId: index === 0 ? "h" : `p${index}`,
      isHost: index === 0,
      memoryBudgetBytes: spec.budgetMiB * MIB,
      speed: { tokensPerSecond: spec.tokensPerSecond },
      rttMs: index === 0 ? 0 : spec.rttMs,
    })),
  }));

/** Every placement the planner may choose, with memory and time computed independently of it. */
function oracle(scenario: Scenario): { wholeRates: number[]; splitRates: number[] } {
  const { layout: l, nodes } = scenario;
  const n = l.layerWeightBytes.length;
  const decode = l.layerWeightBytes.reduce((a, b) => a + b, 0) + l.outputBytes;
  const rateOf = (p: PlanNode): number => p.speed.tokensPerSecond * decode;
  const wholeRates = nodes.filter((p) => p.memoryBudgetBytes >= wholeModelBytes(l)).map((p) => rateOf(p) / decode);
  const splitRates: number[] = [];
  const hostNode = nodes[0]!;
  const peers = nodes.slice(1);
  const orderings = (rest: PlanNode[]): PlanNode[][] => rest.flatMap((p) => [[p], ...orderings(rest.filter((q) => q !== p)).map((tail) => [p, ...tail])]);
  const compositions = (total: number, parts: number, minFirst: number): number[][] => {
    if (parts === 1) return total >= minFirst ? [[total]] : [];
    const out: number[][] = [];
    for (let first = minFirst; first <= total; first++) for (const tail of compositions(total - first, parts - 1, 1)) out.push([first, ...tail]);
    return out;
  };
  for (const order of orderings(peers)) {
    const stageNodes = [hostNode, ...order];
    for (const counts of compositions(n, stageNodes.length, 0)) {
      let start = 0;
      let seconds = 0;
      let fits = true;
      stageNodes.forEach((p, s) => {
        const weights = l.layerWeightBytes.slice(start, start + counts[s]!).reduce((a, b) => a + b, 0);
        const last = s === stageNodes.length - 1;
        const memory = weights + counts[s]! * l.kvBytesPerLayer + l.computeBytesPerNode + (s === 0 ? l.inputBytes : 0) + (last ? l.outputBytes : 0);
        if (memory > p.memoryBudgetBytes) fits = false;
        seconds += (weights + (last ? l.outputBytes : 0)) / rateOf(p);
        if (s > 0) {
          const bytes = 512 * 4 + DEFAULT_THROUGHPUT_OPTIONS.rpcOverheadBytes + (last ? 1000 : 512) * 4;
          seconds += (p.rttMs + DEFAULT_THROUGHPUT_OPTIONS.hopOverheadMs) / 1000 + bytes / DEFAULT_THROUGHPUT_OPTIONS.defaultLinkBytesPerSecond;
        }
        start += counts[s]!;
      });
      if (fits) splitRates.push(1 / seconds);
    }
  }
  return { wholeRates, splitRates };
}

describe("planner properties", () => {
  it("layers add up to the model's, stages are consecutive from layer 0 and within budget, and llama.cpp realises them", () => {
    fc.assert(
      fc.property(scenarioArbitrary, ({ layout: l, nodes }) => {
        const result = planSplit({ layout: l, nodes });
        if (!result.ok) return;
        const budgetOf = (nodeId: string): number => nodes.find((p) => p.nodeId === nodeId)!.memoryBudgetBytes;
        if (!result.split) {
          expect(result.expectedMemoryBytes).toBeLessThanOrEqual(budgetOf(result.node));
          return;
        }
        const n = l.layerWeightBytes.length;
        expect(result.stages.reduce((total, stage) => total + stage.layerCount, 0)).toBe(n);
        let next = 0;
        for (const stage of result.stages) {
          expect(stage.firstLayer).toBe(next);
          next += stage.layerCount;
          expect(stage.memoryBytes).toBeLessThanOrEqual(budgetOf(stage.nodeId));
        }
        expect(result.stages[0]!.nodeId).toBe("h");
        expect(result.stages.slice(1).every((stage) => stage.layerCount >= 1)).toBe(true);
        expect(realised(result, n)).toEqual({ counts: result.stages.map((stage) => stage.layerCount), outputDevice: result.stages.length - 2 });
        expect(new Set([...result.stages.map((stage) => stage.nodeId), ...result.leftOut.map((entry) => entry.nodeId)]).size).toBe(nodes.length);
      }),
      { numRuns: 300 },
    );
  });

  it("is deterministic and independent of node order", () => {
    fc.assert(
      fc.property(scenarioArbitrary, fc.integer(), ({ layout: l, nodes }, seed) => {
        const shuffled = [...nodes].sort((a, b) => ((a.nodeId.charCodeAt(a.nodeId.length - 1) * 31 + seed) % 7) - ((b.nodeId.charCodeAt(b.nodeId.length - 1) * 31 + seed) % 7));
        expect(planSplit({ layout: l, nodes: shuffled })).toEqual(planSplit({ layout: l, nodes }));
      }),
      { numRuns: 200 },
    );
  });

  it("refuses exactly when no placement fits, and picks the fastest one per the rule (whole unless a split gains 1.1x)", () => {
    fc.assert(
      fc.property(scenarioArbitrary, (scenario) => {
        const result = planSplit(scenario);
        const { wholeRates, splitRates } = oracle(scenario);
        const bestWhole = Math.max(...wholeRates);
        const bestSplit = Math.max(...splitRates);
        if (wholeRates.length === 0 && splitRates.length === 0) {
          expect(result.ok).toBe(false);
          return;
        }
        expect(result.ok).toBe(true);
        if (!result.ok) return;
        if (wholeRates.length > 0 && !(bestSplit >= 1.1 * bestWhole)) {
          expect(result.split).toBe(false);
          expect(result.predictedTokensPerSecond).toBeCloseTo(bestWhole, 1);
        } else {
          expect(result.split).toBe(true);
          expect(result.predictedTokensPerSecond).toBeCloseTo(bestSplit, 1);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe("estimateComputeBytes", () => {
  const tiny = { contextSize: 4096, batchSize: 512, embeddingLength: 128, feedForwardLength: 384, vocabularySize: 354 };
  const MiB = 2 ** 20;

  it("without flash attention adds the f32 scores of a micro-batch and one more mask-sized buffer", () => {
    const withFlash = estimateComputeBytes(tiny);
    expect(estimateComputeBytes({ ...tiny, flashAttention: true })).toBe(withFlash);
    expect(estimateComputeBytes({ ...tiny, flashAttention: { headCount: 4 } }) - withFlash).toBe(4 * 512 * 4096 * 4 + 2 * 512 * 4096);
  });

  it("stays above what llama.cpp reserved for the tiny preset without flash attention (41.5 MiB at context 4096)", () => {
    expect(estimateComputeBytes({ ...tiny, flashAttention: { headCount: 4 } }) / MiB).toBeGreaterThan(41.5);
  });

  it("follows the layout's flash attention option", () => {
    const facts = { embeddingLength: 128, headCount: 4, headCountKv: 2, vocabularySize: 354, feedForwardLength: 384, layerBytes: [1000], nonLayerBytes: { token_embd: 10 } };
    const on = modelLayoutFromGguf(facts, { contextSize: 4096 });
    const off = modelLayoutFromGguf(facts, { contextSize: 4096, flashAttention: false });
    expect(off.computeBytesPerNode - on.computeBytesPerNode).toBe(4 * 512 * 4096 * 4 + 2 * 512 * 4096);
  });
});
