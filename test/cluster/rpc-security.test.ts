/**
 * The rpc-server a daemon runs for a host is reachable only through the authenticated peer
 * link, from a second host on a real network (namespaces):
 *   n1  the target daemon (cluster member)
 *   n2  another host with no daemon: fixtures/rpc-tunnelClient.ts holds the join token, like a
 *       member, and also tries a wrong secret; fixtures/tcp-probe.ts knocks on ports.
 * Proves:
 *   - a member's `rpc.tunnel` reaches the worker (RPC HELLO answers 7.0.0 through the link);
 *   - that worker's port is unreachable from n2, and even on n1 it answers on 127.0.0.1 only;
 *   - the worker stops when the link of the host it serves goes down;
 *   - a node with the wrong cluster secret is refused (4401) before any stream can be opened;
 *   - stream frames for an id never opened are answered HEARTH_PEER_UNKNOWN_STREAM and leave
 *     the real tunnel working; a flood of them closes the link (4404); the daemon stays up.
 */

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClusterNet, clusterFixture, PEER_PORT, type ClusterNode } from "../support/clusterNet.js";

interface TunnelClientResult {
  event: "done" | "failed";
  error?: string;
  wrongSecret: { linked: boolean; closeCode?: number | null };
  member: { linked: boolean; streamId: number; hello: string | undefined };
  unknownStream: { streamId: number; resets: { streamId: number; code: string }[]; linkUp: boolean; tunnelStillWorks: boolean };
  flood: { frames: number; close: number | "stillOpen" };
}

interface ProbeResult {
  ok: boolean;
  connected?: boolean;
  error?: string;
}

let net: ClusterNet;
let target: ClusterNode;
let outsider: ClusterNode;
let result: TunnelClientResult;
let workerPort: number;

async function probe(from: ClusterNode, host: string, port: number): Promise<ProbeResult> {
  const run = await from.host.exec(process.execPath, [clusterFixture("tcp-probe.js"), host, String(port), "3000", "0"], { timeoutMs: 10_000 });
  return JSON.parse(run.stdout.trim().split("\n").pop() ?? "{}") as ProbeResult;
}

let afterFlood: ProbeResult;
let whileUp: { remote: ProbeResult; ownLanAddress: ProbeResult; loopback: ProbeResult };

beforeAll(async () => {
  net = await ClusterNet.create({ nodes: [{}, { cluster: null, tinyModel: false }] });
  [target, outsider] = net.nodes as [ClusterNode, ClusterNode];
  await net.startAll([target]);
  const options = { host: target.address, port: PEER_PORT, token: target.membership!.joinToken };
  const child = outsider.host.spawn(process.execPath, [clusterFixture("rpc-tunnelClient.js"), JSON.stringify(options)], { stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
  const exited = new Promise<void>((resolve) => child.on("close", () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no tunnel within 60 s: ${stdout} ${stderr}`)), 60_000);
    child.stdout?.on("data", (chunk: Buffer) => {
      stdout += chunk.toString("utf8");
      if (stdout.includes('"tunnelUp"')) {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then(() => reject(new Error(`the tunnel client exited early: ${stdout} ${stderr}`)));
  });
  const started = target.logLines().find((line) => line.msg === "rpc-server worker started");
  expect(started, target.logTail(30)).toBeDefined();
  workerPort = Number((started as { port?: unknown }).port);
  whileUp = {
    remote: await probe(outsider, target.address, workerPort),
    ownLanAddress: await probe(target, target.address, workerPort),
    loopback: await probe(target, "127.0.0.1", workerPort),
  };
  child.stdin?.write("go\n");
  await exited;
  const last = stdout.trim().split("\n").pop() ?? "";
  try {
    result = JSON.parse(last) as TunnelClientResult;
  } catch {
    throw new Error(`the tunnel client printed no result: ${stdout.slice(-2_000)} ${stderr.slice(-2_000)}`);
  }
  expect(result.event, result.error).toBe("done");
  // The flood closed the client's link: its worker must be gone with it.
  for (let i = 0; i < 20 && (afterFlood === undefined || afterFlood.connected === true); i++) {
    afterFlood = await probe(target, "127.0.0.1", workerPort);
    if (afterFlood.connected === true) await new Promise((resolve) => setTimeout(resolve, 200));
  }
}, 180_000);

afterAll(async () => {
  await net?.destroy();
});

describe("rpc-server exposure", () => {
  it("a member's tunnel reaches the worker: HELLO through the peer link answers 7.0.0", () => {
    expect(result.member.linked).toBe(true);
    expect(result.member.hello).toBe("7.0.0");
    expect(workerPort).toBeGreaterThan(0);
  });

  it("the worker's port is unreachable from another host, and bound to loopback on its own", () => {
    expect(whileUp.remote.ok).toBe(false);
    expect(whileUp.remote.connected).toBe(false);
    expect(whileUp.ownLanAddress.connected).toBe(false);
    // The same port on the target's loopback accepts (the worker, busy with the tunnel's one
    // client, leaves the connection in its backlog): the probes above knocked on the right port.
    expect(whileUp.loopback.connected, JSON.stringify(whileUp.loopback)).toBe(true);
  });

  it("the worker stops when its host's link goes down", () => {
    expect(afterFlood.connected, JSON.stringify(afterFlood)).toBe(false);
    expect(target.logLines().some((line) => line.msg === "rpc-server worker stopped")).toBe(true);
  });

  it("a node with the wrong cluster secret is refused before it could open a tunnel", () => {
    expect(result.wrongSecret.linked).toBe(false);
    expect(result.wrongSecret.closeCode).toBe(4401);
  });

  it("frames for a stream never opened are reset HEARTH_PEER_UNKNOWN_STREAM; the tunnel keeps working; a flood closes the link", async () => {
    expect(result.unknownStream.resets).toEqual([{ streamId: result.unknownStream.streamId, code: "HEARTH_PEER_UNKNOWN_STREAM" }]);
    expect(result.unknownStream.linkUp).toBe(true);
    expect(result.unknownStream.tunnelStillWorks).toBe(true);
    expect(result.flood.close).toBe(4404);
    expect(target.running, target.logTail(30)).toBe(true);
    expect((await target.http("GET", "/health")).status).toBe(200);
  });
});
