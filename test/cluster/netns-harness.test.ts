/**
 * Proof that the multi-host harness (test/support/netns.ts) gives later cluster tests what they
 * rely on: separate hosts that reach each other, real mDNS between them, link cuts, latency,
 * multicast filtering, and cleanup that leaves the machine as it was, even after a failure or a
 * killed test process. Everything here is real: namespaces, processes, packets.
 */

import type { ChildProcess } from "node:child_process";
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { isProcessGone } from "../support/netns-cleanup.js";
import { requireTool } from "../support/netns-system.js";
import {
  NetnsUnavailableError,
  createTestNetwork,
  sweepStaleTestNetworks,
  withTestNetwork,
  type TestNetwork,
  type TestNode,
} from "../support/netns.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, "../..");
// Child processes run plain node, so fixtures run from their compiled form in dist/.
const fixture = (name: string): string => path.join(repoRoot, "dist/test/cluster/fixtures", name);

const SERVICE_PORT = 7411;
const DISCOVERY_TIMEOUT_MS = 10_000;
// How long discovery must stay silent to count as blocked; bonjour-service queries and
// announces within the first second, so a few seconds is several times what success takes.
const BLOCKED_WINDOW_MS = 4_000;

type JsonLine = Record<string, unknown>;

/** Reads a child's stdout as JSON lines and lets a test wait for a particular one. */
class LineReader {
  readonly lines: JsonLine[] = [];
  private stderr = "";
  private exited: string | null = null;
  private readonly waiters = new Set<{ match: (line: JsonLine) => boolean; resolve: (line: JsonLine) => void; reject: (error: Error) => void }>();

  constructor(private readonly child: ChildProcess) {
    createInterface({ input: child.stdout! }).on("line", (text) => {
      let line: JsonLine;
      try {
        line = JSON.parse(text) as JsonLine;
      } catch {
        line = { event: "text", text };
      }
      this.lines.push(line);
      for (const waiter of this.waiters) {
        if (waiter.match(line)) {
          this.waiters.delete(waiter);
          waiter.resolve(line);
        }
      }
    });
    child.stderr?.setEncoding("utf8").on("data", (chunk: string) => (this.stderr += chunk));
    child.once("exit", (code, signal) => {
      this.exited = `exited with ${signal ?? String(code)}`;
      for (const waiter of this.waiters) waiter.reject(new Error(`process ${this.exited} before the expected line; stderr: ${this.stderr}`));
      this.waiters.clear();
    });
  }

  waitFor(match: (line: JsonLine) => boolean, timeoutMs: number): Promise<JsonLine> {
    const seen = this.lines.find(match);
    if (seen) return Promise.resolve(seen);
    if (this.exited !== null) return Promise.reject(new Error(`process ${this.exited}; stderr: ${this.stderr}`));
    return new Promise((resolve, reject) => {
      const waiter = {
        match,
        resolve: (line: JsonLine) => {
          clearTimeout(timer);
          resolve(line);
        },
        reject: (error: Error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(`no matching line within ${timeoutMs} ms; saw ${JSON.stringify(this.lines)}; stderr: ${this.stderr}`));
      }, timeoutMs);
      this.waiters.add(waiter);
    });
  }
}

function startFixture(node: TestNode, name: string, args: readonly string[]): LineReader {
  return new LineReader(node.spawn(process.execPath, [fixture(name), ...args]));
}

async function startTcpServer(node: TestNode): Promise<void> {
  await startFixture(node, "tcp-server.js", [node.address, String(SERVICE_PORT)]).waitFor((line) => line.event === "listening", 10_000);
}

interface ProbeResult {
  ok: boolean;
  connectMs?: number;
  echoed?: number;
  error?: string;
}

async function tcpProbe(from: TestNode, to: TestNode, timeoutMs: number, bytes = 0): Promise<ProbeResult> {
  const result = await from.exec(process.execPath, [fixture("tcp-probe.js"), to.address, String(SERVICE_PORT), String(timeoutMs), String(bytes)], {
    timeoutMs: timeoutMs + 10_000,
  });
  return JSON.parse(result.stdout) as ProbeResult;
}

const isUpNamed = (name: string) => (line: JsonLine) => line.event === "up" && line.name === name;

/** What of the root namespace a test network must not change. */
function rootSnapshot(): { routes: string; routes6: string; links: string[] } {
  const ip = requireTool("ip");
  return {
    routes: execFileSync(ip, ["route", "show", "table", "all"], { encoding: "utf8" }),
    routes6: execFileSync(ip, ["-6", "route", "show", "table", "all"], { encoding: "utf8" }),
    links: execFileSync(ip, ["-o", "link", "show"], { encoding: "utf8" })
      .split("\n")
      .map((line) => line.split(":")[1]?.trim() ?? "")
      .filter(Boolean),
  };
}

function readProc(pid: number, file: string): string {
  try {
    return fs.readFileSync(`/proc/${pid}/${file}`, "utf8");
  } catch {
    return "";
  }
}

function namespaceList(): string[] {
  return execFileSync(requireTool("ip"), ["netns", "list"], { encoding: "utf8" })
    .split("\n")
    .map((line) => line.trim().split(/\s+/)[0] ?? "")
    .filter(Boolean);
}

function bridgePids(network: TestNetwork): number[] {
  return execFileSync(requireTool("ip"), ["netns", "pids", network.bridgeNamespace], { encoding: "utf8" })
    .split("\n")
    .map(Number)
    .filter((pid) => pid > 0);
}

async function pidsOnceStarted(node: TestNode, atLeast: number): Promise<number[]> {
  // `ip netns exec` enters the namespace a moment after spawn returns.
  for (let attempt = 0; attempt < 200; attempt++) {
    const pids = await node.pids();
    if (pids.length >= atLeast) return pids;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`fewer than ${atLeast} processes appeared in ${node.namespace}`);
}

describe("network namespace harness", () => {
  let network: TestNetwork | undefined;

  beforeAll(() => assertBuilt());

  afterEach(async () => {
    await network?.destroy();
    network = undefined;
  });

  it("gives every node its own address on one switch, lets all nodes ping each other, and leaves root routing untouched", async () => {
    // Leftovers of killed runs would vanish in createTestNetwork's sweep and spoil the comparison.
    await sweepStaleTestNetworks();
    const rootBefore = rootSnapshot();
    const namespacesBefore = namespaceList();

    network = await createTestNetwork({ nodes: 3 });
    const addresses = network.nodes.map((node) => node.address);
    expect(new Set(addresses).size).toBe(3);
    for (const node of network.nodes) {
      expect(namespaceList()).toContain(node.namespace);
      const eth0 = await node.exec("ip", ["-o", "addr", "show", "dev", "eth0"]);
      // Exactly one address, IPv4, on the shared /24: no IPv6 link-local to confuse discovery.
      expect(eth0.stdout.trim().split("\n")).toEqual([expect.stringContaining(`inet ${node.address}/24`)]);
      const routes = (await node.exec("ip", ["route"])).stdout;
      expect(routes).toContain("224.0.0.0/4 dev eth0");
      // No default route: a node cannot send anything outside the test network.
      expect(routes).not.toContain("default");
    }
    // spawn({core}) pins the process with taskset; the kernel's view of its allowed CPUs shows it.
    const lastCore = os.availableParallelism() - 1;
    const pinned = network.node(1).spawn("sleep", ["30"], { core: lastCore, stdio: "ignore" });
    await expect.poll(() => readProc(pinned.pid!, "comm").trim(), { timeout: 5_000 }).toBe("sleep");
    expect(readProc(pinned.pid!, "status")).toMatch(new RegExp(`^Cpus_allowed_list:\\s*${lastCore}$`, "m"));

    for (const from of network.nodes) {
      for (const to of network.nodes) {
        if (from === to) continue;
        const ping = await from.ping(to.address, { count: 2 });
        expect(ping.received, `${from.address} -> ${to.address}`).toBe(2);
      }
    }
    expect(rootSnapshot()).toEqual(rootBefore);

    await network.destroy();
    expect(rootSnapshot()).toEqual(rootBefore);
    expect(namespaceList()).toEqual(namespacesBefore);
  });

  it("carries real mDNS between nodes, and with multicast blocked nothing is discovered while unicast TCP still works", async () => {
    network = await createTestNetwork({ nodes: 2 });
    const [a, b] = [network.node(1), network.node(2)];
    await startTcpServer(a);
    const txt = { id: "node-a", v: "1" };
    const publisher = startFixture(a, "mdns-publish.js", ["hearth-a", "hearth", String(SERVICE_PORT), JSON.stringify(txt)]);

    const browser = startFixture(b, "mdns-browse.js", ["hearth"]);
    const seen = await browser.waitFor(isUpNamed("hearth-a"), DISCOVERY_TIMEOUT_MS);
    expect(seen).toMatchObject({ port: SERVICE_PORT, addresses: [a.address], referer: a.address, txt });
    await publisher.waitFor((line) => line.event === "up", DISCOVERY_TIMEOUT_MS);

    await b.blockMulticast();
    // Fresh processes on both sides: a new browser's queries and a new service's
    // announcements must each be lost in the switch.
    const blockedBrowser = startFixture(b, "mdns-browse.js", ["hearth"]);
    const lateService = startFixture(a, "mdns-publish.js", ["hearth-a-late", "hearth", String(SERVICE_PORT), JSON.stringify(txt)]);
    const servicesFromB = startFixture(b, "mdns-publish.js", ["hearth-b", "hearth", String(SERVICE_PORT), JSON.stringify({ id: "node-b" })]);
    const browserOnA = startFixture(a, "mdns-browse.js", ["hearth"]);
    await blockedBrowser.waitFor((line) => line.event === "browsing", 10_000);
    await lateService.waitFor((line) => line.event === "up", DISCOVERY_TIMEOUT_MS);
    await servicesFromB.waitFor((line) => line.event === "up", DISCOVERY_TIMEOUT_MS);
    await new Promise((resolve) => setTimeout(resolve, BLOCKED_WINDOW_MS));
    const ups = (reader: LineReader): JsonLine[] => reader.lines.filter((line) => line.event === "up");
    // Each browser works (it sees its own node's service, over local multicast loopback) but
    // hears nothing from the other node, in either direction.
    expect(ups(blockedBrowser).map((line) => line.name)).toEqual(["hearth-b"]);
    expect(ups(blockedBrowser).filter((line) => line.referer !== b.address)).toEqual([]);
    expect(ups(browserOnA).map((line) => line.name)).toContain("hearth-a-late");
    expect(ups(browserOnA).filter((line) => line.referer !== a.address)).toEqual([]);

    const probe = await tcpProbe(b, a, 5_000, 1024);
    expect(probe).toMatchObject({ ok: true, echoed: 1024 });

    // Control: lifting the block lets a fresh browser find A again, so the block was the cause.
    await b.unblockMulticast();
    const unblockedBrowser = startFixture(b, "mdns-browse.js", ["hearth"]);
    await unblockedBrowser.waitFor(isUpNamed("hearth-a"), DISCOVERY_TIMEOUT_MS);
  });

  it("linkDown makes TCP to the node time out, and linkUp restores it along with the multicast route", async () => {
    network = await createTestNetwork({ nodes: 2 });
    const [a, b] = [network.node(1), network.node(2)];
    await startTcpServer(a);
    expect(await tcpProbe(b, a, 5_000)).toMatchObject({ ok: true });

    await a.linkDown();
    const cut = await tcpProbe(b, a, 1_500);
    expect(cut.ok).toBe(false);
    expect(cut.error).not.toMatch(/ECONNREFUSED/);

    await a.linkUp();
    expect((await a.exec("ip", ["route"])).stdout).toContain("224.0.0.0/4 dev eth0");
    expect(await tcpProbe(b, a, 5_000)).toMatchObject({ ok: true });
  });

  it("setDelay adds that much to round trips, carries bulk TCP intact, changes live, and is removed by setDelay(0)", async () => {
    network = await createTestNetwork({ nodes: 2 });
    const [a, b] = [network.node(1), network.node(2)];
    const baseline = await b.ping(a.address, { count: 5, intervalMs: 20 });
    expect(baseline.received).toBe(5);

    await a.setDelay(20);
    const delayed = await b.ping(a.address, { count: 5, intervalMs: 20 });
    expect(delayed.received).toBe(5);
    expect(delayed.medianMs! - baseline.medianMs!).toBeGreaterThanOrEqual(15);

    // Frames cross a user-space forwarder now; 4 MiB arriving byte-complete shows that
    // checksum offload and segmentation offload survive it.
    await startTcpServer(a);
    const bulk = await tcpProbe(b, a, 10_000, 4 * 1024 * 1024);
    expect(bulk).toMatchObject({ ok: true, echoed: 4 * 1024 * 1024 });
    expect(bulk.connectMs).toBeGreaterThanOrEqual(15);

    await a.setDelay(50);
    const longer = await b.ping(a.address, { count: 3, intervalMs: 20 });
    expect(longer.medianMs).toBeGreaterThanOrEqual(45);

    // Multicast blocking follows the node's port onto the delay line and back.
    await a.blockMulticast();
    expect(await multicastReaches(a, b)).toBe(0);
    await a.setDelay(0);
    expect(await multicastReaches(a, b)).toBe(0);
    await a.unblockMulticast();
    expect(await multicastReaches(a, b)).toBeGreaterThan(0);

    const restored = await b.ping(a.address, { count: 3, intervalMs: 20 });
    expect(restored.received).toBe(3);
    expect(restored.medianMs).toBeLessThan(45);
    expect(bridgePids(network)).toEqual([]);
  });

  describe("cleanup", () => {
    it("destroy kills every process, tracked or not, and deletes every namespace when the test body throws", async () => {
      let captured: { namespaces: string[]; pids: number[] } | undefined;
      const failingTest = withTestNetwork({ nodes: 2 }, async (inner) => {
        inner.node(1).spawn("sleep", ["600"], { stdio: "ignore" });
        // Escapes the tracked process group: only the namespace knows it.
        await inner.node(2).exec("sh", ["-c", "setsid sleep 600 </dev/null >/dev/null 2>&1 &"]);
        await inner.node(1).setDelay(5);
        const pids = [...(await pidsOnceStarted(inner.node(1), 1)), ...(await pidsOnceStarted(inner.node(2), 1)), ...bridgePids(inner)];
        captured = { namespaces: inner.namespaces, pids };
        throw new Error("test body failed");
      });
      await expect(failingTest).rejects.toThrow("test body failed");

      expect(captured!.pids.length).toBeGreaterThanOrEqual(3);
      expect(namespaceList().filter((name) => captured!.namespaces.includes(name))).toEqual([]);
      expect(captured!.pids.filter((pid) => !isProcessGone(pid))).toEqual([]);
    });

    it("sweeps the namespaces and processes of a run that was killed with SIGKILL", async () => {
      const owner = spawn(process.execPath, [fixture("netns-owner.js"), "hold"], { stdio: ["ignore", "pipe", "pipe"] });
      const ready = await new LineReader(owner).waitFor((line) => line.event === "ready", 20_000);
      const { namespaces, pids } = ready as { namespaces: string[]; pids: number[] };
      owner.kill("SIGKILL");
      await new Promise((resolve) => owner.once("exit", resolve));

      // Nothing ran in the killed process, so everything it made is still there...
      expect(namespaceList()).toEqual(expect.arrayContaining(namespaces));
      expect(pids.filter((pid) => !isProcessGone(pid))).toEqual(pids);
      // A leftover that carries this very process's pid, from an earlier process that had the
      // same pid, is stale too: this process never made that run.
      const reusedPid = `hth${process.pid}r9999s`;
      execFileSync(requireTool("ip"), ["netns", "add", reusedPid]);

      // ...until the next run's sweep.
      expect(await sweepStaleTestNetworks()).toEqual(expect.arrayContaining([...namespaces, reusedPid]));
      expect(namespaceList()).not.toContain(reusedPid);
      expect(namespaceList().filter((name) => namespaces.includes(name))).toEqual([]);
      expect(pids.filter((pid) => !isProcessGone(pid))).toEqual([]);
    });

    it.each([
      { how: "gets SIGTERM", mode: "hold", signal: "SIGTERM" as const, expected: { code: null, signal: "SIGTERM" } },
      { how: "exits without calling destroy", mode: "exit", signal: null, expected: { code: 3, signal: null } },
    ])("tears its networks down when the owning process $how", async ({ mode, signal, expected }) => {
      const owner = spawn(process.execPath, [fixture("netns-owner.js"), mode], { stdio: ["ignore", "pipe", "pipe"] });
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
        owner.once("exit", (code, exitSignal) => resolve({ code, signal: exitSignal })),
      );
      const ready = await new LineReader(owner).waitFor((line) => line.event === "ready", 20_000);
      const { namespaces, pids } = ready as { namespaces: string[]; pids: number[] };
      if (signal !== null) owner.kill(signal);
      // The signal handler re-raises the signal, so the owner still dies of it as usual.
      expect(await exited).toEqual(expected);
      expect(namespaceList().filter((name) => namespaces.includes(name))).toEqual([]);
      for (const pid of pids) await expect.poll(() => isProcessGone(pid), { timeout: 5_000 }).toBe(true);
    });

    it("refuses with a NetnsUnavailableError that says what is missing", async () => {
      const nobody = spawn(process.execPath, [fixture("netns-owner.js"), "preflight"], { stdio: ["ignore", "pipe", "pipe"], uid: 65534, gid: 65534, cwd: "/" });
      const refusal = await new LineReader(nobody).waitFor((line) => line.event !== undefined, 20_000);
      expect(refusal).toMatchObject({ event: "refused", name: "NetnsUnavailableError", reason: "not-root" });
      expect(refusal.message).toMatch(/root/);

      const missing = (() => {
        try {
          requireTool("hearth-no-such-tool");
        } catch (error) {
          return error;
        }
        return undefined;
      })();
      expect(missing).toBeInstanceOf(NetnsUnavailableError);
      expect(missing).toMatchObject({ reason: "missing-tool", tool: "hearth-no-such-tool" });
    });
  });
});

/** Sends 10 multicast datagrams from `from` and counts how many `to` receives. */
async function multicastReaches(from: TestNode, to: TestNode): Promise<number> {
  const group = "239.255.42.42";
  const port = "7412";
  const receiver = startFixture(to, "udp-multicast.js", ["receive", group, port, to.address]);
  await receiver.waitFor((line) => line.event === "joined", 10_000);
  const sender = startFixture(from, "udp-multicast.js", ["send", group, port, "10", "20"]);
  await sender.waitFor((line) => line.event === "sent", 10_000);
  // Datagrams still in flight through a delay line.
  await new Promise((resolve) => setTimeout(resolve, 300));
  return receiver.lines.filter((line) => line.event === "datagram").length;
}

/** Fails with a clear message when dist/ lacks the compiled harness or fixtures, or is older than them. */
function assertBuilt(): void {
  const sources = [
    ...fs.readdirSync(path.join(repoRoot, "test/support")).filter((name) => /^netns.*\.ts$/.test(name)).map((name) => `test/support/${name}`),
    ...fs.readdirSync(path.join(here, "fixtures")).filter((name) => name.endsWith(".ts")).map((name) => `test/cluster/fixtures/${name}`),
  ];
  for (const source of sources) {
    const built = path.join(repoRoot, "dist", source.replace(/\.ts$/, ".js"));
    if (!fs.existsSync(built) || fs.statSync(built).mtimeMs < fs.statSync(path.join(repoRoot, source)).mtimeMs) {
      throw new Error(`dist/${source.replace(/\.ts$/, ".js")} is missing or older than ${source}; run \`npm run build\` first.`);
    }
  }
}
