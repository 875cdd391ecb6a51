/**
 * Cluster membership end to end on one machine: real `hearth serve` processes (the built CLI)
 * on loopback, each with its own data dir, no mDNS, and static `--peer` entries pointing at each
 * other's peer ports. Proves, through GET /hearth/v1/cluster and the CLI:
 *   - three members see each other up within 15 s, with resources, models and sha256 filled in;
 *   - `hearth peers --json` prints exactly the endpoint's `peers`;
 *   - a node of another cluster is never up anywhere, and the refusal is logged on both sides;
 *   - a node announcing another protocol major is `incompatible` on both sides;
 *   - a speed score is measured once a model is loaded, reaches peers, and survives a restart;
 *   - a SIGKILLed node is down within 10 s, and up again with the same node id when restarted;
 *   - `hearth cluster init/join/show` round trip, and a bad token or a second init exit 2.
 * The multi-host version (network namespaces, real multicast) lives in test/cluster/.
 */

import { createHash } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ClusterView, PeerView } from "../../protocol/api/cluster.js";
import { runCli, type CliResult } from "../support/cli.js";
import { freePort, startDaemon, type RunningDaemon } from "../support/daemon.js";
import { ensureTinyModel } from "../support/models.js";
import { waitFor, waitForValue } from "../support/wait.js";

type Name = "a" | "b" | "c" | "w" | "d";

let root: string;
let cliEnv: NodeJS.ProcessEnv;
let tinyPath: string;
let tinySha256: string;
let token: string;
const homes = {} as Record<Name, string>;
const peerPorts = {} as Record<Name, number>;
const nodeIds = {} as Record<Name, string>;
const daemons = new Map<Name, RunningDaemon>();

/** The test-only knob that makes a daemon announce another protocol major (docs/configuration.md). */
const HEARTH_KNOB = "HEARTH_TEST_PROTOCOL_MAJOR";
/** Members dial each other, and the outsiders too, so both sides of every refusal are seen. */
const DIALS: Record<Name, Name[]> = { a: ["b", "c", "w", "d"], b: ["a", "c", "w"], c: ["a", "b"], w: ["a", "b"], d: ["a"] };
/**
 * Short redial backoff so a restarted or late node is found quickly; fast state refresh. On
 * loopback every node dials from 127.0.0.1, so the listener's per-address limit of failed
 * handshakes would let the outsiders' refusals lock the members out of each other too: raise it.
 */
const CONFIG_TOML =
  '[peer]\ndial_backoff_max = "2s"\nstate_publish_interval = "2s"\nmax_failed_attempts = 100000\n\n[limits]\nparallel_slots = 1\ncontext_size = 512\n';

function cli(args: string[], stdin?: string): Promise<CliResult> {
  return runCli(args, { env: cliEnv, ...(stdin === undefined ? {} : { stdin }) });
}

async function cliJson<T>(args: string[]): Promise<T> {
  const result = await cli([...args, "--json"]);
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as T;
}

function dataDir(name: Name): string {
  return path.join(homes[name], "data");
}

async function start(name: Name, env: NodeJS.ProcessEnv = {}): Promise<RunningDaemon> {
  const peers = DIALS[name].flatMap((other) => ["--peer", `127.0.0.1:${peerPorts[other]}`]);
  const daemon = await startDaemon({
    home: homes[name],
    models: name === "a" || name === "c" ? { tiny: tinyPath } : {},
    configToml: CONFIG_TOML,
    args: ["--no-mdns", "--peer-bind", "127.0.0.1", "--peer-port", String(peerPorts[name]), ...peers],
    env: { ...env, HEARTH_API_KEY: "" },
  });
  daemons.set(name, daemon);
  return daemon;
}

function daemon(name: Name): RunningDaemon {
  const running = daemons.get(name);
  if (running === undefined) throw new Error(`daemon ${name} is not running`);
  return running;
}

async function cluster(name: Name): Promise<ClusterView> {
  const response = await fetch(`${daemon(name).url}/hearth/v1/cluster`);
  expect(response.status).toBe(200);
  return (await response.json()) as ClusterView;
}

function peerById(view: ClusterView, nodeId: string): PeerView | undefined {
  return view.peers.find((peer) => peer.nodeId === nodeId);
}

function peerAt(view: ClusterView, name: Name): PeerView | undefined {
  const address = `127.0.0.1:${peerPorts[name]}`;
  return view.peers.find((peer) => peer.addresses.includes(address));
}

/** Polls a probe over the daemons' HTTP APIs; a daemon briefly not answering counts as "not yet". */
function waitForViews<T>(probe: () => Promise<T | undefined | false>, timeoutMs: number, what: string): Promise<T> {
  return waitForValue(probe, timeoutMs, what, { intervalMs: 200, retryErrors: true });
}

/** Fields that change between two reads of the same state. */
function stable(peers: PeerView[]): unknown {
  return peers.map((peer) => ({
    ...peer,
    rttMs: typeof peer.rttMs,
    lastHeartbeatAgoMs: typeof peer.lastHeartbeatAgoMs,
    // The memory budget is derived from free RAM, so it moves between two reads just like it.
    resources:
      peer.resources === null
        ? null
        : { ...peer.resources, ramFreeBytes: typeof peer.resources.ramFreeBytes, memoryBudgetBytes: typeof peer.resources.memoryBudgetBytes },
  }));
}

beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "hearth-cluster-it-"));
  cliEnv = { ...process.env, HOME: root, XDG_CONFIG_HOME: path.join(root, "xdg-config"), XDG_DATA_HOME: path.join(root, "xdg-data") };
  for (const name of ["HEARTH_API_KEY", "HEARTH_URL", HEARTH_KNOB]) delete cliEnv[name];
  tinyPath = await ensureTinyModel();
  tinySha256 = createHash("sha256").update(fs.readFileSync(tinyPath)).digest("hex");
  const ports = new Set<number>();
  for (const name of ["a", "b", "c", "w", "d"] as const) {
    homes[name] = path.join(root, name);
    let port = await freePort();
    while (ports.has(port)) port = await freePort();
    ports.add(port);
    peerPorts[name] = port;
  }
  const created = await cliJson<{ clusterId: string; joinToken: string; nodeId: string }>(["cluster", "init", "--data-dir", dataDir("a")]);
  token = created.joinToken;
  nodeIds.a = created.nodeId;
  for (const name of ["b", "c", "d"] as const) {
    nodeIds[name] = (await cliJson<{ nodeId: string }>(["cluster", "join", token, "--data-dir", dataDir(name)])).nodeId;
  }
  nodeIds.w = (await cliJson<{ nodeId: string }>(["cluster", "init", "--data-dir", dataDir("w")])).nodeId;
});

afterAll(async () => {
  await Promise.all([...daemons.values()].map((running) => running.stop()));
  if (root !== undefined) fs.rmSync(root, { recursive: true, force: true });
});

describe("a loopback cluster of real daemons", () => {
  it("three members see each other up within 15 s, with resources, models and sha256", async () => {
    const started = Date.now();
    await Promise.all([start("a"), start("b"), start("c")]);
    const members = ["a", "b", "c"] as const;
    const views = await waitForViews(
      async () => {
        const current = await Promise.all(members.map((name) => cluster(name)));
        const complete = current.every((view, index) =>
          members
            .filter((other) => other !== members[index])
            .every((other) => {
              const peer = peerById(view, nodeIds[other]);
              const hashed = other === "b" || peer?.models?.[0]?.sha256 === tinySha256;
              // A peer that dialled in before this node's own static dial reached it is known
              // (inbound) before that entry resolves; wait for the static address to be merged.
              const dialled = !DIALS[members[index]!].includes(other) || peer?.addresses.includes(`127.0.0.1:${peerPorts[other]}`) === true;
              return peer?.state === "up" && peer.resources !== null && hashed && dialled;
            }),
        );
        return complete && current;
      },
      15_000 - (Date.now() - started),
      "a, b and c to see each other up with their state",
    );
    expect(Date.now() - started).toBeLessThan(15_000);

    const [a, b] = views as [ClusterView, ClusterView, ClusterView];
    expect(a.cluster).toEqual({ clusterId: expect.stringMatching(/^[0-9a-f]{32}$/) });
    expect(b.cluster).toEqual(a.cluster);
    expect(a.local).toMatchObject({
      nodeId: nodeIds.a,
      fingerprint: expect.stringMatching(/^[0-9a-f]{64}$/),
      addresses: [`127.0.0.1:${peerPorts.a}`],
      protocolVersion: "1.0",
      softwareVersion: expect.any(String),
      resources: { cpuCores: os.availableParallelism(), ramTotalBytes: os.totalmem(), ramFreeBytes: expect.any(Number), gpus: expect.any(Array) },
      models: [{ id: "tiny", sizeBytes: fs.statSync(tinyPath).size, sha256: tinySha256 }],
      loadedModels: [],
      queueDepth: 0,
    });

    // What b knows of a is what a says of itself, as a reported it over the link.
    const aSeenByB = peerById(b, nodeIds.a)!;
    expect(aSeenByB).toMatchObject({
      nodeId: nodeIds.a,
      fingerprint: a.local.fingerprint,
      addresses: [`127.0.0.1:${peerPorts.a}`],
      protocolVersion: "1.0",
      softwareVersion: a.local.softwareVersion,
      models: a.local.models,
      loadedModels: [],
      queueDepth: 0,
      speedScores: {},
      state: "up",
      lastError: null,
      source: "static",
    });
    expect(aSeenByB.resources).toMatchObject({ cpuCores: a.local.resources.cpuCores, ramTotalBytes: a.local.resources.ramTotalBytes, gpus: a.local.resources.gpus });
    expect(aSeenByB.rttMs).toBeGreaterThanOrEqual(0);
    expect(aSeenByB.lastHeartbeatAgoMs).toBeLessThan(10_000);
    // Each pair has exactly one peer entry, whoever dialled first.
    for (const view of views) expect(view.peers.filter((peer) => peer.state === "up")).toHaveLength(2);
  });

  it("probes the GPU in a child process once, in the background, and reports what node-llama-cpp sees", async () => {
    const diagnostics = await waitForViews(
      async () => {
        const response = await fetch(`${daemon("a").url}/hearth/v1/cluster/diagnostics`);
        const body = (await response.json()) as { hardware: { gpuProbe: string; failure: string | null } };
        return body.hardware.gpuProbe !== "probing" && body;
      },
      30_000,
      "the GPU probe to finish",
    );
    expect(diagnostics.hardware).toEqual({ gpuProbe: "done", failure: null });
    const { resources } = (await cluster("a")).local;
    // Either no GPU at all, or a backend with named devices and VRAM.
    if (resources.gpuBackend === null) expect(resources).toMatchObject({ gpus: [], vramTotalBytes: 0 });
    else expect(resources.gpus.length).toBeGreaterThan(0);
  });

  it("hearth peers --json prints exactly the cluster endpoint's peers, and the table names them", async () => {
    const printed = await cliJson<PeerView[]>(["peers", "--url", daemon("a").url]);
    const served = (await cluster("a")).peers;
    expect(stable(printed)).toEqual(stable(served));
    const table = await cli(["peers", "--url", daemon("a").url]);
    expect(table.code).toBe(0);
    for (const name of ["b", "c"] as const) expect(table.stdout).toMatch(new RegExp(`${nodeIds[name].slice(0, 7)}\\s+up\\s+127\\.0\\.0\\.1:${peerPorts[name]}`));
    const status = await cli(["status", "--url", daemon("a").url]);
    expect(status.stdout).toContain(`node ${nodeIds.a} in cluster`);
    expect(status.stdout).toMatch(/2 of \d+ peers up/);
  });

  it("a node with another cluster's secret is never up anywhere, both sides report the refusal (HEARTH_PEER_AUTH_FAILED), and no log holds the secret", async () => {
    await start("w");
    // For 8 s at least, and until both sides report the refusal, w is never up anywhere.
    const watchUntil = Date.now() + 8_000;
    await waitFor(
      async () => {
        const [w, a, b] = await Promise.all([cluster("w"), cluster("a"), cluster("b")]);
        expect(w.peers.filter((peer) => peer.state === "up")).toEqual([]);
        expect(peerById(a, nodeIds.w)).toBeUndefined();
        expect(peerById(b, nodeIds.w)).toBeUndefined();
        const refusedByW = w.peers.some((peer) => peer.lastError?.code === "HEARTH_PEER_AUTH_FAILED");
        const refusedByA = peerAt(a, "w")?.lastError?.code === "HEARTH_PEER_AUTH_FAILED" && peerAt(a, "w")?.state === "down";
        return Date.now() >= watchUntil && refusedByW && refusedByA;
      },
      28_000,
      "w and a to report the refusal, with w never up for 8 s",
      250,
    );
    // The secret never reaches a log: redaction is the behaviour here, so the log text is searched.
    expect(daemon("a").output()).not.toContain(token.slice("hearth1_".length, 40));
    // a's doctor report names the refusal.
    const doctor = await cliJson<{ peerProblems: { code: string; kind: string }[] }>(["doctor", "--url", daemon("a").url, "--mdns-wait", "100ms"]);
    expect(doctor.peerProblems).toContainEqual(expect.objectContaining({ code: "HEARTH_PEER_AUTH_FAILED", kind: "wrong-cluster" }));
    await daemon("w").stop();
    daemons.delete("w");
  });

  it("a node announcing another protocol major is incompatible on both sides", async () => {
    await start("d", { [HEARTH_KNOB]: "2" });
    const [d, a] = await waitForViews(
      async () => {
        const views = await Promise.all([cluster("d"), cluster("a")]);
        return peerAt(views[0], "a")?.state === "incompatible" && peerAt(views[1], "d")?.state === "incompatible" && views;
      },
      20_000,
      "d and a to mark each other incompatible",
    );
    expect(d.local.protocolVersion).toBe("2.0");
    expect(peerAt(d, "a")?.lastError?.code).toBe("HEARTH_PEER_INCOMPATIBLE");
    expect(peerAt(a, "d")?.lastError?.message).toMatch(/2\.0/);
    expect(peerById(a, nodeIds.d)?.state).not.toBe("up");
    await daemon("d").stop();
    daemons.delete("d");
  });

  it("a speed score is measured once a model is loaded, reaches peers, and is kept across restarts", async () => {
    const response = await fetch(`${daemon("c").url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny", prompt: "Hello", max_tokens: 4, temperature: 0 }),
    });
    expect(response.status).toBe(200);
    const seen = await waitForViews(
      async () => {
        const peer = peerById(await cluster("a"), nodeIds.c);
        const score = peer?.speedScores?.["tiny"];
        return score !== undefined && peer?.loadedModels?.includes("tiny") === true && peer;
      },
      60_000,
      "a to see c's speed score for tiny",
    );
    expect(seen.speedScores?.["tiny"]).toBeGreaterThan(0);
    expect((await cluster("c")).local.speedScores).toEqual(seen.speedScores);
  });

  it("a SIGKILLed node is down within 10 s, and up again with the same node id after a restart", async () => {
    const scoreBefore = (await cluster("c")).local.speedScores["tiny"];
    const killed = daemon("c");
    killed.process.kill("SIGKILL");
    const killedAt = Date.now();
    await waitForViews(
      async () => {
        const views = await Promise.all([cluster("a"), cluster("b")]);
        return views.every((view) => peerById(view, nodeIds.c)?.state === "down");
      },
      10_000,
      "a and b to see c down",
    );
    expect(Date.now() - killedAt).toBeLessThan(10_000);
    expect(peerById(await cluster("a"), nodeIds.c)?.lastError).not.toBeNull();
    await killed.stop();

    await start("c");
    const views = await waitForViews(
      async () => {
        const current = await Promise.all([cluster("a"), cluster("b"), cluster("c")]);
        return current.every((view) => view.peers.filter((peer) => peer.state === "up").length === 2) && current;
      },
      20_000,
      "c to be up again on a and b",
    );
    const [a, b, c] = views;
    expect(c.local.nodeId).toBe(nodeIds.c);
    expect(peerById(a, nodeIds.c)?.state).toBe("up");
    expect(peerById(b, nodeIds.c)?.state).toBe("up");
    // Measured once: the restarted node reports its score without loading the model again.
    expect(c.local.loadedModels).toEqual([]);
    expect(c.local.speedScores["tiny"]).toBe(scoreBefore);
  });
});

describe("shutdown", () => {
  it("a stopping member drains first (links up, so peers' jobs here and its jobs on peers finish), then says goodbye with 1001; with nothing to drain its peers see it down at once", async () => {
    const stopping = daemon("b");
    const stoppedAt = Date.now();
    const exit = stopping.process.kill("SIGTERM");
    expect(exit).toBe(true);
    const peer = await waitForViews(
      async () => {
        const seen = peerById(await cluster("a"), nodeIds.b);
        return seen?.state === "down" && seen;
      },
      5_000,
      "a to see b down",
    );
    expect(Date.now() - stoppedAt).toBeLessThan(5_000);
    expect(peer.lastError?.code).toBe("HEARTH_SHUTTING_DOWN");
    await stopping.stop();
    daemons.delete("b");
    // The order of the shutdown steps inside the stopping process shows nowhere but its log (its
    // API is closed by the end, and with nothing to drain the steps take milliseconds), so the
    // log lines are what is asserted. Lines are ordered by their pino time: an async write
    // still in flight when the exit path flushes synchronously can land after later lines.
    const entries = stopping
      .output()
      .split("\n")
      .flatMap((line) => {
        try {
          return [JSON.parse(line) as { time: number; msg: string; errorCode?: string }];
        } catch {
          return [];
        }
      });
    const timeOf = (message: string, errorCode?: string): number =>
      entries.find((entry) => entry.msg === message && (errorCode === undefined || entry.errorCode === errorCode))?.time ?? Number.NaN;
    const signalled = timeOf("shutting down (send the signal again to force)");
    const goodbye = timeOf("peer link closed", "HEARTH_SHUTTING_DOWN");
    const draining = timeOf("engine stopping");
    const httpClosed = timeOf("HTTP API closed");
    const times = { signalled, goodbye, draining, httpClosed };
    for (const time of Object.values(times)) expect(time, JSON.stringify(times)).toBeGreaterThan(0);
    expect(draining).toBeGreaterThanOrEqual(signalled);
    expect(goodbye).toBeGreaterThanOrEqual(draining);
    expect(httpClosed).toBeGreaterThanOrEqual(goodbye);
  });
});

describe("a node without a cluster", () => {
  it("runs standalone: no peer listener, and the cluster view holds only itself", async () => {
    const peerPort = await freePort();
    const alone = await startDaemon({ configToml: CONFIG_TOML, models: { tiny: tinyPath }, args: ["--no-mdns", "--peer-port", String(peerPort), "--peer", "127.0.0.1:1"] });
    try {
      const view = (await (await fetch(`${alone.url}/hearth/v1/cluster`)).json()) as ClusterView;
      expect(view.cluster).toBeNull();
      expect(view.peers).toEqual([]);
      expect(view.local).toMatchObject({ nodeId: expect.stringMatching(/^[A-Z2-7]{7}(-[A-Z2-7]{7}){7}$/), addresses: [], protocolVersion: "1.0", loadedModels: [] });
      expect(view.local.models.map((model) => model.id)).toEqual(["tiny"]);
      const listening = await new Promise<boolean>((resolve) => {
        const socket = net.connect(peerPort, "127.0.0.1");
        socket.once("connect", () => {
          socket.destroy();
          resolve(true);
        });
        socket.once("error", () => resolve(false));
      });
      expect(listening).toBe(false);
      const status = (await (await fetch(`${alone.url}/hearth/v1/status`)).json()) as { cluster: unknown };
      expect(status.cluster).toEqual({ clusterId: null, nodeId: view.local.nodeId, peers: { total: 0, up: 0 } });
      const peers = await cli(["peers", "--url", alone.url]);
      expect(peers.stdout).toContain("standalone");
    } finally {
      await alone.stop();
    }
  });
});

describe("hearth cluster init / join / show", () => {
  it("round-trips a token, is idempotent, and never shows the secret", async () => {
    const x = path.join(root, "cli-x");
    const y = path.join(root, "cli-y");
    const created = await cliJson<{ clusterId: string; joinToken: string; nodeId: string }>(["cluster", "init", "--data-dir", x]);
    expect(created.joinToken).toMatch(/^hearth1_[a-z2-7]{84}$/);
    const joined = await cliJson<{ clusterId: string; nodeId: string; changed: boolean }>(["cluster", "join", created.joinToken, "--data-dir", y]);
    expect(joined).toMatchObject({ clusterId: created.clusterId, changed: true });
    expect(joined.nodeId).not.toBe(created.nodeId);
    // From stdin, as scripts should pass it; same cluster again changes nothing.
    const again = await cli(["cluster", "join", "-", "--data-dir", y, "--json"], `${created.joinToken}\n`);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ clusterId: created.clusterId, changed: false });

    for (const [dir, nodeId] of [[x, created.nodeId], [y, joined.nodeId]] as const) {
      const shown = await cli(["cluster", "show", "--data-dir", dir, "--json"]);
      expect(JSON.parse(shown.stdout)).toMatchObject({ nodeId, clusterId: created.clusterId, peerPort: 4328 });
      expect(shown.stdout).not.toContain(created.joinToken.slice(8, 30));
      const human = await cli(["cluster", "show", "--data-dir", dir]);
      expect(human.stdout).toContain(created.clusterId);
      expect(human.stdout).not.toContain(created.joinToken.slice(8, 30));
    }
    const human = await cli(["cluster", "init", "--data-dir", path.join(root, "cli-z")]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/hearth cluster join hearth1_[a-z2-7]{84}/);
  });

  it("a bad token, a second init and joining another cluster exit 2 with their codes", async () => {
    const x = path.join(root, "cli-bad-x");
    const created = await cliJson<{ joinToken: string; clusterId: string }>(["cluster", "init", "--data-dir", x]);
    // One character of the body changed (not the last, whose low bits are padding): a typo.
    const corrupted = `${created.joinToken.slice(0, 20)}${created.joinToken[20] === "a" ? "b" : "a"}${created.joinToken.slice(21)}`;
    const bad = await cli(["cluster", "join", corrupted, "--data-dir", path.join(root, "cli-bad-y")]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^error \[HEARTH_JOIN_TOKEN_INVALID\]: .*checksum/);
    expect(bad.stderr).not.toContain(corrupted.slice(8, 30));
    expect(fs.existsSync(path.join(root, "cli-bad-y", "identity", "cluster.json"))).toBe(false);

    const garbage = await cli(["cluster", "join", "not-a-token", "--data-dir", path.join(root, "cli-bad-y")]);
    expect(garbage.code).toBe(2);
    expect(garbage.stderr).toMatch(/HEARTH_JOIN_TOKEN_INVALID/);

    const second = await cli(["cluster", "init", "--data-dir", x]);
    expect(second.code).toBe(2);
    expect(second.stderr).toMatch(/^error \[HEARTH_CLUSTER_CONFLICT\]: .*--force/);

    const other = await cliJson<{ joinToken: string; clusterId: string }>(["cluster", "init", "--data-dir", path.join(root, "cli-bad-z")]);
    const conflict = await cli(["cluster", "join", other.joinToken, "--data-dir", x]);
    expect(conflict.code).toBe(2);
    expect(conflict.stderr).toMatch(/HEARTH_CLUSTER_CONFLICT/);
    const forced = await cliJson<{ clusterId: string; changed: boolean; replacedClusterId: string }>(["cluster", "join", other.joinToken, "--data-dir", x, "--force"]);
    expect(forced).toMatchObject({ clusterId: other.clusterId, changed: true, replacedClusterId: created.clusterId });
  });
});
