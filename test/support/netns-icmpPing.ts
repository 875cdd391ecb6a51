/**
 * ICMP echo ("ping") from inside a namespace.
 *
 * This machine image has no `ping` binary and Node cannot open raw sockets, but it always has
 * python3, which can (we are root). The probe is a short Python program run inside the node's
 * namespace; it sends real ICMP echo requests and times the replies.
 */

import net from "node:net";
import { requirePython, runChecked } from "./netns-system.js";

export interface PingOptions {
  /** Echo requests to send. Default 3. */
  count?: number;
  /** Pause between requests. Default 50 ms. */
  intervalMs?: number;
  /** How long to wait for each reply before counting it lost. Default 1000 ms. */
  timeoutMs?: number;
}

export interface PingResult {
  target: string;
  /** Round-trip time of each request in order; null where no reply came in time. */
  rttsMs: (number | null)[];
  received: number;
  /** Median of the replies that came back; null when none did. */
  medianMs: number | null;
}

const DEFAULT_PING_COUNT = 3;
const DEFAULT_PING_INTERVAL_MS = 50;
const DEFAULT_PING_TIMEOUT_MS = 1_000;
const MAX_PING_COUNT = 100;

// Raw ICMP sockets see every ICMP packet in the namespace, so replies are matched on the
// identifier (our pid), sequence number and source address.
const PING_PROGRAM = String.raw`
import json, os, select, socket, struct, sys, time

def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF

target, count, interval, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
ident = os.getpid() & 0xFFFF
rtts = []
for seq in range(1, count + 1):
    payload = b"hearth-netns-ping"
    header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    packet = struct.pack("!BBHHH", 8, 0, checksum(header + payload), ident, seq) + payload
    sent = time.monotonic()
    sock.sendto(packet, (target, 0))
    rtt = None
    while rtt is None:
        left = sent + timeout - time.monotonic()
        if left <= 0 or not select.select([sock], [], [], left)[0]:
            break
        data, source = sock.recvfrom(2048)
        offset = (data[0] & 0x0F) * 4
        kind, _, _, reply_ident, reply_seq = struct.unpack("!BBHHH", data[offset:offset + 8])
        if kind == 0 and reply_ident == ident and reply_seq == seq and source[0] == target:
            rtt = (time.monotonic() - sent) * 1000.0
    rtts.append(rtt)
    if seq < count:
        time.sleep(interval)
print(json.dumps(rtts))
`;

/** Pings `target` (an IPv4 address) from inside `namespace`. */
export async function icmpPing(ip: string, namespace: string, target: string, options: PingOptions = {}): Promise<PingResult> {
  if (!net.isIPv4(target)) throw new RangeError(`ping target must be an IPv4 address, got ${JSON.stringify(target)}.`);
  const count = options.count ?? DEFAULT_PING_COUNT;
  if (!Number.isInteger(count) || count < 1 || count > MAX_PING_COUNT) {
    throw new RangeError(`ping count must be an integer in 1..${MAX_PING_COUNT}, got ${count}.`);
  }
  const intervalMs = options.intervalMs ?? DEFAULT_PING_INTERVAL_MS;
  const timeoutMs = options.timeoutMs ?? DEFAULT_PING_TIMEOUT_MS;
  const python = requirePython();
  const args = ["netns", "exec", namespace, python, "-c", PING_PROGRAM, target, String(count), String(intervalMs / 1000), String(timeoutMs / 1000)];
  const stdout = await runChecked(ip, args, { timeoutMs: count * (intervalMs + timeoutMs) + 10_000 });
  const rttsMs = JSON.parse(stdout) as (number | null)[];
  const replies = rttsMs.filter((rtt): rtt is number => rtt !== null).sort((a, b) => a - b);
  return { target, rttsMs, received: replies.length, medianMs: median(replies) };
}

function median(sorted: readonly number[]): number | null {
  if (sorted.length === 0) return null;
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}
