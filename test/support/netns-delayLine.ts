/**
 * Link latency for one node, without netem.
 *
 * The usual tool, `tc qdisc ... netem delay`, is not available here: this machine's kernel is
 * built without sch_netem (CONFIG_NET_SCH_NETEM is not set) and has no loadable modules. So
 * latency is added in user space instead: the node's bridge port is taken off the bridge and a
 * small Python program forwards Ethernet frames between it and a fresh veth that takes its
 * place on the bridge, holding every frame that comes from the node for the configured time
 * (the same effect as netem on the node's eth0: its round trips grow by that much).
 *
 * The program reads new delays from stdin, one number of milliseconds per line, so the delay
 * can change without dropping the link, and exits when stdin closes, so it cannot outlive the
 * test process even when that is SIGKILLed.
 */

import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { spawn } from "node:child_process";
import { requirePython } from "./netns-system.js";

/** Frames held at once before new ones are dropped, like netem's default limit of 1000 packets but roomier for GSO bursts. */
export const DELAY_LINE_QUEUE_LIMIT = 10_000;
const DELAY_LINE_START_TIMEOUT_MS = 10_000;

const DELAY_LINE_PROGRAM = String.raw`
import collections, os, select, socket, sys, time

SOL_PACKET, PACKET_VNET_HDR, PACKET_IGNORE_OUTGOING, ETH_P_ALL = 263, 15, 23, 3
node_side, bridge_side = sys.argv[1], sys.argv[2]
delay = float(sys.argv[3]) / 1000.0
queue_limit = int(sys.argv[4])

def open_tap(name):
    tap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    # The virtio-net header travels with each frame and carries its checksum-offload and GSO
    # state; without it, frames the kernel left unchecksummed or unsegmented arrive corrupt.
    tap.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
    # Only frames arriving on the interface are input; frames leaving it are our own output.
    tap.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    tap.bind((name, 0))
    tap.setblocking(False)
    return tap

from_node = open_tap(node_side)
from_bridge = open_tap(bridge_side)
held = collections.deque()
control = b""
print("ready", flush=True)

def drain(tap):
    frames = []
    while True:
        try:
            frames.append(tap.recv(70000))
        except BlockingIOError:
            return frames
        except OSError:
            # ENETDOWN while the node's link is down; the socket works again once it is up.
            return frames

def send(tap, frame):
    try:
        tap.send(frame)
    except OSError:
        # A down link drops frames, as a cable would.
        pass

while True:
    timeout = max(0.0, held[0][0] - time.monotonic()) if held else None
    readable = select.select([from_node, from_bridge, 0], [], [], timeout)[0]
    if 0 in readable:
        chunk = os.read(0, 4096)
        if not chunk:
            sys.exit(0)
        control += chunk
        *lines, control = control.split(b"\n")
        if lines:
            delay = float(lines[-1]) / 1000.0
    if from_node in readable:
        due = time.monotonic() + delay
        for frame in drain(from_node):
            if len(held) < queue_limit:
                held.append((due, frame))
    if from_bridge in readable:
        for frame in drain(from_bridge):
            send(from_node, frame)
    now = time.monotonic()
    while held and held[0][0] <= now:
        send(from_bridge, held.popleft()[1])
`;

export interface DelayLineOptions {
  ip: string;
  /** Namespace holding both interfaces (the harness's bridge namespace). */
  namespace: string;
  /** The veth whose other end is the node's eth0. */
  nodeSide: string;
  /** The veth whose other end is on the bridge. */
  bridgeSide: string;
  delayMs: number;
}

export class DelayLine {
  readonly child: ChildProcessWithoutNullStreams;

  private constructor(child: ChildProcessWithoutNullStreams) {
    this.child = child;
  }

  /** Starts the forwarder and resolves once it has opened both interfaces. */
  static start(options: DelayLineOptions): Promise<DelayLine> {
    const python = requirePython();
    const args = ["netns", "exec", options.namespace, python, "-u", "-c", DELAY_LINE_PROGRAM];
    args.push(options.nodeSide, options.bridgeSide, String(options.delayMs), String(DELAY_LINE_QUEUE_LIMIT));
    const child = spawn(options.ip, args, { stdio: ["pipe", "pipe", "pipe"], detached: true });
    return new Promise((resolve, reject) => {
      let stdout = "";
      let stderr = "";
      let settled = false;
      const fail = (why: string): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        child.kill("SIGKILL");
        reject(new Error(`delay line for ${options.nodeSide} did not start: ${why}${stderr ? `: ${stderr.trim()}` : ""}`));
      };
      const timer = setTimeout(() => fail("timed out"), DELAY_LINE_START_TIMEOUT_MS);
      child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
      child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
        stdout += chunk;
        if (!settled && stdout.includes("ready\n")) {
          settled = true;
          clearTimeout(timer);
          resolve(new DelayLine(child));
        }
      });
      child.once("error", (error) => fail(error.message));
      child.once("exit", (code, signal) => fail(`exited with ${signal ?? String(code)}`));
      child.stdin.on("error", () => {});
    });
  }

  setDelay(delayMs: number): void {
    this.child.stdin.write(`${delayMs}\n`);
  }

  /** Stops forwarding: closing stdin ends the program; the kill covers a wedged one. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once("exit", () => resolve()));
    this.child.stdin.end();
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 2_000);
    await exited;
    clearTimeout(timer);
  }
}
