// The cluster router (daemon/routing/RoutingEngine.ts) over the real pieces of this node: a real
// LocalEngine (its runners are the fake runner program at the process boundary,
// test/support/fakeRunner.ts), a real model registry, model hashes, layouts and split engine,
// and a real ClusterStateSource fed by a views object returning ClusterView values built here
// (the in-process seam to the peer fabric's socket side). Peers are fake PeerLinks at the
// socket boundary: openStream returns an in-memory duplex that plays the executing peer of
// protocol/peer/inferenceWire.ts (reads the job frame, answers deltas and a result, or fails).

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Duplex } from "node:stream";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ModelHashes } from "../../daemon/cluster/ModelHashes.js";
import type { ClusterView, ModelPresentView, NodeView } from "../../protocol/api/cluster.js";
import { type HearthConfig } from "../../daemon/config/defaults.js";
import * as defaults from "../../daemon/config/defaults.js";
import { LocalEngine } from "../../daemon/engine/LocalEngine.js";
import type { GenerateOptions } from "../../daemon/engine/types.js";
import { ModelRegistry } from "../../daemon/models/ModelRegistry.js";
import type { PeerLinks } from "../../daemon/peers/PeerFabric.js";
import type { PeerStream } from "../../daemon/peers/PeerStream.js";
import { ClusterStateSource } from "../../daemon/routing/ClusterState.js";
import { RoutingEngine } from "../../daemon/routing/RoutingEngine.js";
import { ModelLayouts } from "../../daemon/split/modelLayouts.js";
import { SplitEngine } from "../../daemon/split/SplitEngine.js";
import { errors, type HearthError } from "../../protocol/errors.js";
import type { CompletionJob, GenerationResult } from "../../protocol/inference.js";
import { decodeJobFrame, encodeInferFrame, generationResultFrame, INFER_STREAM_PURPOSE, InferFrameSplitter, type InferJobFrame } from "../../protocol/peer/inferenceWire.js";
import { fakeRunnerEntry } from "../support/fakeRunnerEntry.js";
import { ensureTinyModel } from "../support/models.js";
import { waitFor } from "../support/wait.js";
import { rejectionOf } from "../support/thrown.js";
import { nodeIdFrom } from "../support/nodeIds.js";
import { upPeerView } from "../support/peerView.js";
import { testConfig } from "../support/config.js";

const logger = pino({ level: "silent" });

const A = nodeIdFrom("AAAAAAA");
const B = nodeIdFrom("BBBBBBB");
const OTHER_SHA = "b".repeat(64);

// ---- the executing peer, at the socket boundary ----------------------------------------------

/** What the fake peer does once it has read the job frame. */
type PeerScript = (peer: FakeExecutingPeer) => void;

/** One "infer" stream as seen from the requesting node, with the executing peer behind it. */
class FakeExecutingPeer extends Duplex {
  readonly nodeId: string;
  frame: InferJobFrame | undefined;
  readonly #splitter = new InferFrameSplitter();
  readonly #bodies: Uint8Array[] = [];
  readonly #script: PeerScript;

  constructor(nodeId: string, script: PeerScript) {
    super();
    this.nodeId = nodeId;
    this.#script = script;
  }

  override _read(): void {}

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const split = this.#splitter.push(chunk);
    if (!split.ok) return callback(split.error);
    this.#bodies.push(...split.bodies);
    callback();
  }

  /** The requester half-closed: exactly one job frame must have come. */
  override _final(callback: (error?: Error | null) => void): void {
    const [body, ...extra] = this.#bodies;
    const decoded = body === undefined || extra.length > 0 ? undefined : decodeJobFrame(body);
    if (!decoded?.ok) return callback(errors.peerProtocolViolation("expected exactly one valid job frame"));
    this.frame = decoded.frame;
    callback();
    setImmediate(() => this.#script(this));
  }

  delta(text: string): void {
    this.push(encodeInferFrame({ type: "delta", part: "answer", text }));
  }

  result(result: GenerationResult): void {
    this.push(encodeInferFrame(generationResultFrame(result)));
    this.push(null);
  }

  /** The link drops or the peer resets the stream. */
  fail(error: HearthError = errors.peerUnavailable("the link to the peer closed")): void {
    this.destroy(error);
  }
}

class FakePeerLinks implements PeerLinks {
  readonly opened: FakeExecutingPeer[] = [];
  script: (nodeId: string) => PeerScript = () => (peer) => peer.fail();

  request(): Promise<unknown> {
    return Promise.reject(errors.peerUnavailable("no peer requests in these tests"));
  }

  openStream(nodeId: string, purpose: string): Promise<PeerStream> {
    if (purpose !== INFER_STREAM_PURPOSE) return Promise.reject(errors.notFound(`no stream purpose ${purpose} here`));
    const peer = new FakeExecutingPeer(nodeId, this.script(nodeId));
    this.opened.push(peer);
    // The fake is a Duplex like PeerStream; the router uses only the Duplex side of it.
    return Promise.resolve(peer as unknown as PeerStream);
  }
}

const answer = (text: string, deltas: string[]): PeerScript => (peer) => {
  for (const delta of deltas) peer.delta(delta);
  peer.result({ text, reasoning: "", toolCalls: [], finishReason: "stop", usage: { promptTokens: 3, completionTokens: deltas.length, reasoningTokens: 0 }, cachedPromptTokens: 0 });
};

// ---- this node ---------------------------------------------------------------------------------

let root: string;
let registry: ModelRegistry;
let hashes: ModelHashes;
let engine: LocalEngine;
let split: SplitEngine;
let router: RoutingEngine;
let links: FakePeerLinks;
let view: ClusterView;
let llamaSha: string;
let llamaSize: number;

function config(): HearthConfig {
  return testConfig(defaults, path.join(root, "data"), {
    modelsDir: path.join(root, "models"),
    limits: { parallelSlots: 2, queueDepth: 4 },
    runner: { loadTimeoutMs: 10_000, stopTimeoutMs: 2_000 },
    drainTimeoutMs: 1_000,
  });
}

function localView(models: ModelPresentView[]): NodeView {
  return {
    nodeId: A,
    fingerprint: "0".repeat(64),
    addresses: [],
    protocolVersion: "1.0",
    softwareVersion: "test",
    resources: { cpuCores: 2, ramTotalBytes: 8 * 1024 ** 3, ramFreeBytes: 4 * 1024 ** 3, gpus: [], gpuBackend: null, vramTotalBytes: 0, vramFreeBytes: 0 },
    models,
    loadedModels: [],
    queueDepth: 0,
    speedScores: {},
  };
}

const llama = (): ModelPresentView => ({ id: "llama", sizeBytes: llamaSize, sha256: llamaSha });

beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "hearth-routing-"));
  const cfg = config();
  fs.mkdirSync(cfg.modelsDir, { recursive: true });
  fs.copyFileSync(await ensureTinyModel(), path.join(cfg.modelsDir, "llama.gguf"));
  llamaSize = fs.statSync(path.join(cfg.modelsDir, "llama.gguf")).size;
  registry = new ModelRegistry({ modelsDir: cfg.modelsDir, logger });
  hashes = new ModelHashes({ dataDir: cfg.dataDir, logger });
  await hashes.refresh(await registry.list());
  const [descriptor] = await registry.list();
  await waitFor(() => hashes.hashOf(descriptor!) !== null, 10_000, "the model's hash");
  llamaSha = hashes.hashOf(descriptor!)!;

  engine = new LocalEngine({ catalog: registry, limits: cfg.limits, runner: cfg.runner, logger, runnerEntryPath: fakeRunnerEntry() });
  const state = new ClusterStateSource({ views: { routingView: () => Promise.resolve(view) }, catalog: registry, ttlMs: 0 });
  const layouts = new ModelLayouts({ limits: cfg.limits, runner: cfg.runner, describe: (model) => registry.description(model) });
  // RPC tunnels are sockets to peers' rpc-servers; no request here is split, so none is opened.
  const tunnels = { open: () => Promise.reject(errors.internal("no split here")), prepare: () => Promise.reject(errors.internal("no split here")), release: () => Promise.resolve() };
  split = new SplitEngine({ config: cfg, localNodeId: A, engine, tunnels, state, layouts, logger });
  links = new FakePeerLinks();
  router = new RoutingEngine({ local: engine, split, state, layouts, hashes, links, logger });
});

afterAll(async () => {
  await engine?.stop({ drainTimeoutMs: 0 });
  await split?.stop();
  hashes?.stop();
  fs.rmSync(root, { recursive: true, force: true });
});

function completion(model: string, prompt: string): CompletionJob {
  return { kind: "completion", model, prompt, sampling: { temperature: 0, stop: [] }, echo: false };
}

async function generate(model: string, prompt: string, options: Partial<GenerateOptions> = {}): Promise<{ result: GenerationResult; deltas: string[] }> {
  const deltas: string[] = [];
  const result = await router.generate(completion(model, prompt), { signal: new AbortController().signal, onDelta: (delta) => deltas.push(delta.text), ...options });
  return { result, deltas };
}

/** Streams opened to peers by one test. */
function streamsDuring(): () => FakeExecutingPeer[] {
  const before = links.opened.length;
  return () => links.opened.slice(before);
}

describe("RoutingEngine", () => {
  it("runs a model this node holds here: the result carries this node's id and a local placement with its reason", async () => {
    view = { cluster: null, local: localView([llama()]), peers: [] };
    const opened = streamsDuring();
    const { result, deltas } = await generate("llama", "hello there");
    expect(result.text).toBe("echo hello there");
    expect(deltas.join("")).toBe("echo hello there");
    expect(result.nodeId).toBe(A);
    expect(result.placement).toEqual({ kind: "local", nodeId: A, reasons: ["AAAAAAA is the only reachable node with llama (on disk)"] });
    expect(opened()).toEqual([]);
    expect(engine.stats().loaded.map((model) => model.modelId)).toEqual(["llama"]);
  });

  it("sends a model only a peer has to that peer, naming the peer's own model id and the file's sha256, and relays its deltas", async () => {
    view = { cluster: { clusterId: "c".repeat(32) }, local: localView([llama()]), peers: [upPeerView(B, [{ id: "other-b", sizeBytes: 10, sha256: OTHER_SHA }])] };
    links.script = () => answer("from the peer", ["from", " the peer"]);
    const opened = streamsDuring();
    // Asked for by its sha256: the peer is addressed by its own id for the file.
    const { result, deltas } = await generate(OTHER_SHA, "hi");
    expect(opened().map((peer) => peer.nodeId)).toEqual([B]);
    expect(opened()[0]!.frame).toEqual({
      type: "job",
      sha256: OTHER_SHA,
      modelName: OTHER_SHA,
      job: completion("other-b", "hi"),
    });
    expect(deltas).toEqual(["from", " the peer"]);
    expect(result).toMatchObject({ text: "from the peer", nodeId: B, placement: { kind: "remote", nodeId: B, reasons: [`BBBBBBB is the only reachable node with ${OTHER_SHA} (on disk)`] } });
  });

  it("a node that fails before the first delta is replaced once: the job runs on the other node", async () => {
    // B has it loaded, so B is chosen first; its stream breaks before any output.
    view = { cluster: { clusterId: "c".repeat(32) }, local: localView([llama()]), peers: [upPeerView(B, [llama()], { loadedModels: ["llama"] })] };
    links.script = () => (peer) => peer.fail();
    const opened = streamsDuring();
    const { result, deltas } = await generate("llama", "again please");
    expect(opened().map((peer) => peer.nodeId)).toEqual([B]);
    expect(opened()[0]!.frame?.job.model).toBe("llama");
    expect(result).toMatchObject({ text: "echo again please", nodeId: A, placement: { kind: "local", nodeId: A, reasons: ["AAAAAAA is the only reachable node with llama (on disk)"] } });
    expect(deltas.join("")).toBe("echo again please");
  });

  it("a node that fails after a delta reached the caller is not replaced: the caller gets HEARTH_PEER_UNAVAILABLE after that delta", async () => {
    view = { cluster: { clusterId: "c".repeat(32) }, local: localView([llama()]), peers: [upPeerView(B, [llama()], { loadedModels: ["llama"] })] };
    links.script = () => (peer) => {
      peer.delta("partial");
      setTimeout(() => peer.fail(), 20);
    };
    const opened = streamsDuring();
    const deltas: string[] = [];
    const error = await rejectionOf(router.generate(completion("llama", "no retry"), { signal: new AbortController().signal, onDelta: (delta) => deltas.push(delta.text) }));
    expect(error.code).toBe("HEARTH_PEER_UNAVAILABLE");
    expect(deltas).toEqual(["partial"]);
    expect(opened().map((peer) => peer.nodeId)).toEqual([B]);
  });

  it("a pinned job is never moved: its node's failure before any delta is the caller's HEARTH_PEER_UNAVAILABLE", async () => {
    // Even this node holds the model and is idle; the pin names B.
    view = { cluster: { clusterId: "c".repeat(32) }, local: localView([llama()]), peers: [upPeerView(B, [llama()])] };
    links.script = () => (peer) => peer.fail();
    const opened = streamsDuring();
    const ran = engine.stats().loaded.find((model) => model.modelId === "llama");
    const error = await rejectionOf(generate("llama", "pinned", { route: { pinnedNodeId: B } }).then(({ result }) => result));
    expect(error.code).toBe("HEARTH_PEER_UNAVAILABLE");
    expect(opened().map((peer) => peer.nodeId)).toEqual([B]);
    // Nothing ran here instead: the local runner (from earlier tests) did no extra work.
    expect(engine.stats().loaded.find((model) => model.modelId === "llama")?.pid).toBe(ran?.pid);
    expect(engine.stats().loaded.every((model) => model.running === 0 && model.queued === 0)).toBe(true);
  });

  it("a job with retry off (a batch item) is not moved either", async () => {
    view = { cluster: { clusterId: "c".repeat(32) }, local: localView([llama()]), peers: [upPeerView(B, [llama()], { loadedModels: ["llama"] })] };
    links.script = () => (peer) => peer.fail();
    const opened = streamsDuring();
    const error = await rejectionOf(generate("llama", "batch item", { route: { retry: false } }));
    expect(error.code).toBe("HEARTH_PEER_UNAVAILABLE");
    expect(opened().map((peer) => peer.nodeId)).toEqual([B]);
  });

  it("a model no node knows is HEARTH_MODEL_NOT_FOUND naming it, and nothing is opened or run", async () => {
    view = { cluster: { clusterId: "c".repeat(32) }, local: localView([llama()]), peers: [upPeerView(B, [llama()])] };
    const opened = streamsDuring();
    const error = await rejectionOf(generate("ghost", "hi"));
    expect(error).toMatchObject({ code: "HEARTH_MODEL_NOT_FOUND", param: "model", message: 'model "ghost" not found on any node of the cluster' });
    expect(opened()).toEqual([]);
  });
});
