/**
 * Multi-host tests on one machine: a switch and N hosts built from Linux network namespaces.
 *
 * createTestNetwork builds the topology of shared/design.md §4. A bridge namespace holds `br0`
 * (IGMP snooping off, so multicast floods like on a home switch) and one veth port per node;
 * each node namespace holds the other end as `eth0` with its own address on a private /24, `lo`
 * up, and a 224.0.0.0/4 route so mDNS works. Nothing is created in the root namespace and no
 * node has a route to anywhere else, so test traffic cannot leave the namespaces. IPv6 is
 * disabled in every namespace so each node has exactly one address.
 *
 * Nodes run real processes (`exec`, `spawn`, optionally pinned to a core) and can have their
 * link cut, latency added, or multicast dropped by the switch. `destroy()` kills every process
 * in every namespace and deletes the namespaces; exit and signal handlers do the same if a run
 * is interrupted, and each new network first sweeps namespaces left by runs that were killed.
 *
 * Needs root, iproute2 (`ip`, `tc`), and python3 for ping and setDelay; see netns-system.ts.
 */

import type { ChildProcess, StdioOptions } from "node:child_process";
import { spawn as spawnProcess } from "node:child_process";
import os from "node:os";
import {
  DEFAULT_NAMESPACE_PREFIX,
  PROCESS_EXIT_WAIT_MS,
  assertValidPrefix,
  bridgeNamespaceName,
  claimRunId,
  makeRunId,
  namespacePids,
  nodeNamespaceName,
  purgeNamespace,
  purgeNamespaceSync,
  registerExitCleanup,
  signalPid,
  sweepStaleNamespaces,
  waitForPidsGone,
} from "./netns-cleanup.js";
import { DelayLine } from "./netns-delayLine.js";
import { icmpPing, type PingOptions, type PingResult } from "./netns-icmpPing.js";
import {
  NetnsUnavailableError,
  assertNetnsSupport,
  requireTool,
  runChecked,
  runCommand,
  type CommandResult,
  type RunOptions,
} from "./netns-system.js";

export { NetnsCommandError, NetnsUnavailableError, assertNetnsSupport } from "./netns-system.js";
export type { NetnsUnavailableReason, CommandResult } from "./netns-system.js";
export type { PingOptions, PingResult } from "./netns-icmpPing.js";

/** Most nodes one network may have; addresses .11 upwards must fit in the /24. */
export const MAX_TEST_NODES = 200;
/** Node n gets host address NODE_HOST_OFFSET + n, so n1 is x.x.x.11. */
const NODE_HOST_OFFSET = 10;
const SUBNET_BASE = "10.231";
const NODE_INTERFACE = "eth0";
const BRIDGE = "br0";
const MULTICAST_ROUTE = "224.0.0.0/4";
// Multicast the switch drops for a node is sent here: a veth pair that goes nowhere, because
// this kernel has no tc drop action (act_gact), only mirred.
const SINK = "sink0";
const SINK_PEER = "sink1";

export interface TestNetworkOptions {
  /** Number of hosts, 1..MAX_TEST_NODES. */
  nodes: number;
  /** Namespace name prefix, 1-8 lowercase letters. Default "hth". Stale namespaces with this prefix are swept. */
  prefix?: string;
  /**
   * Third octet of the nodes' 10.231.x.0/24. Default: derived from the process id, so
   * concurrent runs differ even though their separate switches could not collide anyway.
   */
  subnet?: number;
}

export type ExecOptions = RunOptions;

export interface SpawnOptions {
  /** Pin the process to this CPU core with `taskset -c`, so throughput comparisons mean something on few cores. */
  core?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Default: all pipes. */
  stdio?: StdioOptions;
}

/** What a node needs from the network it belongs to. */
interface NetworkContext {
  readonly ip: string;
  readonly bridgeNamespace: string;
  ensureSink(): Promise<void>;
  trackProcess(child: ChildProcess): void;
  assertLive(): void;
}

/** One host: a network namespace with `eth0` on the shared switch. */
export class TestNode {
  /** 1-based: the first node is n1. */
  readonly index: number;
  readonly namespace: string;
  /** The node's only IPv4 address. */
  readonly address: string;
  readonly interfaceName = NODE_INTERFACE;

  private readonly context: NetworkContext;
  /** The veth in the bridge namespace whose peer is this node's eth0. */
  private readonly switchPort: string;
  /** The interface that is on the bridge for this node: switchPort, or the delay line's veth. */
  private bridgePort: string;
  private delayLine: DelayLine | null = null;
  private multicastBlocked = false;
  // Link changes touch shared bridge state; doing them one at a time keeps it consistent.
  private pending: Promise<unknown> = Promise.resolve();

  /** @internal Nodes are made by createTestNetwork. */
  constructor(context: NetworkContext, index: number, namespace: string, address: string) {
    this.context = context;
    this.index = index;
    this.namespace = namespace;
    this.address = address;
    this.switchPort = `v${index}`;
    this.bridgePort = this.switchPort;
  }

  /** Runs a command inside the namespace to completion. A non-zero exit is a result, not an error. */
  exec(command: string, args: readonly string[] = [], options: ExecOptions = {}): Promise<CommandResult> {
    this.context.assertLive();
    return runCommand(this.context.ip, ["netns", "exec", this.namespace, command, ...args], options);
  }

  /**
   * Starts a process inside the namespace, in its own process group, and tracks it so
   * destroy() kills it. The pid is the command's own (`ip netns exec` execs it in place).
   */
  spawn(command: string, args: readonly string[] = [], options: SpawnOptions = {}): ChildProcess {
    this.context.assertLive();
    const pin: string[] = [];
    if (options.core !== undefined) {
      const cores = os.availableParallelism();
      if (!Number.isInteger(options.core) || options.core < 0 || options.core >= cores) {
        throw new RangeError(`core must be an integer in 0..${cores - 1}, got ${options.core}.`);
      }
      pin.push(requireTool("taskset"), "-c", String(options.core));
    }
    const child = spawnProcess(this.context.ip, ["netns", "exec", this.namespace, ...pin, command, ...args], {
      detached: true,
      stdio: options.stdio ?? "pipe",
      env: options.env ?? process.env,
      ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    });
    this.context.trackProcess(child);
    return child;
  }

  /** ICMP echo from this node to `target`. */
  ping(target: string, options: PingOptions = {}): Promise<PingResult> {
    this.context.assertLive();
    return icmpPing(this.context.ip, this.namespace, target, options);
  }

  /** Pids of every process in this namespace, including ones its processes started. */
  pids(): Promise<number[]> {
    return namespacePids(this.context.ip, this.namespace);
  }

  /**
   * Signals every process in the namespace. With SIGKILL (the default) it waits until they
   * are gone. Returns the pids signalled.
   */
  async killProcesses(signal: NodeJS.Signals = "SIGKILL"): Promise<number[]> {
    const pids = await this.pids();
    for (const pid of pids) signalPid(pid, signal);
    if (signal === "SIGKILL") {
      const survivors = await waitForPidsGone(pids, PROCESS_EXIT_WAIT_MS);
      if (survivors.length > 0) throw new Error(`processes ${survivors.join(", ")} in ${this.namespace} survived SIGKILL`);
    }
    return pids;
  }

  /** Cuts the node off: `ip link set eth0 down` inside its namespace. */
  linkDown(): Promise<void> {
    return this.serially(() => this.ipIn(this.namespace, ["link", "set", NODE_INTERFACE, "down"]));
  }

  /**
   * Reconnects the node. The kernel deletes routes through a device that goes down; the
   * connected /24 comes back with the address, but the multicast route must be restored.
   */
  linkUp(): Promise<void> {
    return this.serially(async () => {
      await this.ipIn(this.namespace, ["link", "set", NODE_INTERFACE, "up"]);
      await this.ipIn(this.namespace, ["route", "replace", MULTICAST_ROUTE, "dev", NODE_INTERFACE]);
    });
  }

  /**
   * Delays every frame the node sends by `delayMs` (so round trips to it grow by that much),
   * as netem on its eth0 would; 0 removes the delay. See netns-delayLine.ts for how.
   */
  setDelay(delayMs: number): Promise<void> {
    if (!Number.isFinite(delayMs) || delayMs < 0 || delayMs > 60_000) {
      throw new RangeError(`delay must be 0..60000 ms, got ${delayMs}.`);
    }
    return this.serially(async () => {
      this.context.assertLive();
      if (this.delayLine !== null && delayMs > 0) {
        this.delayLine.setDelay(delayMs);
      } else if (this.delayLine === null && delayMs > 0) {
        await this.insertDelayLine(delayMs);
      } else if (this.delayLine !== null) {
        await this.removeDelayLine();
      }
    });
  }

  /**
   * Makes the switch drop all IPv4 multicast to and from this node, as access points with
   * multicast filtering do; unicast is untouched. mDNS then neither reaches nor leaves it.
   */
  blockMulticast(): Promise<void> {
    return this.serially(async () => {
      if (this.multicastBlocked) return;
      await this.context.ensureSink();
      await this.addMulticastFilter(this.bridgePort);
      this.multicastBlocked = true;
    });
  }

  unblockMulticast(): Promise<void> {
    return this.serially(async () => {
      if (!this.multicastBlocked) return;
      await this.removeMulticastFilter(this.bridgePort);
      this.multicastBlocked = false;
    });
  }

  private serially<T>(task: () => Promise<T>): Promise<T> {
    const run = this.pending.then(task, task);
    this.pending = run.catch(() => undefined);
    return run;
  }

  private async insertDelayLine(delayMs: number): Promise<void> {
    const nodeSide = this.switchPort;
    const lineSide = `d${this.index}a`;
    const lineBridgePort = `d${this.index}b`;
    await this.ipInBridge(["link", "add", lineSide, "type", "veth", "peer", "name", lineBridgePort]);
    await this.ipInBridge(["link", "set", lineSide, "up"]);
    if (this.multicastBlocked) await this.addMulticastFilter(lineBridgePort);
    await this.ipInBridge(["link", "set", lineBridgePort, "master", BRIDGE, "up"]);
    const line = await DelayLine.start({ ip: this.context.ip, namespace: this.context.bridgeNamespace, nodeSide, bridgeSide: lineSide, delayMs });
    this.context.trackProcess(line.child);
    this.delayLine = line;
    // Only now that the forwarder runs does the node's port leave the bridge, so the gap is
    // a few milliseconds rather than the program's start-up time.
    await this.ipInBridge(["link", "set", nodeSide, "nomaster"]);
    if (this.multicastBlocked) await this.removeMulticastFilter(nodeSide);
    this.bridgePort = lineBridgePort;
  }

  private async removeDelayLine(): Promise<void> {
    const line = this.delayLine!;
    if (this.multicastBlocked) await this.addMulticastFilter(this.switchPort);
    await this.ipInBridge(["link", "set", this.switchPort, "master", BRIDGE]);
    await line.stop();
    this.delayLine = null;
    // Deleting one end of a veth pair deletes both, taking the temporary port off the bridge.
    await this.ipInBridge(["link", "del", `d${this.index}a`]);
    this.bridgePort = this.switchPort;
  }

  // clsact gives ingress (frames from the node) and egress (frames to it) hooks on the port;
  // u32 matches the IPv4 destination, and mirred sends matches into the sink instead of on.
  private async addMulticastFilter(port: string): Promise<void> {
    const tc = requireTool("tc");
    const inBridge = ["netns", "exec", this.context.bridgeNamespace, tc];
    await runChecked(this.context.ip, [...inBridge, "qdisc", "replace", "dev", port, "clsact"]);
    for (const direction of ["ingress", "egress"]) {
      await runChecked(this.context.ip, [
        ...inBridge,
        ...["filter", "add", "dev", port, direction, "protocol", "ip", "u32", "match", "ip", "dst", MULTICAST_ROUTE],
        ...["action", "mirred", "egress", "redirect", "dev", SINK],
      ]);
    }
  }

  private async removeMulticastFilter(port: string): Promise<void> {
    const tc = requireTool("tc");
    await runChecked(this.context.ip, ["netns", "exec", this.context.bridgeNamespace, tc, "qdisc", "del", "dev", port, "clsact"]);
  }

  private async ipIn(namespace: string, args: readonly string[]): Promise<void> {
    await runChecked(this.context.ip, ["-n", namespace, ...args]);
  }

  private ipInBridge(args: readonly string[]): Promise<void> {
    return this.ipIn(this.context.bridgeNamespace, args);
  }
}

/** Thrown by destroy() when something survived teardown; everything else was still removed. */
export class NetnsLeakError extends Error {
  override readonly name = "NetnsLeakError";
}

let runSequence = 0;

export class TestNetwork {
  readonly runId: string;
  /** The nodes' shared /24, e.g. 10.231.57.0/24. */
  readonly subnet: string;
  readonly bridgeNamespace: string;
  readonly nodes: readonly TestNode[];

  private readonly ip: string;
  private readonly children = new Set<ChildProcess>();
  private sinkReady: Promise<void> | null = null;
  private destroyed = false;
  private destroying: Promise<void> | null = null;
  private readonly unregisterExitCleanup: () => void;

  private constructor(ip: string, runId: string, subnetOctet: number, nodeCount: number) {
    this.ip = ip;
    this.runId = runId;
    this.subnet = `${SUBNET_BASE}.${subnetOctet}.0/24`;
    this.bridgeNamespace = bridgeNamespaceName(runId);
    const context: NetworkContext = {
      ip,
      bridgeNamespace: this.bridgeNamespace,
      ensureSink: () => this.ensureSink(),
      trackProcess: (child) => this.trackProcess(child),
      assertLive: () => this.assertLive(),
    };
    this.nodes = Array.from({ length: nodeCount }, (_, i) => {
      const index = i + 1;
      return new TestNode(context, index, nodeNamespaceName(runId, index), `${SUBNET_BASE}.${subnetOctet}.${NODE_HOST_OFFSET + index}`);
    });
    this.unregisterExitCleanup = registerExitCleanup({ destroySync: () => this.destroySync() });
  }

  /** @internal Use createTestNetwork. */
  static async create(options: TestNetworkOptions): Promise<TestNetwork> {
    const prefix = options.prefix ?? DEFAULT_NAMESPACE_PREFIX;
    assertValidPrefix(prefix);
    if (!Number.isInteger(options.nodes) || options.nodes < 1 || options.nodes > MAX_TEST_NODES) {
      throw new RangeError(`nodes must be an integer in 1..${MAX_TEST_NODES}, got ${options.nodes}.`);
    }
    const sequence = runSequence++;
    const subnetOctet = options.subnet ?? ((process.pid + sequence) % 254) + 1;
    if (!Number.isInteger(subnetOctet) || subnetOctet < 0 || subnetOctet > 255) {
      throw new RangeError(`subnet must be an integer in 0..255, got ${subnetOctet}.`);
    }
    assertNetnsSupport();
    const ip = requireTool("ip");
    await sweepStaleNamespaces(ip, prefix);
    const runId = makeRunId(prefix, process.pid, sequence);
    claimRunId(runId);
    const network = new TestNetwork(ip, runId, subnetOctet, options.nodes);
    try {
      await network.build();
    } catch (error) {
      await network.destroy().catch(() => undefined);
      throw error;
    }
    return network;
  }

  /** Every namespace of this network: the nodes' and the bridge's. */
  get namespaces(): string[] {
    return [...this.nodes.map((node) => node.namespace), this.bridgeNamespace];
  }

  /** The node with this 1-based index. */
  node(index: number): TestNode {
    const node = this.nodes[index - 1];
    if (node === undefined) throw new RangeError(`no node ${index}; this network has nodes 1..${this.nodes.length}.`);
    return node;
  }

  /**
   * Kills every process in every namespace (tracked or not), deletes the namespaces and with
   * them every interface. Safe to call more than once. Rejects with NetnsLeakError if a
   * process survived, after removing everything else.
   */
  destroy(): Promise<void> {
    this.destroying ??= this.teardown();
    return this.destroying;
  }

  private async build(): Promise<void> {
    await this.addNamespace(this.bridgeNamespace);
    await this.ipIn(this.bridgeNamespace, ["link", "add", BRIDGE, "type", "bridge", "mcast_snooping", "0"]);
    await this.ipIn(this.bridgeNamespace, ["link", "set", BRIDGE, "up"]);
    await Promise.all(this.nodes.map((node) => this.buildNode(node)));
  }

  private async buildNode(node: TestNode): Promise<void> {
    const port = `v${node.index}`;
    await this.addNamespace(node.namespace);
    // Created from inside the bridge namespace with the peer placed straight into the node's,
    // so neither end ever exists in the root namespace.
    await this.ipIn(this.bridgeNamespace, ["link", "add", port, "type", "veth", "peer", "name", NODE_INTERFACE, "netns", node.namespace]);
    await this.ipIn(this.bridgeNamespace, ["link", "set", port, "master", BRIDGE, "up"]);
    await this.ipIn(node.namespace, ["addr", "add", `${node.address}/24`, "dev", NODE_INTERFACE]);
    await this.ipIn(node.namespace, ["link", "set", "lo", "up"]);
    await this.ipIn(node.namespace, ["link", "set", NODE_INTERFACE, "up"]);
    // Without a multicast route, sends to 224.0.0.251 fail and mDNS silently sees nothing.
    await this.ipIn(node.namespace, ["route", "add", MULTICAST_ROUTE, "dev", NODE_INTERFACE]);
  }

  private async addNamespace(namespace: string): Promise<void> {
    const result = await runCommand(this.ip, ["netns", "add", namespace]);
    if (result.code !== 0) {
      throw new NetnsUnavailableError("netns-failed", `\`ip netns add ${namespace}\` failed: ${result.stderr.trim()}. Creating network namespaces needs CAP_SYS_ADMIN and a writable /run/netns.`);
    }
    // Set before any interface exists so none gets an IPv6 link-local address: one address
    // per node keeps discovery results unambiguous and keeps IPv6 multicast out of the way.
    const disableIpv6 = "[ ! -d /proc/sys/net/ipv6 ] || { echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6 && echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; }";
    await runChecked(this.ip, ["netns", "exec", namespace, requireTool("sh"), "-c", disableIpv6]);
  }

  private ensureSink(): Promise<void> {
    this.sinkReady ??= (async () => {
      await this.ipIn(this.bridgeNamespace, ["link", "add", SINK, "type", "veth", "peer", "name", SINK_PEER]);
      await this.ipIn(this.bridgeNamespace, ["link", "set", SINK, "up"]);
      await this.ipIn(this.bridgeNamespace, ["link", "set", SINK_PEER, "up"]);
    })();
    return this.sinkReady;
  }

  private trackProcess(child: ChildProcess): void {
    this.children.add(child);
    child.once("exit", () => this.children.delete(child));
  }

  private assertLive(): void {
    if (this.destroyed) throw new Error(`test network ${this.runId} has been destroyed`);
  }

  private async ipIn(namespace: string, args: readonly string[]): Promise<void> {
    await runChecked(this.ip, ["-n", namespace, ...args]);
  }

  private async teardown(): Promise<void> {
    this.destroyed = true;
    const tracked = [...this.children];
    // Whole process groups first: that also reaches children a process started outside the
    // namespace's view, such as ones that already left it.
    for (const child of tracked) if (child.pid !== undefined) signalPid(-child.pid, "SIGKILL");
    const survivors = (await Promise.all(this.namespaces.map((namespace) => purgeNamespace(this.ip, namespace)))).flat();
    await Promise.all(tracked.map((child) => waitForExit(child, PROCESS_EXIT_WAIT_MS)));
    const trackedAlive = tracked.filter((child) => child.exitCode === null && child.signalCode === null).map((child) => child.pid);
    this.unregisterExitCleanup();
    if (survivors.length > 0 || trackedAlive.length > 0) {
      throw new NetnsLeakError(`test network ${this.runId}: processes survived teardown: ${[...survivors, ...trackedAlive].join(", ")}`);
    }
  }

  private destroySync(): void {
    this.destroyed = true;
    for (const child of this.children) if (child.pid !== undefined) signalPid(-child.pid, "SIGKILL");
    for (const namespace of this.namespaces) purgeNamespaceSync(this.ip, namespace);
  }
}

function waitForExit(child: ChildProcess, timeoutMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/**
 * Builds a network of `nodes` hosts on one switch. Throws NetnsUnavailableError when this
 * machine cannot (not root, no iproute2, namespaces not permitted).
 */
export function createTestNetwork(options: TestNetworkOptions): Promise<TestNetwork> {
  return TestNetwork.create(options);
}

/** Runs `body` with a fresh network and destroys it afterwards, whether `body` succeeds or throws. */
export async function withTestNetwork<T>(options: TestNetworkOptions, body: (network: TestNetwork) => Promise<T>): Promise<T> {
  const network = await createTestNetwork(options);
  try {
    return await body(network);
  } finally {
    await network.destroy();
  }
}

/**
 * Removes namespaces with this prefix left by runs whose process is gone (and kills whatever
 * still runs in them). createTestNetwork does this itself; exported for tests and tooling.
 */
export function sweepStaleTestNetworks(prefix: string = DEFAULT_NAMESPACE_PREFIX): Promise<string[]> {
  assertNetnsSupport();
  return sweepStaleNamespaces(requireTool("ip"), prefix);
}
