/**
 * Which of the addresses an mDNS answer offers are worth dialling, best first.
 *
 * The address the answer came from (the "referer") is the strongest hint: the peer sent from it
 * onto a link this node is on. The A/AAAA records list every interface the peer has, including
 * Docker bridges that carry the same address on every machine (dialling 172.17.0.1 would reach
 * this node itself), VPNs, and IPv6 link-local addresses that cannot be dialled without a zone.
 *
 * Rules:
 *   - loopback, unspecified, multicast and broadcast addresses are dropped, and so is IPv6
 *     link-local (we do not know its zone);
 *   - when the answer came from another machine, addresses of this machine are dropped; when
 *     it came from this machine (two nodes on one host), they are kept: they are the way there;
 *   - order: the referer, then addresses on one of our subnets, then the rest, as advertised;
 *   - duplicates removed, at most `maxAddresses`.
 *
 * Pure: the local interfaces are passed in.
 */

import type { InterfaceAddress } from "./interfaces.js";
import { isLinkLocalAddress, isLoopbackAddress, isUnroutableAddress, localAddressSet, normaliseIp, onLocalSubnet } from "./interfaces.js";
import type { PeerAddress } from "./PeerDiscovery.js";

export interface AddressCandidates {
  /** Source address of the mDNS packet, if known. */
  referer: string | undefined;
  /** A/AAAA data from the answer, unchecked. */
  advertised: readonly string[];
  port: number;
}

/** Worth dialling from anywhere: a unicast address that is not loopback or zone-less IPv6 link-local. */
function dialable(address: string): boolean {
  if (isUnroutableAddress(address) || isLoopbackAddress(address)) return false;
  return !(address.includes(":") && isLinkLocalAddress(address));
}

export function orderPeerAddresses(candidates: AddressCandidates, localInterfaces: readonly InterfaceAddress[], maxAddresses: number): PeerAddress[] {
  const local = localAddressSet(localInterfaces);
  const referer = candidates.referer === undefined ? undefined : normaliseIp(candidates.referer);
  const fromThisHost = referer !== undefined && local.has(referer);

  const seen = new Set<string>();
  const onSubnet: string[] = [];
  const others: string[] = [];
  let first: string | undefined;
  if (referer !== undefined && dialable(referer)) {
    first = referer;
    seen.add(referer);
  }
  for (const raw of candidates.advertised) {
    const address = normaliseIp(raw);
    if (seen.has(address) || !dialable(address)) continue;
    if (!fromThisHost && local.has(address)) continue;
    seen.add(address);
    (onLocalSubnet(address, localInterfaces) ? onSubnet : others).push(address);
  }
  const ordered = first === undefined ? [...onSubnet, ...others] : [first, ...onSubnet, ...others];
  return ordered.slice(0, Math.max(0, maxAddresses)).map((host) => ({ host, port: candidates.port }));
}
