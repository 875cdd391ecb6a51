/**
 * Layer splitting across real daemons in network namespaces (docs/splitting.md): n1 hosts the
 * runner, n2 and n3 serve layers through their rpc-server workers, reached only through the
 * peer links. Every node holds the synthetic `tiny` model (8 layers), so peers pre-fill their
 * tensor caches from their own copies.
 *
 * - Token equality: forced splits over 2 and 3 nodes give the greedy text of a local run,
 *   for chat and completions, streamed and not; embeddings match within float tolerance.
 * - Capacity: budgets that fit the model on no single node but on the cluster -> served
 *   split without any placement in the request; budgets too small -> 507 with the numbers.
 * - Survival: SIGKILL of a layer-holding node's daemon mid-stream -> the stream completes with
 *   the uninterrupted greedy text.
 *
 * The tests share one network and run in order; the last one kills n2.
 */

import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClusterNet, MODEL_ID, type ClusterNode } from "../support/clusterNet.js";
import { answerOf, ClientRun, sseData, type ClientAnswer, type ClientEvent } from "../support/clusterClient.js";
import { ensureModel } from "../support/models.js";

const MESH_WITHIN_MS = 20_000;
const HASHES_WITHIN_MS = 30_000;
const PROMPT = "Hearth splits layers over RPC. 0123456789";
const MESSAGES = [{ role: "user", content: "Tell me about splitting layers." }];
const MAX_TOKENS = 48;
const ONLY_ON_N1 = "tiny4";

let net: ClusterNet;
let n1: ClusterNode;
let n2: ClusterNode;
let n3: ClusterNode;

beforeAll(async () => {
  net = await ClusterNet.create({ nodes: 3, prefix: "hsp" });
  [n1, n2, n3] = [net.node(1), net.node(2), net.node(3)];
  // A second model only n1 holds: a split over n2 must first get the file to n2 (model sharing).
  fs.symlinkSync(await ensureModel({ preset: "tiny", seed: 4 }, "tiny4"), path.join(n1.modelsDir, `${ONLY_ON_N1}.gguf`));
  await net.startAll();
  await net.waitForMesh(net.nodes, { timeoutMs: MESH_WITHIN_MS });
  await n1.clusterView();
  await n2.clusterView();
  await n3.clusterView();
  // Peers pre-fill by sha256: wait until n1 knows every node's hash of tiny.
  await net.waitFor(
    [n1],
    (views) => views[0]!.peers.filter((peer) => peer.state === "up" && peer.models?.some((model) => model.id === MODEL_ID && model.sha256 !== null)).length === 2 && views[0]!.local.models.every((model) => model.sha256 !== null),
    { timeoutMs: HASHES_WITHIN_MS, what: "model hashes on n1" },
  );
});

afterAll(async () => {
  await net?.destroy();
});

// ---- a client in n1's namespace (test/support/clusterClient.ts) -------------------------------

const diagnostics = (): string => net.logTails(20);

async function post(node: ClusterNode, path: string, body: unknown): Promise<ClientAnswer> {
  return answerOf(await new ClientRun(node, { path, body }, diagnostics).done, diagnostics);
}

function streamedCompletionText(events: readonly ClientEvent[]): string {
  return sseData(events)
    .map((data) => (data as { choices?: Array<{ text?: string }> }).choices?.[0]?.text ?? "")
    .join("");
}

function streamedChatText(events: readonly ClientEvent[]): string {
  return sseData(events)
    .map((data) => (data as { choices?: Array<{ delta?: { content?: string } }> }).choices?.[0]?.delta?.content ?? "")
    .join("");
}

function errorsIn(events: readonly ClientEvent[]): unknown[] {
  return sseData(events).filter((data) => typeof data === "object" && data !== null && "error" in data);
}

function completionText(answer: ClientAnswer): string {
  expect(answer.status, JSON.stringify(answer.body)).toBe(200);
  return (answer.body as { choices: Array<{ text: string }> }).choices[0]!.text;
}

function chatText(answer: ClientAnswer): string {
  expect(answer.status, JSON.stringify(answer.body)).toBe(200);
  return (answer.body as { choices: Array<{ message: { content: string } }> }).choices[0]!.message.content;
}

const completion = (extra: Record<string, unknown> = {}, maxTokens = MAX_TOKENS): Record<string, unknown> => ({ model: MODEL_ID, prompt: PROMPT, max_tokens: maxTokens, temperature: 0, ...extra });
const chat = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({ model: MODEL_ID, messages: MESSAGES, max_tokens: MAX_TOKENS, temperature: 0, ...extra });

interface PlacementView {
  modelId: string;
  split: boolean;
  forced: boolean;
  state: string;
  stages: Array<{ nodeId: string; firstLayer: number; layerCount: number }>;
}

async function placements(node: ClusterNode): Promise<PlacementView[]> {
  const answer = await node.http("GET", "/hearth/v1/cluster");
  return (answer.body as { placements: PlacementView[] }).placements;
}

// ---- reference: local decoding on n1 ----------------------------------------------------------

const reference = { completion: "", chat: "", embedding: [] as number[], long: "" };

describe("layer splitting", () => {
  it("decodes locally on n1 for reference", async () => {
    const pin = { hearth: { node: n1.nodeId } };
    const local = await post(n1, "/v1/completions", completion(pin));
    expect(local.headers["x-hearth-node"]).toBe(n1.nodeId);
    reference.completion = completionText(local);
    expect(reference.completion.length).toBeGreaterThan(0);
    reference.chat = chatText(await post(n1, "/v1/chat/completions", chat(pin)));
    const embedded = await post(n1, "/v1/embeddings", { model: MODEL_ID, input: PROMPT, encoding_format: "float", ...pin });
    expect(embedded.status).toBe(200);
    reference.embedding = (embedded.body as { data: Array<{ embedding: number[] }> }).data[0]!.embedding;
    // No split happened: nothing is placed.
    expect(await placements(n1)).toEqual([]);
  });

  it("rejects malformed forced placements with 400 and a param", async () => {
    for (const [placement, param] of [
      [{ nodes: [], layers: [] }, "hearth.placement.nodes"],
      [{ nodes: ["AAAAAAA"], layers: [1, 2] }, "hearth.placement.layers"],
      [{ nodes: [n1.nodeId, n2.nodeId], layers: [4, -1] }, "hearth.placement.layers[1]"],
      [{ nodes: ["not a node!"], layers: [8] }, "hearth.placement.nodes[0]"],
      ["n1", "hearth.placement"],
    ] as const) {
      const answer = await post(n1, "/v1/completions", completion({ hearth: { placement } }));
      expect(answer.status, JSON.stringify(answer.body)).toBe(400);
      expect((answer.body as { error: { param: string } }).error.param).toBe(param);
    }
    // Well-formed but impossible: counts that do not add up to the model's 8 layers.
    const wrongSum = await post(n1, "/v1/completions", completion({ hearth: { placement: { nodes: [n1.nodeId, n2.nodeId], layers: [4, 3] } } }));
    expect(wrongSum.status).toBe(400);
    expect(JSON.stringify(wrongSum.body)).toContain("8 layers");
  });

  it("serves a forced split over 2 nodes with the local greedy tokens: completions and chat, streamed and not", async () => {
    const placement = { hearth: { placement: { nodes: [n1.nodeId, n2.nodeId], layers: [4, 4] } } };
    const whole = await post(n1, "/v1/completions", completion(placement));
    expect(completionText(whole)).toBe(reference.completion);
    expect(whole.headers["x-hearth-node"]).toBe(n1.nodeId);
    const live = await placements(n1);
    expect(live).toHaveLength(1);
    expect(live[0]).toMatchObject({ modelId: MODEL_ID, split: true, forced: true });
    expect(live[0]!.stages.map((stage) => [stage.nodeId, stage.firstLayer, stage.layerCount])).toEqual([
      [n1.nodeId, 0, 4],
      [n2.nodeId, 4, 4],
    ]);
    const streamed = await post(n1, "/v1/completions", completion({ ...placement, stream: true }));
    expect(errorsIn(streamed.events)).toEqual([]);
    expect(streamedCompletionText(streamed.events)).toBe(reference.completion);
    expect(chatText(await post(n1, "/v1/chat/completions", chat(placement)))).toBe(reference.chat);
    const chatStream = await post(n1, "/v1/chat/completions", chat({ ...placement, stream: true }));
    expect(streamedChatText(chatStream.events)).toBe(reference.chat);

    // The peer served from its pre-filled cache: its log names the prefill, the host's names no fallback.
    expect(n1.output()).toMatch(/pre-filled its rpc tensor cache/);
    expect(n1.output()).not.toMatch(/fallback/);
    // hearth status shows the placement too.
    const status = await n1.http("GET", "/hearth/v1/status");
    expect((status.body as { placements: PlacementView[] }).placements[0]!.stages).toHaveLength(2);
  });

  it("serves embeddings from a split model equal to local ones within float tolerance", async () => {
    const answer = await post(n1, "/v1/embeddings", { model: MODEL_ID, input: PROMPT, encoding_format: "float", hearth: { placement: { nodes: [n1.nodeId, n2.nodeId], layers: [4, 4] } } });
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    const vector = (answer.body as { data: Array<{ embedding: number[] }> }).data[0]!.embedding;
    expect(vector).toHaveLength(reference.embedding.length);
    for (const [index, value] of vector.entries()) expect(Math.abs(value - reference.embedding[index]!)).toBeLessThan(1e-4);
  });

  it("serves a forced split over 3 nodes (host + 2) with the local greedy tokens", async () => {
    const placement = { hearth: { placement: { nodes: [n1.nodeId, n2.nodeId, n3.nodeId], layers: [2, 3, 3] } } };
    expect(completionText(await post(n1, "/v1/completions", completion(placement)))).toBe(reference.completion);
    const live = await placements(n1);
    expect(live.map((view) => view.stages.map((stage) => [stage.nodeId, stage.layerCount]))).toEqual([
      [
        [n1.nodeId, 2],
        [n2.nodeId, 3],
        [n3.nodeId, 3],
      ],
    ]);
    const streamed = await post(n1, "/v1/completions", completion({ ...placement, stream: true }));
    expect(streamedCompletionText(streamed.events)).toBe(reference.completion);
    expect(chatText(await post(n1, "/v1/chat/completions", chat(placement)))).toBe(reference.chat);
    const chatStream = await post(n1, "/v1/chat/completions", chat({ ...placement, stream: true }));
    expect(streamedChatText(chatStream.events)).toBe(reference.chat);
  });

  it("a peer lacking the file fetches it once through model sharing before the split, so no weights are pushed over RPC", async () => {
    const pin = { model: ONLY_ON_N1, hearth: { node: n1.nodeId } };
    const local = completionText(await post(n1, "/v1/completions", completion(pin)));
    expect(fs.readdirSync(n2.modelsDir)).not.toContain(`${ONLY_ON_N1}.gguf`);
    const logBefore = n1.output().length;

    const placement = { model: ONLY_ON_N1, hearth: { placement: { nodes: [n1.nodeId, n2.nodeId], layers: [4, 4] } } };
    expect(completionText(await post(n1, "/v1/completions", completion(placement)))).toBe(local);
    const log = n1.output().slice(logBefore);
    expect(log).toMatch(/asking it to fetch it through model sharing/);
    expect(log).toMatch(/the peer fetched the model file/);
    expect(log).toMatch(/pre-filled its rpc tensor cache/);
    expect(log).not.toMatch(/fallback/);
    const fetched = path.join(n2.modelsDir, `${ONLY_ON_N1}.gguf`);
    const sha256 = (file: string): string => createHash("sha256").update(fs.readFileSync(file)).digest("hex");
    expect(sha256(fetched)).toBe(sha256(path.join(n1.modelsDir, `${ONLY_ON_N1}.gguf`)));
  });

  it("splits by itself when budgets fit the model on no single node but on the cluster, and refuses with numbers when they do not", async () => {
    const report = await n1.http("GET", `/hearth/v1/plan?model=${MODEL_ID}`);
    expect(report.status).toBe(200);
    const whole = (report.body as { plan: { ok: boolean; split: boolean; expectedMemoryBytes: number } }).plan;
    expect(whole).toMatchObject({ ok: true, split: false });
    const needed = whole.expectedMemoryBytes;
    // Every node in a split keeps its own compute buffer, so the budget that forces one is read
    // from the planner's own stage sizes: above the largest stage of a 3-way split, below the whole.
    const threeWay = await n1.http("GET", `/hearth/v1/plan?model=${MODEL_ID}&nodes=${[n1, n2, n3].map((node) => node.nodeId).join(",")}&layers=2,3,3`);
    const stages = (threeWay.body as { plan: { ok: boolean; stages: Array<{ memoryBytes: number }> } }).plan;
    expect(stages.ok, JSON.stringify(threeWay.body)).toBe(true);
    const largestStage = Math.max(...stages.stages.map((stage) => stage.memoryBytes));
    expect(largestStage).toBeLessThan(needed);

    try {
      await restartWithBudget(Math.floor((largestStage + needed) / 2));
      const planned = await n1.cli(["plan", MODEL_ID, "--json"]);
      expect(planned.code, planned.stderr).toBe(0);
      const report2 = JSON.parse(planned.stdout) as { plan: { ok: boolean; split: boolean; stages: unknown[] }; decision: { kind: string; nodeId: string | null; reasons: string[] } };
      expect(report2.plan).toMatchObject({ ok: true, split: true });
      // The decision a request would get is the planner's split, hosted here, with the planner's reason.
      expect(report2.decision).toMatchObject({ kind: "split", nodeId: n1.nodeId });
      expect(report2.decision.reasons[0]).toMatch(/no single node can hold/);
      const human = await n1.cli(["plan", MODEL_ID]);
      expect(human.stdout).toContain(`a request now: split on ${n1.nodeId.split("-")[0]}`);

      const served = await post(n1, "/v1/completions", completion());
      expect(completionText(served)).toBe(reference.completion);
      expect((served.body as { hearth: { placement: string; node: string } }).hearth).toMatchObject({ placement: "split", node: n1.nodeId });
      const live = await placements(n1);
      expect(live).toHaveLength(1);
      expect(live[0]).toMatchObject({ split: true, forced: false });
      expect(live[0]!.stages.length).toBeGreaterThanOrEqual(2);

      await restartWithBudget(Math.floor(needed * 0.2));
      const refused = await post(n1, "/v1/completions", completion());
      expect(refused.status, JSON.stringify(refused.body)).toBe(507);
      const message = (refused.body as { error: { code: string; message: string } }).error;
      expect(message.code).toBe("HEARTH_PLAN_DOES_NOT_FIT");
      expect(message.message).toMatch(/needs at least [\d.]+ MiB .* offer [\d.]+ MiB in total/);
    } finally {
      await restartWithBudget(0);
    }
  });

  it("survives the SIGKILL of a layer-holding node's daemon mid-stream with the uninterrupted greedy text", async () => {
    const long = 400;
    reference.long = completionText(await post(n1, "/v1/completions", completion({ hearth: { node: n1.nodeId } }, long)));
    const run = new ClientRun(n1, { path: "/v1/completions", body: completion({ stream: true, hearth: { placement: { nodes: [n1.nodeId, n2.nodeId, n3.nodeId], layers: [2, 3, 3] } } }, long) }, diagnostics);
    await run.waitForSse(3, 60_000);
    await n2.kill("SIGKILL");
    const answer = answerOf(await run.done, diagnostics);
    expect(answer.status).toBe(200);
    expect(errorsIn(answer.events)).toEqual([]);
    const text = streamedCompletionText(answer.events);
    expect(text.length).toBe(reference.long.length);
    expect(text).toBe(reference.long);
    expect(n1.output()).toMatch(/lost a node; continuing on a new placement/);
    // The peer died after the stream had started (not before it).
    expect(sseData(answer.events).length).toBeGreaterThan(3);
  });
});

/** Rewrites every node's budget and restarts the daemons (budgets are published at start). */
async function restartWithBudget(bytes: number): Promise<void> {
  for (const node of net.nodes) {
    fs.writeFileSync(node.configPath, `[rpc]\nmemory_budget_bytes = ${bytes}\n`);
    await node.stop();
  }
  await net.startAll();
  await net.waitForMesh(net.nodes, { timeoutMs: MESH_WITHIN_MS });
  const budgetSeen = (budget: number | undefined): boolean => budget !== undefined && (bytes === 0 || budget === bytes);
  await net.waitFor(
    [n1],
    ([view]) =>
      budgetSeen(view!.local.resources.memoryBudgetBytes) &&
      view!.peers.filter((peer) => peer.state === "up" && budgetSeen(peer.resources?.memoryBudgetBytes) && peer.models?.some((model) => model.sha256 !== null)).length >= 2,
    { timeoutMs: HASHES_WITHIN_MS, what: `budgets of ${bytes} bytes in n1's view` },
  );
}
