/**
 * Reading Hearth instances out of mDNS responses (daemon/discovery/mdnsRecords.ts). Packets go
 * through dns-packet, the decoder multicast-dns uses, so the shapes are the ones met live.
 */

import { createRequire } from "node:module";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MAX_INSTANCES_PER_PACKET, MAX_RECORDS_PER_PACKET, readServiceResponse } from "../../daemon/discovery/mdnsRecords.js";

const require = createRequire(import.meta.url);
const dnsPacket = require("dns-packet") as { encode(packet: unknown): Buffer; decode(bytes: Buffer): unknown };

const SERVICE = "_hearth._tcp.local";

interface Rr {
  name: string;
  type: string;
  ttl?: number;
  data: unknown;
}

/** A response as it crosses the wire: encoded, then decoded as a receiver would. */
function wire(answers: Rr[], additionals: Rr[] = []): unknown {
  const withTtl = (records: Rr[]) => records.map((record) => ({ ttl: 120, class: "IN", ...record }));
  return dnsPacket.decode(dnsPacket.encode({ type: "response", answers: withTtl(answers), additionals: withTtl(additionals) }));
}

/** The records bonjour-service sends for one instance. */
function instanceRecords(instance: string, host: string, port: number, addresses: string[], ttl = 120): Rr[] {
  const fqdn = `${instance}.${SERVICE}`;
  return [
    { name: SERVICE, type: "PTR", ttl, data: fqdn },
    { name: fqdn, type: "SRV", ttl, data: { port, target: host } },
    { name: fqdn, type: "TXT", ttl, data: ["id=x", "proto=1.0"] },
    ...addresses.map((address): Rr => ({ name: host, type: address.includes(":") ? "AAAA" : "A", ttl, data: address })),
  ];
}

describe("readServiceResponse", () => {
  it("reads instance, port, raw TXT strings and the SRV target's addresses", () => {
    const packet = wire(instanceRecords("NODE-A", "node-a.local", 4328, ["192.168.1.20", "fd00::20"]));
    const { goodbyes, instances } = readServiceResponse(packet, SERVICE);
    expect(goodbyes).toEqual([]);
    expect(instances).toHaveLength(1);
    const [instance] = instances;
    expect(instance).toMatchObject({ instance: `node-a.${SERVICE}`, port: 4328, addresses: ["192.168.1.20", "fd00::20"] });
    expect((instance!.txt as Buffer[]).map((entry) => entry.toString())).toEqual(["id=x", "proto=1.0"]);
  });

  it("finds records in the additionals section too, and compares names case-insensitively", () => {
    const [ptr, ...rest] = instanceRecords("Node-B", "Node-B.Local", 4400, ["10.0.0.2"]);
    const packet = wire([{ ...ptr!, name: "_HEARTH._tcp.local" }], rest.map((record) => ({ ...record, name: record.name.toUpperCase() })));
    expect(readServiceResponse(packet, SERVICE).instances).toMatchObject([{ instance: `node-b.${SERVICE}`, port: 4400, addresses: ["10.0.0.2"] }]);
  });

  it("takes only the addresses of the instance's own SRV target", () => {
    const packet = wire([...instanceRecords("a", "a.local", 1, ["10.0.0.1"]), ...instanceRecords("b", "b.local", 2, ["10.0.0.2"])]);
    expect(readServiceResponse(packet, SERVICE).instances.map((entry) => [entry.instance, entry.addresses])).toEqual([
      [`a.${SERVICE}`, ["10.0.0.1"]],
      [`b.${SERVICE}`, ["10.0.0.2"]],
    ]);
  });

  it("reports a PTR with TTL 0 as a goodbye, and never as a live instance", () => {
    const packet = wire(instanceRecords("gone", "gone.local", 4328, ["10.0.0.3"], 0));
    expect(readServiceResponse(packet, SERVICE)).toEqual({ goodbyes: [`gone.${SERVICE}`], instances: [] });
    const mixed = wire([...instanceRecords("gone", "gone.local", 4328, ["10.0.0.3"]), { name: SERVICE, type: "PTR", ttl: 0, data: `gone.${SERVICE}` }]);
    expect(readServiceResponse(mixed, SERVICE)).toEqual({ goodbyes: [`gone.${SERVICE}`], instances: [] });
  });

  it("ignores other services, and PTRs that point outside the service", () => {
    const other = wire(instanceRecords("x", "x.local", 80, ["10.0.0.4"]).map((record) => ({ ...record, name: record.name.replace("_hearth", "_http"), data: typeof record.data === "string" ? record.data.replace("_hearth", "_http") : record.data })));
    expect(readServiceResponse(other, SERVICE)).toEqual({ goodbyes: [], instances: [] });
    const outside = wire([{ name: SERVICE, type: "PTR", data: "evil.example.com" }, { name: "evil.example.com", type: "SRV", data: { port: 1, target: "e.local" } }]);
    expect(readServiceResponse(outside, SERVICE)).toEqual({ goodbyes: [], instances: [] });
  });

  it.each([
    ["no SRV", (records: Rr[]) => records.filter((record) => record.type !== "SRV")],
    ["port 0", (records: Rr[]) => records.map((record) => (record.type === "SRV" ? { ...record, data: { port: 0, target: "a.local" } } : record))],
    ["an SRV with TTL 0", (records: Rr[]) => records.map((record) => (record.type === "SRV" ? { ...record, ttl: 0 } : record))],
  ])("leaves out an instance with %s", (_name, mangle) => {
    expect(readServiceResponse(wire(mangle(instanceRecords("a", "a.local", 4328, ["10.0.0.1"]))), SERVICE).instances).toEqual([]);
  });

  it("reports a missing TXT as undefined, for the TXT reader to refuse", () => {
    const records = instanceRecords("a", "a.local", 4328, ["10.0.0.1"]).filter((record) => record.type !== "TXT");
    expect(readServiceResponse(wire(records), SERVICE).instances[0]?.txt).toBeUndefined();
  });

  it("caps the work per packet: records read and instances returned", () => {
    const many = Array.from({ length: 20 }, (_, i) => instanceRecords(`n${i}`, `n${i}.local`, 4328, ["10.0.0.1"])).flat();
    expect(readServiceResponse(wire(many), SERVICE).instances.length).toBeLessThanOrEqual(MAX_INSTANCES_PER_PACKET);

    const padding: Rr[] = Array.from({ length: MAX_RECORDS_PER_PACKET }, (_, i) => ({ name: `pad${i}.local`, type: "A", data: "10.9.9.9" }));
    const late = wire([...padding, ...instanceRecords("late", "late.local", 4328, ["10.0.0.5"])]);
    expect(readServiceResponse(late, SERVICE).instances).toEqual([]);
  });

  it("never throws, whatever the packet looks like", () => {
    const record = fc.record({ name: fc.oneof(fc.constant(SERVICE), fc.string()), type: fc.constantFrom("PTR", "SRV", "TXT", "A", "AAAA", "X"), ttl: fc.oneof(fc.nat(), fc.anything()), data: fc.anything() }, { requiredKeys: [] });
    const packet = fc.oneof(fc.anything(), fc.record({ answers: fc.oneof(fc.array(record, { maxLength: 30 }), fc.anything()), additionals: fc.oneof(fc.array(record, { maxLength: 30 }), fc.anything()) }));
    fc.assert(
      fc.property(packet, (input) => {
        const result = readServiceResponse(input, SERVICE);
        expect(Array.isArray(result.goodbyes) && Array.isArray(result.instances)).toBe(true);
      }),
      { numRuns: 3_000 },
    );
  });
});
