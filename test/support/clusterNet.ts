/**
 * A cluster of real `hearth serve` daemons, one per network namespace of netns.ts, for the
 * multi-host tests and the cluster benchmark.
 *
 * ClusterNet.create builds the network and, per node, a throwaway home: data dir, models dir
 * with the tiny synthetic model linked in (unless the node's spec says `tinyModel: false`), an
 * empty config file. Nodes that share a cluster
 * name get one `hearth cluster init` (the first) and `hearth cluster join TOKEN` (the rest),
 * exactly as a user would; other names make other clusters, and `cluster: null` leaves a node
 * standalone. Daemons listen on their namespace's defaults (HTTP 127.0.0.1:4327, peers
 * 0.0.0.0:4328), so the addresses in a test are those a user would see.
 *
 * The root namespace cannot reach a node, so each node keeps an agent process in its
 * namespace (fixtures/cluster-agent.ts) that makes the HTTP calls; the wait helpers poll
 * GET /hearth/v1/cluster through it. A timeout throws with every node's peer table and last
 * log lines, so a failure explains itself. `destroy()` kills everything in the namespaces,
 * deletes them and removes the homes (set HEARTH_KEEP_CLUSTER_DIRS=1 to keep the homes).
 */

import type { ChildProcess } from "node:child_process";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import type { ClusterView, PeerView } from "../../protocol/api/cluster.js";
import { CLI_PATH, REPO_ROOT, runCli } from "./cli.js";
import { ensureTinyModel } from "./models.js";
import { createTestNetwork, type TestNetwork, type TestNode } from "./netns.js";
import type { CommandResult } from "./netns-system.js";

export { CLI_PATH, REPO_ROOT };
/** Fixtures run as plain node programs, so from their compiled form. */
export const clusterFixture = (name: string): string => path.join(REPO_ROOT, "dist", "test", "cluster", "fixtures", name);

/** Each namespace is its own host, so every daemon can use the defaults. */
export const HTTP_PORT = 4327;
export const PEER_PORT = 4328;
export const MODEL_ID = "tiny";
const DEFAULT_CLUSTER = "main";
const DEFAULT_POLL_MS = 200;
const HEALTH_TIMEOUT_MS = 30_000;
const AGENT_READY_TIMEOUT_MS = 10_000;
const EXIT_WAIT_MS = 10_000;

// ---- the views of GET /hearth/v1/cluster ---------------------------------------------------

export type { ClusterView, NodeView, PeerView } from "../../protocol/api/cluster.js";

/** Every entry `view` has for `nodeId` (one, normally). */
export function peerEntries(view: ClusterView, nodeId: string): PeerView[] {
  return view.peers.filter((peer) => peer.nodeId === nodeId);
}

export function seesUp(view: ClusterView, nodeId: string): boolean {
  return peerEntries(view, nodeId).some((peer) => peer.state === "up");
}

/** Known to `view` and in state `down` (and not up through another entry). */
export function seesDown(view: ClusterView, nodeId: string): boolean {
  const entries = peerEntries(view, nodeId);
  return entries.some((peer) => peer.state === "down") && !entries.some((peer) => peer.state === "up");
}

/** A compact line per peer, for failure messages. */
export function describeView(view: ClusterView | undefined): string {
  if (view === undefined) return "(no view)";
  const peers = view.peers.map((peer) => {
    const error = peer.lastError ? ` ${peer.lastError.code}` : "";
    return `${shortId(peer.nodeId)}:${peer.state}(${peer.source}${error})`;
  });
  return `local ${shortId(view.local.nodeId)} cluster=${view.cluster?.clusterId.slice(0, 8) ?? "null"} peers=[${peers.join(", ")}]`;
}

export function shortId(nodeId: string | null | undefined): string {
  return typeof nodeId === "string" ? nodeId.slice(0, 7) : "?";
}

// ---- the agent -------------------------------------------------------------------------------

export interface HttpResult {
  status: number;
  body: unknown;
  elapsedMs: number;
}

interface AgentAnswer {
  id: number;
  status?: number;
  body?: unknown;
  error?: string;
  elapsedMs: number;
}

/** Talks to fixtures/cluster-agent.ts over its stdin/stdout. */
class Agent {
  readonly child: ChildProcess;
  readonly ready: Promise<void>;
  #nextId = 1;
  readonly #pending = new Map<number, { resolve: (answer: AgentAnswer) => void; reject: (error: Error) => void }>();
  #exited: string | undefined;
  #stderr = "";

  constructor(node: TestNode, port: number) {
    this.child = node.spawn(process.execPath, [clusterFixture("cluster-agent.js"), String(port)], { stdio: ["pipe", "pipe", "pipe"] });
    this.child.stdin!.on("error", () => undefined);
    this.child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
      this.#stderr = (this.#stderr + chunk).slice(-4_000);
    });
    let markReady!: () => void;
    let failReady!: (error: Error) => void;
    this.ready = new Promise<void>((resolve, reject) => {
      markReady = resolve;
      failReady = reject;
    });
    const readyTimer = setTimeout(() => failReady(new Error(`the agent in ${node.namespace} did not start: ${this.#stderr}`)), AGENT_READY_TIMEOUT_MS);
    createInterface({ input: this.child.stdout! }).on("line", (line) => {
      let answer: AgentAnswer & { event?: string };
      try {
        answer = JSON.parse(line) as AgentAnswer & { event?: string };
      } catch {
        return;
      }
      if (answer.event === "ready") {
        clearTimeout(readyTimer);
        markReady();
        return;
      }
      const waiter = this.#pending.get(answer.id);
      if (waiter === undefined) return;
      this.#pending.delete(answer.id);
      waiter.resolve(answer);
    });
    this.child.once("exit", (code, signal) => {
      clearTimeout(readyTimer);
      this.#exited = `the agent in ${node.namespace} exited with ${signal ?? String(code)}: ${this.#stderr}`;
      failReady(new Error(this.#exited));
      for (const waiter of this.#pending.values()) waiter.reject(new Error(this.#exited));
      this.#pending.clear();
    });
    this.ready.catch(() => undefined);
  }

  request(method: string, requestPath: string, body?: unknown, timeoutMs = 10_000): Promise<AgentAnswer> {
    if (this.#exited !== undefined) return Promise.reject(new Error(this.#exited));
    const id = this.#nextId++;
    return new Promise<AgentAnswer>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.child.stdin!.write(`${JSON.stringify({ id, method, path: requestPath, body, timeoutMs })}\n`);
    });
  }

  close(): void {
    this.child.stdin?.end();
  }
}

// ---- nodes -----------------------------------------------------------------------------------

export interface ClusterNodeSpec {
  /** Nodes with equal names share one cluster; null: no membership at all. Default "main". */
  cluster?: string | null;
  /** Extra `hearth serve` flags for every start of this node. */
  args?: string[];
  /** TOML written to the node's config file. */
  configToml?: string;
  env?: Record<string, string>;
  /** Link the tiny test model into this node's models dir (default true); false leaves it empty. */
  tinyModel?: boolean;
  /** More GGUF files linked into this node's models dir: model id -> file. */
  extraModels?: Record<string, string>;
}

export interface StartOptions {
  /** Extra `hearth serve` flags for this start, after the spec's. */
  args?: string[];
  env?: Record<string, string>;
}

/** One daemon's log line: pino JSON, or `{msg: text}` for anything else it printed. */
export interface LogLine {
  level?: number;
  msg?: string;
  [key: string]: unknown;
}

interface Membership {
  clusterId: string;
  joinToken: string;
  /** The secret as stored in cluster.json (base64), for leak checks. */
  secretBase64: string;
}

export class ClusterNode {
  readonly index: number;
  readonly host: TestNode;
  readonly home: string;
  readonly dataDir: string;
  readonly modelsDir: string;
  readonly configPath: string;
  readonly clusterName: string | null;
  /** The node's peer listener as other nodes dial it: `10.231.x.y:4328`. */
  readonly peerAddress: string;
  /** The daemon currently running, if any. */
  process: ChildProcess | undefined;
  /** How many times the daemon was started. */
  starts = 0;

  readonly #spec: ClusterNodeSpec;
  readonly #agent: Agent;
  #membership: Membership | undefined;
  #nodeId: string | undefined;
  readonly #lines: string[] = [];

  /** @internal Made by ClusterNet.create. */
  constructor(index: number, host: TestNode, home: string, spec: ClusterNodeSpec) {
    this.index = index;
    this.host = host;
    this.home = home;
    this.dataDir = path.join(home, "data");
    this.modelsDir = path.join(home, "models");
    this.configPath = path.join(home, "config.toml");
    this.clusterName = spec.cluster === undefined ? DEFAULT_CLUSTER : spec.cluster;
    this.peerAddress = `${host.address}:${PEER_PORT}`;
    this.#spec = spec;
    this.#agent = new Agent(host, HTTP_PORT);
  }

  get address(): string {
    return this.host.address;
  }

  get name(): string {
    return `n${this.index}`;
  }

  /** The node id, known once the node has joined a cluster or answered a cluster view. */
  get nodeId(): string {
    if (this.#nodeId === undefined) throw new Error(`${this.name}'s node id is not known yet (start it and call clusterView())`);
    return this.#nodeId;
  }

  get membership(): Membership | undefined {
    return this.#membership;
  }

  get running(): boolean {
    return this.process !== undefined && this.process.exitCode === null && this.process.signalCode === null;
  }

  /** @internal */
  async prepare(modelPath: string): Promise<void> {
    fs.mkdirSync(this.modelsDir, { recursive: true });
    fs.mkdirSync(this.dataDir, { recursive: true });
    if (this.#spec.tinyModel !== false) fs.symlinkSync(modelPath, path.join(this.modelsDir, `${MODEL_ID}.gguf`));
    for (const [id, file] of Object.entries(this.#spec.extraModels ?? {})) fs.symlinkSync(file, path.join(this.modelsDir, `${id}.gguf`));
    fs.writeFileSync(this.configPath, `${this.#spec.configToml ?? ""}\n`);
    await this.#agent.ready;
  }

  /** @internal Runs `hearth cluster init` here; returns the join token. */
  async initCluster(): Promise<string> {
    const result = await runHearth(["cluster", "init", "--data-dir", this.dataDir, "--json"], this.home);
    const parsed = parseJsonOutput(result, "hearth cluster init --json") as { clusterId?: unknown; joinToken?: unknown; nodeId?: unknown };
    if (typeof parsed.joinToken !== "string" || typeof parsed.clusterId !== "string") {
      throw new Error(`hearth cluster init --json printed no joinToken/clusterId: ${result.stdout}`);
    }
    if (typeof parsed.nodeId === "string") this.#nodeId = parsed.nodeId;
    this.#membership = { clusterId: parsed.clusterId, joinToken: parsed.joinToken, secretBase64: this.#readSecret() };
    return parsed.joinToken;
  }

  /** @internal Runs `hearth cluster join TOKEN` here. */
  async joinCluster(token: string): Promise<void> {
    const result = await runHearth(["cluster", "join", token, "--data-dir", this.dataDir, "--json"], this.home);
    if (result.code !== 0) throw new Error(`hearth cluster join exited ${String(result.code)}: ${result.stderr}${result.stdout}`);
    const cluster = JSON.parse(fs.readFileSync(path.join(this.dataDir, "identity", "cluster.json"), "utf8")) as { clusterId: string };
    this.#membership = { clusterId: cluster.clusterId, joinToken: token, secretBase64: this.#readSecret() };
  }

  #readSecret(): string {
    const file = JSON.parse(fs.readFileSync(path.join(this.dataDir, "identity", "cluster.json"), "utf8")) as { secret?: unknown };
    if (typeof file.secret !== "string") throw new Error(`${this.name}: cluster.json holds no secret`);
    return file.secret;
  }

  /** Starts `hearth serve` without waiting for it: for simultaneous starts. */
  spawnDaemon(options: StartOptions = {}): ChildProcess {
    if (this.running) throw new Error(`${this.name}'s daemon is already running`);
    const args = [
      CLI_PATH,
      "serve",
      "--port",
      String(HTTP_PORT),
      "--data-dir",
      this.dataDir,
      "--models-dir",
      this.modelsDir,
      "--config",
      this.configPath,
      ...(this.#spec.args ?? []),
      ...(options.args ?? []),
    ];
    const child = this.host.spawn(process.execPath, args, {
      env: { ...nodeEnv(this.home), ...this.#spec.env, ...options.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.starts++;
    this.#lines.push(`{"msg":"--- test: start ${this.starts} of ${this.name} ---"}`);
    for (const stream of [child.stdout!, child.stderr!]) {
      createInterface({ input: stream }).on("line", (line) => this.#lines.push(line));
    }
    this.process = child;
    return child;
  }

  /** Waits until /health answers 200; throws with the daemon's output if it exits first. */
  async waitHealthy(timeoutMs = HEALTH_TIMEOUT_MS): Promise<void> {
    const child = this.process;
    if (child === undefined) throw new Error(`${this.name} was never started`);
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`${this.name}'s hearth serve exited (${child.exitCode ?? child.signalCode}) before it was healthy:\n${this.logTail(40)}`);
      }
      const answer = await this.#agent.request("GET", "/health", undefined, 2_000);
      if (answer.status === 200) return;
      await sleep(100);
    }
    throw new Error(`${this.name}'s hearth serve was not healthy within ${timeoutMs} ms:\n${this.logTail(40)}`);
  }

  async start(options: StartOptions = {}): Promise<void> {
    this.spawnDaemon(options);
    await this.waitHealthy();
  }

  /** Signals the daemon's process group (runners included) and waits until it has exited. */
  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<number | string> {
    const child = this.process;
    if (child === undefined) throw new Error(`${this.name} was never started`);
    if (child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(-child.pid!, signal);
      } catch {
        // Already gone.
      }
    }
    const result = await waitForExit(child, EXIT_WAIT_MS);
    if (result === undefined) throw new Error(`${this.name}'s daemon did not exit within ${EXIT_WAIT_MS} ms of ${signal}`);
    return result;
  }

  /** A graceful stop (SIGTERM). */
  stop(): Promise<number | string> {
    return this.kill("SIGTERM");
  }

  /** An HTTP call to this node's daemon, from inside its namespace. */
  async http(method: string, requestPath: string, body?: unknown, timeoutMs = 10_000): Promise<HttpResult> {
    const answer = await this.#agent.request(method, requestPath, body, timeoutMs);
    if (answer.status === undefined) throw new Error(`${this.name}: ${method} ${requestPath} got no answer: ${answer.error ?? "unknown error"}`);
    return { status: answer.status, body: answer.body, elapsedMs: answer.elapsedMs };
  }

  async clusterView(): Promise<ClusterView> {
    const result = await this.http("GET", "/hearth/v1/cluster", undefined, 5_000);
    if (result.status !== 200) throw new Error(`${this.name}: GET /hearth/v1/cluster answered ${result.status}: ${JSON.stringify(result.body).slice(0, 500)}`);
    const view = result.body as ClusterView;
    if (typeof view.local?.nodeId === "string") this.#nodeId = view.local.nodeId;
    return view;
  }

  /** Runs the hearth CLI inside this node's namespace. */
  cli(args: readonly string[], timeoutMs = 30_000): Promise<CommandResult> {
    return this.host.exec(process.execPath, [CLI_PATH, ...args], { env: nodeEnv(this.home), timeoutMs });
  }

  /** Every line the daemon printed, over all its starts. */
  output(): string {
    return this.#lines.join("\n");
  }

  logLines(): LogLine[] {
    return this.#lines.map((line) => {
      try {
        const parsed = JSON.parse(line) as unknown;
        return typeof parsed === "object" && parsed !== null ? (parsed as LogLine) : { msg: line };
      } catch {
        return { msg: line };
      }
    });
  }

  /** The last log lines, shortened to what explains a failure. */
  logTail(count = 15): string {
    return this.logLines()
      .slice(-count)
      .map((line) => {
        const { level, msg, time: _time, pid: _pid, hostname: _hostname, ...rest } = line;
        const fields = JSON.stringify(rest);
        return `  [${this.name}${level === undefined ? "" : ` ${level}`}] ${msg ?? ""} ${fields === "{}" ? "" : fields.slice(0, 400)}`;
      })
      .join("\n");
  }

  /** User + system CPU time the daemon process has used, in ms (all its threads). */
  cpuTimeMs(): number {
    const pid = this.process?.pid;
    if (pid === undefined) throw new Error(`${this.name} was never started`);
    return processCpuTimeMs(pid);
  }

  /** Byte and packet counters of the node's eth0, as its namespace sees them. */
  netDev(): { rxBytes: number; rxPackets: number; txBytes: number; txPackets: number } {
    const text = fs.readFileSync(`/proc/${this.#agent.child.pid!}/net/dev`, "utf8");
    const line = text.split("\n").find((entry) => entry.trim().startsWith(`${this.host.interfaceName}:`));
    if (line === undefined) throw new Error(`${this.name}: no ${this.host.interfaceName} in /proc/net/dev`);
    const numbers = line.slice(line.indexOf(":") + 1).trim().split(/\s+/).map(Number);
    return { rxBytes: numbers[0]!, rxPackets: numbers[1]!, txBytes: numbers[8]!, txPackets: numbers[9]! };
  }

  /** @internal */
  closeAgent(): void {
    this.#agent.close();
  }
}

// ---- the cluster -------------------------------------------------------------------------------

export interface ClusterNetOptions {
  /** A node count (all in one cluster), or one spec per node. */
  nodes: number | ClusterNodeSpec[];
  /** Namespace prefix (netns.ts); default "hcl". */
  prefix?: string;
}

export interface WaitOptions {
  timeoutMs: number;
  pollMs?: number;
  /** What is awaited, for the failure message. */
  what: string;
}

export class ClusterNet {
  readonly network: TestNetwork;
  readonly nodes: readonly ClusterNode[];
  readonly baseDir: string;
  #destroyed = false;

  private constructor(network: TestNetwork, nodes: ClusterNode[], baseDir: string) {
    this.network = network;
    this.nodes = nodes;
    this.baseDir = baseDir;
  }

  static async create(options: ClusterNetOptions): Promise<ClusterNet> {
    if (!fs.existsSync(CLI_PATH)) throw new Error(`${CLI_PATH} is missing; run \`npx tsc -p tsconfig.json\` first.`);
    if (!fs.existsSync(clusterFixture("cluster-agent.js"))) throw new Error("dist/test/cluster/fixtures/cluster-agent.js is missing; run `npx tsc -p tsconfig.json` first.");
    const specs = typeof options.nodes === "number" ? Array.from({ length: options.nodes }, () => ({})) : options.nodes;
    const modelPath = await ensureTinyModel();
    const network = await createTestNetwork({ nodes: specs.length, prefix: options.prefix ?? "hcl" });
    const baseDir = fs.mkdtempSync(path.join(os.tmpdir(), `hearth-cluster-${network.runId}-`));
    const nodes = specs.map((spec, i) => {
      const home = path.join(baseDir, `n${i + 1}`);
      fs.mkdirSync(home, { recursive: true });
      return new ClusterNode(i + 1, network.node(i + 1), home, spec);
    });
    const net = new ClusterNet(network, nodes, baseDir);
    try {
      await Promise.all(nodes.map((node) => node.prepare(modelPath)));
      const groups = new Map<string, ClusterNode[]>();
      for (const node of nodes) {
        if (node.clusterName === null) continue;
        groups.set(node.clusterName, [...(groups.get(node.clusterName) ?? []), node]);
      }
      await Promise.all(
        [...groups.values()].map(async ([first, ...rest]) => {
          const token = await first!.initCluster();
          await Promise.all(rest.map((node) => node.joinCluster(token)));
        }),
      );
    } catch (error) {
      await net.destroy().catch(() => undefined);
      throw error;
    }
    return net;
  }

  node(index: number): ClusterNode {
    const node = this.nodes[index - 1];
    if (node === undefined) throw new RangeError(`no node ${index}; this cluster has nodes 1..${this.nodes.length}`);
    return node;
  }

  /** Starts the daemons at the same moment and waits until all are healthy. */
  async startAll(nodes: readonly ClusterNode[] = this.nodes, options: StartOptions = {}): Promise<void> {
    for (const node of nodes) node.spawnDaemon(options);
    await Promise.all(nodes.map((node) => node.waitHealthy()));
  }

  /** One round of views from `nodes`, fetched concurrently. */
  views(nodes: readonly ClusterNode[]): Promise<ClusterView[]> {
    return Promise.all(nodes.map((node) => node.clusterView()));
  }

  /**
   * Polls the views of `nodes` until `predicate` holds for one round; resolves with that round
   * and the time since `since` (default: the call). Throws with every node's table and log
   * tail on timeout.
   */
  async waitFor(
    nodes: readonly ClusterNode[],
    predicate: (views: ClusterView[]) => boolean,
    options: WaitOptions & { since?: number },
  ): Promise<{ views: ClusterView[]; elapsedMs: number }> {
    const since = options.since ?? performance.now();
    const deadline = since + options.timeoutMs;
    let last: ClusterView[] | undefined;
    let lastError: unknown;
    for (;;) {
      try {
        last = await this.views(nodes);
        lastError = undefined;
        if (predicate(last)) return { views: last, elapsedMs: performance.now() - since };
      } catch (error) {
        lastError = error;
      }
      if (performance.now() >= deadline) break;
      await sleep(options.pollMs ?? DEFAULT_POLL_MS);
    }
    const tables = nodes.map((node, i) => `  ${node.name}: ${describeView(last?.[i])}`).join("\n");
    const problem = lastError === undefined ? "" : `\nlast poll failed: ${lastError instanceof Error ? lastError.message : JSON.stringify(lastError)}`;
    throw new Error(`timed out after ${options.timeoutMs} ms waiting for ${options.what}\npeer tables:\n${tables}${problem}\nlogs:\n${this.logTails()}`);
  }

  /**
   * Polls each node until `predicate` holds for its own view, and resolves with the time
   * (since `since`) at which each node was first seen to satisfy it, in the order of `nodes`.
   * Unlike waitFor, the nodes need not all satisfy it in the same round.
   */
  async waitForEach(
    nodes: readonly ClusterNode[],
    predicate: (view: ClusterView, node: ClusterNode) => boolean,
    options: WaitOptions & { since?: number },
  ): Promise<number[]> {
    const since = options.since ?? performance.now();
    const deadline = since + options.timeoutMs;
    const firstSeen: (number | undefined)[] = nodes.map(() => undefined);
    const last: (ClusterView | undefined)[] = nodes.map(() => undefined);
    for (;;) {
      await Promise.all(
        nodes.map(async (node, i) => {
          if (firstSeen[i] !== undefined) return;
          try {
            const view = await node.clusterView();
            last[i] = view;
            if (predicate(view, node)) firstSeen[i] = performance.now() - since;
          } catch {
            // A failed poll is retried next round; a daemon that stays away times out.
          }
        }),
      );
      const met = firstSeen.filter((entry): entry is number => entry !== undefined);
      if (met.length === nodes.length) return met;
      if (performance.now() >= deadline) break;
      await sleep(options.pollMs ?? DEFAULT_POLL_MS);
    }
    const tables = nodes.map((node, i) => `  ${node.name}: ${firstSeen[i] === undefined ? "NOT MET" : `met after ${Math.round(firstSeen[i])} ms`}; ${describeView(last[i])}`).join("\n");
    throw new Error(`timed out after ${options.timeoutMs} ms waiting for ${options.what}\npeer tables:\n${tables}\nlogs:\n${this.logTails()}`);
  }

  /**
   * Polls the views of `nodes` in the background until stopped, handing each to `onView`;
   * for properties that must hold the whole time ("never up"). stop() resolves with the number
   * of views taken.
   */
  watch(nodes: readonly ClusterNode[], onView: (view: ClusterView, node: ClusterNode) => void, pollMs = DEFAULT_POLL_MS): { stop(): Promise<number> } {
    let running = true;
    let views = 0;
    const loop = (async () => {
      while (running) {
        await Promise.all(
          nodes.map(async (node) => {
            if (!node.running) return;
            try {
              onView(await node.clusterView(), node);
              views++;
            } catch {
              // Not answering right now (starting, stopping): nothing to check.
            }
          }),
        );
        await sleep(pollMs);
      }
    })();
    return {
      stop: async () => {
        running = false;
        await loop;
        return views;
      },
    };
  }

  /** Resolves when every node of `nodes` sees every other one as up; elapsed since `since`. */
  async waitForMesh(nodes: readonly ClusterNode[], options: Omit<WaitOptions, "what"> & { since?: number; what?: string }): Promise<{ views: ClusterView[]; elapsedMs: number }> {
    return this.waitFor(nodes, (views) => isMesh(views), { ...options, what: options.what ?? `${nodes.map((node) => node.name).join(", ")} to see each other up` });
  }

  logTails(count = 12): string {
    return this.nodes.map((node) => node.logTail(count)).join("\n");
  }

  async destroy(): Promise<void> {
    if (this.#destroyed) return;
    this.#destroyed = true;
    for (const node of this.nodes) node.closeAgent();
    try {
      await this.network.destroy();
    } finally {
      if (process.env.HEARTH_KEEP_CLUSTER_DIRS === undefined) fs.rmSync(this.baseDir, { recursive: true, force: true });
    }
  }
}

/** Every view's node sees every other view's node up. */
export function isMesh(views: readonly ClusterView[]): boolean {
  return views.every((view) => views.every((other) => other === view || seesUp(view, other.local.nodeId)));
}

export async function withClusterNet<T>(options: ClusterNetOptions, body: (net: ClusterNet) => Promise<T>): Promise<T> {
  const net = await ClusterNet.create(options);
  try {
    return await body(net);
  } finally {
    await net.destroy();
  }
}

// ---- small helpers ---------------------------------------------------------------------------

/** Keeps each node's config and data out of the user's home. */
function nodeEnv(home: string): NodeJS.ProcessEnv {
  return { ...process.env, XDG_CONFIG_HOME: path.join(home, "xdg-config"), XDG_DATA_HOME: path.join(home, "xdg-data"), HEARTH_URL: `http://127.0.0.1:${HTTP_PORT}` };
}

function runHearth(args: readonly string[], home: string): Promise<CommandResult> {
  return runCli(args, { env: nodeEnv(home), timeoutMs: 30_000 });
}

function parseJsonOutput(result: CommandResult, what: string): unknown {
  if (result.code !== 0) throw new Error(`${what} exited ${String(result.code ?? result.signal)}: ${result.stderr}${result.stdout}`);
  try {
    return JSON.parse(result.stdout) as unknown;
  } catch {
    throw new Error(`${what} did not print JSON: ${result.stdout}`);
  }
}

/** User + system CPU time process `pid` has used, in ms (all its threads), from /proc. */
export function processCpuTimeMs(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name, which is in parentheses and may contain spaces.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return ((utime + stime) * 1000) / clockTicksPerSecond();
}

/**
 * CPU time process `pid` has run, in ms with ns resolution: the scheduler's own account summed
 * over its threads (/proc/PID/task/TID/schedstat), where /proc/PID/stat counts 10 ms ticks. A
 * thread that ended in between is no longer counted.
 */
export function processRunTimeMs(pid: number): number {
  let ns = 0;
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
    } catch {
      // The thread ended while we read.
    }
  }
  return ns / 1e6;
}

let clockTicks: number | undefined;
function clockTicksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

function waitForExit(child: ChildProcess, timeoutMs: number): Promise<number | string | undefined> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  if (child.signalCode !== null) return Promise.resolve(child.signalCode);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(undefined), timeoutMs);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      resolve(code ?? signal ?? -1);
    });
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
