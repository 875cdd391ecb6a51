/**
 * Tunnel round-trip latency: what a tunnelled llama.cpp RPC round trip costs over a direct TCP
 * one, and the CPU each daemon spends on it.
 *
 * llama.cpp RPC waits for one round trip per generated token, so whatever the tunnel adds to a
 * round trip is added to every token. This isolates that cost from model compute: a stand-in
 * rpc-server speaks the RPC framing (applies commands silently, answers GET_TENSOR), and a
 * client plays the runner, timing exchanges
 *   - direct: client -> stand-in over loopback TCP (what bare RPC does);
 *   - tunnel: client -> host -> peer link -> peer -> stand-in: real PeerLinkManagers, TLS
 *     WebSocket, credit-controlled PeerStreams, joinTunnel on both ends.
 * The host and peer run in their own processes like the daemons do: host and client on core 0,
 * peer and stand-in on core 1 (taskset, when there are two cores), as in the split bench.
 *
 * One exchange is one generated token of the split bench's 1b model as strace shows it: seven
 * SET_TENSOR, a GRAPH_RECOMPUTE and a GET_TENSOR, each one write (Hearth's native build sends
 * whole messages), a moment apart, then a 1416-byte answer.
 *
 * Prints median/p90 microseconds per exchange for each path, what the tunnel adds, and each
 * process's CPU per exchange. `node dist/test/bench/tunnel.js [--exchanges N]`; also
 * `npm run bench -- --only tunnel`.
 */

import { fork, spawnSync, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { pino } from "pino";
import { DEFAULT_PEER } from "../../daemon/config/defaults.js";
import { ClusterMembership } from "../../daemon/identity/ClusterMembership.js";
import { NodeIdentity } from "../../daemon/identity/NodeIdentity.js";
import { PeerLinkManager } from "../../daemon/peers/PeerLinkManager.js";
import { emptyTraffic, joinTunnel } from "../../daemon/rpc/tunnelPipe.js";
import { processCpuTimeMs } from "../support/clusterNet.js";
import { median } from "./stats.js";

const PURPOSE = "bench.echo";
const RPC_CMD_SET_TENSOR = 6;
const RPC_CMD_GET_TENSOR = 8;
const RPC_CMD_GRAPH_RECOMPUTE = 16;
/** One 1b token's requests (command, payload bytes), in order, as the runner sends them. */
const TOKEN_REQUESTS: ReadonlyArray<readonly [number, number]> = [
  [RPC_CMD_SET_TENSOR, 309],
  [RPC_CMD_SET_TENSOR, 313],
  [RPC_CMD_SET_TENSOR, 313],
  [RPC_CMD_SET_TENSOR, 1329],
  [RPC_CMD_SET_TENSOR, 309],
  [RPC_CMD_SET_TENSOR, 817],
  [RPC_CMD_SET_TENSOR, 817],
  [RPC_CMD_GRAPH_RECOMPUTE, 4],
  [RPC_CMD_GET_TENSOR, 312],
];
const REPLY_BYTES = 1_416;

type Role = "echo" | "peer" | "host";

interface Ready {
  port: number;
  token?: string;
  nodeId?: string;
}

// ---- roles (child processes) ---------------------------------------------------------------

/** A stand-in rpc-server: reads | cmd u8 | size u64 | payload |, answers GET_TENSOR like rpc-server (size, then data). */
function serveEcho(): void {
  const server = net.createServer({ noDelay: true }, (socket) => {
    let buffered = Buffer.alloc(0);
    socket.on("data", (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.byteLength >= 9) {
        const command = buffered.readUInt8(0);
        const size = Number(buffered.readBigUInt64LE(1));
        if (buffered.byteLength < 9 + size) return;
        buffered = buffered.subarray(9 + size);
        if (command !== RPC_CMD_GET_TENSOR) continue;
        const answer = Buffer.alloc(8 + REPLY_BYTES, 1);
        answer.writeBigUInt64LE(BigInt(REPLY_BYTES));
        socket.write(answer);
      }
    });
    socket.on("error", () => undefined);
  });
  server.listen(0, "127.0.0.1", () => process.send!({ port: (server.address() as net.AddressInfo).port } satisfies Ready));
}

async function startManager(dataDir: string, token: string | undefined): Promise<{ manager: PeerLinkManager; port: number; token: string; nodeId: string }> {
  const identity = await NodeIdentity.loadOrCreate(dataDir);
  const { membership } = token === undefined ? await ClusterMembership.init(dataDir) : await ClusterMembership.join(dataDir, token);
  const manager = new PeerLinkManager({
    identity,
    membership,
    config: { ...DEFAULT_PEER, host: "127.0.0.1", port: 0 },
    logger: pino({ level: "warn" }),
    softwareVersion: "0.0.0-bench",
    capabilities: ["streams"],
  });
  const { port } = await manager.start();
  return { manager, port, token: membership.joinToken(), nodeId: identity.nodeId };
}

async function servePeer(echoPort: number): Promise<void> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "hearth-bench-tunnel-peer-"));
  const { manager, port, token, nodeId } = await startManager(dataDir, undefined);
  manager.handleStream(PURPOSE, async (stream) => {
    const socket = net.connect({ host: "127.0.0.1", port: echoPort, noDelay: true });
    socket.pause();
    await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
    joinTunnel(socket, stream, emptyTraffic(), () => undefined);
  });
  process.send!({ port, token, nodeId } satisfies Ready);
}

async function serveHost(peerPort: number, peerNodeId: string, token: string): Promise<void> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "hearth-bench-tunnel-host-"));
  const { manager } = await startManager(dataDir, token);
  const up = new Promise<void>((resolve) => manager.on("up", () => resolve()));
  manager.connect({ host: "127.0.0.1", port: peerPort });
  await up;
  const server = net.createServer({ noDelay: true, pauseOnConnect: true }, (socket) => {
    manager.openStream(peerNodeId, PURPOSE, { meta: {}, timeoutMs: 10_000 }).then(
      (stream) => joinTunnel(socket, stream, emptyTraffic(), () => undefined),
      () => socket.destroy(),
    );
  });
  server.listen(0, "127.0.0.1", () => process.send!({ port: (server.address() as net.AddressInfo).port } satisfies Ready));
}

// ---- the client (parent process) -----------------------------------------------------------

interface PathResult {
  medianUs: number;
  p90Us: number;
  cpuUsPerExchange: Record<string, number>;
}

function cpuMicros(pid: number): number {
  return processCpuTimeMs(pid) * 1000;
}

async function pingPong(port: number, exchanges: number, processes: Record<string, number>): Promise<PathResult> {
  const socket = net.connect({ host: "127.0.0.1", port, noDelay: true });
  await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
  // Each request whole, as Hearth's build of the dispatcher sends it.
  const requests = TOKEN_REQUESTS.map(([command, size]) => {
    const message = Buffer.alloc(9 + size, 2);
    message.writeUInt8(command, 0);
    message.writeBigUInt64LE(BigInt(size), 1);
    return message;
  });
  let waiting: { remaining: number; resolve: () => void } | undefined;
  socket.on("data", (chunk: Buffer) => {
    if (waiting === undefined) return;
    waiting.remaining -= chunk.byteLength;
    if (waiting.remaining <= 0) waiting.resolve();
  });
  const exchange = (): Promise<void> =>
    new Promise<void>((resolve) => {
      waiting = { remaining: 8 + REPLY_BYTES, resolve };
      // Commands a moment apart, as the runner's compute thread queues them.
      const send = (index: number): void => {
        socket.write(requests[index]!);
        if (index + 1 < requests.length) setImmediate(() => send(index + 1));
      };
      send(0);
    });
  for (let index = 0; index < 200; index++) await exchange();
  const cpuBefore = Object.fromEntries(Object.entries(processes).map(([name, pid]) => [name, cpuMicros(pid)]));
  const rtts: number[] = [];
  for (let index = 0; index < exchanges; index++) {
    const started = performance.now();
    await exchange();
    rtts.push((performance.now() - started) * 1000);
  }
  const cpuUsPerExchange = Object.fromEntries(Object.entries(processes).map(([name, pid]) => [name, Math.round((cpuMicros(pid) - cpuBefore[name]!) / exchanges)]));
  socket.destroy();
  rtts.sort((a, b) => a - b);
  return { medianUs: Math.round(rtts[Math.floor(rtts.length / 2)]!), p90Us: Math.round(rtts[Math.floor(rtts.length * 0.9)]!), cpuUsPerExchange };
}

function startRole(role: Role, core: number, args: string[]): Promise<{ child: ChildProcess; ready: Ready }> {
  const self = fileURLToPath(import.meta.url);
  const pinned = spawnSync("taskset", ["--version"]).status === 0 && os.availableParallelism() >= 2;
  const child = pinned
    ? fork(self, ["--role", role, ...args], { execPath: "taskset", execArgv: ["-c", String(core), process.execPath] })
    : fork(self, ["--role", role, ...args]);
  return new Promise((resolve, reject) => {
    child.once("message", (ready) => resolve({ child, ready: ready as Ready }));
    child.once("exit", (code) => reject(new Error(`${role} exited ${String(code)} before it was ready`)));
  });
}

export async function runTunnelBench(exchanges: number): Promise<Record<string, number>> {
  const children: ChildProcess[] = [];
  try {
    const echo = await startRole("echo", 1, []);
    children.push(echo.child);
    const peer = await startRole("peer", 1, ["--echo-port", String(echo.ready.port)]);
    children.push(peer.child);
    const host = await startRole("host", 0, ["--peer-port", String(peer.ready.port), "--peer-node", peer.ready.nodeId!, "--token", peer.ready.token!]);
    children.push(host.child);
    const pids = { host: host.child.pid!, peer: peer.child.pid!, echo: echo.child.pid! };
    const paths = { direct: echo.ready.port, tunnel: host.ready.port };
    const results: Record<string, number> = {};
    // Alternate, so drift on a shared machine hits every path alike.
    const runs: Array<{ name: keyof typeof paths; result: PathResult }> = [];
    for (let round = 0; round < 3; round++) {
      for (const [name, port] of Object.entries(paths) as Array<[keyof typeof paths, number]>) runs.push({ name, result: await pingPong(port, exchanges, pids) });
    }
    for (const name of Object.keys(paths) as Array<keyof typeof paths>) {
      const mine = runs.filter((run) => run.name === name).map((run) => run.result);
      results[`${name}.us_per_exchange_median`] = median(mine.map((run) => run.medianUs));
      results[`${name}.us_per_exchange_p90`] = median(mine.map((run) => run.p90Us));
      for (const process of Object.keys(pids)) results[`${name}.cpu_us_per_exchange.${process}`] = median(mine.map((run) => run.cpuUsPerExchange[process]!));
    }
    results["tunnel.added_us"] = results["tunnel.us_per_exchange_median"]! - results["direct.us_per_exchange_median"]!;
    return results;
  } finally {
    for (const child of children) child.kill("SIGKILL");
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      role: { type: "string" },
      "echo-port": { type: "string" },
      "peer-port": { type: "string" },
      "peer-node": { type: "string" },
      token: { type: "string" },
      exchanges: { type: "string", default: "2000" },
    },
  });
  switch (values.role as Role | undefined) {
    case "echo":
      serveEcho();
      return;
    case "peer":
      await servePeer(Number(values["echo-port"]));
      return;
    case "host":
      await serveHost(Number(values["peer-port"]), values["peer-node"]!, values.token!);
      return;
    case undefined: {
      const results = await runTunnelBench(Number(values.exchanges));
      for (const [name, value] of Object.entries(results)) console.log(`  ${name.padEnd(44)} ${value}`);
      return;
    }
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
