/**
 * `hearth doctor`'s multicast check: asks the LAN for `_hearth._tcp` and lists who answers
 * within a short wait.
 *
 * It only browses (it never advertises, so peers do not mistake the doctor for a node). An
 * answer from this machine's own daemon shows that multicast works here; answers from other
 * machines show that it crosses the network. Nothing answering while a daemon runs with mDNS
 * on means multicast is blocked somewhere (Wi-Fi client isolation, a firewall, a VM or
 * container network): static `--peer host:port` entries are then the way.
 */

import Bonjour from "bonjour-service";

export interface MdnsAnswer {
  /** The instance name (a Hearth node names itself by its node id). */
  name: string;
  /** The TXT `id`, if it is there. */
  nodeId: string | null;
  port: number;
  addresses: string[];
  /** Where the answer came from. */
  from: string | null;
}

export interface MdnsProbeResult {
  /** Null when the multicast socket worked; otherwise why it did not. */
  socketError: string | null;
  waitedMs: number;
  answers: MdnsAnswer[];
}

/** Most answers kept: a home LAN has two or three nodes. */
const MAX_ANSWERS = 64;

function text(value: unknown): string | null {
  if (typeof value === "string") return value.slice(0, 128);
  if (value instanceof Uint8Array) return Buffer.from(value).toString("latin1").slice(0, 128);
  return null;
}

export async function probeMdns(waitMs: number, serviceType = "hearth"): Promise<MdnsProbeResult> {
  let socketError: string | null = null;
  const answers = new Map<string, MdnsAnswer>();
  let bonjour: Bonjour;
  try {
    bonjour = new Bonjour({}, (error: unknown) => {
      socketError ??= error instanceof Error ? error.message : String(error);
    });
  } catch (error) {
    return { socketError: error instanceof Error ? error.message : String(error), waitedMs: 0, answers: [] };
  }
  // bonjour-service does not listen for its socket's errors; an unheard one would end the process.
  const mdns = (bonjour as unknown as { server?: { mdns?: { on?: (event: string, listener: (error: unknown) => void) => void } } }).server?.mdns;
  mdns?.on?.("error", (error: unknown) => {
    socketError ??= error instanceof Error ? error.message : String(error);
  });
  const browser = bonjour.find({ type: serviceType, protocol: "tcp" }, (service) => {
    if (answers.size >= MAX_ANSWERS) return;
    const txt = (service.txt ?? {}) as Record<string, unknown>;
    answers.set(service.name, {
      name: service.name.slice(0, 128),
      nodeId: text(txt["id"]),
      port: service.port,
      addresses: (service.addresses ?? []).slice(0, 16),
      from: service.referer?.address ?? null,
    });
  });
  const started = Date.now();
  await new Promise((resolve) => setTimeout(resolve, waitMs));
  try {
    browser.stop();
  } catch {
    // Already stopped by a socket failure.
  }
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 1000);
    try {
      bonjour.destroy(() => {
        clearTimeout(timer);
        resolve();
      });
    } catch {
      clearTimeout(timer);
      resolve();
    }
  });
  return { socketError, waitedMs: Date.now() - started, answers: [...answers.values()] };
}
