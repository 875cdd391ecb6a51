/**
 * Every API family through its official client (fixtures/families-client.ts: openai for Chat
 * Completions and Responses, @anthropic-ai/sdk, ollama), streamed and not, on a model run
 * locally, on a model routed to a peer and on a model split over two nodes: the thoughts, tool
 * calls, text and stop reasons must be the same wherever the model ran, and exactly the scripts.
 *
 * Layout: n1 holds no model, so every request it gets is routed; n2 and n3 hold `answer` (thinks,
 * then answers) and `tools` (thinks, then calls two tools in parallel), scripted models with
 * pass-through blocks in front of the scripted one, so a split leaves the script on the last stage.
 * The split phase restarts the daemons with budgets that no single node can hold a model in.
 *
 * The tests share one network and run in order.
 */

import fs from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClusterNet, HTTP_PORT, clusterFixture, type ClusterNode } from "../support/clusterNet.js";
import { ensureScriptedModel } from "../support/models.js";
import { responseEventTypes } from "../support/responsesEvents.js";
import { ANSWER, THINK_THEN_ANSWER, THINK_THEN_CALL_TWO_TOOLS, THOUGHT } from "../support/scripts.js";

const ANSWER_MODEL = "answer";
const TOOLS_MODEL = "tools";
const LAYERS = 8;
/**
 * One short context per node: without flash attention (exact batching) the attention scores of
 * a batch over the whole context dominate these small models; kept small, the weights do, and a
 * split then needs less per node than the whole model does.
 */
const nodeConfig = (budgetBytes: number): string => `[limits]\ncontext_size = 1024\nparallel_slots = 1\n\n[rpc]\nmemory_budget_bytes = ${budgetBytes}\n`;
const MESH_WITHIN_MS = 20_000;
const HASHES_WITHIN_MS = 30_000;
const CLIENT_WITHIN_MS = 240_000;

let net: ClusterNet;
let n1: ClusterNode;
let n2: ClusterNode;
let n3: ClusterNode;

beforeAll(async () => {
  const [answerPath, toolsPath] = await Promise.all([ensureScriptedModel("scripted-answer", THINK_THEN_ANSWER, LAYERS), ensureScriptedModel("scripted-tools", THINK_THEN_CALL_TWO_TOOLS, LAYERS)]);
  const models = { [ANSWER_MODEL]: answerPath, [TOOLS_MODEL]: toolsPath };
  const configToml = nodeConfig(0);
  net = await ClusterNet.create({ nodes: [{ tinyModel: false, configToml }, { tinyModel: false, extraModels: models, configToml }, { tinyModel: false, extraModels: models, configToml }], prefix: "hfa" });
  [n1, n2, n3] = [net.node(1), net.node(2), net.node(3)];
  await net.startAll();
  await settled(0);
});

afterAll(async () => {
  await net?.destroy();
});

const diagnostics = (): string => net.logTails(20);

/** Restarts every daemon with `[rpc] memory_budget_bytes = bytes` (budgets are published at start). */
async function restartWithBudget(bytes: number): Promise<void> {
  for (const node of net.nodes) {
    await node.stop();
    fs.writeFileSync(node.configPath, nodeConfig(bytes));
  }
  await net.startAll();
  await settled(bytes);
}

/** Waits for the mesh, then until n1 and n2 see every budget at `bytes` (0: any) and every model hash. */
async function settled(bytes: number): Promise<void> {
  await net.waitForMesh(net.nodes, { timeoutMs: MESH_WITHIN_MS });
  const budgetSeen = (budget: number | undefined): boolean => budget !== undefined && (bytes === 0 || budget === bytes);
  await net.waitFor(
    [n1, n2],
    (views) =>
      views.every((view) => budgetSeen(view.local.resources.memoryBudgetBytes)) &&
      views.every((view) => view.peers.filter((peer) => peer.state === "up" && budgetSeen(peer.resources?.memoryBudgetBytes) && hashed(peer.models ?? [], peer.nodeId === n1.nodeId ? 0 : 2)).length === 2),
    { timeoutMs: HASHES_WITHIN_MS, what: `budgets of ${bytes} bytes and every model hash` },
  );
}

/** Every model hashed, and at least `least` of them (n1 starts with none, and may fetch one for a split). */
const hashed = (models: ReadonlyArray<{ sha256: string | null }>, least: number): boolean => models.length >= least && models.every((model) => model.sha256 !== null);

/** Runs the families client in `node`'s namespace, for both models or one, and returns what it printed. */
async function familiesFrom(node: ClusterNode, only?: "answer" | "tools"): Promise<FamiliesResult> {
  const models = [only === "tools" ? "-" : ANSWER_MODEL, only === "answer" ? "-" : TOOLS_MODEL];
  const child = node.host.spawn(process.execPath, [clusterFixture("families-client.js"), String(HTTP_PORT), ...models], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
  const timer = setTimeout(() => child.kill("SIGKILL"), CLIENT_WITHIN_MS);
  const code = await new Promise<number | null>((resolve) => child.once("exit", (exitCode) => resolve(exitCode)));
  clearTimeout(timer);
  if (code !== 0) throw new Error(`families client on ${node.name} exited ${code}:\n${stderr}\n${diagnostics()}`);
  return JSON.parse(stdout.trim()) as FamiliesResult;
}

const FAMILIES = ["chatCompletions", "responses", "messages", "ollamaChat"] as const;
type FamiliesResult = Record<(typeof FAMILIES)[number], { answer?: unknown; tools?: unknown }>;

interface PlacementView {
  modelId: string;
  split: boolean;
  forced: boolean;
  stages: Array<{ nodeId: string; layerCount: number }>;
}

async function placements(node: ClusterNode): Promise<PlacementView[]> {
  const status = await node.http("GET", "/hearth/v1/status");
  return (status.body as { placements: PlacementView[] }).placements;
}

async function planOf(node: ClusterNode, query: string): Promise<{ ok: boolean; split?: boolean; expectedMemoryBytes?: number; stages?: Array<{ memoryBytes: number }> }> {
  const report = await node.http("GET", `/hearth/v1/plan?${query}`);
  expect(report.status, JSON.stringify(report.body)).toBe(200);
  return (report.body as { plan: { ok: boolean; split?: boolean; expectedMemoryBytes?: number; stages?: Array<{ memoryBytes: number }> } }).plan;
}

const CALLS = [
  { name: "get_weather", arguments: { city: "Paris" } },
  { name: "get_time", arguments: { zone: "CET" } },
];

/** What every family must return from the two scripts, wherever the model ran. */
const EXPECTED: FamiliesResult = {
  chatCompletions: {
    answer: { whole: { text: ANSWER, reasoning: THOUGHT, calls: [], finish: "stop" }, stream: { text: ANSWER, reasoning: THOUGHT, arguments: [], finish: "stop" } },
    tools: { whole: { text: null, reasoning: THOUGHT, calls: CALLS, finish: "tool_calls" }, stream: { text: "", reasoning: THOUGHT, arguments: CALLS.map((call) => call.arguments), finish: "tool_calls" } },
  },
  responses: {
    answer: {
      whole: { text: ANSWER, reasoning: THOUGHT, calls: [], status: "completed" },
      stream: {
        text: ANSWER,
        events: responseEventTypes({ reasoning: true, text: true }),
      },
    },
    tools: {
      whole: { text: "", reasoning: THOUGHT, calls: CALLS, status: "completed" },
      stream: {
        text: "",
        events: responseEventTypes({ reasoning: true, calls: 2 }),
      },
    },
  },
  messages: {
    answer: { whole: { blocks: [{ thinking: THOUGHT }, { text: ANSWER }], stop: "end_turn" }, stream: { text: ANSWER, thinking: THOUGHT, stop: "end_turn", blocks: ["thinking", "text"] } },
    tools: {
      whole: { blocks: [{ thinking: THOUGHT }, ...CALLS.map((call) => ({ tool: call.name, input: call.arguments }))], stop: "tool_use" },
      stream: { text: "", thinking: THOUGHT, stop: "tool_use", blocks: ["thinking", "tool_use", "tool_use"] },
    },
  },
  ollamaChat: {
    answer: { whole: { content: ANSWER, thinking: THOUGHT, calls: [], done: "stop" }, stream: { content: ANSWER, thinking: THOUGHT, done: "stop" } },
    tools: { whole: { content: "", thinking: THOUGHT, calls: CALLS, done: "stop" }, stream: { content: "", thinking: THOUGHT, done: "stop" } },
  },
};

/**
 * A budget that holds `model` on no single node but in halves on two, read while the budgets are
 * still the defaults. Every stage keeps its own compute buffer, so it comes from the planner's own
 * numbers: midway between the larger stage of a half-and-half split and the whole model.
 */
async function splittingBudget(model: string): Promise<number> {
  const whole = await planOf(n2, `model=${model}`);
  const halves = await planOf(n2, `model=${model}&nodes=${n2.nodeId},${n3.nodeId}&layers=${LAYERS / 2},${LAYERS / 2}`);
  expect(whole.split).toBe(false);
  const largestStage = Math.max(...halves.stages!.map((stage) => stage.memoryBytes));
  expect(largestStage, JSON.stringify({ whole, halves })).toBeLessThan(whole.expectedMemoryBytes!);
  return Math.floor((largestStage + whole.expectedMemoryBytes!) / 2);
}

/** Restarts the daemons with `budget`, runs the client for one model on n2 and checks the planner split that model. */
async function splitRun(only: "answer" | "tools", model: string, budget: number): Promise<FamiliesResult> {
  await restartWithBudget(budget);
  const result = await familiesFrom(n2, only);
  const live = await placements(n2);
  expect(live.map((placement) => placement.modelId)).toEqual([model]);
  expect(live[0]).toMatchObject({ split: true, forced: false });
  expect(live[0]!.stages.length).toBeGreaterThanOrEqual(2);
  expect(live[0]!.stages[0]!.nodeId).toBe(n2.nodeId);
  return result;
}

describe("every API family's official client, wherever the model runs", () => {
  let local: FamiliesResult;

  it("on the node that holds the models: the scripts' thoughts, calls and text, exactly", async () => {
    local = await familiesFrom(n2);
    expect(local).toEqual(EXPECTED);
    expect((await placements(n2)).filter((placement) => placement.split)).toEqual([]);
  });

  it("routed from a node that holds no model: the same results", async () => {
    expect(fs.readdirSync(n1.modelsDir)).toEqual([]);
    const routed = await familiesFrom(n1);
    expect(routed).toEqual(local);
    expect(await placements(n1)).toEqual([]);
  });

  it("split over two nodes by budgets that fit neither model on one node: the same results", async () => {
    const budgets = { answer: await splittingBudget(ANSWER_MODEL), tools: await splittingBudget(TOOLS_MODEL) };
    const split = { answer: await splitRun("answer", ANSWER_MODEL, budgets.answer), tools: await splitRun("tools", TOOLS_MODEL, budgets.tools) };
    expect(Object.fromEntries(FAMILIES.map((family) => [family, { answer: split.answer[family].answer, tools: split.tools[family].tools }]))).toEqual(local);
  });

});
