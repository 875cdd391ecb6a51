// The schemas of protocol/api/ against what the daemon really sends: an HttpApi with the
// daemon's own builders behind it (the peer table, the planner, split placements, the job
// coordinator) answers every Hearth endpoint, and each answer must pass its schema with
// nothing stripped (a field the schema forgot would vanish from a CLI's typed view of it).
// Malformed answers are refused with the path of the offending field.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from "vitest";
import type { z } from "zod";
import { DEFAULT_JOBS, type HearthConfig } from "../../daemon/config/defaults.js";
import * as defaults from "../../daemon/config/defaults.js";
import type { MdnsDiscoveryStatus } from "../../daemon/discovery/MdnsDiscovery.js";
import type { ModelHost } from "../../daemon/engine/ModelHost.js";
import type { InferenceEngine } from "../../daemon/engine/types.js";
import type { GpuProbeState } from "../../daemon/hardware/ResourceProbe.js";
import type { ClusterSource, PlanSource, SplitSource } from "../../daemon/http/context.js";
import { HttpApi } from "../../daemon/http/HttpApi.js";
import { JobCoordinator } from "../../daemon/jobs/JobCoordinator.js";
import type { JobExecutor } from "../../daemon/jobs/JobRun.js";
import { JobStore } from "../../daemon/jobs/JobStore.js";
import { Metrics } from "../../daemon/metrics/Metrics.js";
import { PeerTable } from "../../daemon/peers/PeerTable.js";
import type { ModelSharingSource } from "../../daemon/sharing/ModelSharing.js";
import { SplitPlacement } from "../../daemon/split/SplitPlacement.js";
import { clusterResponseSchema, type ClusterView, type NodeView } from "../../protocol/api/cluster.js";
import { clusterDiagnosticsSchema, type ClusterDiagnostics } from "../../protocol/api/diagnostics.js";
import { healthSchema } from "../../protocol/api/health.js";
import { batchRefusalSchema, isValidJobId, jobListSchema, jobViewSchema } from "../../protocol/api/jobs.js";
import { planReportSchema, type PlanResult } from "../../protocol/api/plan.js";
import { pullResultSchema, transferAnswerSchema, transferListSchema, type TransferView } from "../../protocol/api/pulls.js";
import { reportedStateOf } from "../../protocol/api/reportedState.js";
import { statusSchema } from "../../protocol/api/status.js";
import { nodeIdFromFingerprint } from "../../protocol/peer/identity.js";
import type { PeerStateMessage } from "../../protocol/peer/messages.js";
import { planSplit, type LayerSplitPlan, type PlanNode, type SplitPlanResult } from "../../scheduler/splitPlan.js";
import { modelLayout } from "../support/modelLayout.js";
import { peerStateMessage } from "../support/peerState.js";
import { testConfig } from "../support/config.js";

const MIB = 1024 * 1024;
const LOCAL = nodeIdFromFingerprint(new Uint8Array(32).fill(1));
const PEER = nodeIdFromFingerprint(new Uint8Array(32).fill(2));

/** Nothing here runs a model or reads a file: the dirs do not exist. */
function config(): HearthConfig {
  return testConfig(defaults, "/nonexistent", { modelsDir: "/nonexistent", runner: { threads: 1, gpuLayers: 0, loadTimeoutMs: 60_000, stopTimeoutMs: 2_000 } });
}

/** 8 layers of 100 MiB; the whole model needs about 1 GiB. */
const LAYOUT = modelLayout();

function planNodes(hostMiB: number, peerMiB: number): PlanNode[] {
  return [
    { nodeId: LOCAL, isHost: true, memoryBudgetBytes: hostMiB * MIB, speed: { tokensPerSecond: 10 }, rttMs: 0 },
    { nodeId: PEER, isHost: false, memoryBudgetBytes: peerMiB * MIB, speed: { tokensPerSecond: 10 }, rttMs: 1 },
  ];
}

/** The planner's three kinds of answer: whole on one node, split by layers, refused. */
const PLANS: Record<string, SplitPlanResult> = {
  whole: planSplit({ layout: LAYOUT, nodes: planNodes(4096, 4096), modelName: "whole" }),
  split: planSplit({ layout: LAYOUT, nodes: planNodes(700, 700), modelName: "split" }),
  refused: planSplit({ layout: LAYOUT, nodes: planNodes(100, 100), modelName: "refused" }),
};

/** The peer's snapshot, with the memory budget it reports. */
const peerState = (): PeerStateMessage => peerStateMessage({ memoryBudgetBytes: 16e9 });

/** A peer table with an up peer that reported its state, a static address not reached yet, and a refused inbound handshake. */
function peerTable(): PeerTable {
  const table = new PeerTable();
  table.discovered({ source: "mdns", nodeId: PEER, fingerprint: "02".repeat(32), protocolVersion: { major: 1, minor: 0 }, addresses: [{ host: "192.168.1.2", port: 4328 }] });
  table.linkUp({ nodeId: PEER, fingerprint: "02".repeat(32), softwareVersion: "0.1.0", protocolVersion: "1.0" });
  table.stateReported(PEER, peerState());
  table.linkMetrics(PEER, { rttMs: 1.5, lastHeartbeatAt: Date.now() });
  table.discovered({ source: "static", nodeId: undefined, fingerprint: undefined, protocolVersion: undefined, addresses: [{ host: "10.0.0.9", port: 4328 }] });
  table.handshakeFailed({ direction: "outbound", address: "10.0.0.9:4328", nodeId: undefined, code: "HEARTH_PEER_TIMEOUT", reason: "no answer" });
  table.handshakeFailed({ direction: "inbound", address: "10.0.0.7", nodeId: undefined, code: "HEARTH_PEER_AUTH_FAILED", reason: "wrong cluster" });
  return table;
}

function clusterSource(table: PeerTable): ClusterSource {
  const { memoryBudgetBytes: _unreported, ...resources } = reportedStateOf(peerState()).resources;
  const local: NodeView = {
    nodeId: LOCAL,
    fingerprint: "01".repeat(32),
    addresses: ["192.168.1.1:4328"],
    protocolVersion: "1.0",
    softwareVersion: "0.1.0",
    ...reportedStateOf(peerState()),
    // A node that does not report its budget leaves the field out.
    resources,
  };
  // What mDNS discovery reports before its socket ever failed: no socketError, no ignored answers.
  const mdnsStatus: MdnsDiscoveryStatus = { state: "running", socketError: undefined, queriesSent: 3, answersRead: 2, ownAnswersHeard: 1, answersIgnored: 0, lastIgnoredReason: undefined, peers: 1 };
  const gpuProbe: GpuProbeState = "done";
  return {
    view: (): Promise<ClusterView> => Promise.resolve({ cluster: { clusterId: "c".repeat(32) }, local, peers: table.snapshot() }),
    summary: () => ({ clusterId: "c".repeat(32), nodeId: LOCAL, peers: { total: table.snapshot().length, up: 1 } }),
    diagnostics: (): ClusterDiagnostics => ({
      nodeId: LOCAL,
      clusterId: "c".repeat(32),
      listener: { host: "0.0.0.0", port: 4328 },
      mdns: { enabled: true, status: mdnsStatus },
      staticPeers: ["10.0.0.9:4328"],
      dialTargets: [{ address: "10.0.0.9:4328", nodeId: null, linked: false, failures: 1, lastFailure: { code: "HEARTH_PEER_TIMEOUT", reason: "no answer", agoMs: 5 } }],
      inboundFailures: table.inboundFailures().map(({ at, ...failure }) => ({ ...failure, agoMs: Math.max(0, Date.now() - at) })),
      listenerLimiter: { trackedAddresses: 1, pendingHandshakes: 0 },
      hardware: { gpuProbe, failure: null },
      hashing: { pending: 0 },
    }),
  };
}

function splitPlacement(): SplitPlacement {
  const plan = PLANS["split"] as LayerSplitPlan;
  // The placement reads only its host's stats; a runner that is not up yet has none.
  const host = { stats: () => undefined } as unknown as ModelHost;
  return new SplitPlacement({ descriptor: { id: "split", aliases: [], path: "/models/split.gguf", sizeBytes: 1, createdAt: 0 }, sha256: "ab".repeat(32), plan, host, recoveries: 0 });
}

const TRANSFER: TransferView = {
  sha256: "ab".repeat(32),
  model: "llama",
  modelId: "llama",
  origin: "pull",
  state: "failed",
  fromNodeId: PEER,
  bytesDone: 10,
  totalBytes: 1000,
  bytesPerSecond: 0,
  resumes: 1,
  startedAt: new Date(0).toISOString(),
  finishedAt: new Date(1000).toISOString(),
  error: { code: "HEARTH_MODEL_TRANSFER_FAILED", message: "did not verify", param: null },
};

const sharing: ModelSharingSource = {
  pull: (model) => Promise.resolve(model === "here" ? { present: true, modelId: "here", sha256: null } : { present: false, joined: false, transfer: { ...TRANSFER, state: "connecting", finishedAt: null, error: null } }),
  transfers: () => [{ ...TRANSFER, state: "transferring", finishedAt: null, error: null, bytesPerSecond: 1e6 }],
  transfer: (sha256) => (sha256 === TRANSFER.sha256 ? TRANSFER : undefined),
  recent: () => [TRANSFER],
};

const executor: JobExecutor = {
  batchNodes: () => Promise.resolve([{ nodeId: LOCAL, speed: 10, pinned: false }]),
  generate: () => Promise.resolve({ text: "ok", reasoning: "", toolCalls: [], finishReason: "stop", usage: { promptTokens: 1, completionTokens: 1, reasoningTokens: 0 }, cachedPromptTokens: 0, nodeId: LOCAL }),
  embed: () => Promise.reject(new Error("no embeddings here")),
};

const engine: InferenceEngine = {
  listModels: () => Promise.resolve([]),
  resolveModel: () => Promise.reject(new Error("unused")),
  generate: () => Promise.reject(new Error("unused")),
  embed: () => Promise.reject(new Error("unused")),
  // One runner still starting (no pid yet) and one ready.
  stats: () => ({
    loaded: [
      { modelId: "tiny", placement: "whole", pid: undefined, state: "loading", running: 0, queued: 1, lastUsedAt: 1 },
      { modelId: "split", placement: "split", pid: 4242, state: "ready", running: 1, queued: 0, lastUsedAt: 2 },
    ],
  }),
};

let api: HttpApi;
let jobs: JobCoordinator;
let root: string;
let baseUrl: string;

beforeAll(async () => {
  root = await fs.promises.mkdtemp(path.join(os.tmpdir(), "hearth-api-schemas-"));
  const logger = pino({ level: "silent" });
  jobs = new JobCoordinator({ store: new JobStore({ directory: root, logger }), executor, config: DEFAULT_JOBS, maxEmbeddingInputs: 4, logger });
  await jobs.start();
  const table = peerTable();
  const placement = splitPlacement();
  const split: SplitSource = { placements: () => [placement.view()] };
  const plans: PlanSource = {
    planReport: (model) =>
      Promise.resolve({
        model,
        sha256: null,
        hostNodeId: LOCAL,
        nodes: planNodes(700, 700).map((node) => ({ nodeId: node.nodeId, isHost: node.isHost, memoryBudgetBytes: node.memoryBudgetBytes, rttMs: node.rttMs, tokensPerSecond: node.speed.tokensPerSecond })),
        plan: PLANS[model]!,
        decision: { kind: "split", nodeId: LOCAL, reasons: ["fits no single node"] },
        live: model === "split" ? placement.view() : null,
      }),
  };
  api = new HttpApi({ config: config(), engine, metrics: new Metrics({ stats: () => engine.stats() }), logger, version: "9.9.9", cluster: clusterSource(table), jobs, sharing, split, plans });
  baseUrl = `http://127.0.0.1:${(await api.listen()).port}`;
});

afterAll(async () => {
  await jobs.stop();
  await api.close();
  await fs.promises.rm(root, { recursive: true, force: true });
});

async function answer(route: string, init: RequestInit = {}): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`${baseUrl}${route}`, init);
  return { status: response.status, body: await response.json() };
}

/** The body passes the schema, and the schema knows every field in it (parsing strips nothing). */
function expectContract(schema: z.ZodType, body: unknown): void {
  const parsed = schema.safeParse(body);
  expect(parsed.error?.issues ?? []).toEqual([]);
  expect(parsed.data).toEqual(body);
}

describe("every Hearth answer passes its schema, with no field unknown to it", () => {
  it("GET /health", async () => {
    expectContract(healthSchema, (await answer("/health")).body);
  });

  it("GET /hearth/v1/status, with loaded models, the cluster summary, transfers and placements", async () => {
    const { body } = await answer("/hearth/v1/status");
    expectContract(statusSchema, body);
    expect(body).toMatchObject({ cluster: { nodeId: LOCAL }, transfers: [{ state: "transferring" }], placements: [{ modelId: "split", split: true }] });
    // A runner without a pid sends none: the schema must allow the field to be absent.
    expect((body as { models: object[] }).models[0]).not.toHaveProperty("pid");
  });

  it("GET /hearth/v1/cluster, with a reporting peer, an unreached address and the placements", async () => {
    const { body } = await answer("/hearth/v1/cluster");
    expectContract(clusterResponseSchema, body);
    const peers = (body as { peers: { state: string }[] }).peers;
    expect(peers.map((peer) => peer.state).sort()).toEqual(["down", "up"]);
  });

  it("GET /hearth/v1/cluster/diagnostics, where unset mDNS fields are absent", async () => {
    const { body } = await answer("/hearth/v1/cluster/diagnostics");
    expectContract(clusterDiagnosticsSchema, body);
    expect((body as { inboundFailures: unknown[] }).inboundFailures).toHaveLength(1);
  });

  it.each(["whole", "split", "refused"])("GET /hearth/v1/plan for a %s plan", async (model) => {
    const { body } = await answer(`/hearth/v1/plan?model=${model}`);
    expectContract(planReportSchema, body);
    const plan = (body as { plan: { ok: boolean; split?: boolean } }).plan;
    expect(plan.ok ? (plan.split === true ? "split" : "whole") : "refused").toBe(model);
  });

  it("every plan the scheduler can return has the shape of the plan contract", () => {
    expectTypeOf<SplitPlanResult>().toExtend<PlanResult>();
  });

  it("POST /hearth/v1/models/pull, both answers, and GET /hearth/v1/models/pulls[/sha256]", async () => {
    const post = (model: string) => answer("/hearth/v1/models/pull", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model }) });
    expectContract(pullResultSchema, (await post("here")).body);
    expectContract(pullResultSchema, (await post("llama")).body);
    expectContract(transferListSchema, (await answer("/hearth/v1/models/pulls")).body);
    expectContract(transferAnswerSchema, (await answer(`/hearth/v1/models/pulls/${TRANSFER.sha256}`)).body);
  });

  it("the /hearth/v1/jobs family: submit, list, one job, cancel, and a refused input", async () => {
    const line = (id: string) => JSON.stringify({ custom_id: id, method: "POST", url: "/v1/completions", body: { model: "tiny", prompt: "p" } });
    const submitted = await answer("/hearth/v1/jobs?skip_invalid=true", { method: "POST", headers: { "content-type": "application/jsonl" }, body: `${line("a")}\nnot json\n` });
    expectContract(jobViewSchema, submitted.body);
    const id = (submitted.body as { id: string }).id;
    expect(isValidJobId(id)).toBe(true);
    expectContract(jobListSchema, (await answer("/hearth/v1/jobs")).body);
    expectContract(jobViewSchema, (await answer(`/hearth/v1/jobs/${id}`)).body);
    expectContract(jobViewSchema, (await answer(`/hearth/v1/jobs/${id}/cancel`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" })).body);
    const refused = await answer("/hearth/v1/jobs", { method: "POST", headers: { "content-type": "application/jsonl" }, body: `${line("a")}\nnot json\n` });
    expect(refused.status).toBe(400);
    expectContract(batchRefusalSchema, refused.body);
  });
});

describe("malformed answers are refused, naming the field", () => {
  function firstIssue(schema: z.ZodType, body: unknown): { path: PropertyKey[]; message: string } {
    const parsed = schema.safeParse(body);
    expect(parsed.success).toBe(false);
    const issue = parsed.error!.issues[0]!;
    return { path: issue.path, message: issue.message };
  }

  it("a missing field, a wrong type deep in a list, an unknown enum value", async () => {
    const status = (await answer("/hearth/v1/status")).body as Record<string, unknown>;
    const { version: _version, ...noVersion } = status;
    expect(firstIssue(statusSchema, noVersion).path).toEqual(["version"]);
    const cluster = (await answer("/hearth/v1/cluster")).body as { peers: Record<string, unknown>[] };
    const badRtt = { ...cluster, peers: [{ ...cluster.peers[0], rttMs: "fast" }] };
    expect(firstIssue(clusterResponseSchema, badRtt).path).toEqual(["peers", 0, "rttMs"]);
    const badState = { ...cluster, peers: [{ ...cluster.peers[0], state: "sleeping" }] };
    expect(firstIssue(clusterResponseSchema, badState).path).toEqual(["peers", 0, "state"]);
  });

  it("a plan of no known kind, a pull answer without its transfer, a job with an id that is not one", async () => {
    const report = (await answer("/hearth/v1/plan?model=split")).body as { plan: Record<string, unknown> };
    expect(firstIssue(planReportSchema, { ...report, plan: { ...report.plan, split: "yes" } }).path).toEqual(["plan", "split"]);
    expect(firstIssue(pullResultSchema, { present: false, joined: true }).path).toEqual(["transfer"]);
    const job = (await answer("/hearth/v1/jobs")).body as { data: Record<string, unknown>[] };
    expect(firstIssue(jobListSchema, { ...job, data: [{ ...job.data[0], id: "../../etc" }] }).path).toEqual(["data", 0, "id"]);
  });

  it("extra fields from a newer daemon are accepted", async () => {
    const status = (await answer("/hearth/v1/status")).body as Record<string, unknown>;
    expect(statusSchema.safeParse({ ...status, gpuTemperature: 61, listen: { ...(status["listen"] as object), tls: false } }).success).toBe(true);
  });
});
