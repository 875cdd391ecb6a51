/**
 * Interface classification (daemon/discovery/interfaces.ts) and the choice and order of a
 * discovered peer's addresses (daemon/discovery/peerAddresses.ts).
 */

import os from "node:os";
import { describe, expect, it } from "vitest";
import {
  classifyInterfaces,
  interfaceKind,
  isLinkLocalAddress,
  isLoopbackAddress,
  isUnroutableAddress,
  listInterfaces,
  localAddressSet,
  normaliseIp,
  onLocalSubnet,
} from "../../daemon/discovery/interfaces.js";
import { orderPeerAddresses } from "../../daemon/discovery/peerAddresses.js";

function entry(address: string, cidr: string, internal = false): os.NetworkInterfaceInfo {
  const family = address.includes(":") ? "IPv6" : "IPv4";
  return family === "IPv6"
    ? { address, cidr, family, internal, mac: "02:00:00:00:00:01", netmask: "ffff:ffff:ffff:ffff::", scopeid: 0 }
    : { address, cidr, family, internal, mac: "02:00:00:00:00:01", netmask: "255.255.255.0" };
}

/** A typical desktop: Wi-Fi on the home LAN, Docker running, a WireGuard tunnel. */
const desktop = classifyInterfaces({
  lo: [entry("127.0.0.1", "127.0.0.1/8", true), entry("::1", "::1/128", true)],
  wlan0: [entry("192.168.1.10", "192.168.1.10/24"), entry("fe80::10", "fe80::10/64")],
  docker0: [entry("172.17.0.1", "172.17.0.1/16")],
  wg0: [entry("10.8.0.3", "10.8.0.3/24")],
});

describe("interface classification", () => {
  it.each([
    ["lo", false, "loopback"],
    ["eth0", true, "loopback"],
    ["docker0", false, "container"],
    ["br-0123456789ab", false, "container"],
    ["veth1a2b3c", false, "container"],
    ["cni0", false, "container"],
    ["virbr0", false, "vm-bridge"],
    ["vEthernet (WSL)", false, "vm-bridge"],
    ["vboxnet0", false, "vm-bridge"],
    ["wg0", false, "vpn"],
    ["tailscale0", false, "vpn"],
    ["tun0", false, "vpn"],
    ["utun3", false, "vpn"],
    ["eth0", false, "lan"],
    ["wlan0", false, "lan"],
    ["enp3s0", false, "lan"],
    ["en0", false, "lan"],
  ] as const)("%s (internal: %s) is %s", (name, internal, kind) => {
    expect(interfaceKind(name, internal)).toBe(kind);
  });

  it("flags link-local addresses and says which addresses are likely on the peers' network", () => {
    const byAddress = new Map(desktop.map((item) => [item.address, item]));
    expect(byAddress.get("192.168.1.10")).toMatchObject({ interface: "wlan0", kind: "lan", linkLocal: false, likelyPeerNetwork: true, family: "IPv4" });
    expect(byAddress.get("fe80::10")).toMatchObject({ kind: "lan", linkLocal: true, likelyPeerNetwork: false, family: "IPv6" });
    expect(byAddress.get("172.17.0.1")).toMatchObject({ kind: "container", likelyPeerNetwork: false });
    expect(byAddress.get("10.8.0.3")).toMatchObject({ kind: "vpn", likelyPeerNetwork: false });
    expect(byAddress.get("127.0.0.1")).toMatchObject({ kind: "loopback", likelyPeerNetwork: false });
  });

  it("lists this machine's real interfaces, one entry per address", () => {
    const real = os.networkInterfaces();
    const listed = listInterfaces();
    const expected = Object.values(real).flatMap((items) => items ?? []).length;
    expect(listed).toHaveLength(expected);
    expect(listed.some((item) => item.kind === "loopback")).toBe(true);
  });

  it("recognises addresses by kind", () => {
    expect(isLoopbackAddress("127.0.0.53")).toBe(true);
    expect(isLoopbackAddress("::1")).toBe(true);
    expect(isLoopbackAddress("10.0.0.1")).toBe(false);
    expect(isLinkLocalAddress("169.254.3.4")).toBe(true);
    expect(isLinkLocalAddress("fe80::1%eth0")).toBe(true);
    expect(isLinkLocalAddress("fd00::1")).toBe(false);
    for (const address of ["0.0.0.0", "255.255.255.255", "224.0.0.251", "239.1.2.3", "::", "ff02::fb", "not-an-ip"]) {
      expect(isUnroutableAddress(address)).toBe(true);
    }
    expect(isUnroutableAddress("192.168.1.1")).toBe(false);
    expect(normaliseIp("::ffff:192.168.1.7")).toBe("192.168.1.7");
    expect(normaliseIp("FD00::1")).toBe("fd00::1");
  });

  it("tells whether an address is on one of our subnets", () => {
    expect(onLocalSubnet("192.168.1.77", desktop)).toBe(true);
    expect(onLocalSubnet("192.168.2.77", desktop)).toBe(false);
    expect(onLocalSubnet("172.17.5.5", desktop)).toBe(true);
    expect(onLocalSubnet("127.0.0.2", desktop)).toBe(false);
    expect(localAddressSet(desktop).has("172.17.0.1")).toBe(true);
  });
});

describe("orderPeerAddresses", () => {
  const port = 4328;
  const hosts = (referer: string | undefined, advertised: string[], max = 8): string[] =>
    orderPeerAddresses({ referer, advertised, port }, desktop, max).map((address) => address.host);

  it("puts the address the answer came from first, then our subnets, then the rest, each with the advertised port", () => {
    const ordered = orderPeerAddresses({ referer: "192.168.1.20", advertised: ["10.99.0.2", "192.168.1.21", "192.168.1.20", "fd00::20"], port }, desktop, 8);
    expect(ordered).toEqual([
      { host: "192.168.1.20", port },
      { host: "192.168.1.21", port },
      { host: "10.99.0.2", port },
      { host: "fd00::20", port },
    ]);
  });

  it("drops a remote peer's address that is also ours, such as the Docker bridge every machine has", () => {
    expect(hosts("192.168.1.20", ["192.168.1.20", "172.17.0.1", "10.8.0.3"])).toEqual(["192.168.1.20"]);
  });

  it("keeps this machine's addresses for a peer on this machine: they are the way to it", () => {
    expect(hosts("192.168.1.10", ["192.168.1.10", "172.17.0.1"])).toEqual(["192.168.1.10", "172.17.0.1"]);
  });

  it("drops loopback, unroutable and zone-less IPv6 link-local addresses, keeps IPv4 link-local", () => {
    expect(hosts("192.168.1.20", ["127.0.0.1", "::1", "0.0.0.0", "224.0.0.251", "fe80::20", "169.254.7.7", "bogus"])).toEqual(["192.168.1.20", "169.254.7.7"]);
  });

  it("normalises an IPv4-mapped referer, removes duplicates and caps the list", () => {
    expect(hosts("::ffff:192.168.1.20", ["192.168.1.20", "192.168.1.20"])).toEqual(["192.168.1.20"]);
    expect(hosts(undefined, ["10.1.0.1", "10.1.0.2", "10.1.0.3"], 2)).toEqual(["10.1.0.1", "10.1.0.2"]);
    expect(hosts("127.0.0.1", [])).toEqual([]);
  });
});
