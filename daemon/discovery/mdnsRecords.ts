/**
 * Reads the instances of one service type out of a decoded mDNS response packet.
 *
 * Every answer a live peer sends (to anyone's query, or unsolicited when it announces) holds its
 * PTR, SRV, TXT and A/AAAA records, so each response is both a discovery and a sign of life.
 * bonjour-service's Browser reports a service once and then only on changes, which is why
 * Hearth reads responses itself: MdnsDiscovery refreshes its own expiry table from them.
 *
 * A PTR with TTL 0 is a goodbye (RFC 6762 §10.1). Records are looked up only inside the same
 * packet, names compare case-insensitively, and the packet is untrusted input from the LAN:
 * any shape is accepted without throwing, and the work per packet is capped.
 *
 * Pure: no I/O.
 */

/** A packet with more records than this is cut to its first ones (ours carry about 6). */
export const MAX_RECORDS_PER_PACKET = 64;
/** Instances of our type read from one packet; more are ignored. */
export const MAX_INSTANCES_PER_PACKET = 8;
/** Addresses read for one instance. */
export const MAX_ADDRESSES_PER_INSTANCE = 16;

export interface ServiceInstanceRecords {
  /** Full instance name, lower-case, e.g. `mcr7zag-...._hearth._tcp.local`. */
  instance: string;
  port: number;
  /** The TXT record's data as decoded (normally an array of byte strings), unchecked; undefined when absent. */
  txt: unknown;
  /** A and AAAA data for the SRV target, as sent (not yet checked). */
  addresses: string[];
}

export interface ServiceResponse {
  /** Instance names (lower-case) that said goodbye. */
  goodbyes: string[];
  instances: ServiceInstanceRecords[];
}

interface RecordView {
  name: string;
  type: string;
  ttl: number;
  data: unknown;
}

function recordView(value: unknown): RecordView | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const { name, type, ttl, data } = value as Record<string, unknown>;
  if (typeof name !== "string" || typeof type !== "string" || typeof ttl !== "number") return undefined;
  return { name: name.toLowerCase(), type, ttl, data };
}

function recordsOf(packet: unknown): RecordView[] {
  if (typeof packet !== "object" || packet === null) return [];
  const { answers, additionals } = packet as Record<string, unknown>;
  const all: unknown[] = [];
  for (const section of [answers, additionals]) {
    if (!Array.isArray(section)) continue;
    for (const record of section as unknown[]) {
      if (all.length >= MAX_RECORDS_PER_PACKET) break;
      all.push(record);
    }
  }
  return all.map(recordView).filter((record): record is RecordView => record !== undefined);
}

function isPort(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 1 && value <= 65_535;
}

/**
 * The instances of `serviceName` (e.g. `_hearth._tcp.local`) in `packet`, as decoded by
 * dns-packet. Instances whose SRV is missing or malformed are left out.
 */
export function readServiceResponse(packet: unknown, serviceName: string): ServiceResponse {
  const service = serviceName.toLowerCase();
  const records = recordsOf(packet);
  const goodbyes = new Set<string>();
  const live = new Set<string>();
  for (const record of records) {
    if (record.type !== "PTR" || record.name !== service || typeof record.data !== "string") continue;
    const instance = record.data.toLowerCase();
    // The instance must be a name under the service, or a sender could point our PTR anywhere.
    if (!instance.endsWith(`.${service}`)) continue;
    if (record.ttl === 0) goodbyes.add(instance);
    else if (live.size < MAX_INSTANCES_PER_PACKET) live.add(instance);
  }

  const instances: ServiceInstanceRecords[] = [];
  for (const instance of live) {
    if (goodbyes.has(instance)) continue;
    const srv = records.find((record) => record.type === "SRV" && record.ttl > 0 && record.name === instance);
    const srvData = srv?.data as { port?: unknown; target?: unknown } | null | undefined;
    if (typeof srvData !== "object" || srvData === null || !isPort(srvData.port) || typeof srvData.target !== "string") continue;
    const target = srvData.target.toLowerCase();
    const txtRecord = records.find((record) => record.type === "TXT" && record.ttl > 0 && record.name === instance);
    // dns-packet gives an array of strings; a lone buffer is one string.
    const txt = txtRecord?.data instanceof Uint8Array ? [txtRecord.data] : txtRecord?.data;
    const addresses: string[] = [];
    for (const record of records) {
      if (addresses.length >= MAX_ADDRESSES_PER_INSTANCE) break;
      if ((record.type === "A" || record.type === "AAAA") && record.ttl > 0 && record.name === target && typeof record.data === "string") {
        addresses.push(record.data);
      }
    }
    instances.push({ instance, port: srvData.port, txt, addresses });
  }
  return { goodbyes: [...goodbyes], instances };
}
