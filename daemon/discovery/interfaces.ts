/**
 * This machine's network interfaces and addresses, classified for discovery and `hearth doctor`.
 *
 * bonjour-service advertises every address of every interface, so peers also hear about Docker
 * bridges, VM networks and VPNs that they cannot (or should not) reach, and a Docker bridge has
 * the same address on every machine. This module says which interface is which, by the names
 * their software gives them, and which addresses are loopback or link-local, so discovery can
 * order and filter peer addresses and doctor can explain what it sees. Names are heuristics: an
 * unrecognised name is reported as "lan".
 *
 * Pure apart from `listInterfaces()`, which reads `os.networkInterfaces()`.
 */

import net from "node:net";
import os from "node:os";

/**
 * - loopback: never reachable from another machine;
 * - container: Docker, Podman, Kubernetes CNI bridges and veths (often the same subnet on every host);
 * - vm-bridge: hypervisor and WSL host-only networks;
 * - vpn: tunnels (WireGuard, Tailscale, OpenVPN, ZeroTier, PPP);
 * - lan: anything else, normally the Ethernet or Wi-Fi the peers share.
 */
export type InterfaceKind = "loopback" | "container" | "vm-bridge" | "vpn" | "lan";

export interface InterfaceAddress {
  interface: string;
  address: string;
  family: "IPv4" | "IPv6";
  /** `address/prefix`, or null when the OS did not say. */
  cidr: string | null;
  kind: InterfaceKind;
  /** 169.254.0.0/16 or fe80::/10: reachable on the local link only (IPv6 needs a zone to dial). */
  linkLocal: boolean;
  /** Where Hearth peers are expected to be found: a LAN interface, with an address usable off this machine. */
  likelyPeerNetwork: boolean;
}

const CONTAINER_NAMES = /^(docker\d*|br-[0-9a-f]{6,}|veth[0-9a-z]*|cni\d*|flannel[.\d]*|cali[0-9a-f]+|podman\d*|cilium\w*|weave|kube-\w+|lxcbr\d*|lxdbr\d*|incusbr\d*)$/i;
const VM_BRIDGE_NAMES = /^(virbr\d*|vmnet\d*|vboxnet\d*|vEthernet.*|bridge\d+|utm\d*|vnic\d*)$/i;
const VPN_NAMES = /^(tun\d*|tap\d*|wg\w*|utun\d*|ppp\d*|ipsec\w*|tailscale\d*|zt\w*|nordlynx|proton\w*|gpd\d*|cscotun\w*)$/i;

const LOOPBACK = new net.BlockList();
LOOPBACK.addSubnet("127.0.0.0", 8, "ipv4");
LOOPBACK.addAddress("::1", "ipv6");
const LINK_LOCAL = new net.BlockList();
LINK_LOCAL.addSubnet("169.254.0.0", 16, "ipv4");
LINK_LOCAL.addSubnet("fe80::", 10, "ipv6");
const NOT_A_HOST = new net.BlockList();
NOT_A_HOST.addAddress("0.0.0.0", "ipv4");
NOT_A_HOST.addAddress("255.255.255.255", "ipv4");
NOT_A_HOST.addSubnet("224.0.0.0", 4, "ipv4");
NOT_A_HOST.addAddress("::", "ipv6");
NOT_A_HOST.addSubnet("ff00::", 8, "ipv6");

function familyOf(address: string): "ipv4" | "ipv6" | undefined {
  const version = net.isIP(address);
  return version === 4 ? "ipv4" : version === 6 ? "ipv6" : undefined;
}

/** An IPv4-mapped IPv6 address (`::ffff:1.2.3.4`, as dual-stack sockets report) as plain IPv4. */
export function normaliseIp(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return mapped?.[1] !== undefined && net.isIPv4(mapped[1]) ? mapped[1] : address.toLowerCase();
}

export function isLoopbackAddress(address: string): boolean {
  const family = familyOf(address);
  return family !== undefined && LOOPBACK.check(address, family);
}

/** Link-local, ignoring any `%zone`. */
export function isLinkLocalAddress(address: string): boolean {
  const bare = address.split("%")[0] ?? address;
  const family = familyOf(bare);
  return family !== undefined && LINK_LOCAL.check(bare, family);
}

/** Unspecified, broadcast or multicast: nothing to dial. */
export function isUnroutableAddress(address: string): boolean {
  const family = familyOf(address);
  return family === undefined || NOT_A_HOST.check(address, family);
}

export function interfaceKind(name: string, internal: boolean): InterfaceKind {
  if (internal || /^lo\d*$/.test(name)) return "loopback";
  if (CONTAINER_NAMES.test(name)) return "container";
  if (VM_BRIDGE_NAMES.test(name)) return "vm-bridge";
  if (VPN_NAMES.test(name)) return "vpn";
  return "lan";
}

/** Classifies a table shaped like `os.networkInterfaces()`'s. */
export function classifyInterfaces(table: NodeJS.Dict<os.NetworkInterfaceInfo[]>): InterfaceAddress[] {
  const result: InterfaceAddress[] = [];
  for (const [name, entries] of Object.entries(table)) {
    for (const entry of entries ?? []) {
      const family = entry.family === "IPv6" ? "IPv6" : "IPv4";
      const kind = interfaceKind(name, entry.internal);
      const linkLocal = isLinkLocalAddress(entry.address);
      result.push({
        interface: name,
        address: normaliseIp(entry.address),
        family,
        cidr: entry.cidr,
        kind,
        linkLocal,
        likelyPeerNetwork: kind === "lan" && !linkLocal && !isLoopbackAddress(entry.address),
      });
    }
  }
  return result;
}

export function listInterfaces(): InterfaceAddress[] {
  return classifyInterfaces(os.networkInterfaces());
}

/** Every address of this machine, normalised, to recognise an advertised address as our own. */
export function localAddressSet(interfaces: readonly InterfaceAddress[]): Set<string> {
  return new Set(interfaces.map((entry) => entry.address));
}

/** Whether `address` lies in the subnet of one of `interfaces` (by their CIDR): reachable without a router. */
export function onLocalSubnet(address: string, interfaces: readonly InterfaceAddress[]): boolean {
  const family = familyOf(address);
  if (family === undefined) return false;
  for (const entry of interfaces) {
    if (entry.cidr === null || entry.kind === "loopback") continue;
    const [network, prefixText] = entry.cidr.split("/");
    const prefix = Number(prefixText);
    const entryFamily = network === undefined ? undefined : familyOf(network);
    if (network === undefined || entryFamily !== family || !Number.isInteger(prefix)) continue;
    const subnet = new net.BlockList();
    try {
      subnet.addSubnet(network, prefix, entryFamily);
    } catch {
      continue;
    }
    if (subnet.check(address, family)) return true;
  }
  return false;
}
