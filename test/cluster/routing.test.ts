/**
 * Request routing across three real daemons, each in its own network namespace: any node's
 * /v1 API serves a model held anywhere in the cluster, streamed through the node the client
 * talks to, with cancellation, pinning and a retry elsewhere when the chosen node dies first.
 *
 * Layout: A (n1) holds no model; B (n2) holds `tiny` and `twin`; C (n3) holds `twin`. `tiny`
 * is the synthetic tiny model (seed 1), `twin` the same shape with other weights (seed 2), so
 * the two are different files with different sha256s.
 *
 * The tests share one network and run in order; the last one kills B.
 */

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClusterNet, MODEL_ID, peerEntries, seesDown, seesUp, sleep, type ClusterNode, type ClusterView } from "../support/clusterNet.js";
import { answerOf, ClientRun, sseData, type ClientAnswer, type ClientEvent, type ClientRequest } from "../support/clusterClient.js";
import { ensureModel } from "../support/models.js";

const TWIN = "twin";
const MESH_WITHIN_MS = 20_000;
const HASHES_WITHIN_MS = 30_000;
/** A frozen peer is declared down by the heartbeat timeout (9 s); the retry then needs a model load. */
const RETRY_WITHIN_MS = 60_000;

let net: ClusterNet;
let a: ClusterNode;
let b: ClusterNode;
let c: ClusterNode;

beforeAll(async () => {
  const twinPath = await ensureModel({ preset: "tiny", seed: 2 }, "tiny-seed2");
  net = await ClusterNet.create({
    // C lets an idle model go soon, so the retry test can see twin loaded on B only.
    nodes: [{ tinyModel: false }, { extraModels: { [TWIN]: twinPath } }, { tinyModel: false, extraModels: { [TWIN]: twinPath }, configToml: '[limits]\nkeep_alive = "3s"' }],
    prefix: "hrt",
  });
  [a, b, c] = [net.node(1), net.node(2), net.node(3)];
});

afterAll(async () => {
  await net?.destroy();
});

// ---- a client inside a node's namespace (test/support/clusterClient.ts) -----------------

const diagnostics = (): string => net.logTails(20);

async function request(node: ClusterNode, req: ClientRequest): Promise<ClientAnswer> {
  const started = performance.now();
  const events = await new ClientRun(node, req, diagnostics).done;
  console.log(`${node.name} ${req.path} ${Math.round(performance.now() - started)} ms`);
  return answerOf(events, () => `${node.name} ${req.path}\n${diagnostics()}`);
}

/** The text of a completion stream's chunks. */
function streamedText(events: readonly ClientEvent[]): string {
  return sseData(events)
    .map((data) => (typeof data === "object" && data !== null ? ((data as { choices?: Array<{ text?: string }> }).choices?.[0]?.text ?? "") : ""))
    .join("");
}

function completion(model: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { model, prompt: "Tell a long story about the sea", max_tokens: 24, temperature: 0, ...extra };
}

function errorCode(body: unknown): string | undefined {
  return (body as { error?: { code?: string } } | undefined)?.error?.code;
}

function logMessages(node: ClusterNode): string[] {
  return node.logLines().map((line) => `${line.msg ?? ""} ${JSON.stringify(line)}`);
}

function modelsOf(view: ClusterView, nodeId: string): Array<{ id: string; sha256: string | null }> {
  return peerEntries(view, nodeId).find((peer) => peer.state === "up")?.models ?? [];
}

// ---- the tests ------------------------------------------------------------------------------

describe("routing requests across a three-node cluster", () => {
  it("forms the mesh and learns every peer's model hashes", async () => {
    await net.startAll();
    await net.waitForMesh(net.nodes, { timeoutMs: MESH_WITHIN_MS });
    await net.views(net.nodes);
    await net.waitFor(
      [a],
      ([view]) =>
        modelsOf(view!, b.nodeId).some((model) => model.id === MODEL_ID && model.sha256 !== null) &&
        modelsOf(view!, b.nodeId).some((model) => model.id === TWIN && model.sha256 !== null) &&
        modelsOf(view!, c.nodeId).some((model) => model.id === TWIN && model.sha256 !== null),
      { timeoutMs: HASHES_WITHIN_MS, what: "A to know B's and C's model hashes" },
    );
  });

  it("lists cluster-wide models on A, one entry per file, naming the nodes that hold it", async () => {
    const list = await a.http("GET", "/v1/models");
    expect(list.status).toBe(200);
    const data = (list.body as { data: Array<{ id: string; hearth: { sha256: string | null; nodes: Array<{ nodeId: string; modelId: string; loaded: boolean }> } }> }).data;
    expect(data.map((model) => model.id).sort()).toEqual([MODEL_ID, TWIN]);
    const tiny = data.find((model) => model.id === MODEL_ID)!;
    expect(tiny.hearth.nodes.map((node) => node.nodeId)).toEqual([b.nodeId]);
    expect(tiny.hearth.sha256).toMatch(/^[0-9a-f]{64}$/);
    const twin = data.find((model) => model.id === TWIN)!;
    expect(twin.hearth.nodes.map((node) => node.nodeId).sort()).toEqual([b.nodeId, c.nodeId].sort());
    expect(twin.hearth.sha256).not.toBe(tiny.hearth.sha256);

    const one = await a.http("GET", `/v1/models/${MODEL_ID}`);
    expect(one.status).toBe(200);
    expect(one.body).toMatchObject({ id: MODEL_ID, object: "model", hearth: { sha256: tiny.hearth.sha256, nodes: [{ nodeId: b.nodeId, modelId: MODEL_ID }] } });
    expect(JSON.stringify(list.body)).not.toContain(b.modelsDir);
    expect(errorCode((await a.http("GET", "/v1/models/nowhere")).body)).toBe("HEARTH_MODEL_NOT_FOUND");
  });

  it("serves a model only B has through A, streamed, with B's greedy output, and names B in x-hearth-node", async () => {
    const direct = await request(b, { path: "/v1/completions", body: completion(MODEL_ID) });
    expect(direct.status).toBe(200);
    expect(direct.headers["x-hearth-node"]).toBe(b.nodeId);
    const expected = (direct.body as { choices: Array<{ text: string }> }).choices[0]!.text;
    expect(expected.length).toBeGreaterThan(0);

    const streamed = await request(a, { path: "/v1/completions", body: completion(MODEL_ID, { stream: true }) });
    expect(streamed.status).toBe(200);
    expect(streamed.headers["x-hearth-node"]).toBe(b.nodeId);
    expect(sseData(streamed.events).at(-1)).toBe("[DONE]");
    // Relayed as generated: more than one content chunk came through A.
    expect(sseData(streamed.events).filter((data) => typeof data === "object").length).toBeGreaterThan(2);
    expect(streamedText(streamed.events)).toBe(expected);

    const whole = await request(a, { path: "/v1/completions", body: completion(MODEL_ID) });
    expect(whole.status).toBe(200);
    expect(whole.headers["x-hearth-node"]).toBe(b.nodeId);
    expect((whole.body as { choices: Array<{ text: string }> }).choices[0]!.text).toBe(expected);
    expect(logMessages(a).some((line) => line.includes("job placed on a peer") && line.includes(b.nodeId.slice(0, 7)))).toBe(true);

    // Embeddings travel the same way and come back bit for bit.
    const embedBody = { model: MODEL_ID, input: ["the sea", "a long story"] };
    const viaA = await request(a, { path: "/v1/embeddings", body: embedBody });
    const onB = await request(b, { path: "/v1/embeddings", body: embedBody });
    expect(viaA.status).toBe(200);
    expect(viaA.headers["x-hearth-node"]).toBe(b.nodeId);
    expect((viaA.body as { data: unknown[] }).data).toEqual((onB.body as { data: unknown[] }).data);
  });

  it("pins a request to a node by header or body, and refuses a malformed or unknown pin with a code", async () => {
    const byHeader = await request(a, { path: "/v1/completions", body: completion(TWIN), headers: { "x-hearth-node": c.nodeId } });
    expect(byHeader.status).toBe(200);
    expect(byHeader.headers["x-hearth-node"]).toBe(c.nodeId);

    const byBodyPrefix = await request(a, { path: "/v1/completions", body: completion(TWIN, { hearth: { node: b.nodeId.slice(0, 7).toLowerCase() } }) });
    expect(byBodyPrefix.status).toBe(200);
    expect(byBodyPrefix.headers["x-hearth-node"]).toBe(b.nodeId);

    const malformed = await request(a, { path: "/v1/completions", body: completion(TWIN), headers: { "x-hearth-node": "not a node!" } });
    expect(malformed.status).toBe(400);
    expect(malformed.body).toMatchObject({ error: { code: "HEARTH_INVALID_REQUEST", param: "x-hearth-node" } });

    const wrongType = await request(a, { path: "/v1/chat/completions", body: { model: TWIN, messages: [{ role: "user", content: "hi" }], hearth: { node: 7 } } });
    expect(wrongType.status).toBe(400);
    expect(wrongType.body).toMatchObject({ error: { code: "HEARTH_INVALID_REQUEST", param: "hearth.node" } });

    const unknown = await request(a, { path: "/v1/completions", body: completion(TWIN), headers: { "x-hearth-node": "AAAAAAA-BBBBBBB" } });
    expect(unknown.status).toBe(503);
    expect(errorCode(unknown.body)).toBe("HEARTH_PEER_UNAVAILABLE");
  });

  it("a client that disconnects from A mid-stream cancels the generation on B", async () => {
    // Only this job's cancel counts: earlier tests may have cancelled remote jobs on B too.
    const cancelsBefore = logMessages(b).filter((line) => line.includes("remote job cancelled")).length;
    const run = new ClientRun(a, { path: "/v1/completions", body: completion(MODEL_ID, { max_tokens: 3000, prompt: "Tell a very long story", stream: true }), disconnectAfterEvents: 3 }, diagnostics);
    await run.waitFor((event) => event.event === "disconnected", 60_000, "disconnect after 3 events");
    const deadline = Date.now() + 15_000;
    let cancelled = false;
    let idle = false;
    while (Date.now() < deadline && !(cancelled && idle)) {
      cancelled = logMessages(b).filter((line) => line.includes("remote job cancelled")).length > cancelsBefore;
      const status = await b.http("GET", "/hearth/v1/status");
      const models = (status.body as { models?: Array<{ modelId: string; running: number; queued: number }> }).models ?? [];
      idle = models.filter((model) => model.modelId === MODEL_ID).every((model) => model.running === 0 && model.queued === 0);
      if (!(cancelled && idle)) await sleep(200);
    }
    expect(cancelled, `B logged the cancel:\n${b.logTail(30)}`).toBe(true);
    expect(idle, `B's tiny model went idle:\n${b.logTail(30)}`).toBe(true);
  });

  it("a node that fails before the first token is replaced by another that holds the model", async () => {
    // Make B the obvious choice for twin (loaded there, on disk on C), then freeze it.
    const warm = await request(b, { path: "/v1/completions", body: completion(TWIN, { max_tokens: 2 }) });
    expect(warm.status).toBe(200);
    await net.waitFor(
      [a],
      ([view]) =>
        peerEntries(view!, b.nodeId).some((peer) => peer.loadedModels?.includes(TWIN) === true) &&
        peerEntries(view!, c.nodeId).some((peer) => peer.state === "up" && peer.loadedModels?.includes(TWIN) === false),
      { timeoutMs: 30_000, what: "A to see twin loaded on B and unloaded on C" },
    );
    process.kill(-b.process!.pid!, "SIGSTOP");
    try {
      const answer = await request(a, { path: "/v1/completions", body: completion(TWIN) });
      expect(answer.status, JSON.stringify(answer.body)).toBe(200);
      expect(answer.headers["x-hearth-node"]).toBe(c.nodeId);
      const lines = logMessages(a);
      expect(lines.some((line) => line.includes("placing the job once more without it") && line.includes(b.nodeId.slice(0, 7)))).toBe(true);
    } finally {
      process.kill(-b.process!.pid!, "SIGCONT");
    }
    await net.waitForMesh(net.nodes, { timeoutMs: 45_000, what: "B back in the mesh" });
  }, RETRY_WITHIN_MS + 60_000);

  it("B shutting down gracefully mid-stream lets A's client's stream finish before its links close", async () => {
    await net.waitFor([a], ([view]) => seesUp(view!, b.nodeId), { timeoutMs: 45_000, what: "A to see B up" });
    const body = completion(MODEL_ID, { max_tokens: 400, prompt: "Tell a long story about the hills" });
    const reference = await request(a, { path: "/v1/completions", body });
    expect(reference.status).toBe(200);
    expect(reference.headers["x-hearth-node"]).toBe(b.nodeId);
    const run = new ClientRun(a, { path: "/v1/completions", body: { ...body, stream: true } }, diagnostics);
    await run.waitFor((event) => event.event === "sse", 60_000, "the first SSE event");
    const exited = b.stop();
    const events = await run.done;
    expect(sseData(events)).toContain("[DONE]");
    expect(streamedText(events)).toBe((reference.body as { choices: Array<{ text: string }> }).choices[0]!.text);
    expect(await exited).toBe(0);
    await b.start();
    await net.waitForMesh(net.nodes, { timeoutMs: 45_000, what: "B back in the mesh" });
  });

  it("B dying mid-stream gives A's client a clean SSE error event", async () => {
    await net.waitFor([a], ([view]) => seesUp(view!, b.nodeId), { timeoutMs: 45_000, what: "A to see B up" });
    const run = new ClientRun(a, { path: "/v1/completions", body: completion(MODEL_ID, { max_tokens: 3000, prompt: "Tell a very long story", stream: true }) }, diagnostics);
    await run.waitFor((event) => event.event === "sse", 60_000, "the first SSE event");
    expect(run.events.find((event) => event.event === "response")?.headers?.["x-hearth-node"]).toBe(b.nodeId);
    await b.kill("SIGKILL");
    const events = await run.done;
    const data = sseData(events);
    expect(data).not.toContain("[DONE]");
    const last = data.at(-1);
    expect(last, JSON.stringify(events).slice(-1_000)).toMatchObject({ error: { code: "HEARTH_PEER_UNAVAILABLE" } });
    expect(events.at(-1)?.event).toBe("end");
    // A itself is fine, and sees B down.
    expect((await a.http("GET", "/health")).status).toBe(200);
    await net.waitFor([a], ([view]) => seesDown(view!, b.nodeId), { timeoutMs: 15_000, what: "A to see B down" });
  });
});
