/**
 * Model sharing between two real daemons in network namespaces: n1 holds the models, n2 starts
 * with an empty models dir. Over the peer link, n2 fetches byte-identical files and serves them
 * itself; a transfer cut mid-way resumes from its partial file; a corrupted byte is caught by
 * the sha256 and the file never reaches the models dir; a peer asking for a hash it was never
 * offered (or for a path) is refused.
 *
 * The tests share one network and run in order.
 */

import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClusterNet, clusterFixture, MODEL_ID, PEER_PORT, seesDown, seesUp, sleep, type ClusterNode } from "../support/clusterNet.js";
import { ensureModel, ensureTinyModel } from "../support/models.js";

const PARTIAL_DIR = ".hearth-partial";
const MESH_WITHIN_MS = 30_000;
const TRANSFER_WITHIN_MS = 120_000;
/** Cut link: down within 15 s (heartbeats), back within the redial backoff. */
const DOWN_WITHIN_MS = 20_000;
/** One-way delay on n1 while the bigger model crosses, so the cut lands mid-transfer. */
const SLOW_LINK_DELAY_MS = 500;
const CUT_AFTER_BYTES = 2 * 1024 * 1024;
const CORRUPT_AT = 4_096;

interface TransferView {
  sha256: string;
  modelId: string;
  state: string;
  fromNodeId: string | null;
  bytesDone: number;
  totalBytes: number;
  resumes: number;
  error: { code: string; message: string } | null;
}

let net: ClusterNet;
let holder: ClusterNode;
let fetcher: ClusterNode;
const files: Record<"tiny" | "small" | "tiny2" | "tiny3", { path: string; sha256: string; size: number }> = {} as never;

function sha256Of(filePath: string): string {
  return createHash("sha256").update(fs.readFileSync(filePath)).digest("hex");
}

function describeFile(filePath: string): { path: string; sha256: string; size: number } {
  return { path: filePath, sha256: sha256Of(filePath), size: fs.statSync(filePath).size };
}

async function transferOf(node: ClusterNode, sha256: string): Promise<TransferView | undefined> {
  const result = await node.http("GET", `/hearth/v1/models/pulls/${sha256}`);
  return result.status === 200 ? (result.body as { transfer: TransferView }).transfer : undefined;
}

async function waitTransfer(node: ClusterNode, sha256: string, done: (transfer: TransferView) => boolean, what: string, timeoutMs = TRANSFER_WITHIN_MS): Promise<TransferView> {
  const deadline = performance.now() + timeoutMs;
  let last: TransferView | undefined;
  while (performance.now() < deadline) {
    last = await transferOf(node, sha256);
    if (last !== undefined && done(last)) return last;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)}\n${net.logTails(20)}`);
}

function logged(node: ClusterNode, message: string): Record<string, unknown>[] {
  return node.logLines().filter((line) => line.msg === message);
}

/** Model files in the models dir itself (what the registry could list). */
function modelFiles(node: ClusterNode): string[] {
  return fs.readdirSync(node.modelsDir).filter((name) => name !== PARTIAL_DIR).sort();
}

async function chat(node: ClusterNode, model: string): Promise<string> {
  const result = await node.http("POST", "/v1/chat/completions", { model, messages: [{ role: "user", content: "Say something." }], max_tokens: 12, temperature: 0, seed: 1 }, 60_000);
  expect(result.status, JSON.stringify(result.body)).toBe(200);
  return (result.body as { choices: { message: { content: string } }[] }).choices[0]!.message.content;
}

beforeAll(async () => {
  files.tiny = describeFile(await ensureTinyModel());
  files.small = describeFile(await ensureModel("small"));
  files.tiny2 = describeFile(await ensureModel({ preset: "tiny", seed: 2 }, "tiny2"));
  files.tiny3 = describeFile(await ensureModel({ preset: "tiny", seed: 3 }, "tiny3"));
  net = await ClusterNet.create({ nodes: [{}, { tinyModel: false }], prefix: "hms" });
  holder = net.node(1);
  fetcher = net.node(2);
  fs.symlinkSync(files.small.path, path.join(holder.modelsDir, "small.gguf"));
  fs.symlinkSync(files.tiny2.path, path.join(holder.modelsDir, "tiny2.gguf"));
  fs.symlinkSync(files.tiny3.path, path.join(holder.modelsDir, "tiny3.gguf"));
  await net.startAll();
  // n2 must see n1 up with every model hashed before it can ask for one by sha256.
  await net.waitFor(
    [fetcher],
    ([view]) => {
      const peer = view!.peers.find((entry) => entry.state === "up");
      return peer !== undefined && ["tiny", "small", "tiny2", "tiny3"].every((id) => peer.models?.some((model) => model.id === id && model.sha256 !== null));
    },
    { timeoutMs: MESH_WITHIN_MS, what: "n2 to see n1 up with its models hashed" },
  );
  await holder.clusterView();
  await fetcher.clusterView();
}, 180_000);

afterAll(async () => {
  await net?.destroy();
});

describe("model sharing between two nodes", () => {
  it("refuses a peer asking for a hash it was never offered, a path, or a range past the file, and serves an advertised hash from an offset", async () => {
    const options = {
      host: holder.address,
      port: PEER_PORT,
      token: holder.membership!.joinToken,
      requests: [
        { name: "unknown", meta: { sha256: "0".repeat(64), offset: 0 } },
        { name: "path", meta: { sha256: "../../../etc/passwd", offset: 0 } },
        { name: "model id", meta: { sha256: MODEL_ID, offset: 0 } },
        { name: "past the end", meta: { sha256: files.tiny.sha256, offset: files.tiny.size + 1 } },
        { name: "advertised", meta: { sha256: files.tiny.sha256, offset: 1_000 } },
      ],
    };
    const run = await fetcher.host.exec(process.execPath, [clusterFixture("model-fetchClient.js"), JSON.stringify(options)], { timeoutMs: 60_000 });
    const report = JSON.parse(run.stdout.trim().split("\n").pop() ?? "{}") as { event: string; error?: string; results?: Record<string, unknown>[] };
    expect(report.event, report.error ?? run.stderr).toBe("done");
    const byName = Object.fromEntries(report.results!.map((result) => [result["name"], result]));
    expect(byName["unknown"]).toMatchObject({ outcome: "refused", code: "HEARTH_MODEL_NOT_SHARED" });
    expect(byName["path"]).toMatchObject({ outcome: "refused", code: "HEARTH_INVALID_REQUEST" });
    expect(byName["model id"]).toMatchObject({ outcome: "refused", code: "HEARTH_INVALID_REQUEST" });
    expect(byName["past the end"]).toMatchObject({ outcome: "refused", code: "HEARTH_INVALID_REQUEST" });
    const tail = fs.readFileSync(files.tiny.path).subarray(1_000);
    expect(byName["advertised"]).toEqual({
      name: "advertised",
      outcome: "served",
      header: { sha256: files.tiny.sha256, size: files.tiny.size, offset: 1_000 },
      bodyBytes: tail.byteLength,
      bodySha256: createHash("sha256").update(tail).digest("hex"),
    });
    expect((await holder.http("GET", "/health")).status).toBe(200);
  });

  it("`hearth pull tiny --from-peer` fetches a byte-identical file that the node then serves itself", async () => {
    const expected = await chat(holder, MODEL_ID);
    expect(modelFiles(fetcher)).toEqual([]);

    const pulled = await fetcher.cli(["pull", MODEL_ID, "--from-peer"], 120_000);
    expect(pulled.code, pulled.stderr).toBe(0);
    expect(pulled.stdout.trim()).toBe(MODEL_ID);
    const installed = path.join(fetcher.modelsDir, `${MODEL_ID}.gguf`);
    expect(fs.lstatSync(installed).isFile()).toBe(true);
    expect(sha256Of(installed)).toBe(files.tiny.sha256);
    expect(fs.readdirSync(path.join(fetcher.modelsDir, PARTIAL_DIR))).toEqual([]);
    // Advertised with its hash at once: it was verified as it arrived, not hashed again.
    const view = await fetcher.clusterView();
    expect(view.local.models).toContainEqual({ id: MODEL_ID, sizeBytes: files.tiny.size, sha256: files.tiny.sha256 });

    const again = await fetcher.cli(["pull", MODEL_ID, "--from-peer"]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain("already");

    // With the holder gone, the answer can only come from n2's own copy.
    await holder.stop();
    expect(await chat(fetcher, MODEL_ID)).toBe(expected);
    await holder.start();
    await net.waitForMesh(net.nodes, { timeoutMs: MESH_WITHIN_MS });
  });

  it("a link cut mid-transfer resumes from the partial file and ends byte-identical", async () => {
    await holder.host.setDelay(SLOW_LINK_DELAY_MS);
    const started = await fetcher.http("POST", "/hearth/v1/models/pull", { model: "small" });
    expect(started.status, JSON.stringify(started.body)).toBe(202);
    expect(started.body).toMatchObject({ present: false, joined: false, transfer: { sha256: files.small.sha256, modelId: "small" } });
    // A second request for the same file joins the running transfer.
    const joined = await fetcher.http("POST", "/hearth/v1/models/pull", { model: files.small.sha256 });
    expect(joined.body).toMatchObject({ present: false, joined: true, transfer: { sha256: files.small.sha256 } });

    const before = await waitTransfer(fetcher, files.small.sha256, (transfer) => transfer.bytesDone >= CUT_AFTER_BYTES, "the first megabytes");
    expect(before.state).toBe("transferring");
    expect(before.bytesDone).toBeLessThan(files.small.size);
    // `hearth status` shows it while it runs.
    const status = await fetcher.cli(["status"]);
    expect(status.stdout).toMatch(/fetching small transferring from \w+/);
    const statusJson = JSON.parse((await fetcher.cli(["status", "--json"])).stdout) as { status: { transfers: TransferView[] } };
    expect(statusJson.status.transfers.map((transfer) => transfer.sha256)).toEqual([files.small.sha256]);

    await fetcher.host.linkDown();
    try {
      await net.waitFor([fetcher], ([view]) => seesDown(view!, holder.nodeId), { timeoutMs: DOWN_WITHIN_MS, what: "n2 to see n1 down" });
      const cut = await transferOf(fetcher, files.small.sha256);
      expect(cut?.state).toBe("waiting");
      expect(cut!.bytesDone).toBeLessThan(files.small.size);
      expect(modelFiles(fetcher)).toEqual([`${MODEL_ID}.gguf`]);
    } finally {
      await fetcher.host.linkUp();
      await holder.host.setDelay(0);
    }
    await net.waitFor([fetcher], ([view]) => seesUp(view!, holder.nodeId), { timeoutMs: 60_000, what: "n2 to see n1 up again" });

    const done = await waitTransfer(fetcher, files.small.sha256, (transfer) => transfer.state === "done" || transfer.state === "failed", "the transfer to finish");
    expect(done.error).toBeNull();
    expect(done.state).toBe("done");
    expect(done.resumes).toBeGreaterThanOrEqual(1);
    expect(sha256Of(path.join(fetcher.modelsDir, "small.gguf"))).toBe(files.small.sha256);
    expect(fs.readdirSync(path.join(fetcher.modelsDir, PARTIAL_DIR))).toEqual([]);
    // Resumed, not restarted: the fetcher continued from its partial file, and the holder sent from that offset.
    const resumed = logged(fetcher, "resuming model transfer from the partial file").filter((line) => line["sha256"] === files.small.sha256);
    expect(resumed.length).toBeGreaterThanOrEqual(1);
    const offset = resumed[0]!["offset"] as number;
    expect(offset).toBeGreaterThan(0);
    expect(offset).toBeLessThan(files.small.size);
    const served = logged(holder, "served a model transfer").filter((line) => line["sha256"] === files.small.sha256);
    expect(served.at(-1)).toMatchObject({ offset: expect.any(Number), bytes: files.small.size - (served.at(-1)!["offset"] as number) });
    expect(served.at(-1)!["offset"]).toBeGreaterThan(0);
  });

  it("a request pinned to a node that lacks the model makes that node fetch it from its peer, verify it and run it", async () => {
    const body = { model: "tiny3", messages: [{ role: "user", content: "Say something." }], max_tokens: 12, temperature: 0, seed: 1 };
    const onHolder = await holder.http("POST", "/v1/chat/completions", { ...body, hearth: { node: holder.nodeId } }, 60_000);
    expect(onHolder.status, JSON.stringify(onHolder.body)).toBe(200);
    expect(modelFiles(fetcher)).not.toContain("tiny3.gguf");

    const onFetcher = await holder.http("POST", "/v1/chat/completions", { ...body, hearth: { node: fetcher.nodeId } }, 120_000);
    expect(onFetcher.status, JSON.stringify(onFetcher.body)).toBe(200);
    const text = (result: { body: unknown }): string => (result.body as { choices: { message: { content: string } }[] }).choices[0]!.message.content;
    expect(text(onFetcher)).toBe(text(onHolder));
    const installed = path.join(fetcher.modelsDir, "tiny3.gguf");
    expect(sha256Of(installed)).toBe(files.tiny3.sha256);
    expect(await transferOf(fetcher, files.tiny3.sha256)).toMatchObject({ state: "done", fromNodeId: holder.nodeId });
    // It ran on n2, from n2's own new copy: n2 has it loaded now.
    expect((await fetcher.clusterView()).local.loadedModels).toContain("tiny3");
  });

  it("a corrupted byte is detected by the sha256: the fetch fails and the file never appears in the models dir", async () => {
    await holder.stop();
    await holder.start({ env: { HEARTH_TEST_CORRUPT_TRANSFER_AT: String(CORRUPT_AT) } });
    await net.waitFor([fetcher], ([view]) => seesUp(view!, holder.nodeId), { timeoutMs: 60_000, what: "n2 to see n1 up again" });
    const filesBefore = modelFiles(fetcher);
    const seen = new Set<string>();
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        for (const name of modelFiles(fetcher)) seen.add(name);
        await sleep(10);
      }
    })();

    const pulled = await fetcher.cli(["pull", "tiny2", "--from-peer"], 120_000);
    watching = false;
    await watcher;
    expect(pulled.code).toBe(1);
    expect(pulled.stderr).toContain("HEARTH_MODEL_TRANSFER_FAILED");
    expect([...seen].sort()).toEqual(filesBefore);
    expect(modelFiles(fetcher)).toEqual(filesBefore);
    expect(fs.readdirSync(path.join(fetcher.modelsDir, PARTIAL_DIR))).toEqual([]);
    const transfer = await transferOf(fetcher, files.tiny2.sha256);
    expect(transfer).toMatchObject({ state: "failed", error: { code: "HEARTH_MODEL_TRANSFER_FAILED" } });
    // The whole file arrived (with its one bad byte; a resume after a duplicate-link swap may
    // have split it in two): the sha256 check, not a short read, caught it.
    const rejected = logged(fetcher, "fetched model does not match its sha256; discarded").filter((line) => line["sha256"] === files.tiny2.sha256);
    expect(rejected).toHaveLength(1);
    expect(rejected[0]).toMatchObject({ bytes: files.tiny2.size, peer: holder.nodeId.slice(0, 7) });
    const lastServe = logged(holder, "served a model transfer").filter((line) => line["sha256"] === files.tiny2.sha256).at(-1);
    expect((lastServe!["offset"] as number) + (lastServe!["bytes"] as number)).toBe(files.tiny2.size);
  });
});
